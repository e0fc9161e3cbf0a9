"""oauth_cc.common.jws: the one strict parser of JWS compact serialization, rule by rule and sentence.

Each refusal is checked by its exact message (what the sender is told), so a test cannot pass
because an earlier rule refused the input for another reason.
"""

from __future__ import annotations

import base64
import json

import pytest
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from oauth_cc.common import jws
from oauth_cc.common.jws import HeaderPolicy, MalformedJWS

STRICT = HeaderPolicy(accepted=frozenset({"alg", "typ", "kid"}), ignore_unknown=False)
LENIENT = HeaderPolicy(accepted=frozenset({"alg", "kid", "typ", "cty"}), ignore_unknown=True)
WHAT = "The token"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def token(header: object = None, payload: object = None, signature: bytes = b"sig") -> str:
    header = {"alg": "ES256", "kid": "k1", "typ": "at+jwt"} if header is None else header
    payload = {"sub": "x"} if payload is None else payload
    return f"{b64json(header)}.{b64json(payload)}.{b64(signature)}"


def refused(value: object, message: str, *, policy: HeaderPolicy = STRICT, max_bytes: int = 8192) -> None:
    with pytest.raises(MalformedJWS) as raised:
        jws.parse(value, policy=policy, max_bytes=max_bytes, what=WHAT)
    assert str(raised.value) == message


NOT_COMPACT = (
    "The token is not a well-formed JWT: it must be a JWS in compact serialization, "
    "three base64url segments separated by dots."
)


@pytest.mark.parametrize("value", [None, 123, b"a.b.c", ["a", "b", "c"]])
def test_non_string_is_refused(value):
    refused(value, "The token is not a string.")


def test_a_token_longer_than_the_limit_is_refused_and_one_at_the_limit_is_parsed():
    value = token()
    refused(value, f"The token is longer than {len(value) - 1} bytes.", max_bytes=len(value) - 1)
    assert jws.parse(value, policy=STRICT, max_bytes=len(value), what=WHAT).alg == "ES256"


@pytest.mark.parametrize("value", ["a.b", "a.b.c.d", ".b.c", "a..c", "", "abc", "a.b.c.d.e"])
def test_anything_but_three_segments_with_header_and_payload_is_refused(value):
    refused(value, NOT_COMPACT)


def test_an_empty_signature_segment_parses_so_that_its_algorithm_is_refused():
    parsed = jws.parse(token(signature=b""), policy=STRICT, max_bytes=8192, what=WHAT)
    assert parsed.signature == b""


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda h, p, s: f"{h}=.{p}.{s}", "not base64url"),
        (lambda h, p, s: f"{h}.{p}+.{s}", "not base64url"),
        (lambda h, p, s: f"{h}.{p}.{s}/", "not base64url"),
        (lambda h, p, s: f"{h}.{p}.{s} ", "not base64url"),
        (lambda h, p, s: f"{h}.{p}.A", "not base64url"),  # length % 4 == 1
        (lambda h, p, s: f"{h}.{p}.AB", "not canonical base64url"),  # unused bits set
    ],
)
def test_each_segment_is_strict_canonical_base64url(mangle, reason):
    header, payload, signature = token().split(".")
    refused(
        mangle(header, payload, signature),
        f"The token is not a well-formed JWT: a segment is {reason} (JWS compact serialization, RFC 7515).",
    )


def test_b64url_decode_rules():
    assert jws.b64url_decode("") == b""
    assert jws.b64url_decode("QQ") == b"A"
    assert jws.b64url_decode("QUI") == b"AB"
    assert jws.b64url_decode("QUJD") == b"ABC"
    assert jws.b64url_decode("-_8") == b"\xfb\xff"
    for bad, message in [
        ("QQ==", "not base64url"),
        ("Q", "not base64url"),
        ("QR", "not canonical base64url"),
    ]:
        with pytest.raises(MalformedJWS) as raised:
            jws.b64url_decode(bad)
        assert str(raised.value) == message


def test_b64url_encode_has_no_padding():
    assert jws.b64url_encode(b"A") == "QQ"
    assert jws.b64url_encode(b"\xfb\xff") == "-_8"


def test_a_header_that_is_not_a_json_object_is_refused():
    refused(token(header=["alg"]), "The token's header is not a JSON object.")


def test_a_header_that_is_not_json_is_refused_with_the_decoders_reason():
    _, payload, signature = token().split(".")
    refused(f"{b64(b'{')}.{payload}.{signature}", "The token's header is not valid JSON.")


