"""Properties of ``oauth_cc.common.tokens.verify``: claims or ``InvalidToken``; what was signed comes back.

Tokens are signed with the site's real key: by the site itself (``tokens.sign``) for the round
trip, and by PyJWT over bytes these tests choose (``SiteKey.sign``) for hostile headers and
payloads that carry a *genuine* signature, so the checks after the signature are reached.

Every test here uses pytest-django's function-scoped ``db`` through ``site_key`` and suppresses
Hypothesis's ``function_scoped_fixture`` health check: the fixture creates the signing key once
per test and the examples only read it; ``verify`` writes nothing (a made-up ``kid`` costs a
rate-limited read of the key table, whose contents no example changes).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import event, example, given, note
from hypothesis import strategies as st

from oauth_cc.common import json_input, tokens
from oauth_cc.common.claims import MAX_NUMERIC_DATE
from oauth_cc.common.tokens import InvalidToken

from .conftest import ISSUER, SiteKey, db_examples
from .strategies import (
    EDGE_NUMBERS,
    EDIT_KINDS,
    TYP_VALUES,
    any_values,
    bit_flips,
    depth,
    header_bytes,
    header_values,
    is_standard_json,
    json_values,
    jws_shaped,
    nested_text,
    one_character_edit,
    payload_bytes,
    raw_json,
    same,
    unicode_text,
)

NOW = 1_700_000_000.0
LEEWAY = 30
REGISTERED = ("iss", "sub", "client_id", "aud", "exp", "iat", "nbf", "jti", "scope")


def verify(token: Any, now: float = NOW) -> dict[str, Any]:
    return tokens.verify(token, issuer=ISSUER, audience=ISSUER, leeway=LEEWAY, now=now)


def valid_claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "sub": "client-1",
        "client_id": "client-1",
        "aud": ISSUER,
        "exp": int(now) + 600,
        "iat": int(now),
        "jti": "jti-1",
        "scope": "reports:read",
    }
    claims.update(overrides)
    return claims


def number(value: Any) -> bool:
    """A NumericDate this site accepts: from the epoch to the end of year 9999."""
    if type(value) is int:
        return 0 <= value <= 253_402_300_799
    return type(value) is float and math.isfinite(value) and 0 <= value <= 253_402_300_799


def identifier(value: Any, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest and value.isprintable()


def claims_acceptable(claims: Any, now: float = NOW) -> bool:
    """RFC 9068 §4 for this site, written independently of oauth_cc.common.claims and .tokens."""
    if not isinstance(claims, dict):
        return False
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud
    return (
        claims.get("iss") == ISSUER
        and isinstance(auds, list)
        and bool(auds)
        and all(isinstance(a, str) and a for a in auds)
        and ISSUER in auds
        and number(claims.get("exp"))
        and claims["exp"] > now - LEEWAY
        and number(claims.get("iat"))
        and claims["iat"] <= now + LEEWAY
        and ("nbf" not in claims or (number(claims["nbf"]) and claims["nbf"] <= now + LEEWAY))
        and identifier(claims.get("jti"), 64)
        and identifier(claims.get("client_id"), 255)
        and identifier(claims.get("sub"), 255)
        and ("scope" not in claims or isinstance(claims["scope"], str))
    )


def header_acceptable(header: Any, site_key: SiteKey) -> bool:
    return (
        isinstance(header, dict)
        and set(header) == {"alg", "typ", "kid"}
        and header["alg"] == site_key.alg
        and header["kid"] == site_key.kid
        and isinstance(header["typ"], str)
        and header["typ"].lower() in ("at+jwt", "application/at+jwt")
    )


def verify_or_refuse(token: str) -> dict[str, Any] | None:
    try:
        return verify(token)
    except InvalidToken as exc:
        assert str(exc).startswith("The access token")
        return None


# -- 1. never an undocumented exception -------------------------------------------------------


@db_examples
@given(jws_shaped)
def test_verify_raises_only_invalid_token_for_any_string(site_key: SiteKey, token: str) -> None:
    assert verify_or_refuse(token) is None


@db_examples
@given(any_values)
def test_verify_raises_only_invalid_token_for_any_non_string(site_key: SiteKey, value: Any) -> None:
    if not isinstance(value, str):
        with pytest.raises(InvalidToken):
            verify(value)


HEADER_OVERRIDES = ("alg", "typ", "kid", "cty", "jwk", "crit", "x")
DELETE = object()


@db_examples
@given(
    st.one_of(
        st.just({}),
        st.fixed_dictionaries({}, optional={"typ": st.sampled_from(TYP_VALUES), "kid": st.just(DELETE)}),
        st.dictionaries(st.sampled_from(HEADER_OVERRIDES), st.one_of(st.just(DELETE), header_values)),
    ),
)
@example({"typ": "AT+JWT"})
@example({"typ": None})
@example({"alg": "none"})
@example({"alg": "HS256"})
@example({"kid": DELETE})
@example({"cty": "JWT"})
def test_verify_of_a_site_signed_token_accepts_exactly_the_site_header(
    site_key: SiteKey, overrides: dict[str, Any]
) -> None:
    """The site's header with members replaced, added or removed, under a genuine signature."""
    header = {**site_key.header(), **overrides}
    header = {name: value for name, value in header.items() if value is not DELETE}
    token = site_key.sign(header, valid_claims())
    result = verify_or_refuse(token)
    expected = header_acceptable(header, site_key) and is_standard_json(header)
    event(f"header: {'valid' if expected else 'invalid'}")
    assert (result is not None) == expected, header


