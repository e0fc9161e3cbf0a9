"""private_key_jwt assertion checks (oauth_cc.issuer.assertions), each with its ``invalid_client`` reason.

Driven at the function level with a client record holding an inline JWKS and assertions signed
by PyJWT, so every rule is reached through a genuine signature and with a controlled clock.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from oauth_cc.common.errors import InvalidClient
from oauth_cc.issuer import assertions
from oauth_cc.issuer.assertions import parse_assertion, verify_client_assertion
from oauth_cc.issuer.state import ClientRecord

from .assertion_helpers import ClientKey, generate_key, jwks_of

CLIENT_ID = "assertion-client"
ENDPOINT = "http://testserver/oauth/token/"
ISSUER = "http://testserver"


@pytest.fixture(scope="module")
def es_key() -> ClientKey:
    return generate_key("ES256", kid="es")


@pytest.fixture(scope="module")
def rsa_key() -> ClientKey:
    return generate_key("RS256", kid="rsa")


def record(*keys: ClientKey, jwks: dict | None = None) -> ClientRecord:
    return ClientRecord(
        pk=1,
        client_id=CLIENT_ID,
        name=CLIENT_ID,
        is_active=True,
        grant_type="client-credentials",
        auth_method="private_key_jwt",
        allowed_scopes=frozenset(),
        default_scopes=(),
        access_token_lifetime=None,
        audiences=(),
        can_introspect=False,
        user_id=None,
        jwks=jwks if jwks is not None else jwks_of(*keys),
        jwks_uri="",
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ENDPOINT, "iat": now, "exp": now + 60, "jti": "j-1"}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def verify(client: ClientRecord, assertion: str) -> assertions.VerifiedAssertion:
    return verify_client_assertion(client, parse_assertion(assertion), endpoint_url=ENDPOINT)


def refused(client: ClientRecord, assertion: str, message: str) -> None:
    with pytest.raises(InvalidClient) as raised:
        verify(client, assertion)
    assert not isinstance(raised.value, assertions.Unproven)
    assert raised.value.description == message


def unproven(client: ClientRecord, assertion: str, reason: str) -> None:
    """Refused before the client's key verified the signature: the generic answer, ``reason`` logged."""
    with pytest.raises(assertions.Unproven) as raised:
        verify(client, assertion)
    assert raised.value.description == "Client authentication failed."
    assert raised.value.reason == reason


def test_a_genuine_assertion_gives_the_client_jti_and_exp(es_key):
    values = claims()
    verified = verify(record(es_key), es_key.sign(values))
    assert verified == assertions.VerifiedAssertion(
        client_id=CLIENT_ID, jti="j-1", accepted_until=float(values["exp"])
    )


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "RS512"])
def test_algorithms_outside_the_table_are_refused_naming_the_accepted_ones(es_key, alg):
    header = {"alg": alg, "kid": "es"}
    import base64
    import json

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    refused(
        record(es_key),
        f"{b64(header)}.{b64(claims())}.c2ln",
        f'client_assertion alg "{alg}" is not accepted; sign with one of RS256, PS256, ES256, EdDSA.',
    )


def test_a_key_pinned_to_another_algorithm_is_refused_for_its_pin(rsa_key):
    pinned = {"keys": [{**rsa_key.public_jwk(), "alg": "PS256"}]}
    unproven(
        record(jwks=pinned),
        rsa_key.sign(claims()),
        'Key "rsa" is registered for PS256 only and cannot verify RS256.',
    )


def test_a_key_of_another_type_is_refused_naming_its_type(es_key, rsa_key):
    as_rsa = {"keys": [{**es_key.public_jwk(), "kid": "rsa"}]}
    unproven(record(jwks=as_rsa), rsa_key.sign(claims()), 'Key "rsa" is an EC key and cannot verify RS256.')
    pinned_ec = {"keys": [{**es_key.public_jwk(), "kid": "rsa", "alg": "ES256"}]}
    reason = 'Key "rsa" is an EC key and cannot verify RS256.'
    unproven(record(jwks=pinned_ec), rsa_key.sign(claims()), reason)


def test_an_unknown_kid_is_refused_naming_it(es_key):
    unproven(
        record(es_key),
        es_key.sign(claims(), kid="other"),
        'No key with kid "other" is registered for this client.',
    )


def test_without_a_kid_a_key_that_fits_the_algorithm_is_used(es_key, rsa_key):
    assert verify(record(rsa_key, es_key), es_key.sign(claims(), kid=None)).jti == "j-1"


def test_without_a_kid_and_no_fitting_key_the_algorithm_is_named(rsa_key, es_key):
    unproven(
        record(rsa_key),
        es_key.sign(claims(), kid=None),
        "None of this client's registered keys can verify ES256.",
    )


def test_without_a_kid_at_most_five_keys_are_tried(es_key):
    others = [generate_key("ES256", kid=f"other-{n}") for n in range(5)]
    unproven(
        record(*others, es_key),
        es_key.sign(claims(), kid=None),
        "The client_assertion signature does not verify with this client's registered keys.",
    )
    assert verify(record(*others[:4], es_key), es_key.sign(claims(), kid=None))


