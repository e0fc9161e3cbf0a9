"""private_key_jwt clients whose keys are served from a jwks_uri (RFC 7523 §2.2, RFC 7517 §5).

A real HTTP server on 127.0.0.1 (a thread, ephemeral port) plays the client's key server and
can be told to misbehave: hang, trickle, answer too much, redirect, or fail.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.cache import caches

from oauth_cc.common import hardened_http
from oauth_cc.issuer import client_jwks_fetch, clients
from oauth_cc.models import Application, Scope

from .assertion_helpers import (
    ClientKey,
    assertion_claims,
    generate_key,
    jwks_of,
    post_assertion,
)
from .conftest import basic_auth, form_post, refused_unproven

ENDPOINT = "http://testserver/oauth/token/"


class KeyServer:
    """What the test key server answers, and a record of what it was asked."""

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.raw = b""  # the body in mode "raw"
        self.mode = "ok"
        self.hits = 0
        self.headers: dict[str, str] = {}  # of the last request
        self.in_flight = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.url = ""


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state: KeyServer = self.server.state
        with state.lock:
            state.hits += 1
            state.headers = dict(self.headers)
            state.in_flight += 1
        try:
            getattr(self, f"_answer_{state.mode}")(state)
        except (BrokenPipeError, ConnectionResetError):
            pass  # The fetcher gave up, as it should.
        finally:
            with state.lock:
                state.in_flight -= 1

    def _send(self, status: int, body: bytes, *, length: bool = True, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _answer_ok(self, state: KeyServer) -> None:
        self._send(200, json.dumps(state.document).encode())

    def _answer_raw(self, state: KeyServer) -> None:
        self._send(200, state.raw)

    def _answer_not_modified(self, state: KeyServer) -> None:
        self._send(304, b"")

    def _answer_slow(self, state: KeyServer) -> None:
        # Answers properly, once the test releases it.
        state.release.wait(30)
        self._answer_ok(state)

    def _answer_hang(self, state: KeyServer) -> None:
        state.release.wait(30)

    def _answer_trickle(self, state: KeyServer) -> None:
        # Headers at once, then a byte at a time, each well inside a per-read timeout.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.flush()
        while not state.release.wait(0.1):
            self.wfile.write(b" ")
            self.wfile.flush()

    def _answer_huge(self, state: KeyServer) -> None:
        self._send(200, b'{"keys": [], "padding": "' + b"x" * 200_000 + b'"}')

    def _answer_huge_unannounced(self, state: KeyServer) -> None:
        # No Content-Length: the body is only delimited by the connection closing.
        self._send(200, b'{"keys": [], "padding": "' + b"x" * 200_000 + b'"}', length=False)

    def _answer_redirect(self, state: KeyServer) -> None:
        self._send(302, b"", Location=state.url + "?moved=1")

    def _answer_error(self, state: KeyServer) -> None:
        self._send(500, b"<html>Internal Server Error</html>")

    def _answer_not_json(self, state: KeyServer) -> None:
        self._send(200, b"<html>keys</html>")


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    state = KeyServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _cold_key_caches() -> Iterator[None]:
    """Each test starts with no fetched key set in this worker or in the shared cache."""
    client_jwks_fetch.reset()
    caches["default"].clear()
    yield
    client_jwks_fetch.reset()
    caches["default"].clear()


@pytest.fixture(scope="module")
def key_a() -> ClientKey:
    return generate_key("ES256", kid="key-a")


@pytest.fixture(scope="module")
def key_b() -> ClientKey:
    return generate_key("EdDSA", kid="key-b")


def make_uri_client(name: str, jwks_uri: str) -> Application:
    """A private_key_jwt client whose keys are at ``jwks_uri``; reports:read is the default scope."""
    Scope.objects.get_or_create(name="reports:read", defaults={"is_default": True})
    application, issued = clients.create_client(
        name, scopes=["reports:read"], auth_method="private_key_jwt", jwks_uri=jwks_uri
    )
    assert issued is None
    return application


@pytest.fixture
def uri_client(db: Any, key_server: KeyServer, key_a: ClientKey) -> Application:
    key_server.document = jwks_of(key_a)
    return make_uri_client("uri-client", key_server.url)


def signed(key: ClientKey, application: Application, **kwargs: Any) -> str:
    return key.sign(assertion_claims(application.client_id, ENDPOINT), **kwargs)


def test_jwks_uri_client_gets_a_token_and_the_keys_are_fetched_once(
    client: Any, uri_client: Application, key_server: KeyServer, key_a: ClientKey
) -> None:
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    assert key_server.hits == 1


def test_another_worker_reuses_the_key_set_from_the_shared_cache(
    client: Any, uri_client: Application, key_server: KeyServer, key_a: ClientKey
) -> None:
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    client_jwks_fetch.reset()  # This worker forgets; the Django cache still has the set.
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    assert key_server.hits == 1


def test_key_set_is_fetched_again_once_the_cache_lifetime_has_passed(
    client: Any, settings: Any, uri_client: Application, key_server: KeyServer, key_a: ClientKey
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_CACHE_SECONDS": 0}
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    assert key_server.hits == 2


def test_key_rollover_is_picked_up_by_one_refetch(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    key_b: ClientKey,
    auth_log: Any,
) -> None:
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    key_server.document = jwks_of(key_b)  # The client rolls over to a new key.

    assert post_assertion(client, signed(key_b, uri_client)).status_code == 200
    assert key_server.hits == 2
    # The refreshed set is the one in use: the retired key is gone.
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, 'kid "key-a"')


def test_unknown_kids_trigger_at_most_one_refetch(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    assert post_assertion(client, signed(key_a, uri_client)).status_code == 200
    for n in range(5):
        assertion = signed(key_a, uri_client, kid=f"junk-{n}")
        refused_unproven(post_assertion(client, assertion), auth_log, f'kid "junk-{n}"')
    assert key_server.hits == 2


def test_unknown_kid_on_an_expired_cache_costs_one_fetch_not_two(
    client: Any,
    settings: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_CACHE_SECONDS": 0}
    refused_unproven(post_assertion(client, signed(key_a, uri_client, kid="junk")), auth_log, 'kid "junk"')
    assert key_server.hits == 1


def test_hanging_key_server_gives_invalid_client_within_the_timeout(
    client: Any,
    settings: Any,
    make_client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_TIMEOUT": 0.5}
    key_server.mode = "hang"

    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "timed out")
    # The answer came while the key server was still holding the connection open.
    assert key_server.in_flight == 1

    # The worker is free: other clients are served at once.
    application, secret = make_client("secret-client", scopes=["reports:read"])
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200
    assert key_server.in_flight == 1


def test_trickling_key_server_is_cut_off_at_the_total_deadline(
    client: Any,
    settings: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_TIMEOUT": 0.5}
    key_server.mode = "trickle"
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "timed out")
    assert key_server.in_flight == 1
    # The fetch thread hangs up too, while the server would go on trickling for 30 s.
    for _ in range(100):
        if key_server.in_flight == 0:
            break
        time.sleep(0.05)
    assert key_server.in_flight == 0
    assert not key_server.release.is_set()


def test_failed_fetch_is_not_retried_at_once(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    key_server.mode = "error"
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "HTTP 500")
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "HTTP 500")
    assert key_server.hits == 1


@pytest.mark.parametrize("mode", ["huge", "huge_unannounced"])
def test_oversized_key_set_is_refused(
    mode: str,
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    key_server.mode = mode
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "larger than 65536 bytes")


def test_redirect_is_not_followed(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    key_server.mode = "redirect"
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "redirect")
    assert key_server.hits == 1


def test_response_that_is_not_a_key_set_is_refused(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    key_server.mode = "not_json"
    response = post_assertion(client, signed(key_a, uri_client))
    refused_unproven(response, auth_log, "not JSON")
    assert "html" not in response.json()["error_description"]


def test_key_set_without_usable_keys_is_refused(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    key_server.document = {"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}
    refused_unproven(
        post_assertion(client, signed(key_a, uri_client)), auth_log, "no usable public signing key"
    )


def test_unreachable_key_server_gives_invalid_client(
    client: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    Application.objects.filter(pk=uri_client.pk).update(client_jwks_uri="http://127.0.0.1:9/jwks.json")
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "could not connect")


# -- Insecure URIs, when JWKS_URI_ALLOW_INSECURE is False (the production default) -------------


@pytest.fixture
def secure_only(settings: Any) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": False}


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("http://keys.example.com/jwks.json", "https"),
        ("https://10.1.2.3/jwks.json", "private"),
        ("https://127.0.0.1:8443/jwks.json", "private"),
        ("https://[::1]/jwks.json", "private"),
        ("https://169.254.169.254/latest/", "private"),
        ("https://localhost/jwks.json", "localhost"),
    ],
)
def test_insecure_jwks_uri_is_refused_at_registration(
    db: Any, secure_only: None, url: str, mentions: str
) -> None:
    with pytest.raises(clients.ClientError, match=mentions):
        clients.create_client("c", auth_method="private_key_jwt", jwks_uri=url)


def test_public_https_jwks_uri_is_accepted_at_registration(db: Any, secure_only: None) -> None:
    application, _ = clients.create_client(
        "c", auth_method="private_key_jwt", jwks_uri="https://keys.example.com/"
    )
    assert application.client_jwks_uri == "https://keys.example.com/"


def test_insecure_jwks_uri_already_stored_is_refused_at_fetch_time(
    client: Any,
    settings: Any,
    uri_client: Application,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": False}
    refused_unproven(post_assertion(client, signed(key_a, uri_client)), auth_log, "https")
    assert key_server.hits == 0


def test_host_name_resolving_to_a_private_address_is_refused_at_fetch_time(
    client: Any,
    secure_only: None,
    db: Any,
    monkeypatch: Any,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    # DNS rebinding: the name passed registration, but now resolves inside the network. The
    # first answer is public, so a fetcher that checked only the first address would connect.
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["93.184.215.14", "10.0.0.5"])
    application = make_uri_client("rebinding", "https://keys.example.com/jwks")
    refused_unproven(post_assertion(client, signed(key_a, application)), auth_log, "private")


def test_fetch_gives_up_when_name_resolution_fails(
    client: Any,
    secure_only: None,
    db: Any,
    monkeypatch: Any,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(hardened_http, "resolve", unresolvable)
    application = make_uri_client("no-dns", "https://keys.example.com/jwks")
    refused_unproven(post_assertion(client, signed(key_a, application)), auth_log, "does not resolve")


def test_fetch_of_a_slow_resolver_is_bounded_by_the_timeout(
    client: Any,
    settings: Any,
    db: Any,
    monkeypatch: Any,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_TIMEOUT": 0.3}
    released = threading.Event()

    def stuck(host: str, port: int) -> list[str]:
        released.wait(10)
        return ["127.0.0.1"]

    monkeypatch.setattr(hardened_http, "resolve", stuck)
    application = make_uri_client("slow-dns", "http://keys.example.com/")
    try:
        refused_unproven(post_assertion(client, signed(key_a, application)), auth_log, "timed out")
        assert not released.is_set()
    finally:
        released.set()
        time.sleep(0.05)  # Let the pool thread finish before monkeypatch restores _resolve.


# -- https: the connection goes to the checked address, the certificate is checked for the name --


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: Any) -> tuple[str, str]:
    """A self-signed certificate for keys.example.test, written as (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keys.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("keys.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


class _QuietTLSServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # A refused handshake is the expected outcome of one test.


@pytest.fixture
def tls_key_server(tls_files: tuple[str, str], monkeypatch: Any, key_a: ClientKey) -> Iterator[KeyServer]:
    state = KeyServer()
    state.document = jwks_of(key_a)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    httpd = _QuietTLSServer(("127.0.0.1", 0), _Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    state.url = f"https://keys.example.test:{httpd.server_address[1]}/jwks.json"
    # The name resolves to the test server; nothing else about the connection is faked.
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["127.0.0.1"])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def tls_client(db: Any, tls_key_server: KeyServer) -> Application:
    return make_uri_client("tls-client", tls_key_server.url)


def test_https_key_server_with_a_trusted_certificate_for_the_name_is_used(
    client: Any, tls_files: tuple[str, str], monkeypatch: Any, tls_client: Application, key_a: ClientKey
) -> None:
    monkeypatch.setattr(hardened_http.certifi, "where", lambda: tls_files[0])
    assert post_assertion(client, signed(key_a, tls_client)).status_code == 200


def test_https_key_server_with_an_untrusted_certificate_is_refused(
    client: Any,
    tls_client: Application,
    tls_key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    refused_unproven(post_assertion(client, signed(key_a, tls_client)), auth_log, "TLS certificate")
    assert tls_key_server.hits == 0


def test_https_certificate_for_another_name_is_refused(
    client: Any,
    tls_files: tuple[str, str],
    monkeypatch: Any,
    tls_client: Application,
    tls_key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    monkeypatch.setattr(hardened_http.certifi, "where", lambda: tls_files[0])
    other_name = tls_key_server.url.replace("keys.example.test", "other.example.test")
    Application.objects.filter(pk=tls_client.pk).update(client_jwks_uri=other_name)
    refused_unproven(post_assertion(client, signed(key_a, tls_client)), auth_log, "TLS certificate")


def test_deeply_nested_jwks_served_by_a_jwks_uri_is_refused(
    client: Any,
    db: Any,
    key_server: KeyServer,
    key_a: ClientKey,
    auth_log: Any,
) -> None:
    """Nesting deeper than the JSON decoder's recursion limit is refused as not JSON, not a 500."""
    key_server.mode = "raw"
    key_server.raw = b'{"keys": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    application = make_uri_client("nested-uri", key_server.url)
    refused_unproven(post_assertion(client, signed(key_a, application)), auth_log, "the response is not JSON")


def test_concurrent_lookups_of_one_jwks_uri_share_one_fetch(
    db: Any, key_server: KeyServer, key_a: ClientKey
) -> None:
    key_server.document = jwks_of(key_a)
    key_server.mode = "slow"  # holds each request until released, then answers
    results: list[client_jwks_fetch.KeySet] = []
    errors: list[BaseException] = []

    def look_up() -> None:
        try:
            results.append(client_jwks_fetch._refresh(key_server.url))
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)

    threads = [threading.Thread(target=look_up, daemon=True) for _ in range(5)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while key_server.in_flight < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the other four lookups arrive while the first fetch is in flight
    with key_server.lock:
        in_flight = key_server.in_flight
    key_server.release.set()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert in_flight == 1
    assert key_server.hits == 1
    assert len(results) == 5
    assert {tuple(key.get("kid") for key in result.keys) for result in results} == {(key_a.kid,)}
