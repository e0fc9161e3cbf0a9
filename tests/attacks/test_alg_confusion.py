"""RFC 8725 §2.1/§3.1: the algorithm comes from the key, never from the token.

A token's ``alg`` must be the one pinned to the published key its ``kid`` names; ``none`` and
every HMAC variant are refused whatever the key, and a non-string ``alg`` is a malformed token
(it used to raise ``TypeError``: an HTML 500 at every protected view).
"""

from __future__ import annotations

import hashlib

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from oauth_cc.issuer import keys
from oauth_cc.issuer.keys import ensure_current_key
from tests.helpers import token_claims

from . import expect
from .forge import (
    b64,
    dumps,
    hmac_signed,
    public_key_encodings,
    sign_with,
    site_header,
    site_public_key,
    site_signed,
)

NOT_ACCEPTED = "signing algorithm is not accepted"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "none ", " none", "none\u0000"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_in_any_spelling_is_refused(db, at_every_door, unchanged, alg, signature):
    token = f"{b64(dumps(site_header(alg=alg)))}.{b64(dumps(token_claims()))}.{signature}"
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, NOT_ACCEPTED)


@pytest.mark.parametrize(
    ("alg", "digest"), [("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)]
)
@pytest.mark.parametrize("encoding", ["pem", "der", "jwk-json", "jwk-json-sorted", "x962-point"])
def test_hmac_keyed_with_the_public_key_is_refused(db, at_every_door, unchanged, alg, digest, encoding):
    secret = public_key_encodings(site_public_key(), ensure_current_key().public_jwk)[encoding]
    token = hmac_signed(secret, site_header(alg=alg), token_claims(), digest)
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, NOT_ACCEPTED)


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("PS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
        ("ES384", lambda: ec.generate_private_key(ec.SECP384R1())),
        ("ES512", lambda: ec.generate_private_key(ec.SECP521R1())),
    ],
)
def test_algorithm_other_than_the_keys_is_refused(db, at_every_door, unchanged, alg, make_key):
    # The kid names the site's ES256 key; the token claims another algorithm and is signed
    # with a key of that algorithm's type.
    token = sign_with(make_key(), alg, site_header(alg=alg), token_claims())
    reason = "does not match its key" if alg in ("RS256", "EdDSA") else NOT_ACCEPTED
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, reason)


def test_es256_claimed_for_an_rsa_site_key_is_refused(db, at_every_door, unchanged, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "SIGNING_ALGORITHM": "RS256"}
    keys.rotate()  # the next key (ES256, made before the change) signs; rotate once more
    result = keys.rotate()
    assert ensure_current_key().algorithm == "RS256"
    attacker_key = ec.generate_private_key(ec.SECP256R1())
    token = sign_with(attacker_key, "ES256", site_header(alg="ES256", kid=result.current_kid), token_claims())
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, "does not match its key")


@pytest.mark.parametrize(
    "alg",
    [["ES256"], {"ES256": True}, 256, None, True, ""],
    ids=["list", "object", "number", "null", "boolean", "empty"],
)
def test_non_string_or_empty_alg_is_a_malformed_token_not_a_500(db, at_every_door, unchanged, alg):
    header = {**site_header(), "alg": alg}
    token = site_signed(token_claims(), header=header)
    with unchanged():
        responses = at_every_door(token)
    reason = NOT_ACCEPTED if alg == "" else '"alg" is not a string'
    expect.refused_everywhere(responses, reason)


def test_missing_alg_is_refused(db, at_every_door, unchanged):
    token = site_signed(token_claims(), header=site_header(alg=None))
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, 'has no "alg"')


@pytest.mark.parametrize("alg", ["es256", "ES256 ", "ES-256", "ECDSA"])
def test_alg_must_match_exactly(db, at_every_door, unchanged, alg):
    token = site_signed(token_claims(), header=site_header(alg=alg))
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, NOT_ACCEPTED)


def test_signature_padded_to_another_length_is_refused(client, attacker):
    """An ES256 signature is exactly 64 bytes; R and S with leading zero bytes are the same numbers."""
    header, payload, signature = attacker.token.split(".")
    raw = jwt.utils.base64url_decode(signature)
    assert len(raw) == 64
    padded = b"\x00" + raw[:32] + b"\x00" + raw[32:]
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {header}.{payload}.{b64(padded)}")
    expect.invalid_token(response, "signature is invalid")
