"""Issuer side: site-wide change tokens, so a worker's cost does not grow with the clients it serves.

Workers cache client data, secrets and the revocation snapshot (:mod:`oauth_cc.issuer.state`,
:mod:`oauth_cc.issuer.revocation`). Reloading each cached entry once per ``STATE_REFRESH_SECONDS``
would cost queries in proportion to the clients in rotation. Instead every change to that
data replaces a value, a :class:`~oauth_cc.models.StateGeneration` row, in the same
transaction (:func:`bump`), and each worker reads that value at most once per refresh
interval: the same value means nothing it caches has changed, another value means reload.

There are two, so that revoking a token (which clients do through an endpoint, possibly
often) does not make every worker reload every client: :data:`CLIENTS` (client rows, secrets,
scopes and scope grants) and :data:`REVOCATION` (the revocation snapshot: revoked jtis,
disabled, cut-off and deleted clients). A change to a client row bumps both.

The value lives in the database, so it survives a cache eviction or restart and works with a
per-process cache; the shared cache (``CACHE_ALIAS``) holds a copy, so with Redis a check is
one cache read. The copy is deleted when a change is made and again when it commits, and a
missing copy is read again from the database (never assumed unchanged). It is random rather
than a counter: a value written by a transaction that rolled back is never reused, so a
snapshot tagged with it can never pass for current.

Changes made behind Django's signals (``QuerySet.update()``, raw SQL) do not bump them: call
``bump(CLIENTS, REVOCATION)`` (or ``manage.py oauth_cc state refresh``) after them.
"""

from __future__ import annotations

import functools
import logging
import secrets

from django.core.cache import caches
from django.db import IntegrityError, transaction

from ..conf import oauth_cc_settings

logger = logging.getLogger("oauth_cc.generation")

#: Row of client data (ClientCache) and row of the revocation snapshot (RevocationState).
CLIENTS = 1
REVOCATION = 2


def cache_key(row: int) -> str:
    """The shared cache key of ``row``'s copy."""
    return f"oauth_cc:generation:v1:{row}"


def _new_value() -> int:
    # 63 bits: fits a signed BIGINT; a repeat is as likely as guessing a 63-bit secret.
    return secrets.randbits(63) or 1


def read_database(row: int) -> int:
    """The current value of ``row`` from the database (one query); 0 before its first change."""
    from ..models import StateGeneration

    value = StateGeneration.objects.filter(pk=row).values_list("value", flat=True).first()
    return int(value or 0)


def _forget_shared(row: int) -> None:
    try:
        caches[oauth_cc_settings.CACHE_ALIAS].delete(cache_key(row))
    except Exception:
        # Workers then see the change once the copy expires (one refresh interval later).
        logger.warning("oauth_cc could not delete %s from the cache", cache_key(row))


def bump(*rows: int) -> None:
    """Record that cached state changed. Call inside the transaction that makes the change.

    Each row update locks the row until that transaction ends, so concurrent changes are
    ordered and the last committed value belongs to the last committed change. The code
    bumps CLIENTS before REVOCATION in a transaction that changes both, so such changes
    cannot deadlock on the two rows.
    """
    from ..models import StateGeneration

    for row in sorted(set(rows)):
        value = _new_value()
        if not StateGeneration.objects.filter(pk=row).update(value=value):
            try:
                with transaction.atomic():
                    StateGeneration.objects.create(pk=row, value=value)
            except IntegrityError:  # created by a concurrent first change
                StateGeneration.objects.filter(pk=row).update(value=value)
        # Now for this process (and for tests, whose transactions never commit), and again at
        # commit: a worker that read the old value in between must not keep its copy.
        _forget_shared(row)
        transaction.on_commit(functools.partial(_forget_shared, row))


def current(row: int) -> int:
    """The current value of ``row``: one shared-cache read, or one query when the cache has no copy."""
    cache = caches[oauth_cc_settings.CACHE_ALIAS]
    key = cache_key(row)
    try:
        value = cache.get(key)
    except Exception:
        from . import outage

        logger.warning("oauth_cc could not read %s from the cache; reading the database", key)
        return outage.database.run("the change token", lambda: read_database(row))
    if value is None:
        from . import outage

        # Through the outage gate: with the database down, a worker fails fast and its owner
        # decides whether what it holds may still be served (Watcher.check).
        value = outage.database.run("the change token", lambda: read_database(row))
        try:
            # add, not set: a copy a concurrent bump wrote (or deleted) wins over this read.
            # It expires after one interval, which bounds how long a copy read just before a
            # commit can hide that commit's change.
            cache.add(key, value, timeout=oauth_cc_settings.shared_state_timeout)
        except Exception:
            logger.warning("oauth_cc could not write %s to the cache", key)
    return int(value)


class Watcher:
    """A worker's last seen value of one row; tells its owner whether to drop what it cached.

    ``confirmed_at`` is when the value was last read and matched what the owner holds: while
    the database cannot be reached, the owner may serve what it holds for
    ``STALE_STATE_MAX_SECONDS`` from then (:mod:`oauth_cc.issuer.outage`), never longer.
    """

    def __init__(self, row: int) -> None:
        self.row = row
        self.reset()

    def reset(self) -> None:
        self.seen: int | None = None
        self.checked_at = float("-inf")
        self.confirmed_at = float("-inf")

    def saw(self, value: int, now: float) -> None:
        """Count ``value`` as read at ``now`` (its owner has just loaded state tagged with it)."""
        self.seen = value
        self.checked_at = self.confirmed_at = now

    def check(self, now: float) -> int | None:
        """The new value if it changed since :attr:`seen` (read at most once per interval), else None.

        The owner calls :meth:`saw` once it has loaded the state of the new value; until then
        the change is reported again at the next read. With the database down and the value's
        copy gone from the cache, this returns None (keep what is held) while what is held was
        confirmed within ``STALE_STATE_MAX_SECONDS``, and raises ``TemporarilyUnavailable``
        after that or when nothing was ever loaded.
        """
        from ..common.errors import TemporarilyUnavailable
        from . import outage

        if now - self.checked_at <= oauth_cc_settings.STATE_REFRESH_SECONDS:
            return None
        try:
            value = current(self.row)
        except TemporarilyUnavailable:
            if self.seen is None or not outage.usable(self.confirmed_at):
                raise
            return None  # checked_at stays: the next request asks again (the gate fails fast)
        self.checked_at = now
        if value == self.seen:
            self.confirmed_at = now
            return None
        return value

    def changed(self, now: float) -> bool:
        """:meth:`check`, counting a new value as seen at once (for owners that reload lazily).

        Never True twice for one change; a first read always counts as a change.
        """
        value = self.check(now)
        if value is None:
            return False
        self.saw(value, now)
        return True
