"""Access tokens are RFC 9068 JWTs that an independent library validates against the published JWKS."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django.test import override_settings

from oauth_cc.issuer import keys
from oauth_cc.models import SigningKey
from tests.helpers import ISSUER, clear_shared_cache


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def svc(make_client):
    return make_client("svc", scopes=["reports:read", "reports:write"])


def published_key(client, kid: str) -> jwt.PyJWK:
    """The key named ``kid`` in the site's JWKS, fetched over the site's own endpoint."""
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return jwt.PyJWKSet.from_dict(response.json())[kid]


def validate_with_pyjwt(client, access_token: str, *, audience: str = ISSUER) -> dict[str, Any]:
    """Validate the way a third-party resource server would: PyJWT, keys from the JWKS only."""
    header = jwt.get_unverified_header(access_token)
    key = published_key(client, header["kid"])
    return jwt.decode(
        access_token,
        key=key.key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )


def test_header_is_at_jwt_with_es256_and_kid(client, svc, token_for):
    body = token_for(*svc, scope="reports:read")

    header = jwt.get_unverified_header(body["access_token"])

    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"] == SigningKey.objects.get(state="current").kid


def test_pyjwt_validates_the_token_against_the_published_jwks(client, svc, token_for):
    application, secret = svc
    before = int(time.time())
    body = token_for(application, secret, scope="reports:read reports:write")

    claims = validate_with_pyjwt(client, body["access_token"])

    assert set(claims) == {"iss", "sub", "client_id", "aud", "exp", "iat", "jti", "scope"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == application.client_id
    assert claims["client_id"] == application.client_id
    assert claims["aud"] == ISSUER
    assert claims["scope"] == "reports:read reports:write"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


def test_every_token_gets_its_own_jti(client, svc, token_for):
    jtis = {
        jwt.decode(
            token_for(*svc, scope="reports:read")["access_token"], options={"verify_signature": False}
        )["jti"]
        for _ in range(5)
    }
    assert len(jtis) == 5


def test_pyjwt_rejects_the_token_for_another_audience(client, svc, token_for):
    body = token_for(*svc, scope="reports:read")
    with pytest.raises(jwt.InvalidAudienceError):
        validate_with_pyjwt(client, body["access_token"], audience="https://elsewhere.example")


@pytest.mark.parametrize(("algorithm", "kty"), [("RS256", "RSA"), ("EdDSA", "OKP"), ("ES256", "EC")])
def test_site_without_keys_creates_them_with_the_configured_algorithm(client, svc, token_for, algorithm, kty):
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "SIGNING_ALGORITHM": algorithm}):
        body = token_for(*svc, scope="reports:read")
        header = jwt.get_unverified_header(body["access_token"])
        claims = validate_with_pyjwt(client, body["access_token"])
        published = published_key(client, header["kid"])

    assert header["alg"] == algorithm
    assert published.key_type == kty
    assert claims["client_id"] == svc[0].client_id
    assert set(SigningKey.objects.values_list("algorithm", flat=True)) == {algorithm}


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_rotation_moves_the_site_to_a_newly_configured_algorithm(client, svc, token_for, algorithm):
    es256_token = token_for(*svc, scope="reports:read")["access_token"]
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "SIGNING_ALGORITHM": algorithm}):
        # The next key was published under ES256 before the change: it signs first.
        first = keys.rotate()
        assert SigningKey.objects.get(kid=first.current_kid).algorithm == "ES256"
        assert SigningKey.objects.get(kid=first.next_kid).algorithm == algorithm
        second = keys.rotate()
        new_token = token_for(*svc, scope="reports:read")["access_token"]

        assert jwt.get_unverified_header(new_token) == {
            "alg": algorithm,
            "typ": "at+jwt",
            "kid": second.current_kid,
        }
        assert validate_with_pyjwt(client, new_token)["client_id"] == svc[0].client_id
        # Tokens signed before the change still validate against the JWKS.
        assert validate_with_pyjwt(client, es256_token)["client_id"] == svc[0].client_id


def test_client_with_audiences_gets_its_first_audience_by_default(client, make_client, token_for):
    application, secret = make_client(
        "svc", scopes=["reports:read"], audiences=["https://api.example.com", "https://billing.example.com"]
    )
    body = token_for(application, secret, scope="reports:read")
    claims = validate_with_pyjwt(client, body["access_token"], audience="https://api.example.com")
    assert claims["aud"] == "https://api.example.com"


def test_resource_parameter_selects_one_of_the_clients_audiences(client, make_client, token_for):
    application, secret = make_client(
        "svc", scopes=["reports:read"], audiences=["https://api.example.com", "https://billing.example.com"]
    )
    body = token_for(application, secret, scope="reports:read", resource="https://billing.example.com")
    claims = validate_with_pyjwt(client, body["access_token"], audience="https://billing.example.com")
    assert claims["aud"] == "https://billing.example.com"


def test_resource_parameter_naming_this_site_is_its_default_audience(client, svc, token_for):
    body = token_for(*svc, scope="reports:read", resource=ISSUER)
    assert validate_with_pyjwt(client, body["access_token"])["aud"] == ISSUER


def test_resource_identifier_setting_is_the_default_audience(client, svc, token_for):
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "RESOURCE_IDENTIFIER": "https://api.testserver"}):
        body = token_for(*svc, scope="reports:read")
    claims = validate_with_pyjwt(client, body["access_token"], audience="https://api.testserver")
    assert claims["aud"] == "https://api.testserver"
    assert claims["iss"] == ISSUER
