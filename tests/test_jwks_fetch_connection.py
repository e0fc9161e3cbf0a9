"""The connection a jwks_uri fetch makes (``client_jwks_fetch._get``, ``_resolve``, ``_Target``).

Each socket operation is bounded by what is left of the fetch's total deadline: a key server
that never accepts the connection, or accepts it and never answers, costs the fetch its
deadline and no more, over http and https alike. Over https the connection goes to the checked
address while SNI and the certificate check use the host name. Name resolution returns each
address once.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from oauth_cc import client_jwks_fetch, hardened_http
from oauth_cc.client_jwks_fetch import JWKSFetchError, _ConnectFailed, _Target

from .test_jwks_uri import tls_files  # noqa: F401 - a module-scoped fixture: a certificate for keys.example.test

DEADLINE = 0.3
#: The call must be over well before a full second: a one-second floor would show.
BOUND = 0.9


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full: a connect to it hangs until the socket is closed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port), timeout=1)
    yield port
    queued.close()
    listener.close()


def _timed(call: Any) -> tuple[BaseException | None, float]:
    """Run ``call`` on a thread; give up waiting after two seconds (a hang is a failure)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            call()
        except BaseException as exc:
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(2.0)
    assert not thread.is_alive(), "the fetch was not bounded by its deadline"
    return outcome.get("error"), outcome["elapsed"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_connect_that_hangs_gives_up_at_the_deadline(unaccepting_port, scheme):
    target = _Target.from_url(f"{scheme}://keys.example.test:{unaccepting_port}/jwks.json")

    error, elapsed = _timed(lambda: client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + DEADLINE))

    assert isinstance(error, _ConnectFailed), repr(error)
    assert str(error) == "timed out"
    assert elapsed < BOUND


class _Silent(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.release.wait(5)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Answering(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        body = b'{"keys": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None) -> Any:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    httpd.release = threading.Event()  # type: ignore[attr-defined]
    httpd.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


def _stop(httpd: Any) -> None:
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_server_that_accepts_and_never_answers_gives_up_at_the_deadline():
    httpd = _serve(_Silent)
    try:
        target = _Target.from_url(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
        error, elapsed = _timed(
            lambda: client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + DEADLINE)
        )
    finally:
        _stop(httpd)

    assert isinstance(error, JWKSFetchError), repr(error)
    assert str(error) == "timed out"
    assert elapsed < BOUND


def test_the_request_asks_for_the_path_and_query_of_the_url_with_the_hosts_name():
    httpd = _serve(_Answering)
    try:
        port = httpd.server_address[1]
        target = _Target.from_url(f"http://keys.example.test:{port}/tenant/jwks.json?v=2")
        document = client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)
    finally:
        _stop(httpd)

    assert document == {"keys": []}
    [(path, headers)] = httpd.requests
    assert path == "/tenant/jwks.json?v=2"
    assert headers["Host"] == f"keys.example.test:{port}"
    assert headers["Accept"] == "application/jwk-set+json, application/json"
    assert headers["Accept-Encoding"] == "identity"
    assert headers["User-Agent"] == "oauth_cc"
    # Nothing else: no credentials, no cookies, no compression.
    assert sorted(headers) == ["Accept", "Accept-Encoding", "Host", "User-Agent"]


def test_https_sends_the_host_name_as_sni_and_checks_the_certificate_for_it(tls_files, monkeypatch):  # noqa: F811
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    context.sni_callback = lambda sock, name, ctx: seen.append(name)
    monkeypatch.setattr(client_jwks_fetch.certifi, "where", lambda: tls_files[0])
    httpd = _serve(_Answering, context)
    try:
        target = _Target.from_url(f"https://keys.example.test:{httpd.server_address[1]}/jwks.json")
        document = client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)
    finally:
        _stop(httpd)

    assert document == {"keys": []}
    assert seen == ["keys.example.test"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://keys.example.com/jwks.json",
            ("keys.example.com", 443, True, "/jwks.json", "keys.example.com"),
        ),
        (
            "http://keys.example.com/jwks.json",
            ("keys.example.com", 80, False, "/jwks.json", "keys.example.com"),
        ),
        ("https://keys.example.com:8443", ("keys.example.com", 8443, True, "/", "keys.example.com:8443")),
        ("https://keys.example.com/a?b=c", ("keys.example.com", 443, True, "/a?b=c", "keys.example.com")),
        ("https://[2001:db8::1]:8443/k", ("2001:db8::1", 8443, True, "/k", "[2001:db8::1]:8443")),
        ("https://[2001:db8::1]/k", ("2001:db8::1", 443, True, "/k", "[2001:db8::1]")),
        ("http://KEYS.example.com/", ("keys.example.com", 80, False, "/", "keys.example.com")),
        ("http:///jwks.json", ("", 80, False, "/jwks.json", "")),
    ],
)
def test_target_of_a_url(url, expected):
    target = _Target.from_url(url)
    assert (target.hostname, target.port, target.https, target.path, target.host_header) == expected


