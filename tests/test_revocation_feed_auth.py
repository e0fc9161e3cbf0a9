"""Client authentication at the revocation feed (oauth_cc.views.revocation_feed), and the resource
side's credentials for it (oauth_cc.resource.feed_auth).

The feed accepts what the introspection endpoint accepts: HTTP Basic on a GET, and a form POST
carrying ``client_secret_post`` credentials or a ``private_key_jwt`` assertion (whose ``aud`` may
be the feed's URL or the issuer). A client registered for one method is refused with another,
with the same generic ``invalid_client`` as a wrong secret.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import jwt as pyjwt
import pytest
from jwcrypto.jwk import JWK

from oauth_cc.common import hardened_http
from oauth_cc.issuer import client_auth
from oauth_cc.resource import feed, feed_auth

from .assertion_helpers import ASSERTION_TYPE, ClientKey, assertion_claims, generate_key, jwks_of
from .conftest import basic_auth, form_post, refused_unproven
from .helpers import ISSUER, clear_shared_cache

FEED = "/oauth/revocation-feed/"
FEED_URL = ISSUER + FEED
EMPTY_FEED = {
    "issuer": ISSUER,
    "revoked_jtis": [],
    "disabled_clients": [],
    "deleted_clients": [],
    "tokens_valid_after": {},
}
GENERIC = {"error": "invalid_client", "description": "Client authentication failed."}


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture(scope="module")
def es_key() -> ClientKey:
    return generate_key("ES256")


@pytest.fixture
def secret_reader(make_client: Any) -> tuple[Any, str]:
    return make_client("secret-reader", can_introspect=True)


@pytest.fixture
def jwt_reader(make_client: Any, es_key: ClientKey) -> Any:
    application, secret = make_client(
        "jwt-reader", can_introspect=True, auth_method="private_key_jwt", jwks=jwks_of(es_key)
    )
    assert secret == ""
    return application


def assertion_form(key: ClientKey, client_id: str, audience: Any = FEED_URL, **claims: Any) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": key.sign(assertion_claims(client_id, audience, **claims)),
    }


def assert_feed(response: Any) -> str:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == EMPTY_FEED
    return str(response["ETag"])


def assert_error(response: Any, status: int, error: str, description: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": error, "error_description": description}


# -- the view: each method --------------------------------------------------------------------


def test_get_with_basic_still_reads_the_feed_and_304s(client: Any, secret_reader: Any) -> None:
    application, secret = secret_reader
    auth = basic_auth(application.client_id, secret)
    etag = assert_feed(client.get(FEED, HTTP_AUTHORIZATION=auth))
    unchanged = client.get(FEED, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag


def test_post_with_client_secret_post_reads_the_feed_and_304s(client: Any, secret_reader: Any) -> None:
    application, secret = secret_reader
    form = {"client_id": application.client_id, "client_secret": secret}
    etag = assert_feed(form_post(client, FEED, form))
    unchanged = form_post(client, FEED, form, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag


def test_post_with_basic_and_the_client_id_in_the_form_reads_the_feed(
    client: Any, secret_reader: Any
) -> None:
    application, secret = secret_reader
    auth = basic_auth(application.client_id, secret)
    assert_feed(form_post(client, FEED, {"client_id": application.client_id}, HTTP_AUTHORIZATION=auth))
    other = form_post(client, FEED, {"client_id": "someone-else"}, HTTP_AUTHORIZATION=auth)
    assert_error(other, 401, "invalid_client", "client_id does not match the authenticated client.")


@pytest.mark.parametrize("audience", [FEED_URL, ISSUER, [ISSUER, "https://elsewhere.example"]])
def test_post_with_private_key_jwt_reads_the_feed(
    client: Any, jwt_reader: Any, es_key: ClientKey, audience: Any
) -> None:
    response = form_post(client, FEED, assertion_form(es_key, jwt_reader.client_id, audience))
    etag = assert_feed(response)
    unchanged = form_post(
        client, FEED, assertion_form(es_key, jwt_reader.client_id, audience), HTTP_IF_NONE_MATCH=etag
    )
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == etag


def test_an_assertion_for_another_endpoint_is_refused(
    client: Any, jwt_reader: Any, es_key: ClientKey
) -> None:
    response = form_post(client, FEED, assertion_form(es_key, jwt_reader.client_id, f"{ISSUER}/oauth/token/"))
    assert_error(
        response,
        401,
        "invalid_client",
        f'client_assertion "aud" claim must contain the endpoint URL ({FEED_URL}) or the issuer ({ISSUER}).',
    )


def test_an_assertion_is_accepted_once(client: Any, jwt_reader: Any, es_key: ClientKey) -> None:
    form = assertion_form(es_key, jwt_reader.client_id)
    assert_feed(form_post(client, FEED, form))
    assert_error(
        form_post(client, FEED, form),
        401,
        "invalid_client",
        'This client_assertion has already been used; sign a new one with a fresh "jti".',
    )


def test_an_assertion_signed_by_another_key_is_refused(client: Any, jwt_reader: Any, auth_log: Any) -> None:
    stranger = generate_key("ES256", kid=generate_key("ES256").kid)
    response = form_post(client, FEED, assertion_form(stranger, jwt_reader.client_id))
    refused_unproven(response, auth_log, f'No key with kid "{stranger.kid}" is registered for this client.')


def test_a_private_key_jwt_client_is_refused_its_secret_either_way(
    client: Any, jwt_reader: Any, caplog: Any
) -> None:
    """The generic answer, as for a wrong secret: the caller learns nothing of the registration."""
    caplog.set_level(logging.INFO, logger="oauth_cc.client_auth")
    basic = client.get(FEED, HTTP_AUTHORIZATION=basic_auth(jwt_reader.client_id, "guess"))
    assert_error(basic, 401, **GENERIC)
    assert basic["WWW-Authenticate"].startswith("Basic")
    posted = form_post(client, FEED, {"client_id": jwt_reader.client_id, "client_secret": "guess"})
    assert_error(posted, 401, **GENERIC)
    assert "presented client_secret_post but is registered for private_key_jwt" in caplog.text


def test_a_secret_client_is_refused_an_assertion(
    client: Any, secret_reader: Any, es_key: ClientKey, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="oauth_cc.client_auth")
    application, _ = secret_reader
    response = form_post(client, FEED, assertion_form(es_key, application.client_id))
    assert_error(response, 401, **GENERIC)
    assert "presented private_key_jwt but is registered for client_secret_basic" in caplog.text


def test_a_wrong_secret_in_the_form_is_invalid_client(client: Any, secret_reader: Any) -> None:
    application, _ = secret_reader
    response = form_post(client, FEED, {"client_id": application.client_id, "client_secret": "wrong"})
    assert_error(response, 401, **GENERIC)


def test_a_post_reader_not_allowed_to_introspect_is_unauthorized(client: Any, make_client: Any) -> None:
    application, secret = make_client("plain")
    response = form_post(client, FEED, {"client_id": application.client_id, "client_secret": secret})
    assert_error(
        response, 403, "unauthorized_client", "This client is not allowed to read the revocation feed."
    )


def test_a_secret_in_the_query_string_of_a_get_is_never_read(client: Any, secret_reader: Any) -> None:
    """Attack class: credentials in a URL (kept by access logs and proxies) do not authenticate."""
    application, secret = secret_reader
    query = urlencode({"client_id": application.client_id, "client_secret": secret})
    response = client.get(f"{FEED}?{query}")
    assert_error(response, 401, "invalid_client", "Client authentication is required.")


def test_a_post_body_must_be_a_form(client: Any, secret_reader: Any) -> None:
    application, secret = secret_reader
    body = json.dumps({"client_id": application.client_id, "client_secret": secret})
    response = client.post(FEED, body, content_type="application/json")
    assert_error(
        response, 400, "invalid_request", "The request body must be application/x-www-form-urlencoded."
    )


def test_a_repeated_parameter_is_refused(client: Any, secret_reader: Any) -> None:
    application, secret = secret_reader
    body = [("client_id", application.client_id), ("client_secret", secret), ("client_secret", secret)]
    response = form_post(client, FEED, body)
    assert_error(response, 400, "invalid_request", 'The parameter "client_secret" was sent more than once.')


def test_two_methods_in_one_request_are_refused(client: Any, secret_reader: Any) -> None:
    application, secret = secret_reader
    response = form_post(
        client,
        FEED,
        {"client_id": application.client_id, "client_secret": secret},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert_error(
        response,
        400,
        "invalid_request",
        "Use exactly one client authentication method per request (RFC 6749, section 2.3).",
    )


def test_other_methods_are_refused_with_the_allowed_ones(client: Any) -> None:
    response = client.put(FEED)
    assert_error(response, 405, "invalid_request", "Use GET, HEAD, POST.")
    assert response["Allow"] == "GET, HEAD, POST"


# -- the resource side's credentials, checked by the issuer's view ------------------------------


def resource_settings(settings: Any, **extra: Any) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, **extra}


def send(client: Any, request: feed_auth.FeedRequest, **headers: str) -> Any:
    """What oauth_cc.resource.feed.fetch sends, through Django's test client."""
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in request.headers.items()}
    if request.form is None:
        return client.get(FEED, **extra, **headers)
    return form_post(client, FEED, request.form, **extra, **headers)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_the_resource_side_authenticates_with_its_secret(
    client: Any, settings: Any, secret_reader: Any, method: str
) -> None:
    application, secret = secret_reader
    resource_settings(
        settings,
        RESOURCE_CLIENT_ID=application.client_id,
        RESOURCE_CLIENT_SECRET=secret,
        RESOURCE_CLIENT_AUTH_METHOD=method,
    )
    request = feed_auth.feed_request()
    assert (request.form is None) == (method == "client_secret_basic")
    etag = assert_feed(send(client, request))
    assert send(client, feed_auth.feed_request(), HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_the_resource_side_escapes_its_basic_credentials(settings: Any) -> None:
    """RFC 6749 §2.3.1: the id and secret are form-urlencoded before the Basic encoding, so a ':'
    or '%' in either survives it (the issuer's parser decodes them again)."""
    resource_settings(settings, RESOURCE_CLIENT_ID="reader:one%", RESOURCE_CLIENT_SECRET="s:%41 +")
    request = feed_auth.feed_request()
    assert request.form is None
    encoded = request.headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded) == b"reader%3Aone%25:s%3A%2541%20%2B"
    assert client_auth._parse_basic(encoded) == ("reader:one%", "s:%41 +")