@db_examples
@given(header_bytes, payload_bytes)
def test_verify_of_site_signed_hostile_header_and_payload_bytes_raises_only_invalid_token(
    site_key: SiteKey, header: bytes, payload: bytes
) -> None:
    verify_or_refuse(site_key.sign(header, payload))


#: A value for one claim: any JSON value, the edge numbers, numbers around ``NOW``, and the
#: strings that matter here.
claim_values = st.one_of(
    json_values(6),
    st.sampled_from(EDGE_NUMBERS),
    st.integers(int(NOW) - 1000, int(NOW) + 1000),
    st.floats(NOW - 1000, NOW + 1000),
    st.sampled_from([ISSUER, ISSUER + "/", "", " ", [ISSUER], [ISSUER, ""], [], ["x", ISSUER], True]),
)


@db_examples
@given(
    st.one_of(
        # Plausible changes, about half of them valid ...
        st.dictionaries(
            st.sampled_from(["exp", "iat", "nbf"]),
            st.one_of(st.integers(int(NOW) - 100, int(NOW) + 100), st.floats(NOW - 100, NOW + 100)),
        ),
        st.dictionaries(
            st.sampled_from(["jti", "sub", "client_id", "scope", "other", "nbf"]),
            st.one_of(unicode_text(max_size=5), st.just(DELETE)),
        ),
        # ... and anything at all.
        st.dictionaries(
            st.sampled_from((*REGISTERED, "other")),
            st.one_of(claim_values, st.just(DELETE)),
            min_size=1,
            max_size=3,
        ),
    )
)
@example({"exp": NOW - LEEWAY})
@example({"exp": NOW - LEEWAY + 0.5})
@example({"iat": NOW + LEEWAY + 1})
@example({"nbf": NOW + LEEWAY})
@example({"exp": True})
@example({"exp": 2**53 + 1})
@example({"exp": float("nan")})
@example({"aud": [ISSUER, ""]})
@example({"scope": DELETE})
@example({"jti": ""})
def test_verify_of_site_signed_claims_accepts_exactly_the_valid_ones(
    site_key: SiteKey, changes: dict[str, Any]
) -> None:
    """Valid claims with some replaced or removed, under a genuine signature: ``verify``
    agrees with an independent statement of the rules, and returns exactly what was signed."""
    claims = {name: value for name, value in {**valid_claims(), **changes}.items() if value is not DELETE}
    note(repr(claims))
    result = verify_or_refuse(site_key.sign(site_key.header(), claims))
    expected = claims_acceptable(claims) and is_standard_json(claims)
    event(f"claims: {'valid' if expected else 'invalid'}")
    assert (result is not None) == expected
    if result is not None:
        assert same(result, claims)