def test_a_client_without_keys_is_refused(es_key):
    unproven(
        record(jwks={"keys": []}),
        es_key.sign(claims()),
        "This client has no public keys registered for private_key_jwt.",
    )


@pytest.mark.parametrize(("name", "value"), [("iss", "someone"), ("sub", "someone")])
def test_iss_and_sub_must_be_the_client_id(es_key, name, value):
    refused(
        record(es_key),
        es_key.sign(claims(**{name: value})),
        f'client_assertion "{name}" claim must be the client_id.',
    )


@pytest.mark.parametrize("aud", [ENDPOINT, ISSUER, [ISSUER, "x"], ["x", ENDPOINT]])
def test_aud_may_name_the_endpoint_or_the_issuer(es_key, aud):
    assert verify(record(es_key), es_key.sign(claims(aud=aud)))


def test_aud_naming_neither_is_refused_naming_both(es_key):
    refused(
        record(es_key),
        es_key.sign(claims(aud="http://testserver/oauth/other/")),
        f'client_assertion "aud" claim must contain the endpoint URL ({ENDPOINT}) or the issuer ({ISSUER}).',
    )


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


NOW = 1_700_000_000


@pytest.fixture
def clock(monkeypatch: Any, settings: Any) -> _Clock:
    settings.OAUTH_CC = {
        **settings.OAUTH_CC,
        "LEEWAY": 30,
        "ASSERTION_MAX_LIFETIME": 300,
        "ASSERTION_MAX_AGE": 300,
    }
    clock = _Clock(NOW)
    monkeypatch.setattr(assertions, "time", clock)
    return clock


def timed(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": ENDPOINT,
        "exp": NOW + 60,
        "jti": "j-1",
    }
    base.update(values)
    return {name: value for name, value in base.items() if value is not None}


def test_exp_is_required(es_key, clock):
    refused(record(es_key), es_key.sign(timed(exp=None)), 'client_assertion "exp" claim is missing.')


def test_exp_boundary_with_leeway(es_key, clock):
    expired = (
        'client_assertion "exp" claim has passed: the assertion has expired; sign a new one for each request.'
    )
    refused(record(es_key), es_key.sign(timed(exp=NOW - 30)), expired)
    assert verify(record(es_key), es_key.sign(timed(exp=NOW - 29)))


def test_without_iat_exp_may_be_at_most_the_maximum_lifetime_ahead(es_key, clock):
    assert verify(record(es_key), es_key.sign(timed(exp=NOW + 330)))
    refused(
        record(es_key),
        es_key.sign(timed(exp=NOW + 331)),
        'client_assertion "exp" claim is more than 300 seconds ahead; use short-lived assertions, '
        'or add an "iat" claim.',
    )


def test_with_iat_exp_may_be_an_hour_ahead(es_key, clock):
    """Authlib's PrivateKeyJWT default: exp = iat + 3600. Keycloak and Okta accept it."""
    verified = verify(record(es_key), es_key.sign(timed(iat=NOW, exp=NOW + 3600)))
    assert verified.accepted_until == NOW + 300  # the age bound ends it, not the exp
    assert verify(record(es_key), es_key.sign(timed(iat=NOW, exp=NOW + 3630)))
    refused(
        record(es_key),
        es_key.sign(timed(iat=NOW, exp=NOW + 3631)),
        'client_assertion "exp" claim is more than 3600 seconds ahead; use short-lived assertions.',
    )