def pem(key: ClientKey) -> str:
    return key.private_pem().decode("ascii")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_the_resource_side_authenticates_with_a_fresh_assertion(
    client: Any, settings: Any, make_client: Any, alg: str
) -> None:
    key = generate_key(alg)
    application, _ = make_client("jwt", can_introspect=True, auth_method="private_key_jwt", jwks=jwks_of(key))
    resource_settings(
        settings,
        RESOURCE_CLIENT_ID=application.client_id,
        RESOURCE_CLIENT_AUTH_METHOD="private_key_jwt",
        RESOURCE_CLIENT_PRIVATE_KEY=pem(key),
        RESOURCE_CLIENT_KEY_ID=key.kid,
        RESOURCE_CLIENT_KEY_ALG=alg if alg == "PS256" else None,  # an RSA key defaults to RS256
    )
    first = feed_auth.feed_request()
    etag = assert_feed(send(client, first))
    second = feed_auth.feed_request()
    assert second.form is not None and first.form is not None
    assert second.form["client_assertion"] != first.form["client_assertion"]
    assert send(client, second, HTTP_IF_NONE_MATCH=etag).status_code == 304
    # What the issuer checked, read with PyJWT (an implementation apart from jwcrypto).
    header = pyjwt.get_unverified_header(second.form["client_assertion"])
    assert header == {"alg": alg, "kid": key.kid}
    claims = pyjwt.decode(
        second.form["client_assertion"], key.private_key.public_key(), algorithms=[alg], audience=ISSUER
    )
    assert claims["iss"] == claims["sub"] == application.client_id
    assert claims["exp"] - claims["iat"] == feed_auth.ASSERTION_LIFETIME
    assert len(claims["jti"]) >= 32


