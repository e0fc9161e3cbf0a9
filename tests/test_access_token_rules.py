"""oauth_cc.common.tokens: how access tokens are built, signed and verified (RFC 9068), with exact reasons.

``verify`` is driven with tokens signed by the site's own key (PyJWT, not oauth_cc's JOSE
code), so each refusal is reached through a genuine signature; ``check_claims`` is driven
directly at the exact boundaries of ``exp``, ``iat`` and ``nbf`` with and without leeway.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured

from oauth_cc.common import tokens
from oauth_cc.common.tokens import InvalidToken
from tests.attacks import forge

ISSUER = "http://testserver"
NOW = 1_700_000_000


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "client-1",
        "client_id": "client-1",
        "aud": ISSUER,
        "exp": NOW + 600,
        "iat": NOW,
        "jti": "jti-1",
        "scope": "reports:read",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def check(
    values: dict[str, Any], *, audience: str | None = ISSUER, leeway: int = 0, now: float = NOW
) -> None:
    tokens.check_claims(values, issuer=ISSUER, audience=audience, leeway=leeway, now=now)


def refused_claims(values: dict[str, Any], message: str, **kwargs: Any) -> None:
    with pytest.raises(InvalidToken) as raised:
        check(values, **kwargs)
    assert str(raised.value) == message


# -- check_claims ------------------------------------------------------------------------------


def test_valid_claims_pass():
    check(claims())
    check(claims(scope=None, aud=["other", ISSUER], nbf=NOW))
    check(claims(scope=""))


def test_issuer_must_match():
    refused_claims(claims(iss="http://other"), "The access token was issued by another issuer.")
    refused_claims(claims(iss=None), 'The access token\'s "iss" claim is missing.')


def test_audience_must_contain_this_resource_unless_skipped():
    refused_claims(claims(aud="http://other"), "The access token is not meant for this resource (aud).")
    refused_claims(claims(aud=["a", "b"]), "The access token is not meant for this resource (aud).")
    check(claims(aud="http://other"), audience=None)
    refused_claims(claims(aud=None), 'The access token\'s "aud" claim is missing.', audience=None)


def test_expiry_boundary_without_leeway():
    refused_claims(claims(exp=NOW), "The access token has expired.")
    check(claims(exp=NOW + 1))


def test_expiry_boundary_with_leeway():
    refused_claims(claims(exp=NOW - 30), "The access token has expired.", leeway=30)
    check(claims(exp=NOW - 29), leeway=30)


def test_issued_at_boundary():
    check(claims(iat=NOW))
    refused_claims(claims(iat=NOW + 1), "The access token was issued in the future (iat).")
    check(claims(iat=NOW + 30), leeway=30)
    refused_claims(claims(iat=NOW + 31), "The access token was issued in the future (iat).", leeway=30)


def test_not_before_boundary():
    check(claims(nbf=NOW))
    refused_claims(claims(nbf=NOW + 1), "The access token is not valid yet (nbf).")
    check(claims(nbf=NOW + 30), leeway=30)
    refused_claims(claims(nbf=NOW + 31), "The access token is not valid yet (nbf).", leeway=30)


@pytest.mark.parametrize("name", ["exp", "iat"])
def test_exp_and_iat_are_required(name):
    refused_claims(claims(**{name: None}), f'The access token\'s "{name}" claim is missing.')


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
def test_times_must_be_numbers(name):
    refused_claims(
        claims(**{name: "soon"}),
        f'The access token\'s "{name}" claim is not a number of seconds since the epoch.',
    )


@pytest.mark.parametrize("name", ["jti", "client_id", "sub"])
def test_identifiers_are_required_non_empty_strings(name):
    refused_claims(claims(**{name: None}), f'The access token\'s "{name}" claim is missing.')
    refused_claims(claims(**{name: ""}), f'The access token\'s "{name}" claim is empty.')
    refused_claims(claims(**{name: 7}), f'The access token\'s "{name}" claim is not a string.')
    refused_claims(
        claims(**{name: "a\x00b"}), f'The access token\'s "{name}" claim contains control characters.'
    )


def test_identifier_length_bounds():
    check(claims(jti="j" * tokens.MAX_JTI_LENGTH))
    refused_claims(
        claims(jti="j" * (tokens.MAX_JTI_LENGTH + 1)),
        f'The access token\'s "jti" claim is longer than {tokens.MAX_JTI_LENGTH} characters.',
    )
    longest = "c" * tokens.MAX_CLIENT_ID_LENGTH
    check(claims(client_id=longest, sub=longest))
    for name in ("client_id", "sub"):
        refused_claims(
            claims(**{name: longest + "c"}),
            f'The access token\'s "{name}" claim is longer than {tokens.MAX_CLIENT_ID_LENGTH} characters.',
        )


def test_scope_must_be_a_string_when_present():
    refused_claims(claims(scope=["reports:read"]), 'The access token\'s "scope" claim is not a string.')


# -- verify ------------------------------------------------------------------------------------


def verify(token: str, *, now: float = NOW, leeway: int = 0, audience: str | None = ISSUER) -> dict[str, Any]:
    return tokens.verify(token, issuer=ISSUER, audience=audience, leeway=leeway, now=now)


def refused(token: Any, message: str) -> None:
    with pytest.raises(InvalidToken) as raised:
        verify(token)
    assert str(raised.value) == message


def test_a_site_signed_token_verifies_and_gives_its_claims(db):
    assert verify(forge.site_signed(claims())) == claims()


def test_a_malformed_token_is_refused_with_the_parsers_reason(db):
    refused(
        "abc",
        "The access token is not a well-formed JWT: it must be a JWS in compact serialization, "
        "three base64url segments separated by dots.",
    )
    refused(12, "The access token is not a string.")
    refused(
        "a" * (tokens.MAX_TOKEN_BYTES + 1), f"The access token is longer than {tokens.MAX_TOKEN_BYTES} bytes."
    )


def test_only_the_three_members_of_our_header_are_accepted(db):
    refused(
        forge.site_signed(claims(), header=forge.site_header(cty="JWT")),
        'The access token\'s header has the unexpected member "cty".',
    )


@pytest.mark.parametrize("alg", ["PS256", "HS256", "none", "ES384"])
def test_algorithms_that_never_sign_access_tokens_are_refused(db, alg):
    refused(
        forge.site_signed(claims(), header=forge.site_header(alg=alg)),
        "The access token's signing algorithm is not accepted.",
    )


@pytest.mark.parametrize("typ", [None, "JWT", "at+JWT+x", ""])
def test_typ_must_be_at_jwt(db, typ):
    header = forge.site_header(typ=typ) if typ is not None else forge.site_header(typ=None)
    refused(forge.site_signed(claims(), header=header), 'The access token must have typ "at+jwt" (RFC 9068).')


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_is_compared_case_insensitively(db, typ):
    assert verify(forge.site_signed(claims(), header=forge.site_header(typ=typ)))["jti"] == "jti-1"


def test_a_token_without_kid_is_refused(db):
    refused(
        forge.site_signed(claims(), header=forge.site_header(kid=None)),
        "The access token names no signing key (kid).",
    )


def test_a_token_naming_an_unknown_kid_is_refused(db):
    refused(
        forge.site_signed(claims(), header=forge.site_header(kid="no-such-key")),
        "The access token was signed by an unknown key.",
    )


def test_an_algorithm_other_than_the_keys_is_refused(db):
    kid, alg, _ = forge.site_key()
    other = "RS256" if alg != "RS256" else "ES256"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})
    if other == "ES256":  # the site signs with RSA: claim ES256 instead
        token = forge.site_signed(claims(), header=forge.site_header(alg="ES256"))
    refused(token, "The access token's algorithm does not match its key.")


def test_a_token_with_a_wrong_signature_is_refused(db):
    genuine = forge.site_signed(claims())
    head, payload, _ = genuine.split(".")
    other = forge.site_signed(claims(jti="other"))
    refused(f"{head}.{payload}.{other.split('.')[2]}", "The access token's signature is invalid.")


def test_claims_behind_a_genuine_signature_must_be_a_json_object(db):
    refused(forge.site_signed(b"[1, 2]"), "The access token's claims are not a JSON object.")


def test_verify_checks_the_claims_with_its_clock_and_leeway(db):
    token = forge.site_signed(claims(exp=NOW + 10))
    assert verify(token, now=NOW + 9)
    with pytest.raises(InvalidToken, match=r"^The access token has expired\.$"):
        verify(token, now=NOW + 10)
    assert verify(token, now=NOW + 15, leeway=6)
    with pytest.raises(InvalidToken, match="not meant for this resource"):
        verify(token, audience="http://elsewhere")
    assert verify(token, audience=None)


# -- build and sign ----------------------------------------------------------------------------


def test_build_claims_writes_the_rfc9068_claims():
    built = tokens.build_claims(
        issuer=ISSUER, client_id="c1", audience="https://api", scopes=["a", "b"], lifetime=300, now=NOW
    )
    jti = built.pop("jti")
    assert built == {
        "iss": ISSUER,
        "sub": "c1",
        "client_id": "c1",
        "aud": "https://api",
        "exp": NOW + 300,
        "iat": NOW,
        "scope": "a b",
    }
    assert len(jti) == 22  # 16 random bytes, base64url
    assert tokens.new_jti() != tokens.new_jti()


def test_signed_token_has_the_site_header_and_verifies(db):
    token = tokens.sign(claims())
    header = jwt.get_unverified_header(token)
    kid, alg, _ = forge.site_key()
    assert header == {"alg": alg, "typ": "at+jwt", "kid": kid}
    assert verify(token) == claims()


def test_a_token_too_long_for_verifiers_is_never_issued(db):
    with pytest.raises(ImproperlyConfigured) as raised:
        tokens.sign(claims(extra="x" * tokens.MAX_TOKEN_BYTES))
    message = str(raised.value)
    assert message.startswith("An access token would be ")
    assert message.endswith(
        f" bytes, over the {tokens.MAX_TOKEN_BYTES} verifiers accept; "
        "OAUTH_CC['CLAIMS_HOOK'] adds too much to it."
    )


def test_a_token_of_exactly_the_limit_is_issued_and_one_byte_over_is_not(db, monkeypatch):
    length = len(tokens.sign(claims()))  # fixed claims and header: every signature gives this length

    monkeypatch.setattr(tokens, "MAX_TOKEN_BYTES", length)
    assert len(tokens.sign(claims())) == length

    monkeypatch.setattr(tokens, "MAX_TOKEN_BYTES", length - 1)
    with pytest.raises(ImproperlyConfigured) as raised:
        tokens.sign(claims())
    assert str(raised.value) == (
        f"An access token would be {length} bytes, over the {length - 1} verifiers accept; "
        "OAUTH_CC['CLAIMS_HOOK'] adds too much to it."
    )
