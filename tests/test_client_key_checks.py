"""What a private_key_jwt client may register as its public keys (``validate_public_jwks``,
``public_jwk``, ``usable_keys``, ``keys_for``), each refusal with the sentence an operator sees.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK

from oauth_cc.common.jwks_validation import public_jwk, usable_keys, validate_public_jwks
from oauth_cc.issuer import client_jwks_fetch
from oauth_cc.issuer.state import ClientRecord

from .assertion_helpers import generate_key


@pytest.fixture(scope="module")
def ec() -> dict[str, Any]:
    return generate_key("ES256", kid="ec-1").public_jwk()


@pytest.fixture(scope="module")
def rsa_public() -> dict[str, Any]:
    return generate_key("RS256", kid="rsa-1").public_jwk()


@pytest.fixture(scope="module")
def ed() -> dict[str, Any]:
    return generate_key("EdDSA", kid="ed-1").public_jwk()


def refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        call()
    assert str(raised.value) == message


@pytest.mark.parametrize("jwks", [None, [], "keys", {"keys": {}}, {"key": []}, {"keys": "x"}])
def test_a_jwks_must_be_an_object_with_a_keys_list(jwks):
    refused(lambda: validate_public_jwks(jwks), 'A JWKS must be a JSON object of the form {"keys": [ ... ]}.')


def test_a_jwks_must_have_a_key():
    refused(
        lambda: validate_public_jwks({"keys": []}),
        'This JWKS has no keys; add at least one public key to "keys".',
    )


def test_a_jwks_may_have_at_most_fifty_keys(ec):
    keys = [{**ec, "kid": f"k{n}"} for n in range(50)]
    assert validate_public_jwks({"keys": keys}) is None
    refused(
        lambda: validate_public_jwks({"keys": [*keys, {**ec, "kid": "k50"}]}),
        "This JWKS has more than 50 keys; register only the signing keys.",
    )


def test_two_keys_with_the_same_kid_are_refused(ec, ed):
    refused(
        lambda: validate_public_jwks({"keys": [ec, {**ed, "kid": "ec-1"}]}),
        'Two keys in this JWKS have the kid "ec-1"; give each key its own kid.',
    )
    assert validate_public_jwks({"keys": [ec, ed]}) is None


def test_each_key_of_a_jwks_is_checked(ec):
    refused(
        lambda: validate_public_jwks({"keys": [ec, {"kty": "EC", "crv": "P-256"}]}),
        'Key #2 of this JWKS has no "kid"; give every key a unique kid.',
    )


@pytest.mark.parametrize("entry", ["key", ["kty"], 1])
def test_a_key_must_be_an_object(entry):
    refused(lambda: public_jwk(entry, position=3), "Key #3 of this JWKS is not a JSON object.")


@pytest.mark.parametrize("kid", [None, "", 5])
def test_a_registered_key_needs_a_kid(ec, kid):
    entry = {**ec, "kid": kid} if kid is not None else {k: v for k, v in ec.items() if k != "kid"}
    refused(
        lambda: public_jwk(entry, position=2),
        'Key #2 of this JWKS has no "kid"; give every key a unique kid.',
    )


def test_a_published_key_without_kid_is_named_by_its_position(ec):
    entry = {k: v for k, v in ec.items() if k != "kid"}
    assert public_jwk(entry, position=4, require_kid=False).get("kid") is None
    refused(
        lambda: public_jwk({**entry, "crv": "P-384"}, position=4, require_kid=False),
        'Key "#4" uses curve P-384; use one of P-256 for kty EC.',
    )


def test_a_symmetric_key_is_refused():
    refused(
        lambda: public_jwk({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
        'Key "h" is a symmetric (kty "oct") key. Use an RSA, EC (P-256) or Ed25519 public key.',
    )


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_a_private_key_is_refused(ec, member):
    refused(
        lambda: public_jwk({**ec, member: "AQAB"}),
        "This JWKS contains a private key (kid ec-1). Paste only the public keys.",
    )


@pytest.mark.parametrize(("kty", "shown"), [("OKP2", "OKP2"), (None, "null"), (5, "5"), ("ec", "ec")])
def test_an_unusable_key_type_is_refused(ec, kty, shown):
    refused(
        lambda: public_jwk({**ec, "kty": kty}),
        f'Key "ec-1" has kty {shown}; use an RSA, EC (P-256) or Ed25519 public key.',
    )


@pytest.mark.parametrize(
    ("member", "value"), [("x", 5), ("use", ["sig"]), ("key_ops", "verify"), ("key_ops", [1])]
)
def test_a_malformed_member_is_refused(ec, member, value):
    refused(lambda: public_jwk({**ec, member: value}), f'Key "ec-1" has a malformed "{member}" member.')


def test_key_ops_may_be_a_list_of_strings(ec):
    assert public_jwk({**ec, "key_ops": ["verify"]}).get("kid") == "ec-1"


@pytest.mark.parametrize(
    ("crv", "message"),
    [
        ("P-384", 'Key "ec-1" uses curve P-384; use one of P-256 for kty EC.'),
        (None, 'Key "ec-1" uses curve null; use one of P-256 for kty EC.'),
    ],
)
def test_an_ec_key_must_be_on_p256(ec, crv, message):
    entry = {**ec, "crv": crv} if crv is not None else {k: v for k, v in ec.items() if k != "crv"}
    refused(lambda: public_jwk(entry), message)


def test_an_okp_key_must_be_ed25519_or_ed448(ed):
    refused(
        lambda: public_jwk({**ed, "crv": "X25519"}),
        'Key "ed-1" uses curve X25519; use one of Ed25519, Ed448 for kty OKP.',
    )


def test_a_keys_alg_must_be_one_its_type_can_verify(rsa_public, ec):
    refused(
        lambda: public_jwk({**rsa_public, "alg": "ES256"}),
        'Key "rsa-1" names alg ES256; a RSA key may name RS256 or PS256, or leave alg out.',
    )
    assert public_jwk({**rsa_public, "alg": "PS256"}).get("alg") == "PS256"
    assert public_jwk({**ec, "alg": "ES256"}).get("alg") == "ES256"


def test_a_key_whose_numbers_do_not_parse_is_refused_with_the_librarys_reason(ec):
    with pytest.raises(ValueError) as raised:
        public_jwk({**ec, "x": "AAAA"})
    reason = str(raised.value.__cause__)
    assert reason  # jwcrypto's sentence, e.g. "Invalid EC key. Point is not on the curve specified."
    assert str(raised.value) == f'Key "ec-1" is not a valid JWK: {reason.rstrip(".")}.'


def test_an_encryption_only_key_is_refused(ec):
    with pytest.raises(ValueError) as raised:
        public_jwk({**ec, "use": "enc"})
    reason = str(raised.value.__cause__)
    assert str(raised.value) == f'Key "ec-1" is not a valid JWK: {reason.rstrip(".")}.'


def test_a_member_of_another_key_type_is_refused_with_a_sentence_not_a_quoted_key(ec):
    with pytest.raises(ValueError) as raised:
        public_jwk({**ec, "n": "AQAB"})
    cause = raised.value.__cause__
    assert isinstance(cause, KeyError)
    assert str(raised.value) == f'Key "ec-1" is not a valid JWK: {str(cause.args[0]).rstrip(".")}.'
    assert '"' not in str(raised.value).split(": ", 1)[1]


def test_a_key_checked_alone_is_key_number_one():
    refused(lambda: public_jwk("not a key"), "Key #1 of this JWKS is not a JSON object.")


def _modulus_jwk(bits: int, kid: str) -> dict[str, Any]:
    """A public RSA JWK whose modulus has exactly ``bits`` bits (2**(bits-1) + 1: odd, enough to parse)."""
    n = 2 ** (bits - 1) + 1
    return {
        "kty": "RSA",
        "kid": kid,
        "n": base64.urlsafe_b64encode(n.to_bytes((bits + 7) // 8, "big")).rstrip(b"=").decode(),
        "e": "AQAB",
    }


@pytest.mark.parametrize(("bits", "accepted"), [(2047, False), (2048, True), (8192, True), (8193, False)])
def test_rsa_modulus_bounds_are_inclusive(bits, accepted):
    entry = _modulus_jwk(bits, f"rsa-{bits}")
    if accepted:
        assert public_jwk(entry).get("kid") == f"rsa-{bits}"
    else:
        refused(
            lambda: public_jwk(entry), f'Key "rsa-{bits}" is a {bits}-bit RSA key; use 2048 to 8192 bits.'
        )


def test_only_the_public_members_reach_the_key(ec):
    key = public_jwk({**ec, "x5c": ["MII"], "generate": "EC", "size": 4096})
    assert set(key.export_public(as_dict=True)) <= {"kty", "kid", "crv", "x", "y"}


def _rsa_jwk(bits: int, kid: str) -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return {**JWK.from_pyca(private.public_key()).export_public(as_dict=True), "kid": kid}


def test_rsa_keys_must_be_2048_to_8192_bits():
    refused(
        lambda: public_jwk(_rsa_jwk(1024, "small")),
        'Key "small" is a 1024-bit RSA key; use 2048 to 8192 bits.',
    )
    assert public_jwk(_rsa_jwk(2048, "ok")).get("kid") == "ok"


def test_usable_keys_skips_unusable_entries_and_reads_at_most_fifty(ec, ed):
    no_kid = {name: value for name, value in ed.items() if name != "kid"}
    document = {"keys": [{"kty": "oct", "k": "eA", "kid": "h"}, ec, "junk", ed, no_kid]}
    # A published key without kid is kept: it is tried when an assertion names no kid.
    assert [key.get("kid") for key in usable_keys(document)] == ["ec-1", "ed-1", None]
    many = {"keys": [{**ec, "kid": f"k{n}"} for n in range(60)]}
    assert len(usable_keys(many)) == 50
    assert usable_keys({"keys": "x"}) == ()
    assert usable_keys(["keys"]) == ()


def _record(**changes: Any) -> ClientRecord:
    base = ClientRecord(
        pk=1,
        client_id="c1",
        name="c1",
        is_active=True,
        grant_type="client-credentials",
        auth_method="private_key_jwt",
        allowed_scopes=frozenset(),
        default_scopes=(),
        access_token_lifetime=None,
        audiences=(),
        can_introspect=False,
        user_id=None,
        jwks=None,
        jwks_uri="",
    )
    return dataclasses.replace(base, **changes)


def test_keys_for_reads_an_inline_jwks_once_per_value(ec, ed, monkeypatch):
    client_jwks_fetch.reset()
    calls: list[Any] = []
    real = client_jwks_fetch.usable_keys
    monkeypatch.setattr(client_jwks_fetch, "usable_keys", lambda doc: calls.append(doc) or real(doc))

    first = client_jwks_fetch.keys_for(_record(jwks={"keys": [ec]}))
    again = client_jwks_fetch.keys_for(_record(jwks={"keys": [ec]}))
    changed = client_jwks_fetch.keys_for(_record(jwks={"keys": [ec, ed]}))

    assert again is first
    assert [key.get("kid") for key in changed] == ["ec-1", "ed-1"]
    assert len(calls) == 2


def test_the_inline_cache_keeps_its_own_copy_of_the_jwks(ec, ed):
    client_jwks_fetch.reset()
    jwks = {"keys": [ec]}
    client_jwks_fetch.keys_for(_record(jwks=jwks))
    jwks["keys"].append(ed)  # the caller's dict changes in place (an admin edit of the same object)

    assert [key.get("kid") for key in client_jwks_fetch.keys_for(_record(jwks=jwks))] == ["ec-1", "ed-1"]


def test_a_client_without_keys_has_none():
    assert client_jwks_fetch.keys_for(_record()) == ()
