"""Both sides: a hardened HTTP GET (or form POST) for what a resource-only service reads from its issuer.

Its name resolution and address check also serve the issuer's client jwks_uri fetches
(:mod:`oauth_cc.client_jwks_fetch`).

What :mod:`oauth_cc.client_jwks_fetch` does for a client's ``jwks_uri``, for any URL and with the
request headers and statuses the resource side needs (``Authorization``, ``If-None-Match``,
``304``), and a form ``POST`` for a request whose credentials travel in the body
(:func:`post_form`, the revocation feed): a deadline for the whole fetch (name resolution
included: it runs on a pool thread the caller waits for at most ``timeout`` seconds), a size
cap on the body read in chunks, no redirects, no compressed bodies, TLS verified against
certifi's CAs, and the connection made to an address checked after resolution (no loopback,
private or link-local address unless ``allow_insecure``, which also allows ``http://``;
development and tests only).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3

from . import json_input
from .errors import shown

#: Fetches running at once per process; each holds one thread until its deadline at most.
FETCH_THREADS = 4

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None


class FetchError(Exception):
    """The document could not be fetched; ``str(exc)`` says why (no secret, no body)."""


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def check_url(url: str, *, allow_insecure: bool) -> None:
    """Raise :class:`FetchError` unless ``url`` may be fetched (https, no literal internal address)."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise FetchError("the URL is not valid") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise FetchError("the URL is not an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise FetchError("the URL must not contain a user name or password")
    if allow_insecure:
        return
    if parts.scheme != "https":
        raise FetchError("the URL must use https://")
    if hostname.lower() == "localhost" or hostname.lower().endswith(".localhost"):
        raise FetchError("the URL points at this machine (localhost)")
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return
    if not is_public_address(address):
        raise FetchError("the URL points at a private, loopback or link-local address")


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def get(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float,
    max_bytes: int,
    allow_insecure: bool,
) -> Fetched:
    """GET ``url``; a 200 or 304 answer, else :class:`FetchError`. At most ``timeout`` seconds."""
    return _request("GET", url, dict(headers or {}), None, timeout, max_bytes, allow_insecure)


def post_form(
    url: str,
    *,
    form: dict[str, str],
    headers: dict[str, str] | None = None,
    timeout: float,
    max_bytes: int,
    allow_insecure: bool,
) -> Fetched:
    """POST ``form`` (``application/x-www-form-urlencoded``) to ``url``; otherwise as :func:`get`.

    For requests whose credentials travel in the body (RFC 6749 §2.3.1 ``client_secret_post``,
    RFC 7523 §2.2 assertions): never retried or redirected, so they are sent to ``url`` once.
    """
    body = urlencode(form).encode("ascii")
    form_headers = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
    return _request("POST", url, form_headers, body, timeout, max_bytes, allow_insecure)


def _request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
    max_bytes: int,
    allow_insecure: bool,
) -> Fetched:
    global _executor, _executor_pid
    check_url(url, allow_insecure=allow_insecure)
    deadline = time.monotonic() + timeout
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            # Threads do not survive fork(): a pre-forking server needs a pool per worker.
            _executor = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="oauth_cc-fetch")
            _executor_pid = os.getpid()
        future = _executor.submit(_fetch, method, url, headers, body, deadline, max_bytes, allow_insecure)
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        raise FetchError("timed out") from None


def resolve(hostname: str, port: int) -> list[str]:
    """The IP addresses of ``hostname`` (also for :mod:`oauth_cc.client_jwks_fetch`); a seam for tests."""
    infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _fetch(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    deadline: float,
    max_bytes: int,
    allow_insecure: bool,
) -> Fetched:
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = f"[{hostname}]" if ":" in hostname else hostname
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
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
    request_headers = {
        "Host": host if parts.port is None else f"{host}:{parts.port}",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "oauth_cc",
        **headers,
    }
    last_error = "could not connect"
    for address in addresses:
        if time.monotonic() >= deadline:
            raise FetchError("timed out")
        remaining = max(0.001, deadline - time.monotonic())
        urllib_timeout = urllib3.Timeout(connect=remaining, read=remaining)
        pool: urllib3.HTTPConnectionPool
        if https:
            pool = urllib3.HTTPSConnectionPool(
                address,
                port,
                timeout=urllib_timeout,
                retries=False,
                maxsize=1,
                server_hostname=hostname,
                assert_hostname=hostname,
                cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(),
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=urllib_timeout, retries=False, maxsize=1)
        try:
            response = pool.urlopen(
                method,
                path,
                body=body,
                headers=request_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.NewConnectionError:
            last_error = "could not connect"
            pool.close()
            continue
        except urllib3.exceptions.ConnectTimeoutError:
            last_error = "timed out"
            pool.close()
            continue
        except urllib3.exceptions.SSLError:
            pool.close()
            raise FetchError("the TLS certificate could not be verified") from None
        except urllib3.exceptions.HTTPError:
            pool.close()
            raise FetchError("the connection failed") from None
        try:
            body = _read_body(response, deadline, max_bytes)
            return Fetched(
                status=response.status,
                headers={name.lower(): value for name, value in response.headers.items()},
                body=body,
            )
        finally:
            response.close()
            pool.close()
    raise FetchError(last_error)


def _read_body(response: urllib3.BaseHTTPResponse, deadline: float, limit: int) -> bytes:
    if 300 <= response.status < 400 and response.status != 304:
        raise FetchError(f"the server answered with a redirect (HTTP {response.status})")
    if response.status not in (200, 304):
        raise FetchError(f"the server answered HTTP {response.status}{_oauth_error(response, deadline)}")
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise FetchError("the response is compressed")
    return read_capped(response, deadline, limit, error=FetchError, connection_failed="the connection failed")


#: Most of an error answer read for its RFC 6749 §5.2 ``error`` and ``error_description``.
MAX_ERROR_BYTES = 4096


def _oauth_error(response: urllib3.BaseHTTPResponse, deadline: float) -> str:
    """`` (code: description)`` of an RFC 6749 §5.2 JSON error answer, else "".

    Says why the issuer refused the service's credentials (``invalid_client: client_assertion
    "aud" claim must ...``), so the log line tells the operator what to fix. Bounded, printable,
    and never anything the service sent: the issuer's descriptions do not echo secrets.
    """
    if response.status not in (400, 401, 403):
        return ""
    try:
        body = read_capped(response, deadline, MAX_ERROR_BYTES, error=FetchError, connection_failed="")
        answer = json_input.loads(body, max_bytes=MAX_ERROR_BYTES)
    except (FetchError, json_input.JSONInputError):
        return ""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return ""
    description = answer.get("error_description")
    detail = f": {shown(description, 200)}" if isinstance(description, str) and description else ""
    return f" ({shown(answer['error'], 40)}{detail})"


def read_capped(
    response: urllib3.BaseHTTPResponse,
    deadline: float,
    limit: int,
    *,
    error: Callable[[str], Exception],
    connection_failed: str,
    chunk_size: int = 64 * 1024,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The body, read by socket reads until ``deadline`` (by ``clock``, the one the caller took
    the deadline from), at most ``limit`` bytes; otherwise ``error(reason)``. Shared by every
    fetcher of outside documents."""
    too_large = error(f"the response is larger than {limit} bytes")
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if clock() >= deadline:
                raise error("timed out")
            # read1 returns what one socket read brings, so the deadline is checked between
            # reads even against a server that trickles bytes.
            chunk = response.read1(min(chunk_size, limit + 1 - size), decode_content=False)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError:
        raise error("timed out") from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise error(connection_failed) from None
    return b"".join(chunks)
