"""Both sides: rate limits counted in the shared cache: one rate parser, one atomic sliding-window counter.

Why a sliding-window counter on the Django cache API, and not a library or GCRA: the count
is one ``incr`` of a per-window key (Redis ``INCR`` and memcached ``incr`` are atomic; Django's
LocMemCache takes a lock), so concurrent workers on several hosts never admit more than the
limit, which DRF's built-in throttles (a ``get`` then a ``set`` of a timestamp list) do. It
needs no Lua and no backend-specific client, so any Django cache works. GCRA needs a
compare-and-set of one timestamp, which the Django cache API does not offer. The estimate
weighs the previous window by how much of it still overlaps the sliding window
(``previous * (1 - elapsed) + current``), the algorithm Cloudflare and others describe; it is
exact when traffic is even across the previous window and never lets a burst at a window
boundary double the limit, as a fixed window does.

Each check costs two or three cache round trips: the ``incr`` (Django's Redis backend first
asks whether the key exists), and a ``get`` of the previous window.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import time
from dataclasses import dataclass

from django.core.cache import BaseCache, caches
from django.http import HttpRequest

from ..conf import oauth_cc_settings
from . import resets
from .errors import TemporarilyUnavailable, TooManyRequests

logger = logging.getLogger("oauth_cc.ratelimit")

#: Period names a rate may use, DRF's spellings included ("100/min", "1000/day").
PERIODS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
#: At most a billion per period: more is "no limit", and the counter stays a small integer.
MAX_COUNT = 1_000_000_000
_RATE_RE = re.compile(r"([1-9][0-9]{0,9})/([a-z]{1,6})")
RATE_HELP = 'a rate like "100/hour": a whole number from 1, a slash, and second, minute, hour or day'


class RateError(ValueError):
    """A rate string that is not ``N/second|minute|hour|day``; the message says what to write."""


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: int  # seconds

    def __str__(self) -> str:
        name = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}[self.period]
        return f"{self.count}/{name}"


def parse_rate(text: object) -> Rate:
    """``"100/hour"`` -> ``Rate(100, 3600)``. Strict: no spaces, no ``0/hour``, no other units.

    ``0/...`` is refused because it would lock a client out for good; disable the client instead.
    """
    if not isinstance(text, str):
        raise RateError(f"Enter {RATE_HELP}.")
    match = _RATE_RE.fullmatch(text)
    if match is None or match.group(2) not in PERIODS:
        shown = text if len(text) <= 40 and text.isprintable() else repr(text[:40])
        raise RateError(f'"{shown}" is not a rate. Enter {RATE_HELP}.')
    count = int(match.group(1))
    if count > MAX_COUNT:
        raise RateError(f"A rate allows at most {MAX_COUNT:,} per period; leave it empty for no limit.")
    return Rate(count, PERIODS[match.group(2)])


def parse_optional_rate(text: object) -> Rate | None:
    """A rate setting: ``None`` means no limit."""
    return None if text is None else parse_rate(text)


#: Retry-After (seconds) when the cache is down and the site fails closed.
FAIL_CLOSED_RETRY_AFTER = 5


_setting_rates: dict[str, Rate | None] = {}


def setting_rate(name: str) -> Rate | None:
    """The rate setting ``name`` (one of ``conf.RATE_SETTINGS``) parsed once, or None."""
    if name not in _setting_rates:
        _setting_rates[name] = parse_optional_rate(getattr(oauth_cc_settings, name))
    return _setting_rates[name]


resets.register("oauth_cc.common.ratelimit.setting_rate", _setting_rates.clear)


class CacheUnavailable(Exception):
    """The cache could not be reached and the site fails closed (``RATE_LIMIT_FAIL_OPEN`` off)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rate: Rate
    #: Requests left in the sliding window after this one (0 when refused).
    remaining: int
    #: Seconds until a request would be allowed again (refused), or until the window ends.
    reset: int

    def headers(self, policy: str) -> dict[str, str]:
        """RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers-09)."""
        return {
            "RateLimit-Policy": f'"{policy}";q={self.rate.count};w={self.rate.period}',
            "RateLimit": f'"{policy}";r={self.remaining};t={self.reset}',
        }


_last_outage_log = 0.0
OUTAGE_LOG_INTERVAL = 60.0


