"""Issuer side: what a worker does while its database is down: serve what it holds, for a while, else 503.

The per-worker state (:mod:`oauth_cc.issuer.state`: clients and secrets, signing and public keys, the
revocation snapshot) is reloaded from the database every ``STATE_REFRESH_SECONDS``. When such a
reload fails because the database cannot be reached, the worker keeps what it last loaded for
up to ``STALE_STATE_MAX_SECONDS`` after that load, and answers from it: the token endpoint
issues tokens to clients it knows, protected views keep checking tokens against the keys and
revocation state held. What it does not hold, or holds for longer than that, gets a JSON 503
``temporarily_unavailable`` with ``Retry-After``; so do writes (revocation, the single-use record
of a client assertion: a possibly replayed assertion is never accepted).

Why serving held state is safe enough: while the database is down nobody can disable a client,
revoke a secret or rotate a key either (they are database writes), so the held state is the
latest this worker could know, as stale as it is in normal operation. The bound is for the
case where only this worker lost the database (a network partition, a full connection pool)
while operators keep changing things through other hosts; revocations still reach it through
the shared cache then (:func:`oauth_cc.common.shared.shared_or_loaded` reads the cache first).

Not hammering a dead database: :data:`database` lets one attempt through per worker and
``STATE_REFRESH_SECONDS`` once an attempt has failed; the others fail at once without a
connection attempt (which can take up to the driver's ``connect_timeout``). It logs the start
and the end of an outage once each, and a reminder at most once a minute in between, never
per request. Recovery needs no restart: Django opens a new connection at the next attempt.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError

from ..common import resets
from ..common.errors import TemporarilyUnavailable
from ..conf import oauth_cc_settings

logger = logging.getLogger("oauth_cc.outage")
T = TypeVar("T")

#: The errors that mean "the database cannot be reached", as Django wraps them for every
#: backend (a refused or dropped connection, a server shutting down, a closed connection).
#: Other database errors (a missing table, a constraint) are bugs or data, not an outage.
UNREACHABLE = (OperationalError, InterfaceError)
#: While an outage lasts, a reminder is logged at most this often (seconds).
REMINDER_SECONDS = 60.0

DESCRIPTION = "The authorization server cannot reach its database right now; retry shortly."


def retry_after() -> int:
    """Seconds a client should wait: the worker's retry interval, whole, at least 1."""
    return max(1, math.ceil(float(oauth_cc_settings.STATE_REFRESH_SECONDS)))


def unavailable() -> TemporarilyUnavailable:
    return TemporarilyUnavailable(DESCRIPTION, retry_after=retry_after())


def usable(loaded_at: float) -> bool:
    """Whether state loaded at ``loaded_at`` (``time.monotonic()``) may still be served in an outage."""
    return time.monotonic() - loaded_at <= float(oauth_cc_settings.STALE_STATE_MAX_SECONDS)


class DatabaseGate:
    """A worker's knowledge of whether its database is reachable, and the one door to it.

    :meth:`run` runs a database operation, unless an attempt failed less than a retry interval
    ago; either way an unreachable database becomes :class:`~oauth_cc.common.errors.TemporarilyUnavailable`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._down_since: float | None = None
        self._retry_at = float("-inf")
        self._reminded_at = float("-inf")
        self._failures = 0

    @property
    def down(self) -> bool:
        """True from a failed attempt until the next successful one."""
        return self._down_since is not None

    def run(self, what: str, operation: Callable[[], T]) -> T:
        """``operation()``, or ``TemporarilyUnavailable`` if the database is (still) down.

        ``what`` names the operation for the log ("client data", "the revocation state").
        """
        with self._lock:
            if self._down_since is not None:
                now = time.monotonic()
                if now < self._retry_at:
                    raise unavailable()
                # This thread probes; the others keep failing fast until it is done.
                self._retry_at = now + float(oauth_cc_settings.STATE_REFRESH_SECONDS)
        try:
            result = operation()
        except UNREACHABLE as exc:
            self.failed(what, exc)
            raise unavailable() from None
        if self._down_since is not None:
            self._recovered()
        return result

    def failed(self, what: str, exc: BaseException) -> None:
        """Record a failed attempt (also for operations that did not go through :meth:`run`)."""
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            self._retry_at = now + float(oauth_cc_settings.STATE_REFRESH_SECONDS)
            if self._down_since is None:
                self._down_since = self._reminded_at = now
                first = True
            elif now - self._reminded_at >= REMINDER_SECONDS:
                self._reminded_at = now
                first = False
            else:
                return
        # The exception's text is the driver's (host, port, reason): no credentials, no request data.
        if first:
            logger.error(
                "oauth_cc cannot reach the database (%s: %s, while loading %s); serving held state "
                "for up to %ss, retrying every %ss",
                type(exc).__name__,
                str(exc).strip()[:300],
                what,
                oauth_cc_settings.STALE_STATE_MAX_SECONDS,
                oauth_cc_settings.STATE_REFRESH_SECONDS,
            )
        else:
            logger.error(
                "oauth_cc still cannot reach the database after %.0fs (%s failed attempts)",
                now - (self._down_since or now),
                self._failures,
            )

    def _recovered(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            duration = time.monotonic() - self._down_since
            failures = self._failures
            self.reset()
        logger.warning(
            "oauth_cc reaches the database again after %.1fs (%s failed attempts)", duration, failures
        )


database = DatabaseGate()
resets.register("oauth_cc.issuer.outage.database", database.reset)
