"""RFC 9068 §4 and RFC 8725 §3.8-3.11: claims are checked even behind a genuine signature.

Every token here is signed with the site's own current key, so the signature verifies and
only the claim and header checks stand between it and the API. Tokens are built byte by byte
(:mod:`tests.attacks.forge`), so values that no well-behaved JWT library would write (NaN, a
duplicate member, a number too large for a float) are signed too.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import ISSUER, token_claims

from . import expect
from .forge import dumps, site_header, site_signed


def refused(at_every_door, unchanged, token: str, reason: str) -> None:
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, reason)


def test_baseline_a_token_signed_this_way_is_accepted(client, db):
    token = site_signed(token_claims("some-client"))
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response.json()["client_id"] == "some-client"


# -- issuer, audience, type -----------------------------------------------------------------


@pytest.mark.parametrize("iss", ["https://evil.example", ISSUER + "/", "HTTP://testserver", "", None])
def test_wrong_issuer_is_refused(db, at_every_door, unchanged, iss):
    claims = token_claims(iss=iss) if iss is not None else token_claims(iss=None)
    reason = (
        '"iss" claim is missing'
        if iss is None
        else ('"iss" claim is empty' if iss == "" else "issued by another issuer")
    )
    refused(at_every_door, unchanged, site_signed(claims), reason)


@pytest.mark.parametrize(
    "aud", ["https://api.other.example", ["https://api.other.example", "https://x.example"]]
)
def test_token_for_another_audience_is_refused_by_the_views_but_introspects_as_active(
    db, at_every_door, unchanged, aud
):
    """Introspection serves resource servers of every audience (RFC 7662 §4: the caller checks aud)."""
    with unchanged():
        responses = at_every_door(site_signed(token_claims(aud=aud)))
    expect.invalid_token(responses["read"], "not meant for this resource")
    expect.invalid_token(responses["write"], "not meant for this resource")
    introspected = responses["introspect"].json()
    assert introspected["active"] is True
    assert introspected["aud"] == aud
    # Revocation checks the owner: the attacker may not revoke another client's token.
    expect.invalid_request(responses["revoke"], "not issued to the authenticated client")


@pytest.mark.parametrize(
    ("aud", "reason"),
    [
        ([], '"aud" claim must be a string or a list of strings'),
        ([ISSUER, 1], '"aud" claim must be a string or a list of strings'),
        ("", '"aud" claim must be a string or a list of strings'),
        ({"aud": ISSUER}, '"aud" claim must be a string or a list of strings'),
    ],
)
def test_wrong_audience_is_refused(db, at_every_door, unchanged, aud, reason):
    refused(at_every_door, unchanged, site_signed(token_claims(aud=aud)), reason)


def test_audience_list_naming_this_site_is_accepted(client, db):
    token = site_signed(token_claims(aud=["https://api.other.example", ISSUER]))
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt ", "application/jwt", "", None, 1])
def test_type_other_than_at_jwt_is_refused(db, at_every_door, unchanged, typ):
    header = {**site_header(), "typ": typ} if typ is not None else site_header(typ=None)
    reason = '"typ" is not a string' if typ == 1 else 'must have typ "at+jwt"'
    refused(at_every_door, unchanged, site_signed(token_claims(), header=header), reason)


def test_critical_header_is_refused(db, at_every_door, unchanged):
    header = {**site_header(), "crit": ["exp"]}
    refused(at_every_door, unchanged, site_signed(token_claims(), header=header), '"crit"')


@pytest.mark.parametrize("member", ["cty", "x5t", "foo", "b64", "zip", "enc"])
def test_header_member_the_site_never_writes_is_refused(db, at_every_door, unchanged, member):
    header = {**site_header(), member: "x"}
    refused(at_every_door, unchanged, site_signed(token_claims(), header=header), f'"{member}"')


# -- time -------------------------------------------------------------------------------------


def test_expired_is_refused(db, at_every_door, unchanged):
    now = int(time.time())
    refused(at_every_door, unchanged, site_signed(token_claims(iat=now - 7200, exp=now - 3600)), "expired")


@pytest.mark.parametrize(("claim", "reason"), [("iat", "issued in the future"), ("nbf", "not valid yet")])
def test_future_iat_or_nbf_is_refused(db, at_every_door, unchanged, claim, reason):
    now = int(time.time())
    token = site_signed(token_claims(**{claim: now + 600}, exp=now + 1200))
    refused(at_every_door, unchanged, token, reason)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("NaN", "not valid JSON"),
        ("Infinity", "not valid JSON"),
        ("-Infinity", "not valid JSON"),
        ("1e400", "not a finite number"),
        ("1" + "0" * 400, "out of range"),
        ('"9999999999"', "not a number of seconds"),
        ("true", "not a number of seconds"),
        ("null", "not a number of seconds"),
        ("[9999999999]", "not a number of seconds"),
    ],
)
def test_non_finite_or_non_numeric_times_are_refused(db, at_every_door, unchanged, claim, raw, reason):
    """A NaN ``exp`` compares false with everything: it used to make a token that never expires."""
    claims = token_claims()
    claims[claim] = "__RAW__"
    payload = dumps(claims).replace(b'"__RAW__"', raw.encode())
    refused(at_every_door, unchanged, site_signed(payload), reason)


# -- identifiers -----------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["jti", "client_id", "sub", "iss", "exp", "iat"])
def test_missing_required_claim_is_refused(db, at_every_door, unchanged, claim):
    refused(
        at_every_door, unchanged, site_signed(token_claims(**{claim: None})), f'"{claim}" claim is missing'
    )


@pytest.mark.parametrize("claim", ["jti", "client_id", "sub"])
@pytest.mark.parametrize(
    "value", [123, ["x"], {"x": 1}, True, ""], ids=["int", "list", "object", "bool", "empty"]
)
def test_non_string_identifier_is_refused(db, at_every_door, unchanged, claim, value):
    reason = f'"{claim}" claim is empty' if value == "" else f'"{claim}" claim is not a string'
    refused(at_every_door, unchanged, site_signed(token_claims(**{claim: value})), reason)


@pytest.mark.parametrize("scope", [["reports:read"], 7, {"reports:read": True}])
def test_non_string_scope_is_refused(db, at_every_door, unchanged, scope):
    refused(at_every_door, unchanged, site_signed(token_claims(scope=scope)), '"scope" claim is not a string')


# -- ambiguity ---------------------------------------------------------------------------------


def test_duplicate_claim_is_refused(db, at_every_door, unchanged):
    """Two ``scope`` members: a parser that keeps the last one would grant reports:write."""
    payload = dumps(token_claims(scope="reports:read"))[:-1] + b',"scope":"reports:read reports:write"}'
    refused(at_every_door, unchanged, site_signed(payload), 'the member "scope" appears more than once')


def test_duplicate_header_member_is_refused(db, at_every_door, unchanged):
    header = dumps(site_header())[:-1] + b',"alg":"none"}'
    refused(
        at_every_door, unchanged, site_signed(token_claims(), header=header), '"alg" appears more than once'
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[1,2,3]", "claims are not a JSON object"),
        (b'"a string"', "claims are not a JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("\ufeff{}".encode(), "byte order mark"),
        (b'{"iss":"\\ud800"}', "unpaired UTF-16 surrogate"),
        (b"{", "not valid JSON"),
    ],
)
def test_claims_that_are_not_a_json_object_are_refused(db, at_every_door, unchanged, payload, reason):
    refused(at_every_door, unchanged, site_signed(payload), reason)


def test_utf16_encoded_claims_are_refused(db, at_every_door, unchanged):
    """``json.loads(bytes)`` would detect and accept UTF-16; RFC 7519 wants UTF-8."""
    refused(
        at_every_door, unchanged, site_signed(dumps(token_claims()).decode().encode("utf-16")), "not UTF-8"
    )