def cache_failed(what: str) -> None:
    """Log a cache outage at most once a minute per worker (a flood must not flood the log too);
    raise :class:`CacheUnavailable` when the site fails closed."""
    global _last_outage_log
    now = time.monotonic()
    if now - _last_outage_log >= OUTAGE_LOG_INTERVAL or _last_outage_log == 0.0:
        _last_outage_log = now
        open_ = bool(oauth_cc_settings.RATE_LIMIT_FAIL_OPEN)
        logger.warning(
            "oauth_cc could not reach the cache to count %s; %s",
            what,
            "letting requests through (RATE_LIMIT_FAIL_OPEN)" if open_ else "refusing requests",
            exc_info=True,
        )
    if not oauth_cc_settings.RATE_LIMIT_FAIL_OPEN:
        raise CacheUnavailable(what)


def reset_outage_log() -> None:
    """Forget which warnings this worker has logged (tests, settings changes)."""
    global _last_outage_log, _forwarded_warned
    _last_outage_log = 0.0
    _forwarded_warned = False


def ident(value: str) -> str:
    """A cache-key-safe stand-in for an attacker-chosen identifier (a client_id as presented):
    fixed length, no spaces or control characters (memcached refuses those)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _keys(scope: str, key: str, rate: Rate, now: float) -> tuple[str, str, float]:
    window = int(now // rate.period)
    elapsed = (now - window * rate.period) / rate.period
    base = f"oauth_cc:rl:{scope}:{rate.period}:{key}:"
    return base + str(window), base + str(window - 1), elapsed


def _weighted(previous: int, current: int, elapsed: float) -> float:
    return previous * (1.0 - elapsed) + current


def _wait(rate: Rate, previous: int, current: int, elapsed: float) -> int:
    """Whole seconds (at least 1) until one more request fits under ``rate``.

    ``current`` counts the admitted requests of this window, ``previous`` those of the last.
    """
    limit = rate.count
    if current + 1 <= limit:
        # Fits in this window once the previous window's weight has shrunk enough:
        # previous * (1 - f) + current + 1 <= limit.
        f = 1.0 - (limit - current - 1) / previous if previous else elapsed
        seconds = (f - elapsed) * rate.period
    else:
        # Only in the next window, once this window's weight there has shrunk enough.
        g = 1.0 - (limit - 1) / current
        seconds = (1.0 - elapsed) * rate.period + g * rate.period
    return max(1, math.ceil(seconds))


def _incr(cache: BaseCache, key: str, timeout: int) -> int:
    """Atomically add one to ``key``, creating it (with a timeout) if missing."""
    try:
        return int(cache.incr(key))
    except ValueError:  # missing (Django's API signals it so)
        if cache.add(key, 1, timeout=timeout):
            return 1
        return int(cache.incr(key))  # another worker created it between the two calls


def hit(scope: str, key: str, rate: Rate, *, now: float | None = None) -> Decision:
    """Count one request against ``rate``; admit it if it fits in the sliding window.

    A refused request is taken back out of the count (``decr``), so a client that keeps
    knocking while limited is not kept out longer by its own refused requests. That keeps
    the bound: an admitted request's unit is never taken back, and each one saw a count at
    or under the limit when it was added.
    Raises :class:`CacheUnavailable` only when the cache is down and the site fails closed.
    """
    now = time.time() if now is None else now
    current_key, previous_key, elapsed = _keys(scope, key, rate, now)
    cache = caches[oauth_cc_settings.CACHE_ALIAS]
    try:
        current = _incr(cache, current_key, 2 * rate.period + 1)
        previous = int(cache.get(previous_key) or 0)
        weighted = _weighted(previous, current, elapsed)
        if weighted <= rate.count:
            remaining = max(0, math.floor(rate.count - weighted))
            reset = max(1, math.ceil((1.0 - elapsed) * rate.period))
            return Decision(True, rate, remaining, reset)
        cache.decr(current_key)
    except CacheUnavailable:
        raise
    except Exception:
        cache_failed(f"{scope} requests")
        return Decision(True, rate, rate.count, rate.period)
    return Decision(False, rate, 0, _wait(rate, previous, current - 1, elapsed))


#: One counter to consult or bump: ``(scope, key, rate)``.
Check = tuple[str, str, Rate]


def over(checks: list[Check], *, now: float | None = None) -> Decision | None:
    """Read-only: the refusal for the first check whose count already fills its rate, or None.

    One ``get_many`` round trip for all checks. Used before expensive work, with :func:`note`
    counting the events (failed authentications) afterwards.
    """
    if not checks:
        return None
    now = time.time() if now is None else now
    windows = [(rate, *_keys(scope, key, rate, now)) for scope, key, rate in checks]
    try:
        values = caches[oauth_cc_settings.CACHE_ALIAS].get_many(
            [k for _, current, previous, _ in windows for k in (current, previous)]
        )
    except CacheUnavailable:
        raise
    except Exception:
        cache_failed("failed authentications")
        return None
    for rate, current_key, previous_key, elapsed in windows:
        current = int(values.get(current_key) or 0)
        previous = int(values.get(previous_key) or 0)
        if _weighted(previous, current, elapsed) + 1 > rate.count:
            return Decision(False, rate, 0, _wait(rate, previous, current, elapsed))
    return None


def note(checks: list[Check], *, now: float | None = None) -> None:
    """Count one event (a failed authentication) against each check."""
    now = time.time() if now is None else now
    cache = caches[oauth_cc_settings.CACHE_ALIAS]
    try:
        for scope, key, rate in checks:
            current_key, _, _ = _keys(scope, key, rate, now)
            _incr(cache, current_key, 2 * rate.period + 1)
    except Exception:
        # Never raise here: the request is already being refused as unauthenticated.
        try:
            cache_failed("failed authentications")
        except CacheUnavailable:
            pass


# -- the caller's address ---------------------------------------------------------------------

#: Longest address text looked at (an IPv6 address with an embedded IPv4 is 45 characters).
_MAX_ADDRESS_CHARS = 45


def address_key(text: object) -> str | None:
    """The rate-limit key of an IP address written as text, or None if it is not one.

    Strict, since it may come from attacker bytes: only a bare IPv4 or IPv6 address, without a
    port, brackets, zone or surrounding junk (spaces and tabs around it are allowed, as
    ``X-Forwarded-For`` puts them after commas). An IPv4-mapped IPv6 address counts as its
    IPv4 address, and an IPv6 address counts as its /64: one host usually holds a whole /64,
    so keying by the full address would give an attacker 2**64 fresh keys.
    """
    if not isinstance(text, str):
        return None
    text = text.strip(" \t")
    if not text or len(text) > _MAX_ADDRESS_CHARS or not text.isascii() or "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_from_header(value: object, trusted_proxies: int) -> str | None:
    """The client's address in a proxy's forwarding header, or None.

    Each trusted proxy appends the address it received the request from, so the client's is
    the ``trusted_proxies``-th entry from the right; the entries left of it are whatever the
    client sent and are never read. A header with fewer entries was not written by the
    expected proxies.
    """
    if not isinstance(value, str) or trusted_proxies < 1:
        return None
    parts = value.rsplit(",", trusted_proxies)
    if len(parts) < trusted_proxies:
        return None
    return address_key(parts[-trusted_proxies])


def client_address(request: HttpRequest) -> str | None:
    """The key of the address a request came from: ``REMOTE_ADDR``, or the address in
    ``CLIENT_IP_HEADER`` when the site sits behind ``TRUSTED_PROXY_COUNT`` proxies.

    None when there is no address (a server on a Unix socket, behind a proxy, leaves
    ``REMOTE_ADDR`` empty): such requests are not limited per address, since counting them all
    as one address would let one caller's failures lock every client out.
    """
    header = oauth_cc_settings.CLIENT_IP_HEADER
    if header:
        found = address_from_header(request.META.get(header), int(oauth_cc_settings.TRUSTED_PROXY_COUNT))
        if found is not None:
            return found
    elif not _forwarded_warned and (
        "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META
    ):
        _warn_forwarded()
    return address_key(request.META.get("REMOTE_ADDR"))


_forwarded_warned = False


def _warn_forwarded() -> None:
    """Once per worker: requests seem to come through a proxy that CLIENT_IP_HEADER does not name."""
    global _forwarded_warned
    _forwarded_warned = True
    logger.warning(
        "Requests carry X-Forwarded-For or Forwarded but OAUTH_CC['CLIENT_IP_HEADER'] is not set: "
        "failed authentications are counted per REMOTE_ADDR, which behind a proxy is the proxy's "
        "address, shared by every caller. If a proxy you run sets that header, set "
        "CLIENT_IP_HEADER and TRUSTED_PROXY_COUNT (see the README's Rate limits section)."
    )


def limit_client(
    scope: str, client_id: str, rate: Rate, policy: str, *, refused: str, unavailable: str
) -> dict[str, str]:
    """Count one request of ``client_id`` against ``rate`` in ``scope``: the RateLimit fields.

    Over the limit, 429 ``too_many_requests`` saying ``refused`` and when to retry; the shared
    cache down, 503 ``temporarily_unavailable`` saying ``unavailable``. The per-client limits of
    the token endpoint and of the revocation feed count through this.
    """
    try:
        decision = hit(scope, ident(client_id), rate)
    except CacheUnavailable:
        raise TemporarilyUnavailable(unavailable) from None
    headers = decision.headers(policy)
    if not decision.allowed:
        raise TooManyRequests(
            f"{refused}; retry after {decision.reset} seconds.", retry_after=decision.reset, headers=headers
        )
    return headers
