"""private_key_jwt client authentication (RFC 7523 §2.2/§3) at the token endpoint.

The happy path runs Authlib's OAuth 2 client against a live server; every rejection is an
assertion signed with PyJWT and must come back as a 401 ``invalid_client`` JSON answer.
"""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import jwt as pyjwt
import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from django.core.management import CommandError, call_command
from joserfc.jwk import ECKey, OKPKey, RSAKey
from jwt.algorithms import ECAlgorithm

from oauth_cc.models import ClientSecret, Scope, UsedAssertion

from .assertion_helpers import (
    ALGORITHMS,
    ClientKey,
    assert_invalid_client,
    assertion_claims,
    generate_key,
    hs256_with_public_key,
    jwks_of,
    post_assertion,
)
from .conftest import basic_auth, form_post, refused_unproven

ENDPOINT = "http://testserver/oauth/token/"
ISSUER = "http://testserver"


@pytest.fixture(scope="module")
def keys() -> dict[str, ClientKey]:
    """One key per allowed algorithm; RSA generation is slow, so once per module."""
    return {alg: generate_key(alg) for alg in ALGORITHMS}


@pytest.fixture(scope="module")
def other_key() -> ClientKey:
    return generate_key("ES256")


@pytest.fixture
def make_jwt_client(make_client: Any) -> Any:
    def make(*keys: ClientKey, name: str = "jwt-client") -> Any:
        # A default scope, so token requests need not name one.
        Scope.objects.get_or_create(name="reports:read", defaults={"is_default": True})
        application, secret = make_client(
            name, scopes=["reports:read"], auth_method="private_key_jwt", jwks=jwks_of(*keys)
        )
        assert secret == ""
        return application

    return make


@pytest.fixture
def es_client(make_jwt_client: Any, keys: dict[str, ClientKey]) -> Any:
    return make_jwt_client(keys["ES256"])


# -- Authlib against a live server ------------------------------------------------------


def _authlib_key(key: ClientKey) -> Any:
    loader = {"RS256": RSAKey, "PS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[key.alg]
    return loader.import_key(key.private_pem())


@pytest.fixture
def live_issuer(live_server: Any, settings: Any) -> str:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ISSUER": live_server.url}
    return live_server.url


@pytest.mark.parametrize("alg", ALGORITHMS)
# joserfc (Authlib's JOSE library) warns that RFC 9864 deprecates "EdDSA" in favour of "Ed25519".
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_authlib_client_gets_a_token_with_each_algorithm(
    alg: str, transactional_db: Any, live_issuer: str, keys: dict[str, ClientKey], make_jwt_client: Any
) -> None:
    key = keys[alg]
    application = make_jwt_client(key)
    token_endpoint = f"{live_issuer}/oauth/token/"
    # Authlib's defaults: an iat, exp = iat + 3600 and a fresh jti per request.
    auth = PrivateKeyJWT(token_endpoint, alg=alg, headers={"kid": key.kid})
    with OAuth2Session(application.client_id, _authlib_key(key), token_endpoint_auth_method=auth) as session:
        token = session.fetch_token(token_endpoint, grant_type="client_credentials", scope="reports:read")

    claims = pyjwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == application.client_id
    assert claims["scope"] == "reports:read"
    assert UsedAssertion.objects.filter(client_id=application.client_id).count() == 1


# -- Accepted forms (the baseline the rejections below differ from) ------------------------


def test_assertion_with_kid_and_token_endpoint_audience_is_accepted(
    client: Any, es_client: Any, keys: Any
) -> None:
    response = post_assertion(client, keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT)))
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"


def test_assertion_without_kid_is_checked_against_every_fitting_key(
    client: Any, make_jwt_client: Any, keys: Any
) -> None:
    application = make_jwt_client(keys["RS256"], keys["ES256"], keys["EdDSA"])
    assertion = keys["EdDSA"].sign(assertion_claims(application.client_id, ENDPOINT), kid=None)
    assert post_assertion(client, assertion).status_code == 200


