"""Token introspection (RFC 7662) and token revocation (RFC 7009)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from oauth_cc.models import RevokedToken
from oauth_cc.signals import token_revoked
from tests.conftest import basic_auth, form_post
from tests.helpers import ISSUER, clear_shared_cache, sign_with_site_key, token_claims

INTROSPECT = "/oauth/introspect/"
REVOKE = "/oauth/revoke/"


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def svc(make_client, token_for) -> tuple[Any, str, str]:
    """``(application, secret, access token)`` of a client allowed reports:read."""
    application, secret = make_client("svc", scopes=["reports:read", "reports:write"])
    return application, secret, token_for(application, secret, scope="reports:read")["access_token"]


@pytest.fixture
def introspector(make_client) -> tuple[Any, str]:
    return make_client("gateway", can_introspect=True)


def introspect(client, credentials: tuple[Any, str], token: str, **params: str) -> Any:
    application, secret = credentials
    return form_post(
        client,
        INTROSPECT,
        {"token": token, **params},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def revoke(client, application: Any, secret: str, token: str, **params: str) -> Any:
    return form_post(
        client,
        REVOKE,
        {"token": token, **params},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


# -- introspection --------------------------------------------------------------------------


def test_introspection_of_an_active_token_returns_its_claims_field_by_field(client, svc, introspector):
    application, _, token = svc
    claims = jwt.decode(token, options={"verify_signature": False})

    response = introspect(client, introspector, token)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "reports:read"
    assert body["client_id"] == application.client_id
    assert body["sub"] == application.client_id
    assert body["iss"] == ISSUER
    assert body["aud"] == ISSUER
    assert body["exp"] == claims["exp"]
    assert body["iat"] == claims["iat"]
    assert body["jti"] == claims["jti"]
    assert set(body) == {
        "active",
        "token_type",
        "scope",
        "client_id",
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "jti",
    }


def test_introspection_accepts_the_access_token_type_hint(client, svc, introspector):
    _, _, token = svc
    assert introspect(client, introspector, token, token_type_hint="access_token").json()["active"] is True


def test_introspection_of_a_token_for_another_audience_is_active(
    client, make_client, token_for, introspector
):
    # The issuer answers for every token it issued, whatever resource it is meant for.
    application, secret = make_client(
        "svc", scopes=["reports:read"], audiences=["https://billing.example.com"]
    )
    token = token_for(application, secret, scope="reports:read")["access_token"]

    body = introspect(client, introspector, token).json()

    assert body["active"] is True
    assert body["aud"] == "https://billing.example.com"


def test_client_without_can_introspect_gets_403_json(client, svc):
    application, secret, token = svc

    response = introspect(client, (application, secret), token)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "unauthorized_client"
    assert "active" not in response.json()


def test_introspection_needs_client_authentication(client, svc):
    _, _, token = svc
    response = form_post(client, INTROSPECT, {"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_introspection_without_a_token_parameter_is_invalid_request(client, introspector):
    application, secret = introspector
    # A well-formed form with another parameter, so the missing token is what gets refused.
    response = form_post(
        client,
        INTROSPECT,
        {"token_type_hint": "access_token"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The token parameter is required.",
    }


def test_introspection_only_accepts_post(client, introspector):
    application, secret = introspector
    response = client.get(
        INTROSPECT, {"token": "x"}, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret)
    )
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


def test_token_expired_beyond_the_leeway_is_inactive(client, introspector):
    now = int(time.time())
    token = sign_with_site_key(token_claims(iat=now - 7200, exp=now - 31))
    assert introspect(client, introspector, token).json() == {"active": False}


def test_revoked_token_is_inactive(client, svc, introspector):
    application, secret, token = svc
    assert revoke(client, application, secret, token).status_code == 200
    assert introspect(client, introspector, token).json() == {"active": False}


def test_token_of_a_disabled_client_is_inactive(client, svc, introspector):
    application, _, token = svc
    application.is_active = False
    application.save()
    assert introspect(client, introspector, token).json() == {"active": False}


def test_token_from_a_foreign_issuer_is_inactive(client, introspector):
    token = sign_with_site_key(token_claims(iss="https://other-issuer.example"))
    assert introspect(client, introspector, token).json() == {"active": False}


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "x" * 5000])
def test_malformed_token_is_inactive(client, introspector, garbage):
    response = introspect(client, introspector, garbage)
    assert response.status_code == 200
    assert response.json() == {"active": False}


# -- revocation -----------------------------------------------------------------------------


def test_revocation_answers_200_with_an_empty_body(client, svc):
    application, secret, token = svc

    response = revoke(client, application, secret, token)

    assert response.status_code == 200
    assert response.content == b""
    assert response["Cache-Control"] == "no-store"


def test_revocation_records_the_jti_until_no_verifier_accepts_the_token(client, svc):
    application, secret, token = svc
    claims = jwt.decode(token, options={"verify_signature": False})

    revoke(client, application, secret, token)

    record = RevokedToken.objects.get()
    assert record.jti == claims["jti"]
    assert record.client_id == application.client_id
    # Verifiers accept a token until exp + LEEWAY (30 s): the record must last as long.
    assert int(record.expires_at.timestamp()) == claims["exp"] + 30


def test_revocation_sends_the_token_revoked_signal_once(client, svc):
    application, secret, token = svc
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    token_revoked.connect(receiver)
    try:
        revoke(client, application, secret, token)
        revoke(client, application, secret, token)
    finally:
        token_revoked.disconnect(receiver)

    assert [(r["client_id"], r["jti"]) for r in received] == [
        (application.client_id, jwt.decode(token, options={"verify_signature": False})["jti"])
    ]


def test_revoking_twice_is_fine(client, svc):
    application, secret, token = svc
    assert revoke(client, application, secret, token).status_code == 200
    assert revoke(client, application, secret, token).status_code == 200
    assert RevokedToken.objects.count() == 1


def test_revoked_token_is_refused_by_the_protected_api(client, svc):
    application, secret, token = svc
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    revoke(client, application, secret, token)

    response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert "revoked" in response["WWW-Authenticate"]


def test_revoking_one_token_leaves_the_clients_other_tokens_valid(client, svc, token_for):
    application, secret, token = svc
    other = token_for(application, secret, scope="reports:read")["access_token"]

    revoke(client, application, secret, token)

    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200


def test_client_cannot_revoke_another_clients_token(client, svc, make_client, introspector):
    _, _, token = svc
    intruder, intruder_secret = make_client("intruder", scopes=["reports:read"])

    response = revoke(client, intruder, intruder_secret, token)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert not RevokedToken.objects.exists()
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert introspect(client, introspector, token).json()["active"] is True


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.sig"])
def test_revoking_an_unknown_or_garbage_token_answers_200(client, svc, token):
    application, secret, _ = svc
    response = revoke(client, application, secret, token)
    assert response.status_code == 200
    assert not RevokedToken.objects.exists()


def test_revoking_a_token_past_exp_and_leeway_answers_200_and_stores_nothing(client, svc):
    application, secret, _ = svc
    now = int(time.time())
    expired = sign_with_site_key(token_claims(application.client_id, iat=now - 7200, exp=now - 60))

    assert revoke(client, application, secret, expired).status_code == 200
    assert not RevokedToken.objects.exists()


def test_a_token_past_exp_but_within_the_leeway_can_be_revoked_and_stays_refused(client, svc):
    """The API still accepts it for LEEWAY seconds after exp; revocation must reach it too."""
    application, secret, _ = svc
    now = int(time.time())
    token = sign_with_site_key(token_claims(application.client_id, iat=now - 600, exp=now - 10))
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    assert revoke(client, application, secret, token).status_code == 200

    assert RevokedToken.objects.filter(
        jti=jwt.decode(token, options={"verify_signature": False})["jti"]
    ).exists()
    refused = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 401
    assert "revoked" in refused["WWW-Authenticate"]


def test_introspection_reports_a_token_within_the_leeway_as_the_api_sees_it(client, svc, introspector):
    application, _, _ = svc
    now = int(time.time())
    token = sign_with_site_key(token_claims(application.client_id, iat=now - 600, exp=now - 10))
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert introspect(client, introspector, token).json()["active"] is True


def test_refresh_token_type_hint_is_not_an_error(client, svc):
    # RFC 7009 §2.1: the server extends its search to other types when the hint is wrong.
    application, secret, token = svc
    assert revoke(client, application, secret, token, token_type_hint="refresh_token").status_code == 200
    assert RevokedToken.objects.count() == 1


def test_revocation_needs_client_authentication(client, svc):
    _, _, token = svc
    response = form_post(client, REVOKE, {"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert not RevokedToken.objects.exists()


def test_revocation_without_a_token_parameter_is_invalid_request(client, svc):
    application, secret, _ = svc
    response = form_post(
        client,
        REVOKE,
        {"token_type_hint": "access_token"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The token parameter is required.",
    }
    assert not RevokedToken.objects.exists()
