"""What the token endpoint answers and records for a client_credentials request (``issue_token``):
the exact refusals before and after authentication, the response body, the audit log line and
the ``token_issued`` signal.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
import pytest

from oauth_cc.models import Application
from oauth_cc.signals import token_issued
from tests.attacks import expect
from tests.conftest import basic_auth, form_post

TOKEN = "/oauth/token/"


@pytest.fixture
def svc(make_client: Any) -> tuple[Any, str]:
    return make_client("svc", scopes=["reports:read", "reports:write"])


def request_token(client: Any, credentials: tuple[Any, str], **params: str) -> Any:
    application, secret = credentials
    return form_post(client, TOKEN, params, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))


def exact(response: Any, status: int, error: str, description: str) -> None:
    body = expect.oauth_error(response, status, error, "")
    assert body == {"error": error, "error_description": description}


@pytest.mark.parametrize("params", [{"scope": "reports:read"}, {"grant_type": ""}])
def test_grant_type_is_required(client, svc, params):
    exact(request_token(client, svc, **params), 400, "invalid_request", "grant_type is required.")


@pytest.mark.parametrize("grant_type", ["authorization_code", "password", "CLIENT_CREDENTIALS"])
def test_other_grant_types_are_unsupported(client, svc, grant_type):
    exact(
        request_token(client, svc, grant_type=grant_type),
        400,
        "unsupported_grant_type",
        "Only grant_type=client_credentials is supported.",
    )


def test_a_client_registered_for_another_grant_is_unauthorized(client, svc):
    application, _ = svc
    Application.objects.filter(pk=application.pk).update(
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE
    )
    exact(
        request_token(client, svc, grant_type="client_credentials"),
        400,
        "unauthorized_client",
        "This client may not use the client_credentials grant.",
    )


def test_the_response_is_the_token_its_type_lifetime_and_scope(client, svc, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ACCESS_TOKEN_LIFETIME": 1200}
    response = request_token(client, svc, grant_type="client_credentials", scope="reports:write reports:read")

    assert response.status_code == 200
    body = response.json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body == {
        "access_token": body["access_token"],
        "token_type": "Bearer",
        "expires_in": 1200,
        "scope": "reports:write reports:read",
    }
    assert claims["exp"] - claims["iat"] == 1200
    assert claims["scope"] == "reports:write reports:read"


def test_a_clients_own_lifetime_wins_over_the_default(client, make_client, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ACCESS_TOKEN_LIFETIME": 1200}
    credentials = make_client("short", scopes=["reports:read"], lifetime=300)
    body = request_token(client, credentials, grant_type="client_credentials", scope="reports:read").json()

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body["expires_in"] == 300
    assert claims["exp"] - claims["iat"] == 300


def test_each_issued_token_is_logged_and_signalled(client, svc, caplog, settings):
    application, _ = svc
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    token_issued.connect(receiver)
    try:
        with caplog.at_level(logging.INFO, logger="oauth_cc.issuance"):
            body = request_token(client, svc, grant_type="client_credentials", scope="reports:read").json()
    finally:
        token_issued.disconnect(receiver)

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    [record] = [r for r in caplog.records if r.name == "oauth_cc.issuance"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"issued token jti={claims['jti']} client_id={application.client_id} scope='reports:read' "
        f"aud=http://testserver exp={claims['exp']}"
    )
    [signal] = received
    assert signal["sender"] is Application
    assert signal["client_id"] == application.client_id
    assert signal["jti"] == claims["jti"]
    assert signal["scopes"] == ["reports:read"]
    assert signal["audience"] == "http://testserver"
    assert signal["expires_at"] == claims["exp"]
    assert signal["request"].path == TOKEN


def test_the_issuance_logger_can_be_renamed(client, svc, caplog, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ISSUANCE_LOGGER": "audit.tokens"}
    with caplog.at_level(logging.INFO, logger="audit.tokens"):
        assert (
            request_token(client, svc, grant_type="client_credentials", scope="reports:read").status_code
            == 200
        )
    assert [r.name for r in caplog.records if r.getMessage().startswith("issued token")] == ["audit.tokens"]


def deny_without_reason(client: Any, claims: Any) -> dict[str, Any]:
    from oauth_cc.issuer import hooks

    raise hooks.DenyIssuance()


def test_a_hook_refusal_without_a_reason_gets_the_generic_description(client, svc, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLAIMS_HOOK": "tests.test_token_issuance.deny_without_reason"}
    exact(
        request_token(client, svc, grant_type="client_credentials", scope="reports:read"),
        403,
        "access_denied",
        "The token request was refused.",
    )
