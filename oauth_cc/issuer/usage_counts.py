"""Issuer side: tokens issued per client and per clock hour, without a database write per token request.

Counting (the token endpoint, :func:`count_issued`): each worker adds one to an in-process
counter keyed by (client_id, hour) - a clock read, a lock and a dict update. The request
that finds ``USAGE_FLUSH_SECONDS`` elapsed since this worker's last flush writes the
worker's counters in one statement that *adds* to the stored buckets (``INSERT ... ON
CONFLICT DO UPDATE SET count = count + excluded.count``), so any number of workers and
hosts sum exactly, whatever the cache backend. A worker also flushes at exit.

Why not Redis ``INCR``: the shared cache is optional (``CACHE_ALIAS`` may be a per-process
cache), a cache restart would drop counts silently, and every token request would pay a
network round trip. What this design can lose: the unflushed counts of a worker that dies
without running its exit hook (``kill -9``, OOM), at most ``USAGE_FLUSH_SECONDS`` of that
worker's tokens. A flush that fails (database down) is logged and its counts are kept for
the next one; the memory they take is bounded by :data:`MAX_PENDING_BUCKETS`.

Reads (admin, command) see what the workers have flushed: a lag of up to
``USAGE_FLUSH_SECONDS`` per worker, longer for a worker that serves no further token
request after counting (it flushes on its next request or at exit). Reads flush the reading
process's own counters first.

"Not caching tokens": see :func:`not_caching`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import F

from ..common.errors import TemporarilyUnavailable
from ..conf import oauth_cc_settings
from . import outage

logger = logging.getLogger("oauth_cc.usage")

HOUR = 3600
#: Most (client, hour) counters a worker holds before a flush empties them. A token is only
#: counted after its client authenticated, so this is reached only when flushes keep failing
#: (about 10,000 clients for 5 hours); then the oldest hours are dropped, with a warning.
MAX_PENDING_BUCKETS = 50_000
#: Rows per upsert statement (PostgreSQL allows 65,535 parameters per statement).
UPSERT_BATCH = 1000


def hour_of(timestamp: float) -> int:
    """The bucket of a Unix time: whole hours since the epoch."""
    return int(timestamp // HOUR)


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR, tz=timezone.utc)


class UsageCounter:
    """One worker's unflushed token counts. Thread-safe; one instance per process in use."""

    def __init__(self, max_buckets: int = MAX_PENDING_BUCKETS) -> None:
        self._pending: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._max_buckets = max_buckets
        self._last_flush = time.time()
        self.dropped = 0

    def count(self, client_id: str, now: float | None = None) -> None:
        """Count one token issued to ``client_id``; flush if the interval has elapsed."""
        if now is None:
            now = time.time()
        key = (client_id, int(now // HOUR))
        with self._lock:
            pending = self._pending
            current = pending.get(key)
            if current is not None:
                pending[key] = current + 1
            elif len(pending) < self._max_buckets:
                pending[key] = 1
            else:
                self.dropped += 1
        last = self._last_flush
        # A wall clock set back would otherwise postpone the next flush by as much.
        if now - last >= oauth_cc_settings.USAGE_FLUSH_SECONDS or now < last:
            self.flush(now)

    def pending(self) -> dict[tuple[str, int], int]:
        """A copy of the counts not written yet."""
        with self._lock:
            return dict(self._pending)

    def flush(self, now: float | None = None) -> bool:
        """Add this worker's counts to the database. Never raises; False if they are kept for later.

        Only one thread of a worker flushes at a time; another that finds a flush under way
        returns at once (its counts are in the dict the running flush may already have taken,
        or go with the next one).
        """
        if not self._flush_lock.acquire(blocking=False):
            return False
        try:
            self._last_flush = time.time() if now is None else now
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return True
            try:
                outage.database.run("usage counts", lambda: add_counts(batch))
            except TemporarilyUnavailable:
                # The database is down (logged once by oauth_cc.outage): keep them, try later.
                self._restore(batch)
                return False
            except Exception:
                # Bookkeeping must never fail a token request: keep the counts for the next try.
                logger.warning(
                    "Could not write usage counts of %d client-hour(s); keeping them for the next flush",
                    len(batch),
                    exc_info=True,
                )
                self._restore(batch)
                return False
            return True
        finally:
            self._flush_lock.release()

    def _restore(self, batch: dict[tuple[str, int], int]) -> None:
        with self._lock:
            for key, n in self._pending.items():
                batch[key] = batch.get(key, 0) + n
            if len(batch) > self._max_buckets:
                # Keep the newest hours; the oldest are the least useful and the most likely lost.
                keep = sorted(batch, key=lambda k: k[1], reverse=True)[: self._max_buckets]
                lost = sum(batch[k] for k in batch.keys() - set(keep))
                self.dropped += lost
                logger.warning("Dropped %d unflushed token count(s): too many client-hours pending", lost)
                batch = {k: batch[k] for k in keep}
            self._pending = batch

    def reset(self, now: float | None = None) -> None:
        """Forget the counts (tests) and start a new flush interval."""
        with self._lock:
            self._pending = {}
            self.dropped = 0
        self._last_flush = time.time() if now is None else now


def add_counts(counts: dict[tuple[str, int], int]) -> None:
    """Add ``counts`` to the stored buckets, creating missing ones, in one transaction.

    Rows are written in (client_id, hour) order so two workers flushing overlapping buckets
    lock them in the same order and cannot deadlock.
    """
    from ..models import UsageBucket

    rows = sorted((cid, hour, n) for (cid, hour), n in counts.items() if n > 0)
    alias = router.db_for_write(UsageBucket)
    connection = connections[alias]
    with transaction.atomic(using=alias):
        if connection.vendor in ("postgresql", "sqlite"):
            qn = connection.ops.quote_name
            table = qn(UsageBucket._meta.db_table)
            with connection.cursor() as cursor:
                for start in range(0, len(rows), UPSERT_BATCH):
                    chunk = rows[start : start + UPSERT_BATCH]
                    values = ", ".join(["(%s, %s, %s)"] * len(chunk))
                    cursor.execute(
                        f"INSERT INTO {table} ({qn('client_id')}, {qn('hour')}, {qn('count')}) "  # noqa: S608
                        f"VALUES {values} ON CONFLICT ({qn('client_id')}, {qn('hour')}) "
                        f"DO UPDATE SET {qn('count')} = {table}.{qn('count')} + excluded.{qn('count')}",
                        [value for row in chunk for value in row],
                    )
            return
        # Other databases: an UPDATE that adds, and an INSERT when the bucket is new.
        for cid, hour, n in rows:
            bucket = UsageBucket.objects.using(alias).filter(client_id=cid, hour=hour)
            if bucket.update(count=F("count") + n):
                continue
            try:
                with transaction.atomic(using=alias):
                    UsageBucket.objects.using(alias).create(client_id=cid, hour=hour, count=n)
            except IntegrityError:  # another worker created it since the UPDATE
                bucket.update(count=F("count") + n)


counter = UsageCounter()


def count_issued(client_id: str) -> None:
    """Count one token issued to ``client_id`` (the token endpoint calls this)."""
    counter.count(client_id)


def flush() -> bool:
    return counter.flush()


def reset() -> None:
    counter.reset()


def _flush_at_exit() -> None:
    try:
        counter.flush()
    except Exception:  # noqa: S110 - the interpreter is going away; nothing left to tell
        pass


atexit.register(_flush_at_exit)


# -- reading ----------------------------------------------------------------------------------


def prune(now: float | None = None) -> int:
    """Delete buckets older than ``USAGE_RETENTION_DAYS``; returns how many."""
    from ..models import UsageBucket

    now = time.time() if now is None else now
    oldest_kept = hour_of(now) - int(oauth_cc_settings.USAGE_RETENTION_DAYS) * 24
    try:
        return UsageBucket.objects.filter(hour__lt=oldest_kept).delete()[0]
    except DatabaseError:
        logger.warning("Could not prune old usage counts", exc_info=True)
        return 0


def hourly_counts(client_ids: Iterable[str], first_hour: int, last_hour: int) -> dict[tuple[str, int], int]:
    """Stored counts per (client_id, hour) for hours in [first_hour, last_hour]. One query."""
    from ..models import UsageBucket

    rows = UsageBucket.objects.filter(
        client_id__in=list(client_ids), hour__gte=first_hour, hour__lte=last_hour
    ).values_list("client_id", "hour", "count")
    return {(cid, hour): n for cid, hour, n in rows}


def window_count(counts: dict[int, int], now: float, hours: int) -> int:
    """Tokens in the ``hours`` hours before ``now``, from hourly buckets.

    The current hour and the ``hours - 1`` before it count fully; the bucket before those
    overlaps the window only by the part of the current hour not yet elapsed, so it counts
    in that proportion (rounded down). This is the usual sliding-window estimate: exact when
    tokens are spread evenly within an hour, never off by more than that one bucket.
    """
    current = hour_of(now)
    elapsed = int(now - current * HOUR)
    full = sum(counts.get(current - k, 0) for k in range(hours))
    return full + counts.get(current - hours, 0) * (HOUR - elapsed) // HOUR


def effective_lifetime(access_token_lifetime: int | None) -> int:
    return int(access_token_lifetime or oauth_cc_settings.ACCESS_TOKEN_LIFETIME)


def not_caching_limit(lifetime: int) -> float:
    """Tokens per hour above which a client with this token lifetime is "not caching tokens"."""
    threshold = int(oauth_cc_settings.NOT_CACHING_THRESHOLD)
    return threshold * max(1.0, HOUR / lifetime)


def not_caching(tokens_last_hour: int, lifetime: int) -> bool:
    """True when a client got more than ``NOT_CACHING_THRESHOLD`` tokens per token lifetime.

    Precisely: ``tokens_last_hour > NOT_CACHING_THRESHOLD * 3600 / lifetime``, and for
    lifetimes of an hour or more ``tokens_last_hour > NOT_CACHING_THRESHOLD`` (an hour is
    the shortest window measured). Compared in integers, so the boundary is exact: a client
    exactly at the limit is not flagged.
    """
    threshold = int(oauth_cc_settings.NOT_CACHING_THRESHOLD)
    return tokens_last_hour > threshold and tokens_last_hour * lifetime > threshold * HOUR


@dataclass(frozen=True)
class ClientUsage:
    client_id: str
    tokens_last_hour: int
    tokens_last_day: int
    not_caching_tokens: bool
    token_lifetime: int
    not_caching_limit: float
    last_used_at: datetime | None
    #: (start of hour, tokens) for the last 7 x 24 hours, oldest first, the current hour last.
    hours: tuple[tuple[datetime, int], ...]
    #: (UTC day, tokens) for the last 7 days, oldest first, today last.
    days: tuple[tuple[datetime, int], ...]


CHART_HOURS = 7 * 24


def client_usage(application: object, now: float | None = None) -> ClientUsage:
    """Usage of one client (an ``Application``). Flushes this process's counts first; one query."""
    flush()
    now = time.time() if now is None else now
    client_id: str = application.client_id  # type: ignore[attr-defined]
    current = hour_of(now)
    # 7 days of hours for the chart; one more hour for the sliding day window.
    first = min(current - CHART_HOURS + 1, current - 24)
    stored = hourly_counts([client_id], first, current)
    counts = {hour: n for (_, hour), n in stored.items()}
    lifetime = effective_lifetime(application.access_token_lifetime)  # type: ignore[attr-defined]
    last_hour = window_count(counts, now, 1)
    hours = tuple((hour_start(h), counts.get(h, 0)) for h in range(current - CHART_HOURS + 1, current + 1))
    today = hour_start(current).replace(hour=0)
    days = []
    for back in range(6, -1, -1):
        day = today - timedelta(days=back)
        day_first = hour_of(day.timestamp())
        days.append((day, sum(counts.get(h, 0) for h in range(day_first, day_first + 24))))
    return ClientUsage(
        client_id=client_id,
        tokens_last_hour=last_hour,
        tokens_last_day=window_count(counts, now, 24),
        not_caching_tokens=not_caching(last_hour, lifetime),
        token_lifetime=lifetime,
        not_caching_limit=not_caching_limit(lifetime),
        last_used_at=application.last_used_at,  # type: ignore[attr-defined]
        hours=hours,
        days=tuple(days),
    )


def not_caching_client_ids(now: float | None = None) -> set[str]:
    """The client_ids flagged "not caching tokens" now. Two queries, whatever the number of clients."""
    from ..models import Application

    flush()
    now = time.time() if now is None else now
    current = hour_of(now)
    from ..models import UsageBucket

    rows = UsageBucket.objects.filter(hour__gte=current - 1, hour__lte=current).values_list(
        "client_id", "hour", "count"
    )
    per_client: dict[str, dict[int, int]] = {}
    for cid, hour, n in rows:
        per_client.setdefault(cid, {})[hour] = n
    threshold = int(oauth_cc_settings.NOT_CACHING_THRESHOLD)
    busy = {cid: window_count(c, now, 1) for cid, c in per_client.items()}
    busy = {cid: n for cid, n in busy.items() if n > threshold}  # nobody at or below it is flagged
    if not busy:
        return set()
    lifetimes = Application.objects.filter(client_id__in=list(busy)).values_list(
        "client_id", "access_token_lifetime"
    )
    return {cid for cid, lifetime in lifetimes if not_caching(busy[cid], effective_lifetime(lifetime))}