def test_the_header_is_bounded_in_size_and_depth():
    big = {"alg": "ES256", "x": "y" * jws.MAX_HEADER_BYTES}
    refused(
        token(header=big), f"The token's header is larger than {jws.MAX_HEADER_BYTES} bytes.", policy=LENIENT
    )
    deep = {"alg": "ES256", "x": [[[[1]]]]}
    refused(
        token(header=deep),
        f"The token's header is nested more than {jws.MAX_HEADER_DEPTH} levels deep.",
        policy=LENIENT,
    )
    assert jws.parse(token(header={"alg": "ES256", "x": [[[1]]]}), policy=LENIENT, max_bytes=8192, what=WHAT)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("jwk", {"kty": "EC"}, "carries its own key"),
        ("jku", "https://evil.example/jwks", "points at a key URL"),
        ("x5u", "https://evil.example/cert", "points at a certificate URL"),
        ("x5c", ["MII"], "carries its own certificate"),
        ("crit", ["exp"], "demands extensions this server does not support"),
        ("crit", [], "demands extensions this server does not support"),
        ("b64", False, "changes how the payload is encoded (RFC 7797)"),
        ("zip", "DEF", "asks for compression"),
        ("enc", "A128GCM", "is a JWE header"),
    ],
)
@pytest.mark.parametrize("policy", [STRICT, LENIENT], ids=["strict", "lenient"])
def test_members_that_bring_a_key_or_an_extension_are_refused_under_any_policy(name, value, reason, policy):
    refused(
        token(header={"alg": "ES256", name: value}),
        f'The token\'s header has "{name}", which {reason}; it is not accepted.',
        policy=policy,
    )


def test_unknown_members_are_refused_by_a_strict_policy_and_ignored_by_a_lenient_one():
    header = {"alg": "ES256", "x-extra": 1}
    refused(token(header=header), 'The token\'s header has the unexpected member "x-extra".')
    assert jws.parse(token(header=header), policy=LENIENT, max_bytes=8192, what=WHAT).header["x-extra"] == 1


def test_a_long_unknown_member_name_is_shortened_in_the_message():
    name = "n" * 41
    refused(
        token(header={"alg": "ES256", name: 1}),
        f'The token\'s header has the unexpected member "{"n" * 40}...".',
    )
    name40 = "m" * 40
    refused(
        token(header={"alg": "ES256", name40: 1}),
        f'The token\'s header has the unexpected member "{name40}".',
    )


@pytest.mark.parametrize("name", ["alg", "typ", "kid"])
@pytest.mark.parametrize("value", [1, None, ["ES256"], {"a": "b"}, True])
def test_accepted_members_must_be_strings(name, value):
    header = {"alg": "ES256", name: value}
    refused(token(header=header), f'The token\'s header "{name}" is not a string.')


def test_a_lenient_policy_type_checks_its_accepted_members_too():
    refused(
        token(header={"alg": "ES256", "cty": 5}), 'The token\'s header "cty" is not a string.', policy=LENIENT
    )


def test_a_header_without_alg_is_refused():
    refused(token(header={"typ": "at+jwt", "kid": "k"}), 'The token\'s header has no "alg".')


def test_an_empty_kid_is_refused():
    refused(token(header={"alg": "ES256", "kid": ""}), 'The token\'s header "kid" is empty.')


def test_a_parsed_jws_keeps_exactly_what_was_sent():
    header = {"alg": "ES256", "kid": "k1", "typ": "at+jwt"}
    value = token(header=header, payload={"a": 1}, signature=b"\x01\x02")
    parsed = jws.parse(value, policy=STRICT, max_bytes=8192, what=WHAT)

    assert dict(parsed.header) == header
    assert (parsed.alg, parsed.kid, parsed.typ) == ("ES256", "k1", "at+jwt")
    assert parsed.signing_input == value.rsplit(".", 1)[0].encode("ascii")
    assert parsed.payload == b'{"a":1}'
    assert parsed.signature == b"\x01\x02"
    with pytest.raises(TypeError):
        parsed.header["alg"] = "none"  # type: ignore[index]


def test_kid_and_typ_are_none_when_absent():
    parsed = jws.parse(token(header={"alg": "ES256"}), policy=STRICT, max_bytes=8192, what=WHAT)
    assert parsed.kid is None
    assert parsed.typ is None


# -- claims ------------------------------------------------------------------------------------


def _parsed(payload: bytes) -> jws.CompactJWS:
    return jws.parse(f"{b64json({'alg': 'ES256'})}.{b64(payload)}.", policy=STRICT, max_bytes=8192, what=WHAT)


