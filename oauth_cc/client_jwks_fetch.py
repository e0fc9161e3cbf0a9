"""Issuer side: the public keys of a client, inline or from its jwks_uri.

For ``private_key_jwt`` (RFC 7523 §2.2: the keys that verify its assertions) and
``self_signed_tls_client_auth`` (RFC 8705 §2.2: the keys its certificate may hold). A client
registers its public keys either inline (``Application.client_jwks``, a JWK Set document,
RFC 7517 §5) or by URL (``Application.client_jwks_uri``). This module gives the keys of a
client; what an operator enters is validated by :mod:`oauth_cc.jwks_validation`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import certifi
import urllib3
from django.core.cache import BaseCache, caches
from jwcrypto.jwk import JWK

from . import hardened_http, json_input, resets
from .bounded import BoundedMap
from .conf import oauth_cc_settings
from .hardened_http import is_public_address
from .jwks_validation import usable_keys, validate_jwks_uri

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
#: so a client retrying against a dead key server does not tie up fetch threads.
FAILURE_RETRY_AFTER = 5.0
#: Fetches run on at most this many threads per worker process; see :func:`_run_with_deadline`.
FETCH_THREADS = 4
#: Bound on the per-worker caches (inline key sets and fetched key sets).
MAX_CACHED_SETS = 10_000

logger = logging.getLogger("oauth_cc.client_keys")  # its name before the split: kept for log configs


class JWKSFetchError(Exception):
    """A client's jwks_uri could not be used. The message is safe to show the client."""


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
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0


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
    """Fetch ``url`` now (or wait for the fetch already running), cache and return its keys."""
    with _lock:
        failure = _failures.get(url)
        if failure is not None and time.monotonic() < failure[0]:
            raise JWKSFetchError(failure[1])
    timeout = float(oauth_cc_settings.JWKS_URI_TIMEOUT)
    try:
        document = _run_with_deadline(url, timeout)
        keys = usable_keys(document)
        if not keys:
            raise JWKSFetchError("the JWK Set has no usable public signing key")
    except JWKSFetchError as exc:
        with _lock:
            _failures.put(url, (time.monotonic() + FAILURE_RETRY_AFTER, str(exc)))
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


def _run_with_deadline(url: str, timeout: float) -> dict[str, Any]:
    """Fetch on a pool thread and wait at most ``timeout`` seconds in total.

    The HTTP library's timeouts apply per socket operation, and name resolution has none, so
    a server that trickles bytes or a stalled DNS lookup could hold the calling worker far
    longer. Waiting on a future bounds the whole fetch for the caller. The pool thread stops
    at the deadline too while reading the body; a server trickling its *headers* can keep a
    pool thread (never a request) busy longer, one socket timeout per byte, which is why the
    pool is small and a failed URL is not retried for :data:`FAILURE_RETRY_AFTER` seconds.
    Concurrent requests for the same URL share one fetch.
    """
    global _executor, _executor_pid
    deadline = time.monotonic() + timeout
    started = False
    with _lock:
        future = _inflight.get(url)
        if future is None:
            if _executor is None or _executor_pid != os.getpid():
                # Threads do not survive fork(): a pre-forking server needs a pool per worker.
                _executor = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="oauth_cc-jwks")
                _executor_pid = os.getpid()
            future = _executor.submit(_fetch_document, url, deadline)
            _inflight[url] = future
            started = True
        else:
            started = False
    if started:
        # Outside the lock: a future that is already done runs the callback at once, on this
        # thread, and the callback takes the lock (which is not reentrant).
        future.add_done_callback(lambda _f: _forget_inflight(url, _f))
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        raise JWKSFetchError("timed out") from None
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
    """GET ``url`` and parse it as a JWK Set. Runs on a pool thread.

    No redirects are followed, the body is read in chunks and abandoned past
    ``JWKS_URI_MAX_BYTES``, and the connection goes to an address checked here, after
    resolution, so a name that resolves to a private address (DNS rebinding) is refused too.
    """
    if time.monotonic() >= deadline:
        raise JWKSFetchError("timed out")  # Queued behind other fetches for too long.
    try:
        validate_jwks_uri(url)
    except ValueError as exc:
        raise JWKSFetchError(str(exc).rstrip(".")) from None
    target = _Target.from_url(url)
    last_error = "could not connect"
    for address in _checked_addresses(target.hostname, target.port):
        if time.monotonic() >= deadline:
            raise JWKSFetchError("timed out")
        try:
            return _get(target, address, deadline)
        except _ConnectFailed as exc:
            last_error = str(exc)  # Try the host's next address.
    raise JWKSFetchError(last_error)