def test_the_resource_side_takes_a_jwk_with_its_own_kid_and_alg(
    client: Any, settings: Any, make_client: Any, es_key: ClientKey
) -> None:
    private = {
        **json.loads(JWK.from_pem(es_key.private_pem()).export_private()),
        "kid": es_key.kid,
        "alg": "ES256",
    }
    application, _ = make_client(
        "jwk", can_introspect=True, auth_method="private_key_jwt", jwks=jwks_of(es_key)
    )
    for value in (private, json.dumps(private)):
        resource_settings(
            settings,
            RESOURCE_CLIENT_ID=application.client_id,
            RESOURCE_CLIENT_AUTH_METHOD="private_key_jwt",
            RESOURCE_CLIENT_PRIVATE_KEY=value,
        )
        assert feed_auth.load_signing_key(value).kid == es_key.kid
        assert_feed(send(client, feed_auth.feed_request()))


def test_the_resource_side_with_a_key_the_issuer_does_not_hold_is_refused(
    client: Any, settings: Any, jwt_reader: Any, auth_log: Any
) -> None:
    other = generate_key("ES256")
    resource_settings(
        settings,
        RESOURCE_CLIENT_ID=jwt_reader.client_id,
        RESOURCE_CLIENT_AUTH_METHOD="private_key_jwt",
        RESOURCE_CLIENT_PRIVATE_KEY=pem(other),
    )
    response = send(client, feed_auth.feed_request())
    refused_unproven(
        response,
        auth_log,
        "The client_assertion signature does not verify with this client's registered keys.",
    )