@db_examples
@given(raw_json)
@example('{"iss":"http://testserver","iss":"http://testserver"}')
@example('{"exp":NaN}')
@example('{"exp":1e999}')
def test_verify_of_site_signed_raw_json_payloads_returns_acceptable_claims_or_raises_invalid_token(
    site_key: SiteKey, payload: str
) -> None:
    result = verify_or_refuse(site_key.sign(site_key.header(), payload.encode("utf-8")))
    if result is not None:
        assert claims_acceptable(result)


@db_examples
@given(
    st.integers(json_input.MAX_DEPTH, 3000),
    st.sampled_from("[{"),
    st.booleans(),
    st.sampled_from(["header", "payload"]),
)
@example(3000, "[", True, "payload")
@example(3000, "{", True, "header")
def test_verify_of_deeply_nested_site_signed_json_raises_only_invalid_token(
    site_key: SiteKey, depth_: int, opener: str, balanced: bool, where: str
) -> None:
    """Nested beyond the bounds (4 levels for a header, 16 for claims), up to thousands deep."""
    deep = nested_text(depth_, '"\\u00e9"', opener, balanced)
    if where == "header":
        token = site_key.sign('{"a":' + deep + "," + json.dumps(site_key.header())[1:], valid_claims())
    else:
        token = site_key.sign(site_key.header(), '{"a":' + deep + "," + json.dumps(valid_claims())[1:])
    with pytest.raises(InvalidToken):
        verify(token)


# -- 2. round trip ------------------------------------------------------------------------------

scope_names = st.text(st.characters(exclude_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=12)
extra_claims = st.dictionaries(
    unicode_text(max_size=10).filter(lambda name: name not in REGISTERED), json_values(8), max_size=5
)


@db_examples
@given(
    issuer=unicode_text(min_size=1, max_size=30),
    # A client_id is printable (clients are refused otherwise at authentication).
    client_id=unicode_text(min_size=1, max_size=40).filter(str.isprintable),
    audience=unicode_text(min_size=1, max_size=30),
    scopes=st.lists(scope_names, max_size=6),
    lifetime=st.integers(1, 10**8),
    # exp = now + lifetime stays within the NumericDate range (the end of year 9999).
    now=st.one_of(st.integers(0, MAX_NUMERIC_DATE - 10**8), st.just(int(NOW))),
    extra=extra_claims,
)
def test_a_site_signed_token_verifies_and_gives_back_exactly_the_claims_signed(
    site_key: SiteKey,
    issuer: str,
    client_id: str,
    audience: str,
    scopes: list[str],
    lifetime: int,
    now: int,
    extra: dict[str, Any],
) -> None:
    claims = tokens.build_claims(
        issuer=issuer, client_id=client_id, audience=audience, scopes=scopes, lifetime=lifetime, now=now
    )
    claims.update(extra)
    assert depth(claims) <= 16
    try:
        token = tokens.sign(claims)
    except ImproperlyConfigured:
        return  # longer than the site accepts, so never issued; see test_issuance
    for when in (now, now + lifetime - 1):
        result = tokens.verify(token, issuer=issuer, audience=audience, leeway=0, now=when)
        assert same(result, claims)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token, issuer=issuer, audience=audience, leeway=0, now=now + lifetime)


# -- 3. one changed character -------------------------------------------------------------------


def verify_or_refuse_now(token: str) -> dict[str, Any] | None:
    try:
        return verify(token, now=time.time())
    except InvalidToken:
        return None


@db_examples
@pytest.mark.parametrize("kind", EDIT_KINDS)
@given(data=st.data())
def test_any_one_character_edit_of_a_genuine_token_is_refused_with_invalid_token(
    access_token: str, kind: str, data: st.DataObject
) -> None:
    edited = data.draw(one_character_edit(access_token, kind), label="edited token")
    with pytest.raises(InvalidToken):
        verify(edited, now=time.time())


def test_flipping_any_bit_of_any_character_of_a_genuine_token_is_refused(access_token: str) -> None:
    """Exhaustive companion of the property above: every character, each of its six bits.

    The edits stay in the base64url alphabet, so each reaches the canonical-encoding check (last
    character of a segment) or the signature check (everything else).
    """
    now = time.time()
    edits = bit_flips(access_token)
    assert len(edits) == 6 * (len(access_token) - 2)  # every character but the two dots
    accepted = [edited for edited in edits if verify_or_refuse_now(edited) is not None]
    assert accepted == []
    assert verify(access_token, now=now)