def test_assertion_without_kid_verifies_with_a_later_key_of_the_same_type(
    client: Any, make_jwt_client: Any, keys: Any, other_key: ClientKey
) -> None:
    # Both keys fit ES256: the first one tried fails, the second verifies.
    application = make_jwt_client(keys["ES256"], other_key)
    assertion = other_key.sign(assertion_claims(application.client_id, ENDPOINT), kid=None)
    assert post_assertion(client, assertion).status_code == 200


def test_audience_may_be_the_issuer_inside_a_list(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ["https://elsewhere.example", ISSUER])
    assert post_assertion(client, keys["ES256"].sign(claims)).status_code == 200


def test_client_id_parameter_may_accompany_the_assertion(client: Any, es_client: Any, keys: Any) -> None:
    assertion = keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT))
    assert post_assertion(client, assertion, client_id=es_client.client_id).status_code == 200


def test_accepted_assertion_costs_one_insert_on_a_warm_cache(
    client: Any, es_client: Any, keys: Any, django_assert_num_queries: Any
) -> None:
    # Warm the worker caches (client record, signing key, last-used bookkeeping).
    assert (
        post_assertion(
            client, keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT))
        ).status_code
        == 200
    )
    with django_assert_num_queries(3) as captured:  # SAVEPOINT, INSERT, RELEASE SAVEPOINT
        response = post_assertion(client, keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT)))
    assert response.status_code == 200
    assert [q["sql"].split()[0].upper() for q in captured.captured_queries].count("INSERT") == 1


# -- Rejections ------------------------------------------------------------------------------


def test_wrong_audience_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, "https://other-server.example/oauth/token/")
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"aud"')


def test_missing_audience_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, None)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"aud"')


def test_wrong_issuer_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ENDPOINT, iss="someone-else")
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"iss"')


def test_wrong_subject_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ENDPOINT, sub="someone-else")
    response = post_assertion(client, keys["ES256"].sign(claims), client_id=es_client.client_id)
    assert_invalid_client(response, '"sub"')


def test_expired_assertion_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    now = int(time.time())
    claims = assertion_claims(es_client.client_id, ENDPOINT, iat=now - 200, exp=now - 120)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), "expired")


def test_assertion_expiring_within_the_leeway_is_still_accepted(
    client: Any, es_client: Any, keys: Any
) -> None:
    now = int(time.time())
    claims = assertion_claims(es_client.client_id, ENDPOINT, iat=now - 60, exp=now - 5)
    assert post_assertion(client, keys["ES256"].sign(claims)).status_code == 200


def test_far_future_expiry_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    now = int(time.time())
    claims = assertion_claims(es_client.client_id, ENDPOINT, iat=now, exp=now + 7200)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), "more than 3600 seconds ahead")
    claims = assertion_claims(es_client.client_id, ENDPOINT, iat=None, exp=now + 3600)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), "more than 300 seconds ahead")


def test_missing_expiry_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ENDPOINT, exp=None)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"exp"')


def test_issued_in_the_future_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ENDPOINT, iat=int(time.time()) + 120)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"iat"')


def test_assertion_issued_long_ago_is_refused_even_if_not_expired(
    client: Any, es_client: Any, keys: Any
) -> None:
    now = int(time.time())
    claims = assertion_claims(es_client.client_id, ENDPOINT, iat=now - 3600, exp=now + 60)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), "issued more than")


def test_not_yet_valid_assertion_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ENDPOINT, nbf=int(time.time()) + 120)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"nbf"')


def test_missing_jti_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    claims = assertion_claims(es_client.client_id, ENDPOINT, jti=None)
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(claims)), '"jti"')


def test_replayed_assertion_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    assertion = keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT))
    assert post_assertion(client, assertion).status_code == 200
    assert_invalid_client(post_assertion(client, assertion), "already been used")


def test_reused_jti_in_a_freshly_signed_assertion_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    first = keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT, jti="same-jti"))
    second = keys["ES256"].sign(
        assertion_claims(es_client.client_id, ENDPOINT, jti="same-jti", exp=int(time.time()) + 90)
    )
    assert post_assertion(client, first).status_code == 200
    assert_invalid_client(post_assertion(client, second), "already been used")