# -- loading the private key -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_1024() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def key_problem(value: Any, **options: Any) -> str:
    with pytest.raises(feed_auth.KeyProblem) as raised:
        feed_auth.load_signing_key(value, **options)
    return str(raised.value)


KEY = "OAUTH_CC['RESOURCE_CLIENT_PRIVATE_KEY']"
WHOLE = "check that it was copied whole"
PRIVATE = "give the private key (the issuer holds the public one)"


def test_an_unusable_private_key_is_a_sentence_without_key_material(es_key: ClientKey, rsa_1024: str) -> None:
    private_pem = pem(es_key)
    truncated = private_pem[: len(private_pem) // 2] + "\n-----END PRIVATE KEY-----\n"
    public_jwk = json.dumps(es_key.public_jwk())
    cases = {
        None: f"{KEY} must be a PEM private key or a private JWK (JSON or a dict).",
        "": f"{KEY} must be a PEM private key or a private JWK (JSON or a dict).",
        42: f"{KEY} must be a PEM private key or a private JWK (JSON or a dict).",
        "not a key": f'{KEY} is neither a PEM key ("-----BEGIN PRIVATE KEY-----") nor a JWK in JSON.',
        truncated: f"{KEY} could not be read as a PEM key; {WHOLE}.",
        '{"kty": "EC", "crv": "P-256", "d": "!"': f"{KEY} could not be read as a JWK key; {WHOLE}.",
        es_key.public_pem().decode(): f"{KEY} is a public key; {PRIVATE}.",
        public_jwk: f"{KEY} is a public key; {PRIVATE}.",
        json.dumps({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}): (
            f"{KEY} is a oct key; use an RSA, EC (P-256) or Ed25519 private key."
        ),
        rsa_1024: f"{KEY} is an RSA key of under 2048 bits; use a longer one.",
        '{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}': (
            f"{KEY} is not a valid RSA private key: its members (n, e, d, p, q, dp, dq and qi) do not "
            f"make one; {WHOLE}."
        ),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n": (
            f"{KEY} is an encrypted PEM; give the key unencrypted."
        ),
    }
    for value, sentence in cases.items():
        found = key_problem(value)
        assert found == sentence, value
        assert "MIG" not in found and '"d"' not in found  # no key material


