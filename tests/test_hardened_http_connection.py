"""The connection a hardened fetch makes (``hardened_http.fetch``, ``resolve``, ``_Target``).

The same code reads a client's jwks_uri and a resource service's issuer documents. Each socket
operation is bounded by what is left of the fetch's total deadline: a server that never accepts
the connection, or accepts it and never answers, costs the fetch its deadline and no more, over
http and https alike. Over https the connection goes to the checked address while SNI and the
certificate check use the host name. Name resolution returns each address once; an address
that refuses the connection gives way to the next, one that answers badly does not.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oauth_cc.common import hardened_http
from oauth_cc.common.hardened_http import Fetched, FetchError, _Target

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


@pytest.fixture(autouse=True)
def _resolves_to_loopback(monkeypatch: Any) -> None:
    """keys.example.test is this machine: nothing else about the connection is faked."""
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["127.0.0.1"])


def _get(url: str, deadline: float = 5.0, **kwargs: Any) -> Fetched:
    """``hardened_http.fetch`` of ``url`` with ``deadline`` seconds left, loopback allowed."""
    return hardened_http.fetch(
        url, deadline=time.monotonic() + deadline, max_bytes=64 * 1024, allow_insecure=True, **kwargs
    )


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
    url = f"{scheme}://keys.example.test:{unaccepting_port}/jwks.json"

    error, elapsed = _timed(lambda: _get(url, DEADLINE))

    assert isinstance(error, FetchError), repr(error)
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
        url = f"http://keys.example.test:{httpd.server_address[1]}/jwks.json"
        error, elapsed = _timed(lambda: _get(url, DEADLINE))
    finally:
        _stop(httpd)

    assert isinstance(error, FetchError), repr(error)
    assert str(error) == "timed out"
    assert elapsed < BOUND


def test_the_request_asks_for_the_path_and_query_of_the_url_with_the_hosts_name():
    httpd = _serve(_Answering)
    try:
        port = httpd.server_address[1]
        fetched = _get(f"http://keys.example.test:{port}/tenant/jwks.json?v=2")
    finally:
        _stop(httpd)

    assert (fetched.status, fetched.body) == (200, b'{"keys": []}')
    assert fetched.headers["content-type"] == "application/json"
    [(path, headers)] = httpd.requests
    assert path == "/tenant/jwks.json?v=2"
    assert headers["Host"] == f"keys.example.test:{port}"
    assert headers["Accept"] == "application/json"
    assert headers["Accept-Encoding"] == "identity"
    assert headers["User-Agent"] == "oauth_cc"
    # Nothing else: no credentials, no cookies, no compression.
    assert sorted(headers) == ["Accept", "Accept-Encoding", "Host", "User-Agent"]


def test_given_headers_are_added_and_replace_the_defaults():
    httpd = _serve(_Answering)
    try:
        url = f"http://keys.example.test:{httpd.server_address[1]}/jwks.json"
        _get(url, headers={"Accept": "application/jwk-set+json", "Authorization": "Basic eDp5"})
    finally:
        _stop(httpd)

    [(_path, headers)] = httpd.requests
    assert headers["Accept"] == "application/jwk-set+json"
    assert headers["Authorization"] == "Basic eDp5"
    assert headers["Accept-Encoding"] == "identity"


def test_https_sends_the_host_name_as_sni_and_checks_the_certificate_for_it(tls_files, monkeypatch):  # noqa: F811
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    context.sni_callback = lambda sock, name, ctx: seen.append(name)
    monkeypatch.setattr(hardened_http.certifi, "where", lambda: tls_files[0])
    httpd = _serve(_Answering, context)
    try:
        fetched = _get(f"https://keys.example.test:{httpd.server_address[1]}/jwks.json")
    finally:
        _stop(httpd)

    assert fetched.body == b'{"keys": []}'
    assert seen == ["keys.example.test"]


def _certificate_files(directory: Path, *names: str) -> tuple[str, str]:
    """A self-signed certificate whose only subject alternative names are the DNS ``names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test certificate")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.mark.parametrize(
    ("certified", "host", "accepted"),
    [
        ("keys.example.test", "keys.example.test", True),
        ("*.example.test", "keys.example.test", True),
        ("keys.example.test", "other.example.test", False),
        # Wildcards no public CA issues and TLS libraries refuse (RFC 6125 §6.4.3 allows a
        # client to refuse them); urllib3's own matcher, used with assert_hostname, takes both.
        ("k*.example.test", "keys.example.test", False),
        ("*.test", "example.test", False),
    ],
)
def test_the_certificate_must_name_the_host_the_way_the_tls_library_matches_names(
    tmp_path, monkeypatch, certified, host, accepted
):
    """A certificate from a trusted CA is still refused when it is not for the URL's host."""
    cert, key = _certificate_files(tmp_path, certified)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setattr(hardened_http.certifi, "where", lambda: cert)
    httpd = _serve(_Answering, context)
    httpd.handle_error = lambda request, client_address: None
    try:
        url = f"https://{host}:{httpd.server_address[1]}/jwks.json"
        if accepted:
            assert _get(url).body == b'{"keys": []}'
        else:
            with pytest.raises(FetchError) as raised:
                _get(url)
            assert str(raised.value) == "the TLS certificate could not be verified"
            assert httpd.requests == []
    finally:
        _stop(httpd)