def test_refused_assertion_does_not_use_up_its_jti(client: Any, es_client: Any, keys: Any) -> None:
    wrong_aud = assertion_claims(es_client.client_id, "https://other.example", jti="kept-jti")
    assert_invalid_client(post_assertion(client, keys["ES256"].sign(wrong_aud)))
    right = assertion_claims(es_client.client_id, ENDPOINT, jti="kept-jti")
    assert post_assertion(client, keys["ES256"].sign(right)).status_code == 200


def test_unknown_kid_is_refused(client: Any, es_client: Any, keys: Any, auth_log: Any) -> None:
    assertion = keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT), kid="no-such-kid")
    refused_unproven(post_assertion(client, assertion), auth_log, 'kid "no-such-kid"')


def test_alg_none_is_refused(client: Any, es_client: Any) -> None:
    assertion = pyjwt.encode(assertion_claims(es_client.client_id, ENDPOINT), None, algorithm="none")
    assert_invalid_client(post_assertion(client, assertion))


def test_alg_none_with_a_signature_part_is_refused(client: Any, es_client: Any) -> None:
    unsigned = pyjwt.encode(assertion_claims(es_client.client_id, ENDPOINT), None, algorithm="none")
    assert_invalid_client(post_assertion(client, unsigned + "c2lnbmF0dXJl"), '"none"')


def test_hmac_signed_with_the_public_key_is_refused(client: Any, make_jwt_client: Any, keys: Any) -> None:
    application = make_jwt_client(keys["RS256"])
    assertion = hs256_with_public_key(assertion_claims(application.client_id, ENDPOINT), keys["RS256"])
    assert_invalid_client(post_assertion(client, assertion), '"HS256"')


def test_key_of_another_type_named_by_kid_is_refused(
    client: Any, es_client: Any, keys: Any, auth_log: Any
) -> None:
    # An RS256 signature that names the client's EC key: the key family must match the alg.
    claims = assertion_claims(es_client.client_id, ENDPOINT)
    assertion = keys["RS256"].sign(claims, kid=keys["ES256"].kid)
    refused_unproven(post_assertion(client, assertion), auth_log, "cannot verify RS256")


def test_key_of_another_client_is_refused(
    client: Any,
    make_jwt_client: Any,
    keys: Any,
    other_key: ClientKey,
    auth_log: Any,
) -> None:
    victim = make_jwt_client(keys["ES256"], name="victim")
    make_jwt_client(other_key, name="attacker")
    claims = assertion_claims(victim.client_id, ENDPOINT)
    refused_unproven(post_assertion(client, other_key.sign(claims)), auth_log, "kid")
    refused_unproven(post_assertion(client, other_key.sign(claims, kid=None)), auth_log, "signature")


def test_assertion_with_a_forged_kid_and_foreign_key_is_refused(
    client: Any,
    es_client: Any,
    keys: Any,
    other_key: ClientKey,
    auth_log: Any,
) -> None:
    assertion = other_key.sign(assertion_claims(es_client.client_id, ENDPOINT), kid=keys["ES256"].kid)
    refused_unproven(post_assertion(client, assertion), auth_log, "signature")


def test_tampered_claims_are_refused(client: Any, es_client: Any, keys: Any, auth_log: Any) -> None:
    header, _payload, signature = (
        keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT)).split(".")
    )
    other_payload = (
        keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT, scope="x")).split(".")[1]
    )
    refused_unproven(post_assertion(client, f"{header}.{other_payload}.{signature}"), auth_log, "signature")


def test_json_serialized_jws_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    # The JSON serialization (RFC 7515 §7.2) of a genuine assertion, signature and all. Its
    # dots are inside JSON strings, so it splits into three parts; it must still be refused
    # for not being the compact serialization.
    header, payload, signature = (
        keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT)).split(".")
    )
    flattened = json.dumps({"protected": header, "payload": payload, "signature": signature, "x": "a.b.c"})
    assert flattened.count(".") == 2
    assert_invalid_client(post_assertion(client, flattened), "compact serialization")
    assert not UsedAssertion.objects.exists()