def test_resolve_returns_each_address_of_the_name_once():
    assert hardened_http.resolve("127.0.0.3", 443) == ["127.0.0.3"]
    assert set(hardened_http.resolve("localhost", 80)) <= {"127.0.0.1", "::1"}
    assert len(hardened_http.resolve("localhost", 80)) == len(set(hardened_http.resolve("localhost", 80)))


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_connection_is_could_not_connect(closed_port, scheme):
    target = _Target.from_url(f"{scheme}://keys.example.test:{closed_port}/jwks.json")

    with pytest.raises(_ConnectFailed) as raised:
        client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)

    assert str(raised.value) == "could not connect"


class _HangUp(BaseHTTPRequestHandler):
    def handle(self) -> None:
        self.request.recv(65536)
        self.request.close()  # no status line at all


def test_a_server_that_hangs_up_without_answering_is_a_failed_connection():
    httpd = _serve(_HangUp)
    try:
        target = _Target.from_url(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
        with pytest.raises(JWKSFetchError) as raised:
            client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)
    finally:
        _stop(httpd)

    assert str(raised.value) == "the connection to the JWKS URI failed"


def test_an_untrusted_certificate_is_refused_with_its_own_sentence(tls_files):  # noqa: F811
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    httpd = _serve(_Answering, context)
    httpd.handle_error = lambda request, client_address: None
    try:
        target = _Target.from_url(f"https://keys.example.test:{httpd.server_address[1]}/jwks.json")
        with pytest.raises(JWKSFetchError) as raised:
            client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)
    finally:
        _stop(httpd)

    assert str(raised.value) == "the TLS certificate of the JWKS URI could not be verified"
    assert httpd.requests == []


class _Document(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>keys</html>", "the response is not JSON"),
        (b'{"keys": [], "keys": []}', "the response is not JSON"),
        (b"[]", 'the response is not a JWK Set ({"keys": [...]})'),
        (b'"keys"', 'the response is not a JWK Set ({"keys": [...]})'),
        (b'{"keys": {}}', 'the response is not a JWK Set ({"keys": [...]})'),
        (b'{"Keys": []}', 'the response is not a JWK Set ({"keys": [...]})'),
    ],
)
def test_a_response_that_is_not_a_jwk_set_is_refused(body, message):
    httpd = _serve(_Document)
    httpd.body = body
    try:
        target = _Target.from_url(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
        with pytest.raises(JWKSFetchError) as raised:
            client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)
    finally:
        _stop(httpd)

    assert str(raised.value) == message


def test_a_jwk_set_is_returned_as_decoded():
    httpd = _serve(_Document)
    httpd.body = b'{"keys": [{"kty": "EC", "kid": "k"}], "extra": true}'
    try:
        target = _Target.from_url(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
        document = client_jwks_fetch._get(target, "127.0.0.1", time.monotonic() + 5)
    finally:
        _stop(httpd)

    assert document == {"keys": [{"kty": "EC", "kid": "k"}], "extra": True}
