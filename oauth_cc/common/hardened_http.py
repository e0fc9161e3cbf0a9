"""Both sides: the one hardened HTTP client of outside URLs (a GET, or a form POST).

The resource side reads its issuer's metadata, JWKS and revocation feed with :func:`get` (or
:func:`post_form` when its feed credentials travel in the body); the
issuer reads its clients' ``jwks_uri`` key sets with :func:`fetch`, on the pool of
:mod:`oauth_cc.issuer.client_jwks_fetch` (which adds the cache and one fetch per URL at a time). Either
way: a deadline for the whole fetch (name resolution included: it runs on a pool thread the
caller waits for at most until the deadline), a size cap on the body read in chunks, no
redirects, no compressed bodies, TLS verified against certifi's CAs, and the connection made to
an address checked after resolution (no loopback, private or link-local address unless
``allow_insecure``, which also allows ``http://``; development and tests only). Every refusal
is one of the sentences built here, so both sides word the same failure the same way.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3

from . import json_input
from .errors import shown

#: Fetches running at once per process for :func:`get`; each holds a thread until its deadline at most.
FETCH_THREADS = 4
#: The most one socket read asks for: the deadline is checked between reads.
CHUNK_BYTES = 16 * 1024
#: The most read of an error answer, for its RFC 6749 §5.2 ``error`` and description.
MAX_ERROR_BYTES = 4096

_T = TypeVar("_T")


class FetchError(Exception):
    """The document could not be fetched; ``str(exc)`` says why (no secret, no body)."""


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def check_url(url: str, *, allow_insecure: bool, subject: str = "the URL") -> None:
    """Raise :class:`FetchError` unless ``url`` may be fetched (https, no literal internal address).

    ``subject`` names the URL in the sentence ("the JWKS URI"); the host name's addresses are
    checked again after resolution, at fetch time.
    """
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise FetchError(f"{subject} is not a valid URL: {str(exc).rstrip('.')}") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise FetchError(f"{subject} must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise FetchError(f"{subject} must not contain a user name or password")
    if allow_insecure:
        return
    if parts.scheme != "https":
        raise FetchError(f"{subject} must use https://")
    if hostname.lower() == "localhost" or hostname.lower().endswith(".localhost"):
        raise FetchError(f"{subject} must not point at this machine (localhost)")
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return
    if not is_public_address(address):
        raise FetchError(
            f"{subject} points at {address}, a private, loopback or link-local address; "
            "use a public https URL"
        )


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(hostname: str, port: int) -> list[str]:
    """The IP addresses of ``hostname``, each once, in the resolver's order; a seam for tests."""
    infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(hostname: str, port: int, *, allow_insecure: bool) -> list[str]:
    """The addresses of ``hostname`` to connect to; :class:`FetchError` if any is internal."""
    try:
        addresses = resolve(hostname, port)
    except (OSError, UnicodeError):
        raise FetchError("the host name does not resolve") from None
    if not addresses:
        raise FetchError("the host name does not resolve")
    if not allow_insecure:
        for address in addresses:
            # Refuse if *any* answer is internal: a resolver could hand out a mix.
            if not is_public_address(ipaddress.ip_address(address.split("%", 1)[0])):
                raise FetchError("the host name resolves to a private, loopback or link-local address")
    return addresses


class WorkerPool:
    """A few named threads to run fetches on, made per process (threads do not survive fork())."""

    def __init__(self, name: str, size: Callable[[], int]) -> None:
        self.name = name
        self.size = size  # read when the pool is made, so a test can change it
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid: int | None = None

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(self.size(), thread_name_prefix=self.name)
                self._pid = os.getpid()
            return self._executor.submit(fn, *args, **kwargs)


def deadline_after(seconds: float) -> float:
    """The deadline ``seconds`` from now, on the clock :func:`fetch` and :func:`wait` read."""
    return time.monotonic() + seconds


def wait(future: Future[_T], deadline: float) -> _T:
    """The future's result, or :class:`FetchError` ("timed out") at ``deadline`` (monotonic).

    The HTTP library's timeouts apply per socket operation and name resolution has none, so
    only waiting on a future bounds the whole fetch for the caller.
    """
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        raise FetchError("timed out") from None


_pool = WorkerPool("oauth_cc-fetch", lambda: FETCH_THREADS)


def get(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    max_bytes: int,
    allow_insecure: bool,
) -> Fetched:
    """:func:`fetch` on a pool thread, waited for at most ``timeout`` seconds."""
    deadline = deadline_after(timeout)
    future = _pool.submit(
        fetch, url, headers=headers, deadline=deadline, max_bytes=max_bytes, allow_insecure=allow_insecure
    )
    return wait(future, deadline)


def post_form(
    url: str,
    *,
    form: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
    timeout: float,
    max_bytes: int,
    allow_insecure: bool,
) -> Fetched:
    """POST ``form`` (``application/x-www-form-urlencoded``) to ``url``; otherwise as :func:`get`.

    For requests whose credentials travel in the body (RFC 6749 §2.3.1 ``client_secret_post``,
    RFC 7523 §2.2 assertions): never retried or redirected, so they are sent to ``url`` once.
    """
    deadline = deadline_after(timeout)
    form_headers = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
    future = _pool.submit(
        fetch,
        url,
        headers=form_headers,
        deadline=deadline,
        max_bytes=max_bytes,
        allow_insecure=allow_insecure,
        method="POST",
        body=urlencode(form).encode("ascii"),
    )
    return wait(future, deadline)


