"""DPoP (RFC 9449): bound tokens at the token endpoint, the DPoP scheme on protected views.

Proofs are built with PyJWT (tests/dpop_helpers.py); ``cnf.jkt`` is compared with an RFC 7638
thumbprint computed here, not by jwcrypto. Each refusal checks the status, the error code, the
reason and that nothing was recorded.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import jwt
import pytest
from django.core.management import call_command
from django.test import override_settings

from oauth_cc.common import dpop
from oauth_cc.models import Application, AuditEvent, UsedAssertion
from tests import dpop_helpers as dh
from tests.attacks import forge
from tests.conftest import basic_auth, form_post

TOKEN_URL = "http://testserver/oauth/token/"
WHOAMI_URL = "http://testserver/api/whoami/"
SCOPE = "reports:read"


def oauth_cc(**extra: Any) -> Any:
    from django.conf import settings

    return override_settings(OAUTH_CC={**settings.OAUTH_CC, **extra})


@pytest.fixture
def svc(make_client: Any) -> tuple[Application, str]:
    return make_client("svc", scopes=[SCOPE])


def token_request(client: Any, svc: tuple[Application, str], proof: str | None = None, **params: str) -> Any:
    application, secret = svc
    headers = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, secret)}
    if proof is not None:
        headers["HTTP_DPOP"] = proof
    body = {"grant_type": "client_credentials", "scope": SCOPE, **params}
    return form_post(client, "/oauth/token/", body, **headers)


def dpop_token(client: Any, svc: tuple[Application, str], key: Any) -> str:
    response = token_request(client, svc, dh.proof(key))
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "DPoP"
    return response.json()["access_token"]


def whoami(
    client: Any, token: str, proof: str | None, scheme: str = "DPoP", path: str = "/api/whoami/"
) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {token}"}
    if proof is not None:
        headers["HTTP_DPOP"] = proof
    return client.get(path, **headers)


def assert_dpop_refused(response: Any, error: str, reason: str, status: int = 401) -> None:
    assert response.status_code == status, response.content
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('DPoP realm="api", algs="RS256 PS256 ES256 EdDSA", ')
    assert f'error="{error}"' in challenge
    assert reason.replace('"', '\\"') in challenge, challenge
    assert reason in response.json()["detail"]


# -- token endpoint ---------------------------------------------------------------------------


def test_token_bound_to_proof_key(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    response = token_request(client, svc, dh.proof(key))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(
        body["access_token"], forge.site_public_key(), algorithms=["ES256"], audience=forge.ISSUER
    )
    assert claims["cnf"] == {"jkt": dh.jkt(key)}
    # One single-use record, in the DPoP namespace.
    assert list(UsedAssertion.objects.values_list("client_id", flat=True)) == [f"dpop#{dh.jkt(key)}"]


def test_rsa_proof_binds_too(client: Any, svc: Any) -> None:
    key = dh.new_rsa_key()
    response = token_request(client, svc, dh.proof(key, alg="PS256"))
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": dh.jkt(key)}


def test_without_proof_a_bearer_token(client: Any, svc: Any) -> None:
    response = token_request(client, svc)
    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def test_proof_for_the_issuer_url_when_a_proxy_rewrites_the_host(client: Any, svc: Any) -> None:
    # htu is the token endpoint under ISSUER (the metadata's URL); the request arrives at another host.
    application, secret = svc
    with override_settings(ALLOWED_HOSTS=["testserver", "internal.example"]):
        response = form_post(
            client,
            "/oauth/token/",
            {"grant_type": "client_credentials", "scope": SCOPE},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
            HTTP_DPOP=dh.proof(dh.new_ec_key()),
            HTTP_HOST="internal.example",
        )
    # The proof's htu names http://testserver, the ISSUER's host.
    assert response.status_code == 200, response.content


def _alg_none(key: Any) -> str:
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": dh.public_jwk(key)}
    payload = {"htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()), "jti": "x1"}
    return f"{forge.b64(forge.dumps(header))}.{forge.b64(forge.dumps(payload))}."


def _hs256_with_public_jwk(key: Any) -> str:
    jwk = dh.public_jwk(key)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}
    payload = {"htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()), "jti": "x2"}
    return _hmac(header, payload, jwk)


def _hmac(header: dict[str, Any], payload: dict[str, Any], jwk: dict[str, Any]) -> str:
    import hashlib
    import hmac

    signing_input = f"{forge.b64(forge.dumps(header))}.{forge.b64(forge.dumps(payload))}"
    mac = hmac.new(json.dumps(jwk).encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{forge.b64(mac)}"


def _signed_by_other_key(key: Any) -> str:
    # The header embeds key's public JWK; the signature is by another key.
    return dh.proof(dh.new_ec_key(), jwk=dh.public_jwk(key))


def _rsa_1024() -> str:
    # PyJWT refuses to sign with a short key: signed here with cryptography itself.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key = dh.new_rsa_key(1024)
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": dh.public_jwk(key)}
    payload = {"htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()), "jti": "x4"}
    signing_input = f"{forge.b64(forge.dumps(header))}.{forge.b64(forge.dumps(payload))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{forge.b64(signature)}"


def _with_jku(key: Any) -> str:
    return jwt.encode(
        {"htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()), "jti": "x3"},
        key,
        algorithm="ES256",
        headers={"typ": "dpop+jwt", "jwk": dh.public_jwk(key), "jku": "https://evil.example/jwks"},
    )


ATTACKS = {
    "typ JWT": (lambda k: dh.proof(k, typ="JWT"), 'must have typ "dpop+jwt"'),
    "typ at+jwt": (lambda k: dh.proof(k, typ="at+jwt"), 'must have typ "dpop+jwt"'),
    "alg none": (_alg_none, 'alg "none" is not accepted'),
    "alg HS256 keyed with the public jwk": (_hs256_with_public_jwk, 'alg "HS256" is not accepted'),
    "private key in jwk": (lambda k: dh.proof(k, jwk=dh.private_jwk(k)), 'holds private key material ("d")'),
    "no jwk": (lambda k: dh.proof(k, jwk=None), 'header has no "jwk" object'),
    "jwk not an object": (lambda k: dh.proof(k, jwk="abc"), 'header has no "jwk" object'),
    "jku beside the jwk": (_with_jku, 'header has "jku", which points at a key URL'),
    "RSA jwk for ES256": (lambda k: dh.proof(k, jwk=dh.public_jwk(dh.new_rsa_key())), "is not a EC key"),
    "RSA 1024": (lambda k: _rsa_1024(), "RSA key under 2048 bits"),
    "signed by another key": (_signed_by_other_key, 'signature does not verify with its "jwk"'),
    "htm GET": (lambda k: dh.proof(k, htm="GET"), '"htm" claim is not the request\'s method (POST)'),
    "htm lower case": (lambda k: dh.proof(k, htm="post"), '"htm" claim is not the request\'s method'),
    "htu other path": (lambda k: dh.proof(k, htu="http://testserver/api/whoami/"), '"htu" claim is not'),
    "htu other host": (lambda k: dh.proof(k, htu="http://evil.example/oauth/token/"), '"htu" claim is not'),
    "htu https": (lambda k: dh.proof(k, htu="https://testserver/oauth/token/"), '"htu" claim is not'),
    "htu missing": (lambda k: dh.proof(k, omit=("htu",)), '"htu" claim is missing'),
    "iat old": (
        lambda k: dh.proof(k, iat=int(time.time()) - 60 - 30 - 5),
        '"iat" claim is more than 60 seconds ago',
    ),
    "iat future": (lambda k: dh.proof(k, iat=int(time.time()) + 30 + 5), '"iat" claim is in the future'),
    "iat string": (lambda k: dh.proof(k, iat="now"), '"iat" claim is not a number'),
    "jti missing": (lambda k: dh.proof(k, omit=("jti",)), '"jti" claim is missing'),
    "jti empty": (lambda k: dh.proof(k, jti=""), '"jti" claim is empty'),
    "two proofs": (lambda k: dh.proof(k) + ", " + dh.proof(k), "is not a well-formed JWT"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_token_endpoint_refuses_bad_proof(client: Any, svc: Any, name: str) -> None:
    make, reason = ATTACKS[name]
    response = token_request(client, svc, make(dh.new_ec_key()))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_dpop_proof"
    assert reason in body["error_description"], body
    assert "access_token" not in body
    assert not UsedAssertion.objects.exists()


def test_replayed_proof_refused_at_token_endpoint(client: Any, svc: Any) -> None:
    proof = dh.proof(dh.new_ec_key())
    assert token_request(client, svc, proof).status_code == 200
    response = token_request(client, svc, proof)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_dpop_proof",
        "error_description": (
            'The DPoP proof has already been used; make a new one (a fresh "jti") per request.'
        ),
    }


def test_failed_client_authentication_records_nothing(client: Any, svc: Any) -> None:
    application, _ = svc
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, "wrong"),
        HTTP_DPOP=dh.proof(dh.new_ec_key()),
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert not UsedAssertion.objects.exists()


def test_require_dpop_client_gets_no_bearer_token(client: Any, make_client: Any) -> None:
    svc = make_client("bound", scopes=[SCOPE], require_dpop=True)
    response = token_request(client, svc)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "This client gets only DPoP-bound tokens: send a DPoP proof (RFC 9449).",
    }
    assert token_request(client, svc, dh.proof(dh.new_ec_key())).json()["token_type"] == "DPoP"


def test_nonce_required_at_token_endpoint(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    with oauth_cc(DPOP_REQUIRE_NONCE=True):
        response = token_request(client, svc, dh.proof(key))
        assert response.status_code == 400
        assert response.json()["error"] == "use_dpop_nonce"
        nonce = response["DPoP-Nonce"]
        assert nonce == dpop.current_nonce()
        assert not UsedAssertion.objects.exists()
        wrong = token_request(client, svc, dh.proof(key, nonce="made-up"))
        assert wrong.json()["error"] == "use_dpop_nonce"
        assert token_request(client, svc, dh.proof(key, nonce=nonce)).status_code == 200


def test_nonce_windows() -> None:
    with oauth_cc(DPOP_NONCE_LIFETIME=100):
        nonce = dpop.current_nonce(now=1000.0)
        assert dpop.nonce_is_valid(nonce, 1099.0)
        assert dpop.nonce_is_valid(nonce, 1199.0)  # the next window still accepts it
        assert not dpop.nonce_is_valid(nonce, 1200.0)
        assert not dpop.nonce_is_valid(nonce, 999.0)
    with override_settings(SECRET_KEY="another-secret-key-" + "y" * 40):
        assert not dpop.nonce_is_valid(nonce, 1000.0)


def test_metadata_lists_dpop_algorithms(client: Any, db: Any) -> None:
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["dpop_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "EdDSA"]


# -- protected views ------------------------------------------------------------------------


def test_dpop_token_with_proof_accepted(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    response = whoami(client, token, dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token))
    assert response.status_code == 200, response.content
    assert response.json()["client_id"] == svc[0].client_id


def test_query_is_ignored_in_htu(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    proof = dh.proof(key, htm="GET", htu="HTTP://TestServer:80/api/whoami/", token=token)
    assert whoami(client, token, proof, path="/api/whoami/?page=2").status_code == 200


def test_dpop_token_as_bearer_refused(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)
    assert_dpop_refused(whoami(client, token, proof, scheme="Bearer"), "invalid_token", "is DPoP-bound")


def test_bearer_token_with_dpop_scheme_refused(client: Any, svc: Any, token_for: Any) -> None:
    key = dh.new_ec_key()
    token = token_for(*svc, scope=SCOPE)["access_token"]
    proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)
    assert_dpop_refused(whoami(client, token, proof), "invalid_token", "is not DPoP-bound")
    assert not UsedAssertion.objects.exists()


PROTECTED_ATTACKS = {
    "no proof": (
        lambda key, other, token: None,
        "A DPoP proof (DPoP header) must come with Authorization: DPoP.",
    ),
    "ath of another token": (
        lambda key, other, token: dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token + "x"),
        '"ath" claim is not the hash of the access token sent',
    ),
    "ath missing": (
        lambda key, other, token: dh.proof(key, htm="GET", htu=WHOAMI_URL),
        '"ath" claim is missing',
    ),
    "key other than cnf.jkt": (
        lambda key, other, token: dh.proof(other, htm="GET", htu=WHOAMI_URL, token=token),
        "not signed by the key the access token is bound to",
    ),
    "proof made for the token endpoint": (
        lambda key, other, token: dh.proof(key, token=token),
        '"htm" claim is not the request\'s method (GET)',
    ),
    "htu of another view": (
        lambda key, other, token: dh.proof(key, htm="GET", htu="http://testserver/api/reports/", token=token),
        '"htu" claim is not the request\'s URL (http://testserver/api/whoami/)',
    ),
    "old iat": (
        lambda key, other, token: dh.proof(
            key, htm="GET", htu=WHOAMI_URL, token=token, iat=int(time.time()) - 200
        ),
        '"iat" claim is more than 60 seconds ago',
    ),
    "private key embedded": (
        lambda key, other, token: dh.proof(
            key, htm="GET", htu=WHOAMI_URL, token=token, jwk=dh.private_jwk(key)
        ),
        "holds private key material",
    ),
}


@pytest.mark.parametrize("name", sorted(PROTECTED_ATTACKS))
def test_protected_view_refuses_bad_proof(client: Any, svc: Any, name: str) -> None:
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    recorded = UsedAssertion.objects.count()
    make, reason = PROTECTED_ATTACKS[name]
    response = whoami(client, token, make(key, dh.new_ec_key(), token))
    assert_dpop_refused(response, "invalid_dpop_proof", reason)
    assert UsedAssertion.objects.count() == recorded


def test_replayed_proof_refused_at_protected_view(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)
    assert whoami(client, token, proof).status_code == 200
    assert_dpop_refused(whoami(client, token, proof), "invalid_dpop_proof", "has already been used")


def test_memo_never_skips_the_proof(client: Any, svc: Any) -> None:
    # The token is verified once and remembered; the proof is still checked on every request.
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    for _ in range(2):
        assert whoami(client, token, dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)).status_code == 200
    assert_dpop_refused(
        whoami(client, token, None), "invalid_dpop_proof", "must come with Authorization: DPoP"
    )
    other = dh.new_ec_key()
    response = whoami(client, token, dh.proof(other, htm="GET", htu=WHOAMI_URL, token=token))
    assert_dpop_refused(response, "invalid_dpop_proof", "not signed by the key")


def test_malformed_dpop_authorization(client: Any, db: Any) -> None:
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION="DPoP a b")
    assert response.status_code == 400
    assert response["WWW-Authenticate"].startswith('DPoP realm="api", algs="RS256 PS256 ES256 EdDSA", ')
    assert 'error="invalid_request"' in response["WWW-Authenticate"]
    assert "'DPoP <token>'" in response["WWW-Authenticate"]


def test_nonce_required_at_protected_view(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    token = dpop_token(client, svc, key)
    with oauth_cc(DPOP_REQUIRE_NONCE=True):
        response = whoami(client, token, dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token))
        assert_dpop_refused(response, "use_dpop_nonce", 'must carry the "nonce"')
        nonce = response["DPoP-Nonce"]
        assert nonce == dpop.current_nonce()
        proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token, nonce=nonce)
        assert whoami(client, token, proof).status_code == 200


def test_cache_replay_store(client: Any, svc: Any) -> None:
    key = dh.new_ec_key()
    with oauth_cc(DPOP_REPLAY_STORE="cache"):
        token = dpop_token(client, svc, key)
        proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)
        assert whoami(client, token, proof).status_code == 200
        assert_dpop_refused(whoami(client, token, proof), "invalid_dpop_proof", "has already been used")
    assert not UsedAssertion.objects.exists()


# -- operators -----------------------------------------------------------------------------


def test_command_sets_require_dpop(db: Any, make_scope: Any) -> None:
    out = io.StringIO()
    call_command("oauth_cc", "client", "create", "svc", "--require-dpop", "--json", stdout=out)
    client_id = json.loads(out.getvalue())["client_id"]
    assert Application.objects.get(client_id=client_id).require_dpop is True
    call_command("oauth_cc", "client", "update", client_id, "--no-require-dpop", stdout=io.StringIO())
    assert Application.objects.get(client_id=client_id).require_dpop is False
    event = AuditEvent.objects.filter(object_id=client_id).order_by("pk").last()
    assert event.changes == {"require_dpop": {"old": True, "new": False}}
    out = io.StringIO()
    call_command("oauth_cc", "client", "update", client_id, "--require-dpop", stdout=out)
    assert "DPoP-bound tokens only" in out.getvalue()
    out = io.StringIO()
    call_command("oauth_cc", "client", "show", client_id, "--json", stdout=out)
    assert json.loads(out.getvalue())["require_dpop"] is True


def test_admin_sets_require_dpop(admin_client: Any, svc: Any) -> None:
    application, _ = svc
    url = f"/admin/oauth_cc/application/{application.pk}/change/"
    page = admin_client.get(url)
    assert b'name="require_dpop"' in page.content


def test_settings_checks() -> None:
    from oauth_cc.checks import check_settings

    def ids(**extra: Any) -> dict[str, str]:
        with oauth_cc(**extra):
            return {
                error.id: error.msg
                for error in check_settings()
                if error.id in ("oauth_cc.E007", "oauth_cc.E020")
            }

    assert ids() == {}
    assert ids(DPOP_REPLAY_STORE="cache") == {}
    assert ids(DPOP_REPLAY_STORE="redis") == {
        "oauth_cc.E020": 'OAUTH_CC[\'DPOP_REPLAY_STORE\'] must be "database" or "cache".'
    }
    assert ids(DPOP_PROOF_MAX_AGE=0) == {
        "oauth_cc.E007": "OAUTH_CC['DPOP_PROOF_MAX_AGE'] must be a number of at least 1."
    }