def test_with_iat_the_age_not_the_exp_bounds_the_assertion(es_key, clock, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ASSERTION_MAX_AGE": 120}
    assertion = es_key.sign(timed(iat=NOW, exp=NOW + 3600))
    clock.now = NOW + 150  # 120 + 30 leeway
    assert verify(record(es_key), assertion)
    clock.now = NOW + 151
    refused(
        record(es_key),
        assertion,
        'client_assertion "iat" claim says it was issued more than 120 seconds ago; sign a new one.',
    )


def test_accepted_until_is_the_sooner_of_exp_and_the_age_bound(es_key, clock):
    assert verify(record(es_key), es_key.sign(timed(iat=NOW - 100, exp=NOW + 60))).accepted_until == NOW + 60
    assert (
        verify(record(es_key), es_key.sign(timed(iat=NOW - 100, exp=NOW + 900))).accepted_until == NOW + 200
    )
    assert verify(record(es_key), es_key.sign(timed(iat=None, exp=NOW + 200))).accepted_until == NOW + 200


def test_nbf_boundary(es_key, clock):
    assert verify(record(es_key), es_key.sign(timed(nbf=NOW + 30)))
    refused(
        record(es_key),
        es_key.sign(timed(nbf=NOW + 31)),
        'client_assertion "nbf" claim is in the future: the assertion is not valid yet.',
    )


def test_iat_may_not_be_in_the_future(es_key, clock):
    assert verify(record(es_key), es_key.sign(timed(iat=NOW + 30)))
    refused(
        record(es_key),
        es_key.sign(timed(iat=NOW + 31)),
        'client_assertion "iat" claim is in the future; check the client\'s clock.',
    )


def test_iat_may_not_be_older_than_the_maximum_age(es_key, clock):
    assert verify(record(es_key), es_key.sign(timed(iat=NOW - 330)))
    refused(
        record(es_key),
        es_key.sign(timed(iat=NOW - 331)),
        'client_assertion "iat" claim says it was issued more than 300 seconds ago; sign a new one.',
    )


def test_jti_rules(es_key):
    longest = "j" * assertions.MAX_JTI_LENGTH
    assert verify(record(es_key), es_key.sign(claims(jti=longest))).jti == longest
    refused(
        record(es_key),
        es_key.sign(claims(jti=longest + "j")),
        f'client_assertion "jti" claim is longer than {assertions.MAX_JTI_LENGTH} characters.',
    )
    refused(
        record(es_key),
        es_key.sign(claims(jti="a\nb")),
        'client_assertion "jti" claim contains control characters.',
    )
    refused(record(es_key), es_key.sign(claims(jti=None)), 'client_assertion "jti" claim is missing.')


def test_an_access_token_is_not_a_client_assertion(es_key):
    assertion = es_key.sign(claims())
    header = {"typ": "at+jwt", "kid": "es"}
    import jwt

    as_token = jwt.encode(claims(), es_key.private_key, algorithm="ES256", headers=header)
    with pytest.raises(InvalidClient) as raised:
        parse_assertion(as_token)
    assert (
        raised.value.description
        == 'client_assertion has typ "at+jwt": an access token is not a client assertion.'
    )
    assert parse_assertion(assertion).claims["jti"] == "j-1"


def test_unverified_client_id_is_the_sub_claim(es_key):
    assert parse_assertion(es_key.sign(claims(sub="who"))).unverified_client_id == "who"
    with pytest.raises(InvalidClient) as raised:
        parse_assertion(es_key.sign(claims(sub=None))).unverified_client_id
    assert raised.value.description == 'client_assertion "sub" claim is missing.'


def test_record_use_keeps_the_jti_until_exp_plus_leeway_and_refuses_a_replay(db, settings):
    from oauth_cc.models import UsedAssertion

    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 30}
    verified = assertions.VerifiedAssertion(client_id=CLIENT_ID, jti="once", accepted_until=float(NOW))
    assertions.record_use(verified)

    row = UsedAssertion.objects.get(client_id=CLIENT_ID, jti="once")
    assert row.expires_at == datetime.fromtimestamp(NOW + 30, tz=timezone.utc)
    with pytest.raises(InvalidClient) as raised:
        assertions.record_use(dataclasses.replace(verified))
    assert raised.value.description == (
        'This client_assertion has already been used; sign a new one with a fresh "jti".'
    )
    # Another client may use the same jti.
    assertions.record_use(dataclasses.replace(verified, client_id="other-client"))


def test_a_long_alg_is_shown_cut_at_20_characters(es_key):
    import base64
    import json

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    alg = "A" * 21
    refused(
        record(es_key),
        f"{b64({'alg': alg})}.{b64(claims())}.c2ln",
        f'client_assertion alg "{"A" * 20}..." is not accepted; sign with one of RS256, PS256, ES256, EdDSA.',
    )


def test_a_long_kid_is_shown_cut_at_100_characters(es_key, rsa_key):
    kid = "k" * 101
    as_rsa = {"keys": [{**es_key.public_jwk(), "kid": kid}]}
    unproven(
        record(jwks=as_rsa),
        rsa_key.sign(claims(), kid=kid),
        f'Key "{"k" * 100}..." is an EC key and cannot verify RS256.',
    )
    unproven(
        record(es_key),
        es_key.sign(claims(), kid=kid),
        f'No key with kid "{"k" * 100}..." is registered for this client.',
    )


def test_an_hour_long_assertion_keeps_its_jti_only_until_its_age_bound(db, es_key, clock):
    """The used-jti row lives as long as the assertion could be accepted, not until its far exp."""
    from oauth_cc.models import UsedAssertion

    assertions.record_use(verify(record(es_key), es_key.sign(timed(iat=NOW - 10, exp=NOW + 3600))))

    row = UsedAssertion.objects.get(client_id=CLIENT_ID, jti="j-1")
    assert row.expires_at == datetime.fromtimestamp(NOW - 10 + 300 + 30, tz=timezone.utc)


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_an_algorithm_outside_the_table_is_refused_by_the_parser_before_any_client_is_known(es_key, alg):
    # Refused before the client is looked up, so every client_id, known or not, gets this answer.
    header = {"alg": alg, "kid": "es"}
    import base64
    import json

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    with pytest.raises(InvalidClient) as raised:
        parse_assertion(f"{b64(header)}.{b64(claims())}.c2ln")
    assert raised.value.description.startswith(f'client_assertion alg "{alg}" is not accepted')