def test_wrong_assertion_type_is_refused(client: Any, es_client: Any, keys: Any) -> None:
    assertion = keys["ES256"].sign(assertion_claims(es_client.client_id, ENDPOINT))
    response = form_post(
        client,
        "/oauth/token/",
        {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:example:saml",
            "client_assertion": assertion,
        },
    )
    assert_invalid_client(response, "client_assertion_type")


def test_private_key_jwt_client_cannot_use_a_secret(client: Any, es_client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        response = form_post(
            client,
            "/oauth/token/",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic_auth(es_client.client_id, "occs_guessed-secret"),
        )
    assert_invalid_client(response, "Client authentication failed.")
    assert "presented client_secret_basic but is registered for private_key_jwt" in caplog.text


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_private_key_jwt_client_refuses_even_its_real_secret_either_way(
    client: Any, make_client: Any, keys: Any, caplog: Any, method: str
) -> None:
    """A client moved from a secret to private_key_jwt keeps its secret rows; they no longer work."""
    application, secret = make_client("moved", scopes=["reports:read"])
    application.token_endpoint_auth_method = "private_key_jwt"
    application.client_jwks = jwks_of(keys["ES256"])
    application.save()
    data = {"grant_type": "client_credentials"}
    extra = {}
    if method == "client_secret_post":
        data.update(client_id=application.client_id, client_secret=secret)
    else:
        extra["HTTP_AUTHORIZATION"] = basic_auth(application.client_id, secret)
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        response = form_post(client, "/oauth/token/", data, **extra)
    assert_invalid_client(response, "Client authentication failed.")
    assert f"presented {method} but is registered for private_key_jwt" in caplog.text


def test_secret_client_cannot_use_an_assertion(client: Any, make_client: Any, keys: Any, caplog: Any) -> None:
    application, _secret = make_client("secret-client", scopes=["reports:read"])
    assertion = keys["ES256"].sign(assertion_claims(application.client_id, ENDPOINT))
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        assert_invalid_client(post_assertion(client, assertion), "Client authentication failed.")
    assert "presented private_key_jwt but is registered for client_secret_basic" in caplog.text
    assert not UsedAssertion.objects.exists()


def test_private_key_jwt_client_is_created_without_a_secret(make_jwt_client: Any, keys: Any) -> None:
    application = make_jwt_client(keys["ES256"])
    assert not ClientSecret.objects.filter(application=application).exists()
    assert application.token_endpoint_auth_method == "private_key_jwt"


def test_client_created_on_the_command_line_with_private_key_jwt_has_no_secret_and_signs_in(
    db: Any, client: Any, tmp_path: Any, keys: Any
) -> None:
    Scope.objects.get_or_create(name="reports:read", defaults={"is_default": True})
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(keys["RS256"])))
    out = io.StringIO()
    call_command(
        "oauth_cc",
        "client",
        "create",
        "cli-client",
        "--scope",
        "reports:read",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks_file),
        "--json",
        stdout=out,
    )
    created = json.loads(out.getvalue())

    assert created["client_secret"] is None
    assert not ClientSecret.objects.filter(application__client_id=created["client_id"]).exists()
    assertion = keys["RS256"].sign(assertion_claims(created["client_id"], ENDPOINT))
    assert post_assertion(client, assertion).status_code == 200


def test_command_line_refuses_a_jwks_with_a_private_key(db: Any, tmp_path: Any, keys: Any) -> None:
    jwks_file = tmp_path / "jwks.json"
    private = ECAlgorithm.to_jwk(keys["ES256"].private_key, as_dict=True)  # includes "d"
    jwks_file.write_text(json.dumps({"keys": [{**private, "kid": "leaked"}]}))
    with pytest.raises(CommandError, match=r"private key \(kid leaked\)"):
        call_command(
            "oauth_cc",
            "client",
            "create",
            "careless",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            str(jwks_file),
            stdout=io.StringIO(),
        )
