"""Issuer side: the public keys of a client, inline or from its jwks_uri.

For ``private_key_jwt`` (RFC 7523 §2.2: the keys that verify its assertions) and
``self_signed_tls_client_auth`` (RFC 8705 §2.2: the keys its certificate may hold). A client
registers its public keys either inline (``Application.client_jwks``, a JWK Set document,
RFC 7517 §5) or by URL (``Application.client_jwks_uri``). This module gives the keys of a
client; what an operator enters is validated by :mod:`oauth_cc.common.jwks_validation`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache, caches
from jwcrypto.jwk import JWK

from ..common import hardened_http, json_input, resets
from ..common.bounded import BoundedMap
from ..common.jwks_validation import usable_keys
from ..conf import oauth_cc_settings

if TYPE_CHECKING:
    from .state import ClientRecord

# --------------------------------------------------------------------------------------
# Key source: the keys that may verify a client's assertion.
# --------------------------------------------------------------------------------------

#: A ``kid`` (or a certificate's key) missing from a cached jwks_uri set triggers at most one
#: re-fetch per URL in this many seconds, site-wide, so assertions naming junk kids (or junk
#: certificates) cannot hammer the client's key server.
KID_MISS_REFETCH_INTERVAL = 10.0
#: After a failed fetch the same error is answered for this many seconds without a new fetch,
#: site-wide (the failure is shared through the cache), so a client retrying against a dead key
#: server, or a caller probing a client whose key server is dead, does not tie up fetch threads
#: or make one fetch per worker.
FAILURE_RETRY_AFTER = 5.0
#: Fetches run on at most this many threads per worker process; see :func:`_run_with_deadline`.
FETCH_THREADS = 4
#: Bound on the per-worker caches (inline key sets and fetched key sets).
MAX_CACHED_SETS = 10_000

logger = logging.getLogger("oauth_cc.client_keys")  # its name before the split: kept for log configs


#: A client's jwks_uri could not be used; the message (one of hardened_http's sentences or
#: the ones here) is safe to show the client.
JWKSFetchError = hardened_http.FetchError


@dataclass(frozen=True)
class KeySet:
    """Parsed, usable public keys of one client, and when they were obtained (epoch seconds)."""

    keys: tuple[JWK, ...]
    fetched_at: float = 0.0

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(str(key.get("kid")) for key in self.keys if key.get("kid") is not None)

    @functools.cached_property
    def thumbprints(self) -> frozenset[str]:
        """RFC 7638 thumbprints of the keys: computed once per set, when a certificate asks."""
        return frozenset(str(key.thumbprint()) for key in self.keys)


def keys_for(
    client: ClientRecord, kid: str | None = None, *, thumbprint: str | None = None
) -> tuple[JWK, ...]:
    """The public keys that may have signed ``client``'s assertion, or be its certificate's key.

    From the inline JWKS when the client has one (parsed once per worker), else from its
    jwks_uri: cached for ``JWKS_URI_CACHE_SECONDS``, and re-fetched once, rate-limited, when
    ``kid`` names a key the cached set lacks, or the set lacks a key of RFC 7638 ``thumbprint``
    (a TLS client certificate's key): the client rolled its keys over. Raises
    :class:`JWKSFetchError` when the jwks_uri cannot be fetched.
    """
    if client.jwks:
        return _inline_keys(client.client_id, client.jwks)
    if client.jwks_uri:
        return _uri_keys(client.jwks_uri, kid, thumbprint).keys
    return ()


def _max_cached_sets() -> int:
    return MAX_CACHED_SETS  # read at each insertion, so a test can lower it


_inline_cache: BoundedMap[str, tuple[dict[str, Any], tuple[JWK, ...]]] = BoundedMap(_max_cached_sets)


def _inline_keys(client_id: str, jwks: dict[str, Any]) -> tuple[JWK, ...]:
    # Parsing a JWK builds a cryptography key object (tens of µs for RSA), so it is done once
    # per worker and per JWKS value; a changed JWKS compares unequal and is parsed again.
    hit = _inline_cache.get(client_id)
    if hit is not None and hit[0] == jwks:
        return hit[1]
    keys = usable_keys(jwks)
    _inline_cache.put(client_id, (copy.deepcopy(jwks), keys))
    return keys


# Per-worker state for jwks_uri key sets. Guarded by _lock: fetches complete on other threads.
_lock = threading.Lock()
_uri_cache: BoundedMap[str, KeySet] = BoundedMap(_max_cached_sets)
_failures: BoundedMap[str, tuple[float, str]] = BoundedMap(_max_cached_sets)
_last_kid_refetch: BoundedMap[str, float] = BoundedMap(_max_cached_sets)
# Not bounded by size: an entry lives only while its fetch runs or waits for a pool thread.
_inflight: dict[str, Future[dict[str, Any]]] = {}
# Not hardened_http's own pool: a client's slow key server must not hold up other fetches.
_pool = hardened_http.WorkerPool("oauth_cc-jwks", lambda: FETCH_THREADS)


def _uri_keys(url: str, kid: str | None, thumbprint: str | None = None) -> KeySet:
    """This worker's copy, else the shared cache's, else a fetch; then the rollover re-fetch.

    The re-fetch when the set lacks the key the caller looks for: the one named ``kid``, or
    else the one of RFC 7638 ``thumbprint``; neither given: any set will do.
    """
    knows: Callable[[KeySet], bool] | None = None
    if kid is not None:
        knows = lambda entry: kid in entry.kids  # noqa: E731
    elif thumbprint is not None:
        knows = lambda entry: thumbprint in entry.thumbprints  # noqa: E731
    now = time.time()
    ttl = float(oauth_cc_settings.JWKS_URI_CACHE_SECONDS)
    entry = _uri_cache.get(url)
    fetched_now = False
    if entry is None or now - entry.fetched_at >= ttl:
        entry = _shared_get(url)
        if entry is None or now - entry.fetched_at >= ttl:
            entry = _refresh(url)
            fetched_now = True
    if knows is not None and not knows(entry) and not fetched_now:
        # Another worker may already have fetched the rolled-over set.
        shared = _shared_get(url)
        if shared is not None and knows(shared):
            entry = shared
        elif _claim_kid_refetch(url):
            entry = _refresh(url)
    return entry


def _claim_kid_refetch(url: str) -> bool:
    interval = KID_MISS_REFETCH_INTERVAL
    now = time.monotonic()
    with _lock:
        last = _last_kid_refetch.get(url)
        if last is not None and now - last < interval:
            return False
        _last_kid_refetch.put(url, now)
    # cache.add is atomic: with a shared cache one worker site-wide wins the re-fetch.
    try:
        return bool(_cache().add(_cache_key("refetch", url), 1, timeout=int(interval) or 1))
    except Exception:
        logger.warning("Cache unavailable; rate-limiting JWKS re-fetches per worker only", exc_info=True)
        return True


def _refresh(url: str) -> KeySet:
    """Fetch ``url`` now (or wait for the fetch already running), cache and return its keys.

    Not while a failed fetch of ``url`` is paused (:data:`FAILURE_RETRY_AFTER`), by this worker
    or another: its error is raised again without a fetch.
    """
    paused = _paused(url)
    if paused is not None:
        raise JWKSFetchError(paused)
    timeout = float(oauth_cc_settings.JWKS_URI_TIMEOUT)
    try:
        document = _run_with_deadline(url, timeout)
        keys = usable_keys(document)
        if not keys:
            raise JWKSFetchError("the JWK Set has no usable public signing key")
    except JWKSFetchError as exc:
        _pause(url, str(exc))
        # The URL is the client's own; the reason is one of the fixed sentences above.
        logger.warning("Could not fetch client JWKS from %s: %s", url, exc)
        raise
    entry = KeySet(keys=keys, fetched_at=time.time())
    with _lock:
        _failures.pop(url)
        _uri_cache.put(url, entry)
    try:
        _cache().set(
            _cache_key("set", url),
            {"fetched_at": entry.fetched_at, "document": document},
            timeout=max(1, int(oauth_cc_settings.JWKS_URI_CACHE_SECONDS)),
        )
    except Exception:
        # Sharing with other workers is an optimisation; this worker has the keys.
        logger.warning("Could not share a fetched client JWKS through the cache", exc_info=True)
    return entry


def _paused(url: str) -> str | None:
    """The error of a failed fetch of ``url`` still in its pause, or None.

    This worker's record first (a dict lookup: a probe during the pause costs no cache read),
    then the site's, which another worker's failure wrote; adopted here, so the rest of its
    pause is answered from memory too. The site's record carries a wall-clock end (workers share
    no monotonic clock); the worker's, a monotonic one.
    """
    now = time.monotonic()
    with _lock:
        failure = _failures.get(url)
    if failure is not None and now < failure[0]:
        return failure[1]
    try:
        shared = _cache().get(_cache_key("failure", url))
    except Exception:
        _cache_unavailable()
        return None
    if not (
        isinstance(shared, dict)
        and isinstance(shared.get("until"), float)
        and isinstance(shared.get("reason"), str)
    ):
        return None  # none, or not a shape this version writes
    left = shared["until"] - time.time()
    if left <= 0:
        return None
    with _lock:
        _failures.put(url, (now + min(left, FAILURE_RETRY_AFTER), shared["reason"]))
    return str(shared["reason"])


def _pause(url: str, reason: str) -> None:
    """Record a failed fetch of ``url`` for :data:`FAILURE_RETRY_AFTER` seconds, here and site-wide."""
    with _lock:
        _failures.put(url, (time.monotonic() + FAILURE_RETRY_AFTER, reason))
    try:
        _cache().set(
            _cache_key("failure", url),
            {"until": time.time() + FAILURE_RETRY_AFTER, "reason": reason},
            # Only a clean-up: "until" ends the pause, the entry's expiry merely follows it.
            timeout=max(1, math.ceil(FAILURE_RETRY_AFTER)),
        )
    except Exception:
        _cache_unavailable()


_cache_warned = False


def _cache_unavailable() -> None:
    """Log once per worker that failed fetches are paused per worker only (the cache is down)."""
    global _cache_warned
    if not _cache_warned:
        _cache_warned = True
        logger.warning(
            "Cache unavailable; failed client JWKS fetches are paused per worker only", exc_info=True
        )


def _run_with_deadline(url: str, timeout: float) -> dict[str, Any]:
    """Fetch on a pool thread and wait at most ``timeout`` seconds in total.

    Concurrent requests for the same URL share one fetch. The pool thread stops at the
    deadline too while reading the body; a server trickling its *headers* can keep a pool
    thread (never a request) busy longer, one socket timeout per byte, which is why the pool
    is small and a failed URL is not retried for :data:`FAILURE_RETRY_AFTER` seconds.
    """
    # hardened_http's clock: the one the fetch and the wait compare the deadline with.
    deadline = hardened_http.deadline_after(timeout)
    with _lock:
        future = _inflight.get(url)
        started = future is None
        if future is None:
            future = _pool.submit(_fetch_document, url, deadline)
            _inflight[url] = future
    if started:
        # Outside the lock: a future that is already done runs the callback at once, on this
        # thread, and the callback takes the lock (which is not reentrant).
        future.add_done_callback(lambda _f: _forget_inflight(url, _f))
    try:
        return hardened_http.wait(future, deadline)
    except JWKSFetchError:
        raise
    except Exception:
        logger.exception("Unexpected error fetching a client JWKS from %s", url)
        raise JWKSFetchError("the JWKS URI could not be fetched") from None


def _forget_inflight(url: str, future: Future[dict[str, Any]]) -> None:
    with _lock:
        if _inflight.get(url) is future:
            del _inflight[url]


def _fetch_document(url: str, deadline: float) -> dict[str, Any]:
    """GET ``url`` (:func:`oauth_cc.common.hardened_http.fetch`), parsed as a JWK Set. On a pool thread."""
    fetched = hardened_http.fetch(
        url,
        deadline=deadline,
        max_bytes=int(oauth_cc_settings.JWKS_URI_MAX_BYTES),
        allow_insecure=bool(oauth_cc_settings.JWKS_URI_ALLOW_INSECURE),
        headers={"Accept": "application/jwk-set+json, application/json"},
        subject="the JWKS URI",
    )
    try:
        document = json_input.loads(fetched.body, max_bytes=len(fetched.body))
    except json_input.JSONInputError:
        raise JWKSFetchError("the response is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSFetchError('the response is not a JWK Set ({"keys": [...]})')
    return document


def _shared_get(url: str) -> KeySet | None:
    """The key set another worker fetched, from the Django cache, parsed and kept locally."""
    try:
        cached = _cache().get(_cache_key("set", url))
    except Exception:
        logger.warning("Could not read a shared client JWKS from the cache", exc_info=True)
        return None
    if not isinstance(cached, dict):
        return None
    local = _uri_cache.get(url)
    if local is not None and local.fetched_at >= cached.get("fetched_at", 0):
        return local
    entry = KeySet(keys=usable_keys(cached.get("document")), fetched_at=float(cached.get("fetched_at", 0)))
    _uri_cache.put(url, entry)
    return entry


def _cache() -> BaseCache:
    return caches[oauth_cc_settings.CACHE_ALIAS]


def _cache_key(kind: str, url: str) -> str:
    return f"oauth_cc:client_jwks:{kind}:{hashlib.sha256(url.encode()).hexdigest()}"


def reset() -> None:
    """Forget every cached client key set and fetch failure in this worker.

    Registered with :mod:`oauth_cc.common.resets`, so also called when the settings change.
    """
    global _cache_warned
    with _lock:
        _inline_cache.clear()
        _uri_cache.clear()
        _failures.clear()
        _last_kid_refetch.clear()
        _cache_warned = False


resets.register("oauth_cc.issuer.client_jwks_fetch", reset)