def test_the_algorithm_must_fit_the_key(es_key: ClientKey) -> None:
    assert key_problem(pem(es_key), alg="HS256") == (
        "OAUTH_CC['RESOURCE_CLIENT_KEY_ALG'] must be one of RS256, PS256, ES256, EdDSA "
        "(or None: from the key)."
    )
    assert key_problem(pem(es_key), alg="RS256") == (
        "OAUTH_CC['RESOURCE_CLIENT_KEY_ALG'] cannot be used for RS256: the key is EC on P-256."
    )
    private = json.loads(JWK.from_pem(es_key.private_pem()).export_private())
    assert key_problem({**private, "alg": "ES384"}) == (
        f'{KEY} has "alg": "ES384"; the issuer accepts RS256, PS256, ES256, EdDSA.'
    )
    assert (
        key_problem({**private, "alg": "EdDSA"}) == f"{KEY} cannot be used for EdDSA: the key is EC on P-256."
    )
    p384 = json.loads(JWK.generate(kty="EC", crv="P-384").export_private())
    assert key_problem(p384) == f"{KEY} cannot be used for ES256: the key is EC on P-384."


@pytest.mark.parametrize("kid", ["", 7, "tab\there"])
def test_the_kid_must_be_a_printable_string(es_key: ClientKey, kid: Any) -> None:
    assert key_problem(pem(es_key), kid=kid) == (
        "OAUTH_CC['RESOURCE_CLIENT_KEY_ID'] must be the key's kid as registered on the issuer "
        "(a non-empty string)."
    )


def test_defaults_come_from_the_key(es_key: ClientKey) -> None:
    loaded = feed_auth.load_signing_key(pem(es_key))
    assert (loaded.alg, loaded.kid) == ("ES256", None)
    assert repr(loaded) == "SigningKey(alg='ES256', kid=None)"  # no key material in a log line
    assert feed_auth.load_signing_key(pem(generate_key("EdDSA"))).alg == "EdDSA"
    assert feed_auth.load_signing_key(pem(generate_key("RS256")), kid="k1").kid == "k1"
    private = json.loads(JWK.from_pem(es_key.private_pem()).export_private())
    signing = {**private, "use": "sig", "key_ops": ["sign", "verify"]}
    assert feed_auth.load_signing_key(signing).alg == "ES256"  # a key that says it signs


def test_a_bad_key_makes_a_poll_fail_with_the_sentence_not_an_exception(
    settings: Any, monkeypatch: Any
) -> None:
    resource_settings(
        settings,
        RESOURCE_CLIENT_ID="reader",
        RESOURCE_CLIENT_AUTH_METHOD="private_key_jwt",
        RESOURCE_CLIENT_PRIVATE_KEY="not a key",
    )
    monkeypatch.setattr(hardened_http, "post_form", lambda *a, **k: pytest.fail("nothing is sent"))
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.fetch(None, FEED_URL)
    assert (
        str(raised.value) == f'{KEY} is neither a PEM key ("-----BEGIN PRIVATE KEY-----") nor a JWK in JSON.'
    )


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        ({"use": "enc"}, f'{KEY} has a "use" other than "sig"; give "use": "sig" or leave "use" out.'),
        (
            {"key_ops": ["verify"]},
            f'{KEY} has a "key_ops" that is not a list with "sign"; add "sign" or leave "key_ops" out.',
        ),
    ],
)
def test_a_key_jwcrypto_would_not_sign_with_fails_the_poll_with_a_sentence(
    settings: Any, monkeypatch: Any, es_key: ClientKey, extra: dict[str, Any], sentence: str
) -> None:
    private = json.loads(JWK.from_pem(es_key.private_pem()).export_private())
    resource_settings(
        settings,
        RESOURCE_CLIENT_ID="reader",
        RESOURCE_CLIENT_AUTH_METHOD="private_key_jwt",
        RESOURCE_CLIENT_PRIVATE_KEY={**private, **extra},
    )
    monkeypatch.setattr(hardened_http, "post_form", lambda *a, **k: pytest.fail("nothing is sent"))
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.fetch(None, FEED_URL)
    assert str(raised.value) == sentence
    assert private["d"] not in str(raised.value)


