"""One site-wide change token, so a worker's cost does not grow with the clients it serves.

Workers cache client data, secrets and the revocation snapshot (:mod:`oauth_cc.state`,
:mod:`oauth_cc.revocation`). Reloading each cached entry once per ``STATE_REFRESH_SECONDS``
would cost queries in proportion to the clients in rotation. Instead every change to that
data replaces one value, :class:`~oauth_cc.models.StateGeneration`, in the same transaction
(:func:`bump`), and each worker reads that value at most once per refresh interval: the same
value means nothing it caches has changed, another value means reload.

The value lives in the database, so it survives a cache eviction or restart and works with a
per-process cache; the shared cache (``CACHE_ALIAS``) holds a copy, so with Redis a check is
one cache read. The copy is deleted when a change is made and again when it commits, and a
missing copy is read again from the database (never assumed unchanged). It is random rather
than a counter: a value written by a transaction that rolled back is never reused, so a
snapshot tagged with it can never pass for current.

Changes made behind Django's signals (``QuerySet.update()``, raw SQL) do not bump it: call
:func:`bump` (or ``manage.py oauth_cc refresh``) after them.
"""

from __future__ import annotations

import logging
import secrets

from django.core.cache import caches
from django.db import IntegrityError, transaction

from .conf import oauth_cc_settings

logger = logging.getLogger("oauth_cc.generation")

CACHE_KEY = "oauth_cc:generation:v1"
# The single row's primary key.
ROW = 1


def _new_value() -> int:
    # 63 bits: fits a signed BIGINT; a repeat is as likely as guessing a 63-bit secret.
    return secrets.randbits(63) or 1


def read_database() -> int:
    """The current value from the database (one query); 0 before the first change."""
    from .models import StateGeneration

    value = StateGeneration.objects.filter(pk=ROW).values_list("value", flat=True).first()
    return int(value or 0)


def _forget_shared() -> None:
    try:
        caches[oauth_cc_settings.CACHE_ALIAS].delete(CACHE_KEY)
    except Exception:
        # Workers then see the change once the copy expires (one refresh interval later).
        logger.warning("oauth_cc could not delete %s from the cache", CACHE_KEY)


def bump() -> None:
    """Record that cached state changed. Call inside the transaction that makes the change.

    The row update locks the row until that transaction ends, so concurrent changes are
    ordered and the last committed value belongs to the last committed change.
    """
    from .models import StateGeneration

    value = _new_value()
    if not StateGeneration.objects.filter(pk=ROW).update(value=value):
        try:
            with transaction.atomic():
                StateGeneration.objects.create(pk=ROW, value=value)
        except IntegrityError:  # created by a concurrent first change
            StateGeneration.objects.filter(pk=ROW).update(value=value)
    # Now for this process (and for tests, whose transactions never commit), and again at
    # commit: a worker that read the old value in between must not keep its copy.
    _forget_shared()
    transaction.on_commit(_forget_shared)


def current() -> int:
    """The current value: one shared-cache read, or one query when the cache has no copy."""
    cache = caches[oauth_cc_settings.CACHE_ALIAS]
    try:
        value = cache.get(CACHE_KEY)
    except Exception:
        logger.warning("oauth_cc could not read %s from the cache; reading the database", CACHE_KEY)
        return read_database()
    if value is None:
        value = read_database()
        try:
            # add, not set: a copy a concurrent bump wrote (or deleted) wins over this read.
            # It expires after one interval, which bounds how long a copy read just before a
            # commit can hide that commit's change.
            cache.add(CACHE_KEY, value, timeout=oauth_cc_settings.shared_state_timeout)
        except Exception:
            logger.warning("oauth_cc could not write %s to the cache", CACHE_KEY)
    return int(value)


class Watcher:
    """A worker's last seen value; tells its owner whether to drop what it cached."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen: int | None = None
        self.checked_at = float("-inf")

    def saw(self, value: int, now: float) -> None:
        """Count ``value`` as read at ``now`` (its owner has just loaded state tagged with it)."""
        self.seen = value
        self.checked_at = now

    def changed(self, now: float) -> bool:
        """Read the value if the last read is older than the interval; True if it changed.

        Never True twice for one change; a first read always counts as a change.
        """
        if now - self.checked_at <= oauth_cc_settings.STATE_REFRESH_SECONDS:
            return False
        value = current()
        self.checked_at = now
        if value == self.seen:
            return False
        self.seen = value
        return True
