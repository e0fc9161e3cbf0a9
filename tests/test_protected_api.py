"""The protected side: DRF authentication and scope checks (RFC 6750 §3, RFC 9068 §4)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth import get_user_model

from example_project.demo.models import Report
from oauth_cc.issuer import clients, issuance, revocation, state
from oauth_cc.issuer.keys import generate_jwk
from oauth_cc.models import Application
from tests.conftest import basic_auth, form_post
from tests.helpers import (
    b64url_json,
    clear_shared_cache,
    hs256_with_public_key,
    sign_with_site_key,
    site_private_key,
    token_claims,
    unsigned_token,
)


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def reader(make_client, token_for) -> tuple[Application, str]:
    """A client allowed reports:read only, and a token for it."""
    application, secret = make_client("reader", scopes=["reports:read"])
    return application, token_for(application, secret, scope="reports:read")["access_token"]


@pytest.fixture
def writer(make_client, token_for) -> tuple[Application, str]:
    application, secret = make_client("writer", scopes=["reports:read", "reports:write"])
    return application, token_for(application, secret, scope="reports:read reports:write")["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def assert_invalid_token(response: Any, reason: str) -> None:
    """RFC 6750 §3.1: 401 with a Bearer challenge naming ``invalid_token`` and why."""
    assert response.status_code == 401, response.content
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api"')
    assert 'error="invalid_token"' in challenge
    assert reason in challenge, challenge


# -- challenges and scopes -------------------------------------------------------------------


def test_no_token_gets_401_with_a_bare_bearer_challenge(client, db):
    response = client.get("/api/ping/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_other_authorization_scheme_gets_the_bearer_challenge(client, db):
    response = client.get("/api/ping/", HTTP_AUTHORIZATION=basic_auth("someone", "secret"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_unauthenticated_view_needs_no_token(client, db):
    assert client.get("/api/health/").json() == {"status": "ok"}


def test_valid_token_with_the_scope_is_let_through(client, reader):
    _, token = reader
    response = client.get("/api/ping/", **bearer(token))
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_token_without_the_scope_gets_403_insufficient_scope(client, reader):
    _, token = reader
    response = client.post("/api/reports/", {"title": "t"}, content_type="application/json", **bearer(token))

    assert response.status_code == 403
    assert (
        response["WWW-Authenticate"]
        == 'Bearer realm="api", error="insufficient_scope", scope="reports:write"'
    )
    assert Report.objects.count() == 0


def test_reports_get_needs_reports_read(client, make_client, token_for):
    application, secret = make_client("w-only", scopes=["reports:write"])
    token = token_for(application, secret, scope="reports:write")["access_token"]

    response = client.get("/api/reports/", **bearer(token))

    assert response.status_code == 403
    assert 'scope="reports:read"' in response["WWW-Authenticate"]


def test_reports_get_with_reports_read_lists_reports(client, reader):
    Report.objects.create(title="Q1", submitted_by="someone")
    _, token = reader

    response = client.get("/api/reports/", **bearer(token))

    assert response.status_code == 200
    assert [r["title"] for r in response.json()] == ["Q1"]


def test_reports_post_with_reports_write_stores_the_report_as_the_client(client, writer):
    application, token = writer

    response = client.post(
        "/api/reports/", {"title": "Q2", "body": "numbers"}, content_type="application/json", **bearer(token)
    )

    assert response.status_code == 201, response.content
    report = Report.objects.get()
    assert (report.title, report.body, report.submitted_by) == ("Q2", "numbers", application.client_id)
    assert response.json()["submitted_by"] == application.client_id


def test_method_without_a_scope_entry_is_not_allowed(client, writer):
    _, token = writer
    response = client.delete("/api/reports/", **bearer(token))
    assert response.status_code == 405


# -- request.auth and request.user -----------------------------------------------------------


@pytest.mark.urls("tests.urls")
def test_request_auth_exposes_client_id_scopes_and_claims(client, writer):
    application, token = writer

    body = client.get("/api/me/", **bearer(token)).json()

    assert body["client_id"] == application.client_id
    assert body["scopes"] == ["reports:read", "reports:write"]
    assert body["claims"] == jwt.decode(token, options={"verify_signature": False})


@pytest.mark.urls("tests.urls")
def test_client_without_run_as_user_is_anonymous(client, reader):
    _, token = reader
    body = client.get("/api/me/", **bearer(token)).json()
    assert body["user"] is None
    assert body["is_anonymous"] is True


@pytest.fixture
def run_as(make_client, token_for) -> tuple[Application, str, Any]:
    user = get_user_model().objects.create_user("report-bot")
    application, secret = make_client("bot", scopes=["reports:read"])
    application.user = user
    application.save()
    return application, token_for(application, secret, scope="reports:read")["access_token"], user


@pytest.mark.urls("tests.urls")
def test_request_user_is_the_clients_run_as_user(client, run_as):
    _, token, user = run_as
    body = client.get("/api/me/", **bearer(token)).json()
    assert body["user"] == user.get_username()
    assert body["is_anonymous"] is False


@pytest.mark.urls("tests.urls")
def test_inactive_run_as_user_becomes_anonymous(client, run_as):
    _, token, user = run_as
    user.is_active = False
    user.save()
    body = client.get("/api/me/", **bearer(token)).json()
    assert body["user"] is None


@pytest.mark.urls("tests.urls")
def test_run_as_user_is_loaded_only_when_the_view_uses_it(client, run_as, django_assert_num_queries):
    _, token, _ = run_as
    assert client.get("/api/ping/", **bearer(token)).status_code == 200  # warm up

    with django_assert_num_queries(0):
        assert client.get("/api/ping/", **bearer(token)).status_code == 200
    with django_assert_num_queries(1):
        assert client.get("/api/me/", **bearer(token)).json()["user"] == "report-bot"


# -- SQL queries ----------------------------------------------------------------------------


def test_protected_request_cold_worker_query_count(client, reader, django_assert_num_queries):
    _, token = reader
    state.reset_all()
    clear_shared_cache()
    # The published public keys, the site's change token, then the revocation snapshot:
    # revoked jtis, disabled or cut-off clients, and deleted clients.
    with django_assert_num_queries(5):
        assert client.get("/api/ping/", **bearer(token)).status_code == 200


def test_protected_request_warm_worker_makes_no_query(client, reader, django_assert_num_queries):
    _, token = reader
    assert client.get("/api/ping/", **bearer(token)).status_code == 200

    with django_assert_num_queries(0):
        for _ in range(5):
            assert client.get("/api/ping/", **bearer(token)).status_code == 200


def test_a_new_token_on_a_warm_worker_makes_no_query(
    client, reader, make_client, token_for, django_assert_num_queries
):
    # The memo of verified tokens misses, so the signature is checked, still without a query.
    _, token = reader
    assert client.get("/api/ping/", **bearer(token)).status_code == 200
    application, secret = make_client("second", scopes=["reports:read"])
    other = token_for(application, secret, scope="reports:read")["access_token"]

    with django_assert_num_queries(0):
        assert client.get("/api/ping/", **bearer(other)).status_code == 200


# -- every way a token is refused -------------------------------------------------------------


def test_expired_token_is_refused(client, db):
    now = int(time.time())
    token = sign_with_site_key(token_claims(iat=now - 7200, exp=now - 3600))
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "expired")


def test_token_expired_within_the_leeway_is_still_accepted(client, db):
    now = int(time.time())
    token = sign_with_site_key(token_claims(iat=now - 600, exp=now - 5))
    assert client.get("/api/ping/", **bearer(token)).status_code == 200


def test_token_that_expires_after_it_was_verified_is_refused(client, reader, monkeypatch):
    _, token = reader
    assert client.get("/api/ping/", **bearer(token)).status_code == 200
    # The memo of verified tokens must not outlive the token.
    later = time.time() + 3600 + 60
    monkeypatch.setattr(time, "time", lambda: later)
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "expired")


def test_token_from_another_issuer_is_refused(client, db):
    token = sign_with_site_key(token_claims(iss="https://evil.example"))
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "another issuer")


def test_token_for_another_audience_is_refused(client, db):
    token = sign_with_site_key(token_claims(aud="https://api.other.example"))
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "(aud)")


def test_token_issued_for_another_resource_of_the_client_is_refused(client, make_client, token_for):
    application, secret = make_client(
        "svc", scopes=["reports:read"], audiences=["https://billing.example.com"]
    )
    token = token_for(application, secret, scope="reports:read")["access_token"]
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "(aud)")


def test_token_with_a_bad_signature_is_refused(client, db):
    kid, _, _ = site_private_key()
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(token_claims(), impostor, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "signature is invalid")


def test_token_with_altered_claims_is_refused(client, reader):
    _, token = reader
    header, _, signature = token.split(".")
    forged_claims = jwt.decode(token, options={"verify_signature": False}) | {
        "scope": "reports:read reports:write"
    }
    forged = f"{header}.{b64url_json(forged_claims)}.{signature}"
    assert_invalid_token(client.get("/api/ping/", **bearer(forged)), "signature is invalid")


def test_token_signed_by_an_unknown_key_is_refused(client, db):
    site_private_key()  # the site has keys; this one is not among them
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        token_claims(), impostor, algorithm="ES256", headers={"kid": uuid.uuid4().hex, "typ": "at+jwt"}
    )
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "unknown key")


def test_unsigned_token_with_alg_none_is_refused(client, db):
    token = unsigned_token(token_claims())
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "algorithm is not accepted")


def test_hs256_token_keyed_with_the_public_key_is_refused(client, db):
    token = hs256_with_public_key(token_claims())
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "algorithm is not accepted")


def test_token_whose_alg_differs_from_its_keys_alg_is_refused(client, db):
    kid, _, _ = site_private_key()
    rsa_key = jwt.PyJWK.from_json(generate_jwk("RS256").export_private()).key
    token = jwt.encode(token_claims(), rsa_key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "does not match its key")


def test_token_with_typ_jwt_is_refused(client, db):
    token = sign_with_site_key(token_claims(), typ="JWT")
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "at+jwt")


def test_token_without_exp_is_refused(client, db):
    token = sign_with_site_key(token_claims(exp=None))
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), '\\"exp\\" claim is missing')


def test_token_not_valid_yet_is_refused(client, db):
    token = sign_with_site_key(token_claims(nbf=int(time.time()) + 600))
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "not valid yet (nbf)")


def test_token_issued_in_the_future_is_refused(client, db):
    now = int(time.time())
    token = sign_with_site_key(token_claims(iat=now + 600, exp=now + 1200))
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "issued in the future (iat)")


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "...."])
def test_malformed_token_is_refused(client, db, garbage):
    assert_invalid_token(client.get("/api/ping/", **bearer(garbage)), "not a well-formed JWT")


def test_two_tokens_in_the_header_are_refused(client, reader):
    _, token = reader
    response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token} {token}")
    # RFC 6750 §3.1: a malformed request is 400 invalid_request, not 401.
    assert response.status_code == 400
    assert 'error="invalid_request"' in response["WWW-Authenticate"]
    assert response.json()["detail"] == "The Authorization header must be 'Bearer <token>'."


def test_bearer_without_a_token_is_a_bad_request(client, db):
    response = client.get("/api/ping/", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 400
    assert response["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_request"')


def test_revoked_token_is_refused(client, make_client, token_for):
    application, secret = make_client("svc", scopes=["reports:read"])
    token = token_for(application, secret, scope="reports:read")["access_token"]
    assert client.get("/api/ping/", **bearer(token)).status_code == 200

    revoked = form_post(
        client,
        "/oauth/revoke/",
        {"token": token},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )

    assert revoked.status_code == 200
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "revoked")


def test_disabled_clients_token_is_refused(client, reader):
    application, token = reader
    assert client.get("/api/ping/", **bearer(token)).status_code == 200

    application.is_active = False
    application.save()

    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "client of this access token is disabled")


def test_token_from_before_a_disable_stays_refused_after_re_enabling(client, reader):
    application, token = reader
    clients.set_active(application, False)
    clients.set_active(application, True)
    assert client.get("/api/ping/", **bearer(token)).status_code == 401


def test_token_issued_before_tokens_valid_after_is_refused(client, reader):
    application, token = reader
    iat = jwt.decode(token, options={"verify_signature": False})["iat"]
    Application.objects.filter(pk=application.pk).update(
        tokens_valid_after=datetime.fromtimestamp(iat + 1, tz=timezone.utc)
    )
    revocation.publish()

    assert_invalid_token(
        client.get("/api/ping/", **bearer(token)), "issued before its client's tokens were invalidated"
    )


def test_token_issued_at_tokens_valid_after_is_accepted(client, reader):
    application, token = reader
    iat = jwt.decode(token, options={"verify_signature": False})["iat"]
    Application.objects.filter(pk=application.pk).update(
        tokens_valid_after=datetime.fromtimestamp(iat, tz=timezone.utc)
    )
    revocation.publish()

    assert client.get("/api/ping/", **bearer(token)).status_code == 200


def test_token_issued_in_the_same_second_right_after_the_cut_off_is_accepted(
    client, make_client, token_for, monkeypatch
):
    application, secret = make_client("svc", scopes=["reports:read"])
    second = int(time.time())
    Application.objects.filter(pk=application.pk).update(
        tokens_valid_after=datetime.fromtimestamp(second + 0.5, tz=timezone.utc)
    )
    revocation.publish()
    monkeypatch.setattr(issuance, "time", SimpleNamespace(time=lambda: second + 0.6))

    token = token_for(application, secret, scope="reports:read")["access_token"]

    assert client.get("/api/ping/", **bearer(token)).status_code == 200


def test_invalidating_all_client_tokens_refuses_the_token(client, reader):
    application, token = reader
    revocation.invalidate_client_tokens(application.client_id)
    assert_invalid_token(client.get("/api/ping/", **bearer(token)), "invalidated")


@pytest.mark.urls("tests.urls")
def test_dots_own_token_has_scope_accepts_oauth_cc_tokens(client, make_client, token_for):
    application, secret = make_client("svc", scopes=["reports:read", "reports:write"])
    reader = token_for(application, secret, scope="reports:read")["access_token"]
    writer = token_for(application, secret, scope="reports:write")["access_token"]

    allowed = client.get("/api/dot-scoped/", **bearer(reader))
    refused = client.get("/api/dot-scoped/", **bearer(writer))

    assert allowed.status_code == 200
    assert allowed.json() == {"client_id": application.client_id}
    assert refused.status_code == 403


def test_request_auth_claims_are_read_only(reader):
    from oauth_cc.common.verification import check_access_token

    _, token = reader
    info = check_access_token(token)
    with pytest.raises(TypeError):
        info.claims["scope"] = "everything"  # type: ignore[index]
    assert check_access_token(token).claims["scope"] == "reports:read"