def test_a_signing_failure_the_key_checks_miss_fails_the_poll_with_a_sentence(
    settings: Any, monkeypatch: Any, es_key: ClientKey
) -> None:
    resource_settings(
        settings,
        RESOURCE_CLIENT_ID="reader",
        RESOURCE_CLIENT_AUTH_METHOD="private_key_jwt",
        RESOURCE_CLIENT_PRIVATE_KEY=pem(es_key),
    )

    def refuse(client_id: str, **kwargs: Any) -> str:
        raise ValueError(pem(es_key))  # a library message quoting the key

    monkeypatch.setattr(feed_auth, "client_assertion", refuse)
    monkeypatch.setattr(hardened_http, "post_form", lambda *a, **k: pytest.fail("nothing is sent"))
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.fetch(None, FEED_URL)
    assert str(raised.value) == (f"{KEY} could not sign the feed request (ValueError); run manage.py check")


# -- the form POST of the hardened fetcher ------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers what the test queued, and records each request it got."""

    answers: list[tuple[int, dict[str, str], bytes]] = []
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).seen.append(
            {"path": self.path, "headers": dict(self.headers.items()), "body": self.rfile.read(length)}
        )
        status, headers, body = type(self).answers.pop(0)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Any:
    _Recorder.answers, _Recorder.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder
    server.shutdown()
    server.server_close()


def post(url: str, form: dict[str, str], **headers: str) -> hardened_http.Fetched:
    return hardened_http.post_form(
        url, form=form, headers=headers, timeout=5, max_bytes=10_000, allow_insecure=True
    )


def test_post_form_sends_the_form_once_with_its_type_and_length(recorder: Any) -> None:
    url, handler = recorder
    handler.answers.append((200, {"ETag": '"1"'}, b"{}"))
    fetched = post(f"{url}/oauth/revocation-feed/", {"client_id": "a b", "client_secret": "s&=%"}, Accept="x")
    assert (fetched.status, fetched.headers["etag"], fetched.body) == (200, '"1"', b"{}")
    (request,) = handler.seen
    assert request["path"] == "/oauth/revocation-feed/"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["body"] == b"client_id=a+b&client_secret=s%26%3D%25"
    assert request["headers"]["Content-Length"] == str(len(request["body"]))
    assert request["headers"]["Accept"] == "x"


def test_post_form_sends_its_own_content_type_with_or_without_other_headers(recorder: Any) -> None:
    url, handler = recorder
    handler.answers += [(200, {}, b"{}"), (200, {}, b"{}")]
    hardened_http.post_form(url + "/", form={"a": "1"}, timeout=5, max_bytes=100, allow_insecure=True)
    post(url + "/", {"a": "2"}, **{"Content-Type": "text/plain", "Authorization": "Basic eDp5"})
    form_type = "application/x-www-form-urlencoded"
    first, second = handler.seen
    assert (first["body"], first["headers"]["Content-Type"]) == (b"a=1", form_type)
    assert (second["body"], second["headers"]["Content-Type"]) == (b"a=2", form_type)
    assert second["headers"]["Authorization"] == "Basic eDp5"


