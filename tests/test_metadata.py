"""Authorization server metadata (RFC 8414) and the JWK Set document (RFC 7517)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.helpers import ISSUER, clear_shared_cache

METADATA = "/.well-known/oauth-authorization-server"
JWKS = "/.well-known/jwks.json"


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def metadata(client, make_scope) -> dict:
    make_scope("reports:read", default=True)
    make_scope("reports:write")
    response = client.get(METADATA)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_issuer_is_the_configured_issuer(metadata):
    assert metadata["issuer"] == ISSUER


def test_endpoints_are_absolute_urls_under_the_issuer(metadata):
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth/token/"
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/oauth/introspect/"
    assert metadata["revocation_endpoint"] == f"{ISSUER}/oauth/revoke/"
    # oauth_cc's own member: where resource-only services read revocations.
    assert metadata["oauth_cc_revocation_feed_endpoint"] == f"{ISSUER}/oauth/revocation-feed/"


def test_only_the_client_credentials_grant_is_supported(metadata):
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["response_types_supported"] == []
    assert "authorization_endpoint" not in metadata


def test_auth_methods_name_secret_and_private_key_jwt_methods(metadata):
    methods = {"client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert set(metadata["token_endpoint_auth_methods_supported"]) == methods
    assert set(metadata["introspection_endpoint_auth_methods_supported"]) == methods
    assert set(metadata["revocation_endpoint_auth_methods_supported"]) == methods


def test_assertion_signing_algorithms_are_asymmetric_only(metadata):
    algs = metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in algs and "RS256" in algs
    assert not {"none", "HS256", "HS384", "HS512"} & set(algs)
    assert metadata["introspection_endpoint_auth_signing_alg_values_supported"] == algs
    assert metadata["revocation_endpoint_auth_signing_alg_values_supported"] == algs


def test_scopes_supported_are_the_scopes_in_the_database(client, metadata, make_scope):
    assert metadata["scopes_supported"] == ["reports:read", "reports:write"]

    make_scope("audit:read")

    assert client.get(METADATA).json()["scopes_supported"] == ["audit:read", "reports:read", "reports:write"]


def test_metadata_follows_the_issuer_setting(client, db):
    with override_settings(OAUTH_CC={"ISSUER": "https://auth.example.com/"}):
        body = client.get(METADATA).json()
    assert body["issuer"] == "https://auth.example.com"
    assert body["token_endpoint"] == "https://auth.example.com/oauth/token/"


def test_metadata_is_public_and_cacheable(client, db):
    response = client.get(METADATA)
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "public" in response["Cache-Control"]


def test_metadata_refuses_post_with_json(client, db):
    response = client.post(METADATA)
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


def test_jwks_is_cacheable_for_jwks_max_age(client, db):
    response = client.get(JWKS)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_jwks_max_age_follows_the_setting(client, db):
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "JWKS_MAX_AGE": 60}):
        response = client.get(JWKS)
    assert response["Cache-Control"] == "public, max-age=60"


def test_jwks_keys_carry_kid_alg_and_use(client, db):
    keys = client.get(JWKS).json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert key["kid"] and key["alg"] == "ES256" and key["use"] == "sig"
        assert key["kty"] == "EC" and key["crv"] == "P-256"
        assert "d" not in key