def fetch(
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    allow_insecure: bool,
    headers: Mapping[str, str] | None = None,
    subject: str = "the URL",
    method: str = "GET",
    body: bytes | None = None,
) -> Fetched:
    """GET (or ``method`` with ``body``) ``url`` on this thread, giving up at ``deadline``
    (``time.monotonic()``).

    A 200 answer, or a 304 to a conditional request; anything else is :class:`FetchError`.
    Each checked address of the host is tried in turn until one accepts the connection (a
    request with a body too: it is sent only once a connection is made, so never twice);
    ``headers`` are added to (or replace) the default ones.
    """
    if time.monotonic() >= deadline:
        raise FetchError("timed out")  # Queued behind other fetches for too long.
    check_url(url, allow_insecure=allow_insecure, subject=subject)
    target = _Target.from_url(url)
    request_headers = {
        "Host": target.host_header,
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "oauth_cc",
        **(headers or {}),
    }
    last_error = "could not connect"
    for address in checked_addresses(target.hostname, target.port, allow_insecure=allow_insecure):
        if time.monotonic() >= deadline:
            raise FetchError("timed out")
        try:
            return _send(target, address, method, body, request_headers, deadline, max_bytes)
        except _ConnectFailed as exc:
            last_error = str(exc)  # Try the host's next address.
    raise FetchError(last_error)


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
    """This address took no connection; the host's next one may."""


def _send(
    target: _Target,
    address: str,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: float,
    max_bytes: int,
) -> Fetched:
    remaining = max(0.001, deadline - time.monotonic())
    timeout = urllib3.Timeout(connect=remaining, read=remaining)
    pool: urllib3.HTTPConnectionPool
    # One request per pool (urllib3's default maxsize of 1 connection), closed after it.
    if target.https:
        # Connect to the checked address but send the host name as SNI and let the TLS library
        # check the certificate for it. No assert_hostname: that would switch to urllib3's own
        # matcher, which accepts partial ("k*.example.com") and top-level ("*.com") wildcards.
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            server_hostname=target.hostname,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout)
    try:
        # Sent once: no retry, and a 3xx is returned as it is (its Location never even parsed).
        # target.path always starts with "/", which urllib3's same-host check always accepts.
        response = pool.urlopen(
            method,
            target.path,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        # NewConnectionError first: in urllib3 2 it is a subclass of ConnectTimeoutError.
        if isinstance(exc, urllib3.exceptions.NewConnectionError):
            raise _ConnectFailed("could not connect") from None
        if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
            raise _ConnectFailed("timed out") from None
        if isinstance(exc, urllib3.exceptions.SSLError):
            raise FetchError("the TLS certificate could not be verified") from None
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
            raise FetchError("timed out") from None
        raise FetchError("the connection failed") from None
    try:
        conditional = any(name.lower() in ("if-none-match", "if-modified-since") for name in headers)
        return Fetched(
            status=response.status,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=_read_body(response, deadline, max_bytes, not_modified_ok=conditional),
        )
    finally:
        # close(), not release_conn(): the response holds its own reference to the socket, so
        # only closing it hangs up on a server we stopped reading from.
        response.close()
        pool.close()


def _read_body(
    response: urllib3.BaseHTTPResponse, deadline: float, limit: int, *, not_modified_ok: bool = False
) -> bytes:
    """The body of a 200 (or, if ``not_modified_ok``, 304) answer, read by socket reads until
    ``deadline`` and at most ``limit`` bytes; otherwise :class:`FetchError`."""
    status = response.status
    if not (status == 200 or (status == 304 and not_modified_ok)):
        if 300 <= status < 400 and status != 304:
            raise FetchError(f"the server answered with a redirect (HTTP {status}); use the final URL")
        raise FetchError(f"the server answered HTTP {status}{_oauth_error(response, deadline)}")
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        # Asked for identity; decompressing would let a small body expand past the size cap.
        raise FetchError("the response is compressed; serve it uncompressed")
    return _read_capped(response, deadline, limit)


def _read_capped(response: urllib3.BaseHTTPResponse, deadline: float, limit: int) -> bytes:
    """At most ``limit`` bytes of the body, read by socket reads until ``deadline``."""
    too_large = FetchError(f"the response is larger than {limit} bytes")
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() >= deadline:
                raise FetchError("timed out")
            # read1 returns what one socket read brings, so the deadline is checked between
            # reads even against a server that trickles bytes.
            chunk = response.read1(min(CHUNK_BYTES, limit + 1 - size), decode_content=False)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError:
        raise FetchError("timed out") from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise FetchError("the connection failed") from None
    return b"".join(chunks)


def _oauth_error(response: urllib3.BaseHTTPResponse, deadline: float) -> str:
    """`` (code: description)`` of an RFC 6749 §5.2 JSON error answer, else "".

    Says why the issuer refused the service's credentials (``invalid_client: client_assertion
    "aud" claim must ...``), so the log line tells the operator what to fix. Bounded, printable,
    and never anything the service sent: the issuer's descriptions do not echo secrets.
    """
    if response.status not in (400, 401, 403):
        return ""
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return ""
    try:
        answer = json_input.loads(
            _read_capped(response, deadline, MAX_ERROR_BYTES), max_bytes=MAX_ERROR_BYTES
        )
    except (FetchError, json_input.JSONInputError):
        return ""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return ""
    description = answer.get("error_description")
    detail = f": {shown(description, 200)}" if isinstance(description, str) and description else ""
    return f" ({shown(answer['error'], 40)}{detail})"