class _BadRedirect(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://elsewhere.example:no-port/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_redirect_is_refused_without_its_location_being_read():
    """Following is off in urllib3 itself: a Location it could not even parse changes nothing."""
    httpd = _serve(_BadRedirect)
    try:
        with pytest.raises(FetchError) as raised:
            _get(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
    finally:
        _stop(httpd)
    assert str(raised.value) == "the server answered with a redirect (HTTP 302); use the final URL"


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


def test_resolve_returns_each_address_of_the_name_once(monkeypatch):
    monkeypatch.undo()  # the real resolver
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
    with pytest.raises(FetchError) as raised:
        _get(f"{scheme}://keys.example.test:{closed_port}/jwks.json")

    assert str(raised.value) == "could not connect"


class _HangUp(BaseHTTPRequestHandler):
    def handle(self) -> None:
        self.request.recv(65536)
        self.request.close()  # no status line at all


def test_a_server_that_hangs_up_without_answering_is_a_failed_connection():
    httpd = _serve(_HangUp)
    try:
        with pytest.raises(FetchError) as raised:
            _get(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
    finally:
        _stop(httpd)

    assert str(raised.value) == "the connection failed"


def test_an_untrusted_certificate_is_refused_with_its_own_sentence(tls_files):  # noqa: F811
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    httpd = _serve(_Answering, context)
    httpd.handle_error = lambda request, client_address: None
    try:
        with pytest.raises(FetchError) as raised:
            _get(f"https://keys.example.test:{httpd.server_address[1]}/jwks.json")
    finally:
        _stop(httpd)

    assert str(raised.value) == "the TLS certificate could not be verified"
    assert httpd.requests == []


# -- each address of the host in turn ---------------------------------------------------------


def test_the_next_address_is_tried_when_one_refuses_the_connection(monkeypatch):
    httpd = _serve(_Answering)
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["127.0.0.2", "127.0.0.1"])
    try:
        fetched = _get(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
    finally:
        _stop(httpd)
    assert fetched.body == b'{"keys": []}'


def test_the_error_of_the_last_address_is_the_answer(monkeypatch, closed_port):
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["127.0.0.2", "127.0.0.3"])
    with pytest.raises(FetchError) as raised:
        _get(f"http://keys.example.test:{closed_port}/jwks.json")
    assert str(raised.value) == "could not connect"


def test_an_address_that_took_the_connection_and_failed_is_the_answer(monkeypatch):
    """Only a refused connection moves on: the request may have reached the server."""
    httpd = _serve(_HangUp)
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["127.0.0.1", "127.0.0.2"])
    try:
        with pytest.raises(FetchError) as raised:
            _get(f"http://keys.example.test:{httpd.server_address[1]}/jwks.json")
    finally:
        _stop(httpd)
    assert str(raised.value) == "the connection failed"


def test_the_url_host_and_port_are_resolved(monkeypatch, closed_port):
    asked: list[tuple[str, int]] = []
    monkeypatch.setattr(
        hardened_http, "resolve", lambda host, port: asked.append((host, port)) or ["127.0.0.1"]
    )
    with pytest.raises(FetchError):
        _get(f"http://keys.example.test:{closed_port}/jwks.json")
    assert asked == [("keys.example.test", closed_port)]


# -- 304 and the whole-fetch deadline of get() -------------------------------------------------


class _NotModified(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        self.send_response(304)
        self.send_header("ETag", '"1"')
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("name", ["If-None-Match", "if-none-match", "If-Modified-Since"])
def test_a_304_answers_a_conditional_request(name):
    httpd = _serve(_NotModified)
    try:
        fetched = _get(f"http://keys.example.test:{httpd.server_address[1]}/feed", headers={name: '"1"'})
    finally:
        _stop(httpd)
    assert (fetched.status, fetched.body, fetched.headers["etag"]) == (304, b"", '"1"')


def test_a_304_to_an_unconditional_request_is_refused():
    httpd = _serve(_NotModified)
    try:
        with pytest.raises(FetchError) as raised:
            _get(f"http://keys.example.test:{httpd.server_address[1]}/feed", headers={"Authorization": "x"})
    finally:
        _stop(httpd)
    assert str(raised.value) == "the server answered HTTP 304"


def test_get_gives_up_at_its_timeout_even_while_the_name_resolves(monkeypatch):
    release = threading.Event()

    def stalled(host: str, port: int) -> list[str]:
        release.wait(3)  # name resolution has no timeout of its own
        return ["127.0.0.1"]

    monkeypatch.setattr(hardened_http, "resolve", stalled)
    try:
        error, elapsed = _timed(
            lambda: hardened_http.get(
                "https://issuer.example/x", timeout=DEADLINE, max_bytes=100, allow_insecure=False
            )
        )
    finally:
        release.set()
    assert isinstance(error, FetchError), repr(error)
    assert str(error) == "timed out"
    assert elapsed < BOUND
    assert [t.name for t in threading.enumerate() if t.name.startswith("oauth_cc-fetch_")]


@pytest.mark.parametrize(
    "call",
    [
        lambda url: hardened_http.get(url, timeout=5, max_bytes=100, allow_insecure=False),
        lambda url: hardened_http.post_form(url, form={}, timeout=5, max_bytes=100, allow_insecure=False),
        lambda url: hardened_http.fetch(
            url, deadline=time.monotonic() + 5, max_bytes=100, allow_insecure=False
        ),
    ],
    ids=["get", "post_form", "fetch"],
)
def test_a_refused_url_is_called_the_url_unless_the_caller_names_it(call):
    with pytest.raises(FetchError) as raised:
        call("http://issuer.example/feed")
    assert str(raised.value) == "the URL must use https://"


def test_a_worker_pool_runs_calls_on_its_own_named_threads():
    pool = hardened_http.WorkerPool("test-pool", lambda: 2)
    names = {pool.submit(lambda: threading.current_thread().name).result(timeout=5) for _ in range(4)}
    assert names and all(name.startswith("test-pool_") for name in names)
    assert pool.submit(lambda x, *, y: x + y, 1, y=2).result(timeout=5) == 3