def test_post_form_follows_no_redirect(recorder: Any) -> None:
    """The credentials in the body go to the URL asked for, never to where a 307 points."""
    url, handler = recorder
    handler.answers.append((307, {"Location": "http://evil.example/"}, b""))
    with pytest.raises(hardened_http.FetchError) as raised:
        post(url + "/", {"client_secret": "s"})
    assert str(raised.value) == "the server answered with a redirect (HTTP 307); use the final URL"
    assert len(handler.seen) == 1


def test_a_refusal_says_the_issuers_error_and_description(recorder: Any) -> None:
    url, handler = recorder
    refusal = {
        "error": "invalid_client",
        "error_description": 'client_assertion "aud" claim must contain\x07 x',
    }
    handler.answers.append((401, {"Content-Type": "application/json"}, json.dumps(refusal).encode()))
    with pytest.raises(hardened_http.FetchError) as raised:
        post(url + "/", {"client_secret": "s"})
    assert str(raised.value) == (
        'the server answered HTTP 401 (invalid_client: client_assertion "aud" claim must contain? x)'
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b"<html>no</html>"),
        (401, json.dumps({"error": 7}).encode()),
        (401, json.dumps(["invalid_client"]).encode()),
        (401, b'{"error": "invalid_client", "error_description": "' + b"x" * 5000 + b'"}'),
        (500, json.dumps({"error": "server_error"}).encode()),
    ],
)
def test_a_refusal_without_a_readable_oauth_error_says_only_the_status(
    recorder: Any, status: int, body: bytes
) -> None:
    url, handler = recorder
    handler.answers.append((status, {"Content-Type": "application/json"}, body))
    with pytest.raises(hardened_http.FetchError) as raised:
        post(url + "/", {"client_secret": "s"})
    assert str(raised.value) == f"the server answered HTTP {status}"


def test_a_long_description_is_cut(recorder: Any) -> None:
    url, handler = recorder
    refusal = {"error": "invalid_request", "error_description": "y" * 300}
    handler.answers.append((400, {}, json.dumps(refusal).encode()))
    with pytest.raises(hardened_http.FetchError) as raised:
        post(url + "/", {"client_secret": "s"})
    assert str(raised.value) == f"the server answered HTTP 400 (invalid_request: {'y' * 200}...)"


@pytest.mark.parametrize(
    ("status", "refusal", "detail"),
    [
        (
            403,
            {"error": "unauthorized_client", "error_description": "This client may not read the feed."},
            " (unauthorized_client: This client may not read the feed.)",
        ),
        (401, {"error": "invalid_client", "error_description": ""}, " (invalid_client)"),
        (401, {"error": "invalid_client", "error_description": 7}, " (invalid_client)"),
        (400, {"error": "e" * 50}, f" ({'e' * 40}...)"),
    ],
)
def test_a_refusal_names_its_code_and_only_a_useful_description(
    recorder: Any, status: int, refusal: dict[str, Any], detail: str
) -> None:
    url, handler = recorder
    handler.answers.append((status, {"Content-Type": "application/json"}, json.dumps(refusal).encode()))
    with pytest.raises(hardened_http.FetchError) as raised:
        post(url + "/", {"client_secret": "s"})
    assert str(raised.value) == f"the server answered HTTP {status}{detail}"


def test_a_refusal_in_a_compressed_body_is_not_read(recorder: Any) -> None:
    """Asked for identity: a body marked compressed is left unread (never decompressed)."""
    url, handler = recorder
    refusal = json.dumps({"error": "invalid_client", "error_description": "x"}).encode()
    handler.answers.append((401, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, refusal))
    with pytest.raises(hardened_http.FetchError) as raised:
        post(url + "/", {"client_secret": "s"})
    assert str(raised.value) == "the server answered HTTP 401"
