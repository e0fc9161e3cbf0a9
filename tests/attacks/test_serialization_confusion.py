"""RFC 8725 §2.8/§3.1-ish: one token, one serialization, one spelling.

An access token is accepted only as a JWS in compact serialization whose three segments are
strict, canonical base64url. Anything else, including the JWS JSON serialization of a
genuine token, is refused before its claims are read; the claims always come from the bytes
whose signature was verified.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from oauth_cc.common.verification import verified_tokens
from oauth_cc.models import RevokedToken
from tests.conftest import form_post
from tests.helpers import token_claims

from . import expect
from .conftest import INTROSPECT, REVOKE
from .forge import b64, dumps, json_smuggled, site_signed

NOT_COMPACT = "not a well-formed JWT"


def forged_claims(victim_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "http://testserver",
        "sub": victim_id,
        "client_id": victim_id,
        "aud": "http://testserver",
        "exp": now + 3600,
        "iat": now,
        "jti": "forged-jti",
        "scope": "reports:read reports:write",
        **extra,
    }


# -- the claims swap behind a genuine signature (the critical forgery) -----------------------


def test_json_serialization_smuggling_forged_claims_is_refused_everywhere(
    attacker, victim, at_every_door, unchanged
):
    token = json_smuggled(attacker.token, forged_claims(victim.client_id))
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, NOT_COMPACT)


def test_smuggling_behind_an_expired_token_is_refused(client, attacker, victim, unchanged):
    expired = site_signed(token_claims(attacker.client_id, iat=1_000_000, exp=1_000_600))
    token = json_smuggled(expired, forged_claims(victim.client_id))
    with unchanged():
        response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    expect.invalid_token(response, NOT_COMPACT)


def test_smuggled_revocation_cannot_revoke_another_clients_token(client, attacker, victim):
    victims_jti = jwt.decode(victim.token, options={"verify_signature": False})["jti"]
    token = json_smuggled(attacker.token, forged_claims(attacker.client_id, jti=victims_jti))

    response = form_post(client, REVOKE, {"token": token}, **attacker.basic)

    expect.revocation_ignored(response)
    assert not RevokedToken.objects.exists()
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {victim.token}").status_code == 200


def test_smuggled_token_is_not_active_at_introspection(client, attacker, victim, gateway):
    token = json_smuggled(attacker.token, forged_claims(victim.client_id))
    expect.inactive(form_post(client, INTROSPECT, {"token": token}, **gateway.basic))


@pytest.mark.parametrize("form", ["flattened", "general"])
def test_json_serialization_of_a_genuine_token_is_refused(attacker, at_every_door, unchanged, form):
    header, payload, signature = attacker.token.split(".")
    if form == "flattened":
        document = {"protected": header, "payload": payload, "signature": signature}
    else:
        document = {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
    with unchanged():
        responses = at_every_door(json.dumps(document, separators=(",", ":")))
    expect.refused_everywhere(responses, NOT_COMPACT)


# -- segments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t + ".", id="trailing-dot"),
        pytest.param(lambda t: "." + t, id="leading-dot"),
        pytest.param(lambda t: t + ".e30", id="four-segments"),
        pytest.param(lambda t: t + ".e30.e30", id="five-segments-like-JWE"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-segments"),
        pytest.param(lambda t: "." + t.split(".", 1)[1], id="empty-header"),
        pytest.param(lambda t: t.split(".")[0] + ".." + t.split(".")[2], id="empty-payload"),
    ],
)
def test_wrong_number_of_segments_is_refused(attacker, at_every_door, unchanged, mangle):
    with unchanged():
        responses = at_every_door(mangle(attacker.token))
    expect.refused_everywhere(responses, NOT_COMPACT)


# -- strict base64url ------------------------------------------------------------------------


def _insert(token: str, segment: int, text: str, *, at_end: bool = False) -> str:
    parts = token.split(".")
    parts[segment] = parts[segment] + text if at_end else parts[segment][:5] + text + parts[segment][5:]
    return ".".join(parts)


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("stray", ["!", "=", "+", "/", "%3D", " ", "\t", "é", "\u200b"])
def test_stray_characters_in_any_segment_are_refused(attacker, at_every_door, unchanged, segment, stray):
    with unchanged():
        responses = at_every_door(_insert(attacker.token, segment, stray))
    # A space or tab splits the header value: that is a malformed request (400), not a token.
    if stray in (" ", "\t"):
        for door in ("read", "write"):
            assert responses[door].status_code == 400
            assert 'error="invalid_request"' in responses[door]["WWW-Authenticate"]
        return
    expect.refused_everywhere(responses, NOT_COMPACT)


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_padding_on_any_segment_is_refused(attacker, at_every_door, unchanged, segment):
    parts = attacker.token.split(".")
    parts[segment] += "=" * (-len(parts[segment]) % 4 or 4)
    with unchanged():
        responses = at_every_door(".".join(parts))
    expect.refused_everywhere(responses, NOT_COMPACT)


def _non_canonical(segment: str) -> str | None:
    """The same bytes with a non-zero unused bit in the last character, or None if it has none."""
    unused_bits = {2: 4, 3: 2}.get(len(segment) % 4)
    if unused_bits is None:
        return None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    value = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[value | 1]  # lowest bit is always an unused one here


def test_non_canonical_base64url_is_refused_and_does_not_fill_the_memo(client, make_client, token_for):
    application, secret = make_client("spelling", scopes=["reports:read"])
    # Find a token whose segments leave unused bits (most do; issue a few to be sure).
    for _ in range(20):
        token = token_for(application, secret, scope="reports:read")["access_token"]
        variants = [_non_canonical(part) for part in token.split(".")]
        if any(variants):
            break
    assert any(variants), "no token with unused bits was issued"
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert len(verified_tokens) == 1

    for index, variant in enumerate(variants):
        if variant is None:
            continue
        parts = token.split(".")
        parts[index] = variant
        respelled = ".".join(parts)
        assert respelled != token
        response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {respelled}")
        expect.invalid_token(response, "not canonical base64url")
    # One token, one memo entry: re-spellings are refused before they could be remembered.
    assert len(verified_tokens) == 1


def test_standard_base64_alphabet_is_refused(attacker, at_every_door, unchanged):
    header = b64(dumps({"alg": "ES256", "typ": "at+jwt", "kid": "a" * 40 + "??>"}))
    standard = header.replace("-", "+").replace("_", "/")
    parts = attacker.token.split(".")
    token = ".".join([standard if standard != header else parts[0] + "+", parts[1], parts[2]])
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, NOT_COMPACT)


def test_impossible_base64_length_is_refused(attacker, at_every_door, unchanged):
    parts = attacker.token.split(".")
    # No byte string encodes to a length of 4n+1 characters.
    parts[2] = parts[2][: (len(parts[2]) // 4) * 4 + 1]
    assert len(parts[2]) % 4 == 1
    with unchanged():
        responses = at_every_door(".".join(parts))
    expect.refused_everywhere(responses, NOT_COMPACT)


def test_the_genuine_token_still_works_after_all_that(client, attacker):
    """The baseline the refusals above differ from."""
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {attacker.token}")
    assert response.status_code == 200
    assert response.json()["client_id"] == attacker.client_id
