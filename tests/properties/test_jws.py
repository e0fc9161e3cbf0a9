"""Properties of ``oauth_cc.common.jws``: parse, verify_signature and claims on attacker bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import event, example, given
from hypothesis import strategies as st
from jwcrypto.jwk import JWK

from oauth_cc.common import jws, tokens
from oauth_cc.common.jws import REFUSED_HEADER_PARAMETERS, CompactJWS, HeaderPolicy, MalformedJWS
from oauth_cc.issuer import assertions
from tests.attacks import forge

from .strategies import (
    ALG_VALUES,
    any_values,
    depth,
    header_bytes,
    header_dicts,
    is_standard_json,
    jws_shaped,
    payload_bytes,
)

POLICIES = {
    "access token": tokens.HEADER_POLICY,
    "client assertion": assertions.HEADER_POLICY,
    "strict, alg only": HeaderPolicy(accepted=frozenset({"alg"}), ignore_unknown=False),
}
policies = st.sampled_from(sorted(POLICIES))
max_bytes = st.one_of(st.just(8192), st.integers(0, 10_000))


def check_parsed(parsed: CompactJWS, token: str, policy: HeaderPolicy, limit: int) -> None:
    """What a successful parse promises, checked against the raw string independently."""
    assert isinstance(parsed, CompactJWS)
    assert len(token) <= limit
    header_segment, payload_segment, signature_segment = token.split(".")
    assert parsed.signing_input == f"{header_segment}.{payload_segment}".encode("ascii")
    assert parsed.payload == jws.b64url_decode(payload_segment)
    assert parsed.signature == jws.b64url_decode(signature_segment)
    assert dict(parsed.header) == json.loads(jws.b64url_decode(header_segment))
    assert not set(parsed.header) & set(REFUSED_HEADER_PARAMETERS)
    if not policy.ignore_unknown:
        assert set(parsed.header) <= policy.accepted
    for name in policy.accepted & set(parsed.header):
        assert isinstance(parsed.header[name], str)
    assert isinstance(parsed.alg, str) and parsed.alg == parsed.header["alg"]
    assert parsed.kid is None or (isinstance(parsed.kid, str) and parsed.kid)
    assert parsed.typ is None or isinstance(parsed.typ, str)


def parse_or_refuse(token: Any, policy_name: str, limit: int) -> CompactJWS | None:
    policy = POLICIES[policy_name]
    try:
        parsed = jws.parse(token, policy=policy, max_bytes=limit, what="The token")
    except MalformedJWS as exc:
        assert str(exc)
        event("parse: refused")
        return None
    check_parsed(parsed, token, policy, limit)
    event("parse: accepted")
    return parsed


@given(jws_shaped, policies, max_bytes)
@example("e30.e30.", "client assertion", 8192)  # {} header: no alg
@example("eyJhbGciOiJub25lIn0.e30.", "client assertion", 8192)  # alg none, empty signature
@example("eyJhbGciOiJub25lIn0.e30.", "access token", 4)  # too long
def test_parse_returns_a_checked_jws_or_raises_malformed_jws_for_any_string(
    token: str, policy_name: str, limit: int
) -> None:
    parse_or_refuse(token, policy_name, limit)


@given(any_values)
def test_parse_refuses_anything_that_is_not_a_string(value: Any) -> None:
    if isinstance(value, str):
        return
    with pytest.raises(MalformedJWS, match="not a string"):
        jws.parse(value, policy=tokens.HEADER_POLICY, max_bytes=8192, what="The token")


@given(header_bytes, payload_bytes, st.binary(max_size=130), policies)
def test_parse_of_valid_base64url_around_hostile_header_json_returns_or_raises_malformed_jws(
    header: bytes, payload: bytes, signature: bytes, policy_name: str
) -> None:
    token = ".".join(forge.b64(part) for part in (header, payload, signature))
    parse_or_refuse(token, policy_name, 64 * 1024)


@given(header_dicts, policies)
@example({"alg": "ES256", "crit": ["exp"]}, "client assertion")
@example({"alg": "ES256", "jwk": {"kty": "EC"}}, "client assertion")
@example({"alg": "ES256", "kid": ""}, "client assertion")
@example({"alg": ["ES256"]}, "client assertion")
@example({"alg": "ES256", "typ": None}, "access token")
def test_parse_accepts_a_header_exactly_when_the_policy_allows_each_member(
    header: dict[str, Any], policy_name: str
) -> None:
    """The header rules, written independently, decide acceptance; the parser agrees."""
    policy = POLICIES[policy_name]
    token = f"{forge.b64(json.dumps(header).encode())}.e30.AA"
    expected = (
        "alg" in header
        and not set(header) & set(REFUSED_HEADER_PARAMETERS)
        and (policy.ignore_unknown or set(header) <= policy.accepted)
        and all(isinstance(header[name], str) for name in policy.accepted & set(header))
        and header.get("kid") != ""
        # and the JSON limits: standard JSON, at most 2 KiB, at most 4 levels deep
        and is_standard_json(header)
        and len(json.dumps(header).encode()) <= jws.MAX_HEADER_BYTES
        and depth(header) <= jws.MAX_HEADER_DEPTH
    )
    parsed = parse_or_refuse(token, policy_name, 8192)
    assert (parsed is not None) == expected


# -- verify_signature: a bool, never an exception ------------------------------------------------


def _jwk(private_key: Any, **members: Any) -> JWK:
    key = JWK.from_pyca(private_key.public_key())
    if members:
        key = JWK(**{**json.loads(key.export_public()), **members})
    return key


_ES256 = ec.generate_private_key(ec.SECP256R1())
_P384 = ec.generate_private_key(ec.SECP384R1())
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ED25519 = ed25519.Ed25519PrivateKey.generate()
_ED448 = ed448.Ed448PrivateKey.generate()
#: (PyJWT private key or None, verifying JWK): signing with PyJWT, verifying with oauth_cc.
KEYS = {
    "ES256": (_ES256, _jwk(_ES256)),
    "P-384": (_P384, _jwk(_P384)),
    "RSA": (_RSA, _jwk(_RSA)),
    "RSA alg=PS256": (_RSA, _jwk(_RSA, alg="PS256")),
    "Ed25519": (_ED25519, _jwk(_ED25519)),
    "Ed448": (_ED448, _jwk(_ED448)),
}
#: PyJWT algorithm that each key can really sign with.
SIGNS_WITH = {
    "ES256": ("ES256",),
    "P-384": ("ES384",),
    "RSA": ("RS256", "PS256"),
    "RSA alg=PS256": ("RS256", "PS256"),
    "Ed25519": ("EdDSA",),
    "Ed448": ("EdDSA",),
}
#: Whether oauth_cc should accept a genuine signature: its own algorithm table, written out.
VALID = {
    ("ES256", "ES256"),
    ("RSA", "RS256"),
    ("RSA", "PS256"),
    ("RSA alg=PS256", "PS256"),
    ("Ed25519", "EdDSA"),
    ("Ed448", "EdDSA"),
}
allowed_sets = st.sets(st.sampled_from((*ALG_VALUES, "ES384", "HS256", "PS256")), max_size=5)


@given(header_bytes, payload_bytes, st.binary(max_size=600), st.sampled_from(sorted(KEYS)), allowed_sets)
def test_verify_signature_is_a_bool_for_any_parsed_jws_and_any_key(
    header: bytes, payload: bytes, signature: bytes, key_name: str, allowed: set[str]
) -> None:
    token = ".".join(forge.b64(part) for part in (header, payload, signature))
    parsed = parse_or_refuse(token, "client assertion", 64 * 1024)
    if parsed is not None:
        assert jws.verify_signature(parsed, KEYS[key_name][1], allowed) is False


@given(
    st.sampled_from(sorted(KEYS)),
    st.data(),
    header_dicts,
    payload_bytes,
    allowed_sets,
)
def test_verify_signature_accepts_a_genuine_signature_exactly_when_alg_is_allowed_and_fits_the_key(
    key_name: str, data: st.DataObject, extra_header: dict, payload: bytes, allowed: set[str]
) -> None:
    private_key, public_jwk = KEYS[key_name]
    signing_alg = data.draw(st.sampled_from(SIGNS_WITH[key_name]))
    if data.draw(st.booleans()):
        allowed = allowed | {signing_alg}
    # The header says what it likes; the signature is genuine under ``signing_alg``.
    claimed_alg = data.draw(st.one_of(st.just(signing_alg), st.sampled_from(ALG_VALUES)))
    # Members the policy ignores, with standard JSON values, so that most headers parse.
    ignored = POLICIES["client assertion"].accepted | set(REFUSED_HEADER_PARAMETERS)
    header = {k: v for k, v in extra_header.items() if k not in ignored and is_standard_json(v)}
    header["alg"] = claimed_alg
    token = forge.sign_with(private_key, signing_alg, header, payload)
    parsed = parse_or_refuse(token, "client assertion", 64 * 1024)
    if parsed is None:
        return
    expected = claimed_alg == signing_alg and claimed_alg in allowed and (key_name, claimed_alg) in VALID
    event(f"genuine signature: {'accepted' if expected else 'refused'}")
    assert jws.verify_signature(parsed, public_jwk, allowed) is expected


ES256_HEADER = forge.b64(b'{"alg":"ES256"}')


@given(payload_bytes.filter(bool))  # an empty segment is refused by parse itself
@example(b"[]")
@example(b'{"a":1,"a":2}')
@example(b'{"exp":NaN}')
@example(b"\xef\xbb\xbf{}")
def test_claims_returns_a_json_object_or_raises_malformed_jws(payload: bytes) -> None:
    token = f"{ES256_HEADER}.{forge.b64(payload)}.AA"
    parsed = jws.parse(token, policy=tokens.HEADER_POLICY, max_bytes=64 * 1024, what="The token")
    try:
        value = jws.claims(parsed, max_bytes=8192, what="The token")
    except MalformedJWS:
        return
    assert isinstance(value, dict)
    assert value == json.loads(payload)
