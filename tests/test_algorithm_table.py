"""oauth_cc.common.algorithms: which key may verify which algorithm, and how long its signatures are.

Checked against keys made by jwcrypto and ``cryptography`` directly, so each rule of the table
(key type, curve, the key's own ``alg`` pin, exact signature length, RSA modulus size) is pinned.
"""

from __future__ import annotations

import pytest
from jwcrypto.jwk import JWK

from oauth_cc.common import algorithms
from oauth_cc.common.algorithms import ALGORITHMS


def _key(**members: str | int) -> JWK:
    return JWK.generate(**members)


@pytest.fixture(scope="module")
def keys() -> dict[str, JWK]:
    return {
        "rsa2048": _key(kty="RSA", size=2048),
        "rsa3072": _key(kty="RSA", size=3072),
        "p256": _key(kty="EC", crv="P-256"),
        "p384": _key(kty="EC", crv="P-384"),
        "ed25519": _key(kty="OKP", crv="Ed25519"),
        "ed448": _key(kty="OKP", crv="Ed448"),
        "x25519": _key(kty="OKP", crv="X25519"),
    }


@pytest.mark.parametrize(
    ("alg", "fitting", "not_fitting"),
    [
        ("ES256", ["p256"], ["p384", "rsa2048", "ed25519"]),
        ("RS256", ["rsa2048", "rsa3072"], ["p256", "ed25519"]),
        ("PS256", ["rsa2048"], ["p256", "ed448"]),
        ("EdDSA", ["ed25519", "ed448"], ["x25519", "p256", "rsa2048"]),
    ],
)
def test_fits_checks_key_type_and_curve(keys, alg, fitting, not_fitting):
    algorithm = ALGORITHMS[alg]
    for name in fitting:
        assert algorithm.fits(keys[name]) is True, name
    for name in not_fitting:
        assert algorithm.fits(keys[name]) is False, name


def test_fits_honours_the_keys_own_alg(keys):
    pinned = JWK(**{**keys["rsa2048"].export_public(as_dict=True), "alg": "PS256"})

    assert ALGORITHMS["PS256"].fits(pinned) is True
    assert ALGORITHMS["RS256"].fits(pinned) is False


@pytest.mark.parametrize(
    ("alg", "key", "length"),
    [("RS256", "rsa2048", 256), ("PS256", "rsa3072", 384), ("ES256", "p256", 64)],
)
def test_signature_length_of_rsa_and_ec(keys, alg, key, length):
    assert ALGORITHMS[alg].signature_length(keys[key]) == length


def test_signature_length_of_eddsa_depends_on_the_curve(keys):
    assert ALGORITHMS["EdDSA"].signature_length(keys["ed25519"]) == 64
    assert ALGORITHMS["EdDSA"].signature_length(keys["ed448"]) == 114


def test_algorithms_for_key_type_in_table_order():
    assert algorithms.algorithms_for_key_type("RSA") == ("RS256", "PS256")
    assert algorithms.algorithms_for_key_type("EC") == ("ES256",)
    assert algorithms.algorithms_for_key_type("OKP") == ("EdDSA",)
    assert algorithms.algorithms_for_key_type("oct") == ()


def test_curves_for_key_type():
    assert algorithms.curves_for_key_type("RSA") is None
    assert algorithms.curves_for_key_type("EC") == ("P-256",)
    assert algorithms.curves_for_key_type("OKP") == ("Ed25519", "Ed448")
    assert algorithms.curves_for_key_type("oct") == ()


@pytest.mark.parametrize(
    ("alg", "kty", "crv"), [("ES256", "EC", "P-256"), ("RS256", "RSA", None), ("EdDSA", "OKP", "Ed25519")]
)
def test_generate_key_makes_a_private_key_pinned_to_its_algorithm(alg, kty, crv):
    key = algorithms.generate_key(alg, kid="k1")

    assert key.get("kty") == kty
    assert key.get("crv") == crv
    assert key.get("alg") == alg
    assert key.get("kid") == "k1"
    assert key.has_private
    assert ALGORITHMS[alg].fits(key)
    if kty == "RSA":
        assert algorithms.rsa_key_bits(key) == 2048


@pytest.mark.parametrize("alg", ["PS256", "HS256", "none", "es256"])
def test_generate_key_refuses_algorithms_the_site_does_not_sign_with(alg):
    with pytest.raises(ValueError) as raised:
        algorithms.generate_key(alg)
    assert str(raised.value) == (f"Unsupported signing algorithm {alg!r}; use one of ES256, RS256, EdDSA.")


def test_rsa_key_bits_reads_the_modulus_size(keys):
    assert algorithms.rsa_key_bits(keys["rsa2048"]) == 2048
    assert algorithms.rsa_key_bits(keys["rsa3072"]) == 3072
    public = JWK(**keys["rsa3072"].export_public(as_dict=True))
    assert algorithms.rsa_key_bits(public) == 3072


def test_rsa_key_bits_of_a_key_that_cannot_verify_raises_value_error_with_the_reason(keys):
    encryption_only = JWK(**{**keys["rsa2048"].export_public(as_dict=True), "use": "enc"})

    with pytest.raises(ValueError) as raised:
        algorithms.rsa_key_bits(encryption_only)

    assert str(raised.value)
    assert "verify" in str(raised.value).lower() or "enc" in str(raised.value).lower()
    assert isinstance(raised.value.__cause__, Exception)
