"""Issuer side: "last used" bookkeeping for clients and secrets, without a write per token request.

Each worker collects the clients and secrets that authenticated, and writes them at most once
per ``LAST_USED_WRITE_INTERVAL``: one ``UPDATE`` for the clients and one for the secrets, whatever
their number, stamped with the time of the write. So the cost does not grow with the clients in
rotation (a write per client and interval would: 1,000 clients make 2,000 writes a minute per
worker), and a "last used" time is late by at most the interval. The first use after a quiet
interval is written at once; the rest of an interval's uses go with the next write, or with the
write at the worker's exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time

from django.db import DatabaseError
from django.utils import timezone

from ..common.errors import TemporarilyUnavailable
from ..conf import oauth_cc_settings
from . import outage

logger = logging.getLogger("oauth_cc.usage")

#: Rows written per statement (well under every database's bound on query parameters).
CHUNK = 500
#: Ids held per worker between writes; past it, the write is due at once.
MAX_PENDING = 50_000


class LastUsed:
    """The client and secret ids a worker has seen authenticate since its last write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._clients: set[int] = set()
        self._secrets: set[int] = set()
        self._written_at = float("-inf")

    def note(self, client_pk: int, secret_pk: int | None, now: float | None = None) -> None:
        """Remember a use; write what is pending if the interval has passed since the last write."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._clients.add(client_pk)
            if secret_pk is not None:
                self._secrets.add(secret_pk)
            due = (
                now - self._written_at >= float(oauth_cc_settings.LAST_USED_WRITE_INTERVAL)
                or len(self._clients) + len(self._secrets) >= MAX_PENDING
            )
            if not due:
                return
            clients, secrets = self._clients, self._secrets
            self._clients, self._secrets = set(), set()
            self._written_at = now
        self._write(clients, secrets)

    def flush(self) -> None:
        """Write whatever is pending now (the worker is exiting, or a test wants it)."""
        with self._lock:
            clients, secrets = self._clients, self._secrets
            self._clients, self._secrets = set(), set()
            self._written_at = time.monotonic()
        if clients or secrets:
            self._write(clients, secrets)

    def pending(self) -> tuple[set[int], set[int]]:
        with self._lock:
            return set(self._clients), set(self._secrets)

    def _write(self, clients: set[int], secrets: set[int]) -> None:
        from ..models import Application, ClientSecret

        stamp = timezone.now()

        def write() -> None:
            for model, ids in ((Application, sorted(clients)), (ClientSecret, sorted(secrets))):
                for start in range(0, len(ids), CHUNK):
                    model.objects.filter(pk__in=ids[start : start + CHUNK]).update(last_used_at=stamp)

        try:
            outage.database.run("last-used times", write)
        except (TemporarilyUnavailable, DatabaseError) as exc:
            # Bookkeeping never fails a request: keep the ids for the next write (bounded).
            with self._lock:
                if len(self._clients) + len(clients) + len(self._secrets) + len(secrets) <= MAX_PENDING:
                    self._clients |= clients
                    self._secrets |= secrets
            if not isinstance(exc, TemporarilyUnavailable):  # an outage is logged by oauth_cc.outage
                logger.warning("Could not record the last use of %d client(s)", len(clients), exc_info=True)


last_used = LastUsed()


def note_used(client_pk: int, secret_pk: int | None) -> None:
    last_used.note(client_pk, secret_pk)


def _flush_at_exit() -> None:
    try:
        last_used.flush()
    except Exception:  # noqa: S110 - the interpreter is going away; nothing left to tell
        pass


atexit.register(_flush_at_exit)


def reset() -> None:
    """Forget this worker's bookkeeping: pending last-used ids and unflushed usage counts."""
    from . import usage_counts

    last_used.reset()
    usage_counts.reset()
