"""The token endpoint: client-credentials grant (RFC 6749 §4.4), its response (§5.1) and errors (§5.2)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone

from oauth_cc.common import tokens
from oauth_cc.issuer import state, usage
from oauth_cc.issuer.secrets import hash_secret, secret_prefix
from oauth_cc.models import Application, ClientSecret, Scope
from tests.conftest import basic_auth, form_post

TOKEN_URL = "/oauth/token/"
GRANT = {"grant_type": "client_credentials"}


def assert_oauth_error(response: Any, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 §5.2 error: the status, a JSON body with ``error``, never cached, never HTML."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    assert body["error"] == error
    assert set(body) <= {"error", "error_description", "error_uri"}
    return body


def claims_of(access_token: str) -> dict[str, Any]:
    return jwt.decode(access_token, options={"verify_signature": False})


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    # The locmem cache outlives each test's database rollback; a "last used" claim or a
    # revocation snapshot from an earlier test must not leak into this one.
    caches["default"].clear()


@pytest.fixture
def svc(make_client):
    """A client_secret_basic client allowed reports:read and reports:write."""
    return make_client("svc", scopes=["reports:read", "reports:write"])


def post_basic(client, application: Application, secret: str, data: Any) -> Any:
    return form_post(client, TOKEN_URL, data, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))


# -- success -------------------------------------------------------------------------------


def test_success_body_has_the_rfc_6749_fields_and_no_refresh_token(client, svc):
    application, secret = svc
    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "reports:read"
    assert claims_of(body["access_token"])["client_id"] == application.client_id


def test_success_response_is_not_cached(client, svc):
    application, secret = svc
    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def test_client_secret_post_client_authenticates_with_form_fields(client, make_client):
    application, secret = make_client("poster", scopes=["reports:read"], auth_method="client_secret_post")
    response = form_post(
        client,
        TOKEN_URL,
        {**GRANT, "scope": "reports:read", "client_id": application.client_id, "client_secret": secret},
    )

    assert response.status_code == 200, response.content
    assert claims_of(response.json()["access_token"])["sub"] == application.client_id


def test_client_id_in_body_matching_basic_credentials_is_accepted(client, svc):
    application, secret = svc
    response = post_basic(
        client, application, secret, {**GRANT, "scope": "reports:read", "client_id": application.client_id}
    )
    assert response.status_code == 200, response.content


def test_basic_credentials_are_form_urlencoded_before_base64(client, make_client):
    # RFC 6749 §2.3.1: client_id and secret are application/x-www-form-urlencoded, then
    # joined with ":" and Base64-encoded. A ":" or "+" in them must survive the round trip.
    application, _ = make_client("odd", scopes=["reports:read"])
    client_id = "odd:client+id é/%"
    secret = "s3cret with:colon&plus+percent%é"
    Application.objects.filter(pk=application.pk).update(client_id=client_id)
    ClientSecret.objects.create(
        application=application, secret_hash=hash_secret(secret), prefix=secret_prefix(secret)
    )
    encoded = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    header = "Basic " + base64.b64encode(encoded.encode("ascii")).decode("ascii")

    response = form_post(client, TOKEN_URL, {**GRANT, "scope": "reports:read"}, HTTP_AUTHORIZATION=header)

    assert response.status_code == 200, response.content
    assert claims_of(response.json()["access_token"])["client_id"] == client_id


def test_no_scope_requested_gets_the_clients_default_scopes(client, make_scope, make_client):
    make_scope("reports:read", default=True)
    make_scope("audit:read", default=True)
    make_scope("reports:write")
    application, secret = make_client("svc", scopes=["reports:read", "reports:write", "audit:read"])

    response = post_basic(client, application, secret, GRANT)

    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "audit:read reports:read"
    assert claims_of(response.json()["access_token"])["scope"] == "audit:read reports:read"


def test_default_scope_not_allowed_for_the_client_is_not_granted(client, make_scope, make_client):
    make_scope("admin:all", default=True)
    make_scope("reports:read", default=True)
    application, secret = make_client("svc", scopes=["reports:read"])

    response = post_basic(client, application, secret, GRANT)

    assert response.json()["scope"] == "reports:read"


def test_requesting_a_subset_gets_exactly_that_subset(client, make_client):
    application, secret = make_client("svc", scopes=["a:read", "b:read", "c:read"])

    response = post_basic(client, application, secret, {**GRANT, "scope": "c:read a:read"})

    assert response.status_code == 200
    assert response.json()["scope"] == "c:read a:read"
    assert set(claims_of(response.json()["access_token"])["scope"].split()) == {"a:read", "c:read"}


def test_site_default_lifetime_applies_without_a_client_lifetime(client, svc):
    application, secret = svc
    with override_settings(OAUTH_CC={"ISSUER": "http://testserver", "ACCESS_TOKEN_LIFETIME": 900}):
        body = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"}).json()

    claims = claims_of(body["access_token"])
    assert body["expires_in"] == 900
    assert claims["exp"] - claims["iat"] == 900


def test_client_lifetime_overrides_the_site_default(client, make_client):
    application, secret = make_client("short", scopes=["reports:read"], lifetime=120)

    body = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"}).json()

    claims = claims_of(body["access_token"])
    assert body["expires_in"] == 120
    assert claims["exp"] - claims["iat"] == 120


# -- invalid_request -----------------------------------------------------------------------


def test_missing_grant_type_is_invalid_request(client, svc):
    application, secret = svc
    response = post_basic(client, application, secret, {"scope": "reports:read"})
    assert_oauth_error(response, 400, "invalid_request")


def test_repeated_parameter_is_invalid_request(client, svc):
    application, secret = svc
    response = post_basic(
        client, application, secret, [*GRANT.items(), ("scope", "reports:read"), ("scope", "reports:write")]
    )
    body = assert_oauth_error(response, 400, "invalid_request")
    assert "scope" in body["error_description"]


def test_get_is_refused_with_405_json(client, svc):
    application, secret = svc
    response = client.get(
        TOKEN_URL,
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert_oauth_error(response, 405, "invalid_request")
    assert response["Allow"] == "POST"


def test_json_body_is_invalid_request(client, svc):
    application, secret = svc
    response = client.post(
        TOKEN_URL,
        {"grant_type": "client_credentials", "scope": "reports:read"},
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    body = assert_oauth_error(response, 400, "invalid_request")
    assert "x-www-form-urlencoded" in body["error_description"]


def test_two_authentication_methods_at_once_is_invalid_request(client, svc):
    application, secret = svc
    response = post_basic(
        client,
        application,
        secret,
        {**GRANT, "scope": "reports:read", "client_id": application.client_id, "client_secret": secret},
    )
    assert_oauth_error(response, 400, "invalid_request")


# -- invalid_client ------------------------------------------------------------------------


def test_unknown_client_gets_invalid_client_with_basic_challenge(client, db):
    response = form_post(client, TOKEN_URL, GRANT, HTTP_AUTHORIZATION=basic_auth("nobody", "occs_nothing"))
    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_wrong_secret_gets_invalid_client(client, svc):
    application, _ = svc
    response = form_post(
        client, TOKEN_URL, GRANT, HTTP_AUTHORIZATION=basic_auth(application.client_id, "occs_wrong")
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_another_clients_secret_gets_invalid_client(client, svc, make_client):
    application, _ = svc
    _, other_secret = make_client("other", scopes=["reports:read"])
    response = form_post(
        client, TOKEN_URL, GRANT, HTTP_AUTHORIZATION=basic_auth(application.client_id, other_secret)
    )
    assert_oauth_error(response, 401, "invalid_client")


def test_no_credentials_gets_invalid_client(client, db):
    response = form_post(client, TOKEN_URL, GRANT)
    assert_oauth_error(response, 401, "invalid_client")


def test_disabled_client_gets_invalid_client(client, svc):
    application, secret = svc
    application.is_active = False
    application.save()

    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})

    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_basic_client_may_present_its_secret_in_the_form(client, svc):
    """Keycloak and DOT accept either secret method for a client with a secret; so does oauth_cc."""
    application, secret = svc
    response = form_post(
        client,
        TOKEN_URL,
        {**GRANT, "scope": "reports:read", "client_id": application.client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == application.client_id
    # The registered method is unchanged: it is what the client prefers, not a restriction.
    application.refresh_from_db()
    assert application.token_endpoint_auth_method == "client_secret_basic"


def test_post_client_may_present_its_secret_with_basic(client, make_client):
    application, secret = make_client("poster", scopes=["reports:read"], auth_method="client_secret_post")
    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})
    assert response.status_code == 200, response.content


def test_a_wrong_secret_presented_the_other_way_is_still_refused(client, svc):
    application, secret = svc
    response = form_post(
        client,
        TOKEN_URL,
        {**GRANT, "client_id": application.client_id, "client_secret": secret + "x"},
    )
    body = assert_oauth_error(response, 401, "invalid_client")
    assert body["error_description"] == "Client authentication failed."
    assert "WWW-Authenticate" not in response  # Basic was not used


def test_revoked_secret_gets_invalid_client(client, svc):
    application, secret = svc
    ClientSecret.objects.filter(application=application).update(revoked_at=timezone.now())

    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})

    assert_oauth_error(response, 401, "invalid_client")


# -- grant and scope errors ----------------------------------------------------------------


def test_other_grant_type_is_unsupported_grant_type(client, svc):
    application, secret = svc
    response = post_basic(
        client, application, secret, {"grant_type": "password", "username": "u", "password": "p"}
    )
    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_client_registered_for_another_grant_is_unauthorized_client(client, svc):
    application, secret = svc
    Application.objects.filter(pk=application.pk).update(
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE
    )

    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})

    assert_oauth_error(response, 400, "unauthorized_client")


def test_unknown_scope_is_invalid_scope(client, svc):
    application, secret = svc
    response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read no-such-scope"})
    body = assert_oauth_error(response, 400, "invalid_scope")
    assert "no-such-scope" in body["error_description"]


def test_existing_scope_not_allowed_for_the_client_is_invalid_scope(client, svc, make_scope):
    application, secret = svc
    make_scope("admin:all")
    response = post_basic(client, application, secret, {**GRANT, "scope": "admin:all"})
    body = assert_oauth_error(response, 400, "invalid_scope")
    assert "admin:all" in body["error_description"]


def test_no_scope_and_no_default_scope_is_invalid_scope(client, svc):
    application, secret = svc
    response = post_basic(client, application, secret, GRANT)
    assert_oauth_error(response, 400, "invalid_scope")


def test_empty_scope_parameter_is_invalid_scope(client, svc):
    application, secret = svc
    response = post_basic(client, application, secret, {**GRANT, "scope": ""})
    assert_oauth_error(response, 400, "invalid_scope")


def test_resource_the_client_may_not_use_is_invalid_target(client, make_client):
    application, secret = make_client("svc", scopes=["reports:read"], audiences=["https://api.example.com"])
    response = post_basic(
        client,
        application,
        secret,
        {**GRANT, "scope": "reports:read", "resource": "https://other.example.com"},
    )
    assert_oauth_error(response, 400, "invalid_target")


def test_resource_that_is_not_an_absolute_uri_is_invalid_target(client, svc):
    application, secret = svc
    response = post_basic(
        client, application, secret, {**GRANT, "scope": "reports:read", "resource": "reports"}
    )
    assert_oauth_error(response, 400, "invalid_target")


# -- never HTML ----------------------------------------------------------------------------


def test_unexpected_error_is_a_json_server_error_not_an_html_page(client, svc, monkeypatch, caplog):
    application, secret = svc

    def broken_sign(claims: Any) -> str:
        raise RuntimeError("signing backend exploded")

    monkeypatch.setattr(tokens, "sign", broken_sign)
    with caplog.at_level("ERROR", logger="oauth_cc.views"):
        response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})

    assert_oauth_error(response, 500, "server_error")
    assert b"exploded" not in response.content
    assert "signing backend exploded" in caplog.text


def test_unknown_client_and_wrong_secret_answer_the_same(client, svc):
    # Nothing in the answer tells an attacker whether a client_id exists.
    application, _ = svc
    unknown = form_post(client, TOKEN_URL, GRANT, HTTP_AUTHORIZATION=basic_auth("nobody", "occs_x"))
    wrong = form_post(
        client, TOKEN_URL, GRANT, HTTP_AUTHORIZATION=basic_auth(application.client_id, "occs_x")
    )
    assert unknown.json() == wrong.json()


# -- SQL queries on the hot path -----------------------------------------------------------


@pytest.fixture
def cold_worker(svc, client):
    """The client exists and the site has signing keys; this worker and the shared cache know nothing."""
    application, secret = svc
    post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})  # creates the site's keys
    state.reset_all()
    usage.reset()
    caches["default"].clear()
    return svc


def test_token_endpoint_cold_worker_query_count(client, cold_worker, django_assert_num_queries):
    application, secret = cold_worker
    # the site's change token (oauth_cc.issuer.generation), client row + its scopes, the secret, the
    # current signing key, and the last-used update of the client and of the secret.
    with django_assert_num_queries(7):
        response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})
    assert response.status_code == 200


def test_token_endpoint_warm_worker_makes_no_query(client, cold_worker, django_assert_num_queries):
    application, secret = cold_worker
    assert post_basic(client, application, secret, {**GRANT, "scope": "reports:read"}).status_code == 200

    with django_assert_num_queries(0):
        for _ in range(3):
            response = post_basic(client, application, secret, {**GRANT, "scope": "reports:read"})
            assert response.status_code == 200


def test_first_request_records_last_use_of_client_and_secret(client, svc):
    application, secret = svc
    assert post_basic(client, application, secret, {**GRANT, "scope": "reports:read"}).status_code == 200

    application.refresh_from_db()
    assert application.last_used_at is not None
    assert ClientSecret.objects.get(application=application).last_used_at is not None


def test_scope_added_to_a_client_can_be_requested(client, svc):
    application, secret = svc
    Scope.objects.create(name="late:added")
    application.scopes.add(Scope.objects.get(name="late:added"))

    response = post_basic(client, application, secret, {**GRANT, "scope": "late:added"})

    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "late:added"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_oauth_endpoints_answer_without_the_trailing_slash_too(client, make_client, path):
    """APPEND_SLASH would answer a POST with a redirect that drops its body."""
    application, secret = make_client("no-slash", scopes=["reports:read"], can_introspect=True)
    response = form_post(
        client,
        path,
        {"grant_type": "client_credentials", "scope": "reports:read", "token": "x"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200, response.content


def test_revocation_answers_an_empty_plain_text_200(client, make_client):
    application, secret = make_client("revoker", scopes=["reports:read"])
    response = form_post(
        client, "/oauth/revoke/", {"token": "x"}, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret)
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Type"] == "text/plain; charset=utf-8"