@dataclass(frozen=True)
class _Target:
    hostname: str
    port: int
    https: bool
    path: str
    host_header: str

    @classmethod
    def from_url(cls, url: str) -> _Target:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        https = parts.scheme == "https"
        host = f"[{hostname}]" if ":" in hostname else hostname
        return cls(
            hostname=hostname,
            port=parts.port or (443 if https else 80),
            https=https,
            path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            host_header=host if parts.port is None else f"{host}:{parts.port}",
        )


class _ConnectFailed(Exception):
    pass


def _checked_addresses(hostname: str, port: int) -> list[str]:
    try:
        addresses = hardened_http.resolve(hostname, port)
    except (OSError, UnicodeError):
        raise JWKSFetchError("the host name of the JWKS URI does not resolve") from None
    if not addresses:
        raise JWKSFetchError("the host name of the JWKS URI does not resolve")
    if not oauth_cc_settings.JWKS_URI_ALLOW_INSECURE:
        for address in addresses:
            # Refuse if *any* answer is internal: a resolver could hand out a mix.
            if not is_public_address(ipaddress.ip_address(address.split("%", 1)[0])):
                raise JWKSFetchError("the JWKS URI resolves to a private, loopback or link-local address")
    return addresses


def _get(target: _Target, address: str, deadline: float) -> dict[str, Any]:
    remaining = max(0.001, deadline - time.monotonic())
    timeout = urllib3.Timeout(connect=remaining, read=remaining)
    pool: urllib3.HTTPConnectionPool
    if target.https:
        # Connect to the checked address but verify the certificate for the host name.
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.hostname,
            assert_hostname=target.hostname,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen(
            "GET",
            target.path,
            headers=_request_headers(target.host_header),
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
    except urllib3.exceptions.NewConnectionError:
        # Checked first: in urllib3 2 it is a subclass of ConnectTimeoutError.
        raise _ConnectFailed("could not connect") from None
    except urllib3.exceptions.ConnectTimeoutError:
        raise _ConnectFailed("timed out") from None
    except urllib3.exceptions.SSLError:
        raise JWKSFetchError("the TLS certificate of the JWKS URI could not be verified") from None
    except urllib3.exceptions.ReadTimeoutError:
        raise JWKSFetchError("timed out") from None
    except urllib3.exceptions.HTTPError:
        raise JWKSFetchError("the connection to the JWKS URI failed") from None
    try:
        body = _read_body(response, deadline)
    finally:
        # close(), not release_conn(): the response holds its own reference to the socket, so
        # only closing it hangs up on a server we stopped reading from.
        response.close()
        pool.close()
    try:
        document = json_input.loads(body, max_bytes=len(body))
    except json_input.JSONInputError:
        raise JWKSFetchError("the response is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSFetchError('the response is not a JWK Set ({"keys": [...]})')
    return document


def _request_headers(host_header: str) -> dict[str, str]:
    return {
        "Host": host_header,
        "Accept": "application/jwk-set+json, application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "oauth_cc",
    }


def _read_body(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    if 300 <= response.status < 400:
        raise JWKSFetchError(
            f"the JWKS URI answered with a redirect (HTTP {response.status}); register the final URL"
        )
    if response.status != 200:
        raise JWKSFetchError(f"the JWKS URI answered HTTP {response.status}")
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        # Asked for identity; decompressing would let a small body expand past the size cap.
        raise JWKSFetchError("the response is compressed; serve the JWK Set uncompressed")
    return hardened_http.read_capped(
        response,
        deadline,
        int(oauth_cc_settings.JWKS_URI_MAX_BYTES),
        error=JWKSFetchError,
        connection_failed="the connection to the JWKS URI failed",
        chunk_size=16 * 1024,
        clock=time.monotonic,
    )


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

    Registered with :mod:`oauth_cc.resets`, so also called when the settings change.
    """
    with _lock:
        _inline_cache.clear()
        _uri_cache.clear()
        _failures.clear()
        _last_kid_refetch.clear()


resets.register("oauth_cc.client_jwks_fetch", reset)
