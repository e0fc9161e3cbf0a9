"""Introspection (RFC 7662) and revocation (RFC 7009) rules, with exact answers and descriptions.

Introspection is strict about time (no leeway: a token is inactive from its ``exp`` on) and
lenient about audience (the issuer introspects tokens for any of its resources); revocation
takes only the caller's own tokens, records each once, and tells the ``token_revoked`` signal once.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from oauth_cc.issuer import introspection
from oauth_cc.models import RevokedToken
from oauth_cc.signals import token_revoked
from tests.attacks import expect
from tests.conftest import basic_auth, form_post

INTROSPECT = "/oauth/introspect/"
REVOKE = "/oauth/revoke/"


@pytest.fixture
def svc(make_client: Any, token_for: Any) -> tuple[Any, str, str]:
    application, secret = make_client("svc", scopes=["reports:read"])
    return application, secret, token_for(application, secret, scope="reports:read")["access_token"]


@pytest.fixture
def gateway(make_client: Any) -> tuple[Any, str]:
    return make_client("gateway", can_introspect=True)


def post(client: Any, path: str, credentials: tuple[Any, str], **params: str) -> Any:
    application, secret = credentials
    return form_post(client, path, params, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))


def test_an_active_token_is_introspected_as_its_claims_plus_active_and_token_type(client, svc, gateway):
    _, _, token = svc
    response = post(client, INTROSPECT, gateway, token=token)

    assert response.status_code == 200
    claims = jwt.decode(token, options={"verify_signature": False})
    assert response.json() == {"active": True, "token_type": "Bearer", **claims}


def test_a_client_that_may_not_introspect_gets_unauthorized_client(client, svc):
    application, secret, token = svc
    response = post(client, INTROSPECT, (application, secret), token=token)
    body = expect.oauth_error(response, 403, "unauthorized_client", "")
    assert body["error_description"] == "This client is not allowed to introspect tokens."


@pytest.mark.parametrize("params", [{"token_type_hint": "access_token"}, {"token": ""}])
def test_the_token_parameter_is_required(client, gateway, params):
    response = post(client, INTROSPECT, gateway, **params)
    expect.invalid_request(response, "The token parameter is required.")
    assert response.json()["error_description"] == "The token parameter is required."


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_a_token_is_active_until_the_protected_views_stop_accepting_it(
    client, svc, gateway, monkeypatch, settings
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 30}
    _, _, token = svc
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]

    monkeypatch.setattr(introspection, "time", _Clock(exp + 29))
    assert post(client, INTROSPECT, gateway, token=token).json()["active"] is True
    monkeypatch.setattr(introspection, "time", _Clock(exp + 30))
    assert post(client, INTROSPECT, gateway, token=token).json() == {"active": False}


def test_a_revoked_token_is_inactive(client, svc, gateway):
    application, secret, token = svc
    assert post(client, REVOKE, (application, secret), token=token).status_code == 200
    assert post(client, INTROSPECT, gateway, token=token).json() == {"active": False}


def test_a_token_for_another_resource_of_the_issuer_is_active(client, make_client, token_for, gateway):
    application, secret = make_client(
        "multi", scopes=["reports:read"], audiences=["https://other.example/api"]
    )
    token = token_for(application, secret, scope="reports:read", resource="https://other.example/api")[
        "access_token"
    ]

    body = post(client, INTROSPECT, gateway, token=token).json()

    assert body["active"] is True
    assert body["aud"] == "https://other.example/api"


def test_a_token_from_another_issuer_is_inactive(client, gateway, settings):
    from tests.attacks import forge

    token = forge.site_signed(
        {
            "iss": "http://elsewhere",
            "sub": "c",
            "client_id": "c",
            "aud": "http://testserver",
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
            "jti": "j",
        }
    )
    assert post(client, INTROSPECT, gateway, token=token).json() == {"active": False}


def test_a_client_may_revoke_only_its_own_tokens(client, svc, make_client):
    _, _, token = svc
    other = make_client("other")
    response = post(client, REVOKE, other, token=token)
    expect.invalid_request(response, "This token was not issued to the authenticated client.")
    assert not RevokedToken.objects.exists()


def test_revocation_records_the_jti_once_and_signals_once(client, svc, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 30}
    application, secret, token = svc
    claims = jwt.decode(token, options={"verify_signature": False})
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    token_revoked.connect(receiver)
    try:
        first = post(client, REVOKE, (application, secret), token=token)
        second = post(client, REVOKE, (application, secret), token=token)
    finally:
        token_revoked.disconnect(receiver)

    assert (first.status_code, first.content) == (200, b"")
    assert (second.status_code, second.content) == (200, b"")
    row = RevokedToken.objects.get()
    assert (row.jti, row.client_id, row.expires_at.timestamp()) == (
        claims["jti"],
        application.client_id,
        claims["exp"] + 30,  # kept while a verifier could still accept the token
    )
    assert len(received) == 1
    assert received[0]["client_id"] == application.client_id
    assert received[0]["jti"] == claims["jti"]


def test_revoking_an_invalid_token_is_answered_200_and_records_nothing(client, svc):
    application, secret, _ = svc
    response = post(client, REVOKE, (application, secret), token="not-a-token")
    assert (response.status_code, response.content) == (200, b"")
    assert not RevokedToken.objects.exists()


def test_revocation_needs_the_token_parameter(client, svc):
    application, secret, _ = svc
    response = post(client, REVOKE, (application, secret), token_type_hint="access_token")
    expect.invalid_request(response, "The token parameter is required.")


def test_a_token_issued_before_its_clients_cut_off_is_inactive(client, svc, gateway):
    from oauth_cc.issuer import revocation

    application, _, token = svc
    assert post(client, INTROSPECT, gateway, token=token).json()["active"] is True
    time.sleep(1.05)  # the cut-off must fall after the token's whole-second iat
    revocation.invalidate_client_tokens(application.client_id)

    assert post(client, INTROSPECT, gateway, token=token).json() == {"active": False}


def test_revocation_answers_are_exact(client, svc, make_client):
    _, _, token = svc
    response = post(client, REVOKE, make_client("stranger"), token=token)
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "This token was not issued to the authenticated client.",
    }