def test_claims_are_the_payloads_json_object():
    assert jws.claims(_parsed(b'{"a": [1, 2]}'), max_bytes=100, what=WHAT) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[1]", "The token's claims are not a JSON object."),
        (b'"s"', "The token's claims are not a JSON object."),
        (b"{", "The token's claims is not valid JSON."),
        (b'{"a":1,"a":2}', 'The token\'s claims is not valid JSON: the member "a" appears more than once.'),
        (b"\xff{}", "The token's claims is not UTF-8."),
    ],
)
def test_claims_that_are_not_a_json_object_are_refused(payload, message):
    with pytest.raises(MalformedJWS) as raised:
        jws.claims(_parsed(payload), max_bytes=100, what=WHAT)
    assert str(raised.value) == message


def test_claims_are_bounded_by_their_own_limit():
    with pytest.raises(MalformedJWS) as raised:
        jws.claims(_parsed(b'{"a": "' + b"x" * 100 + b'"}'), max_bytes=100, what=WHAT)
    assert str(raised.value) == "The token's claims is larger than 100 bytes."


def test_claims_of_the_default_depth_bound():
    deep = b'{"a":' + b"[" * 16 + b"]" * 16 + b"}"
    with pytest.raises(MalformedJWS) as raised:
        jws.claims(_parsed(deep), max_bytes=1000, what=WHAT)
    assert str(raised.value) == "The token's claims is nested more than 16 levels deep."
    ok = b'{"a":' + b"[" * 15 + b"]" * 15 + b"}"
    assert jws.claims(_parsed(ok), max_bytes=1000, what=WHAT)


# -- signatures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_key() -> JWK:
    return JWK.generate(kty="EC", crv="P-256")


def _signed(key: JWK, alg: str, payload: bytes = b'{"a":1}') -> jws.CompactJWS:
    signer = JWS(payload)
    signer.add_signature(key, alg=alg, protected=json.dumps({"alg": alg}))
    return jws.parse(signer.serialize(compact=True), policy=STRICT, max_bytes=8192, what=WHAT)


def test_a_genuine_signature_verifies_only_for_an_allowed_algorithm(ec_key):
    parsed = _signed(ec_key, "ES256")
    public = JWK(**ec_key.export_public(as_dict=True))

    assert jws.verify_signature(parsed, public, ("ES256",)) is True
    assert jws.verify_signature(parsed, public, ("RS256", "EdDSA")) is False
    assert jws.verify_signature(parsed, public, ()) is False


def test_a_signature_by_another_key_does_not_verify(ec_key):
    other = JWK.generate(kty="EC", crv="P-256")
    assert jws.verify_signature(_signed(other, "ES256"), ec_key, ("ES256",)) is False


def test_a_key_of_the_wrong_type_does_not_verify(ec_key):
    rsa = JWK.generate(kty="RSA", size=2048)
    assert jws.verify_signature(_signed(ec_key, "ES256"), rsa, ("ES256",)) is False


def test_a_signature_of_the_wrong_length_is_refused_before_verification(ec_key):
    genuine = _signed(ec_key, "ES256")
    for signature in (genuine.signature + b"\x00", genuine.signature[:-1], b"\x00" + genuine.signature, b""):
        padded = jws.CompactJWS(
            header=genuine.header,
            alg=genuine.alg,
            kid=genuine.kid,
            typ=genuine.typ,
            signing_input=genuine.signing_input,
            payload=genuine.payload,
            signature=signature,
        )
        assert jws.verify_signature(padded, ec_key, ("ES256",)) is False


def test_the_signature_covers_the_signing_input(ec_key):
    genuine = _signed(ec_key, "ES256")
    altered = jws.CompactJWS(
        header=genuine.header,
        alg=genuine.alg,
        kid=genuine.kid,
        typ=genuine.typ,
        signing_input=genuine.signing_input + b"x",
        payload=genuine.payload,
        signature=genuine.signature,
    )
    assert jws.verify_signature(altered, ec_key, ("ES256",)) is False


def test_an_algorithm_outside_the_table_never_verifies(ec_key):
    genuine = _signed(ec_key, "ES256")
    hs = jws.CompactJWS(
        header={"alg": "HS256"},
        alg="HS256",
        kid=None,
        typ=None,
        signing_input=genuine.signing_input,
        payload=genuine.payload,
        signature=genuine.signature,
    )
    assert jws.verify_signature(hs, ec_key, ("HS256",)) is False
