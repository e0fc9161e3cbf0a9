"""DPoP-Nonce on successful responses (RFC 9449 §8.2) and ``cnf`` in introspection (RFC 7662 with
RFC 9449 §6.2 and RFC 8705 §3.2)."""

from __future__ import annotations

import time
from typing import Any

from django.test import override_settings

from oauth_cc.common import dpop
from oauth_cc.models import Application
from tests import dpop_helpers as dh
from tests import mtls_helpers as mh
from tests.conftest import basic_auth, form_post

TOKEN_URL = "http://testserver/oauth/token/"
WHOAMI_URL = "http://testserver/api/whoami/"
SCOPE = "reports:read"


def oauth_cc(**extra: Any) -> Any:
    from django.conf import settings

    return override_settings(OAUTH_CC={**settings.OAUTH_CC, **extra})


def token_request(client: Any, svc: tuple[Application, str], proof: str | None = None, **headers: str) -> Any:
    application, secret = svc
    extra = {"HTTP_AUTHORIZATION": basic_auth(application.client_id, secret), **headers}
    if proof is not None:
        extra["HTTP_DPOP"] = proof
    return form_post(client, "/oauth/token/", {"grant_type": "client_credentials", "scope": SCOPE}, **extra)


def assert_fresh_nonce(response: Any) -> str:
    nonce = response["DPoP-Nonce"]
    assert dpop.nonce_is_valid(nonce, time.time()), nonce
    return str(nonce)


def test_successes_carry_a_fresh_nonce_when_nonces_are_required(client: Any, make_client: Any) -> None:
    svc = make_client("svc", scopes=[SCOPE])
    key = dh.new_ec_key()
    with oauth_cc(DPOP_REQUIRE_NONCE=True):
        first = token_request(client, svc, dh.proof(key))
        assert first.status_code == 400
        assert first.json()["error"] == "use_dpop_nonce"
        issued = token_request(client, svc, dh.proof(key, nonce=assert_fresh_nonce(first)))
        assert issued.status_code == 200, issued.content
        assert issued.json()["token_type"] == "DPoP"
        nonce = assert_fresh_nonce(issued)
        token = issued.json()["access_token"]

        proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token, nonce=nonce)
        ok = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
        assert ok.status_code == 200, ok.content
        # The nonce it sends works for the next request without a use_dpop_nonce round trip.
        proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token, nonce=assert_fresh_nonce(ok))
        again = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
        assert again.status_code == 200, again.content
        assert_fresh_nonce(again)

        bearer = token_request(client, svc)  # no proof: a Bearer token, no nonce to give
        assert bearer.status_code == 200
        assert "DPoP-Nonce" not in bearer
        plain = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {bearer.json()['access_token']}")
        assert plain.status_code == 200
        assert "DPoP-Nonce" not in plain


def test_no_nonce_header_unless_nonces_are_required(client: Any, make_client: Any) -> None:
    svc = make_client("svc", scopes=[SCOPE])
    key = dh.new_ec_key()
    issued = token_request(client, svc, dh.proof(key))
    assert issued.status_code == 200
    assert "DPoP-Nonce" not in issued
    token = issued.json()["access_token"]
    proof = dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)
    ok = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
    assert ok.status_code == 200
    assert "DPoP-Nonce" not in ok


def introspect(client: Any, reader: tuple[Application, str], token: str) -> dict[str, Any]:
    application, secret = reader
    response = form_post(
        client,
        "/oauth/introspect/",
        {"token": token},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_introspection_of_a_dpop_bound_token_has_its_jkt_and_type(client: Any, make_client: Any) -> None:
    svc = make_client("svc", scopes=[SCOPE])
    reader = make_client("reader", can_introspect=True)
    key = dh.new_ec_key()
    issued = token_request(client, svc, dh.proof(key))
    body = introspect(client, reader, issued.json()["access_token"])
    assert body["active"] is True
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": dh.jkt(key)}
    plain = introspect(client, reader, token_request(client, svc).json()["access_token"])
    assert plain["token_type"] == "Bearer"
    assert "cnf" not in plain


def test_introspection_of_a_certificate_bound_token_has_its_thumbprint(client: Any, make_client: Any) -> None:
    svc = make_client("svc", scopes=[SCOPE], certificate_bound_tokens=True)
    reader = make_client("reader", can_introspect=True)
    certificate = mh.issue(mh.make_ca(), "svc")
    with oauth_cc(CLIENT_CERT_HEADER=mh.HEADER):
        issued = token_request(client, svc, **{mh.HEADER: certificate.nginx_header})
        assert issued.status_code == 200, issued.content
        body = introspect(client, reader, issued.json()["access_token"])
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    assert body["cnf"] == {"x5t#S256": certificate.thumbprint}
