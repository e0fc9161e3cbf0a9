"""The claims hook (``OAUTH_CC["CLAIMS_HOOK"]``): extra claims, protected registered claims, refusal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from oauth_cc.issuer import hooks
from oauth_cc.issuer.state import ClientRecord
from tests.conftest import basic_auth, form_post
from tests.helpers import ISSUER, clear_shared_cache

MODULE = __name__
seen: list[tuple[ClientRecord, dict[str, Any]]] = []


# -- hooks under test (referenced by dotted path) ------------------------------------------


def add_tenant(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    seen.append((client, dict(claims)))
    return {"tenant": "acme", "client_name": client.name, "roles": ["reader"]}


def add_nothing(client: ClientRecord, claims: Mapping[str, Any]) -> None:
    return None


def overwrite_sub(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"sub": "admin", "tenant": "acme"}


def extend_lifetime(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"exp": claims["exp"] + 365 * 24 * 3600}


def mutate_in_place(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    claims["scope"] = "admin:all"  # type: ignore[index]
    return {}


def return_a_list(client: ClientRecord, claims: Mapping[str, Any]) -> list[str]:
    return ["tenant"]


def return_unserialisable(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"tenant": object()}


def return_nan(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"quota": float("nan")}


def return_lone_surrogate(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"tenant": "\ud800"}


def return_deep_nesting(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(16):
        value = [value]
    return {"deep": value}


def return_fifteen_levels(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(15):
        value = [value]
    return {"deep": value}


def return_too_much(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"blob": "a" * 8000}


def deny_legacy(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    if client.name.startswith("legacy-"):
        raise hooks.DenyIssuance("Legacy clients must migrate first.")
    return {}


def deny_silently(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    raise hooks.DenyIssuance()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh() -> None:
    clear_shared_cache()
    seen.clear()


@pytest.fixture
def svc(make_client):
    return make_client("svc", scopes=["reports:read"])


def with_hook(name: str) -> override_settings:
    return override_settings(OAUTH_CC={"ISSUER": ISSUER, "CLAIMS_HOOK": f"{MODULE}.{name}"})


def request_token(client, application, secret) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def unverified_claims(response: Any) -> dict[str, Any]:
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


# -- tests ----------------------------------------------------------------------------------


def test_hook_adds_claims_to_the_token(client, svc):
    with with_hook("add_tenant"):
        response = request_token(client, *svc)

    assert response.status_code == 200, response.content
    claims = unverified_claims(response)
    assert claims["tenant"] == "acme"
    assert claims["client_name"] == "svc"
    assert claims["roles"] == ["reader"]
    assert claims["sub"] == svc[0].client_id


def test_hook_gets_the_client_and_the_registered_claims(client, svc):
    with with_hook("add_tenant"):
        response = request_token(client, *svc)

    [(record, claims)] = seen
    assert record.client_id == svc[0].client_id
    assert claims == {
        name: value
        for name, value in unverified_claims(response).items()
        if name not in ("tenant", "client_name", "roles")
    }


def test_token_with_hook_claims_is_accepted_by_the_protected_api(client, svc):
    with with_hook("add_tenant"):
        token = request_token(client, *svc).json()["access_token"]
        response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def test_hook_returning_none_adds_nothing(client, svc):
    with with_hook("add_nothing"):
        response = request_token(client, *svc)
    assert set(unverified_claims(response)) == {
        "iss",
        "sub",
        "client_id",
        "aud",
        "exp",
        "iat",
        "jti",
        "scope",
    }


@pytest.mark.parametrize(("hook", "claim"), [("overwrite_sub", "sub"), ("extend_lifetime", "exp")])
def test_hook_setting_a_registered_claim_fails_instead_of_issuing(client, svc, caplog, hook, claim):
    with with_hook(hook), caplog.at_level(logging.ERROR, logger="oauth_cc.views"):
        response = request_token(client, *svc)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "server_error"
    assert "access_token" not in response.json()
    assert f"may not set registered claims: {claim}" in caplog.text


def test_hook_setting_a_registered_claim_raises_improperly_configured():
    record = ClientRecord(
        pk=1,
        client_id="c",
        name="c",
        is_active=True,
        grant_type="client-credentials",
        auth_method="client_secret_basic",
        allowed_scopes=frozenset(),
        default_scopes=(),
        access_token_lifetime=None,
        audiences=(),
        can_introspect=False,
        user_id=None,
        jwks=None,
        jwks_uri="",
    )
    with with_hook("overwrite_sub"), pytest.raises(ImproperlyConfigured, match="sub"):
        hooks.extra_claims(record, {"sub": "c"})


def test_hook_cannot_change_the_claims_it_is_given(client, svc, caplog):
    with with_hook("mutate_in_place"), caplog.at_level(logging.ERROR, logger="oauth_cc.views"):
        response = request_token(client, *svc)

    assert response.status_code == 500
    assert "access_token" not in response.json()


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("return_a_list", "must return a dict"),
        ("return_unserialisable", "not JSON-serialisable"),
        ("return_nan", "NaN and Infinity are not JSON"),
        ("return_lone_surrogate", "would refuse: The JSON contains an unpaired UTF-16 surrogate"),
        ("return_deep_nesting", "would refuse: The JSON is nested more than 16 levels deep"),
        ("return_too_much", "over the 8192 verifiers accept"),
    ],
)
def test_hook_returning_something_else_than_claims_is_a_configuration_error(
    client, svc, caplog, hook, message
):
    with with_hook(hook), caplog.at_level(logging.ERROR, logger="oauth_cc.views"):
        response = request_token(client, *svc)

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert message in caplog.text


def test_hook_refusal_answers_access_denied_with_its_message(client, make_client):
    application, secret = make_client("legacy-billing", scopes=["reports:read"])
    with with_hook("deny_legacy"):
        response = request_token(client, application, secret)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "error": "access_denied",
        "error_description": "Legacy clients must migrate first.",
    }


def test_hook_refusal_applies_only_to_the_clients_it_refuses(client, svc):
    with with_hook("deny_legacy"):
        response = request_token(client, *svc)
    assert response.status_code == 200


def test_hook_refusal_without_a_message_gets_a_generic_description(client, svc):
    with with_hook("deny_silently"):
        response = request_token(client, *svc)

    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"
    assert response.json()["error_description"]


def test_hook_claims_at_the_deepest_nesting_the_verifier_accepts_give_a_working_token(client, svc):
    """The bound on hook claims is the verifier's own: 16 levels, the claims object included."""
    with with_hook("return_fifteen_levels"):
        response = request_token(client, *svc)
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
