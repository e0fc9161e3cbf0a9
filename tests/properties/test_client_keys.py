"""Properties of ``oauth_cc.common.jwks_validation``: validating and reading a client's public JWK Set.

``validate_public_jwks`` (what an operator pastes, or a client's jwks_uri serves) raises only
``ValueError``; ``public_jwk`` returns a key or raises ``ValueError``; ``usable_keys`` never raises.
The documents are real public keys with members removed, replaced by values of any JSON type,
or added (private parts, instructions jwcrypto would obey), as well as random JSON.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from hypothesis import event, example, given
from hypothesis import strategies as st
from jwcrypto.jwk import JWK

from oauth_cc.common import jwks_validation
from oauth_cc.common.algorithms import ALGORITHMS

from .strategies import B64URL_ALPHABET, any_values, json_values

_KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "P-384": ec.generate_private_key(ec.SECP384R1()),
    "secp256k1": ec.generate_private_key(ec.SECP256K1()),
    "RSA-2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "RSA-1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "Ed25519": ed25519.Ed25519PrivateKey.generate(),
    "Ed448": ed448.Ed448PrivateKey.generate(),
    "X25519": x25519.X25519PrivateKey.generate(),
}
PUBLIC_JWKS = {
    name: JWK.from_pyca(key.public_key()).export_public(as_dict=True) for name, key in _KEYS.items()
}
PRIVATE_JWKS = {name: JWK.from_pyca(key).export_private(as_dict=True) for name, key in _KEYS.items()}
MEMBERS = (
    "kty",
    "kid",
    "use",
    "key_ops",
    "alg",
    "n",
    "e",
    "crv",
    "x",
    "y",
    "d",
    "k",
    "oth",
    "generate",
    "size",
    "x5c",
    "",
)
member_values = st.one_of(
    st.sampled_from(
        [
            *("RSA", "EC", "OKP", "oct", "P-256", "P-384", "Ed25519", "Ed448", "X25519", "sig", "enc"),
            *("ES256", "RS256", "PS256", "EdDSA", "HS256", "", "AQAB", "AA", "_w", "A"),
        ]
    ),
    st.lists(st.sampled_from(["verify", "sign", "encrypt", "deriveKey", "x"]), max_size=3),
    st.text(B64URL_ALPHABET, max_size=50),
    json_values(4),
    any_values,
)


@st.composite
def jwk_entries(draw: st.DrawFn) -> Any:
    """A real JWK (public, sometimes private) with members removed, replaced or added."""
    source = PRIVATE_JWKS if draw(st.integers(0, 9)) == 0 else PUBLIC_JWKS
    entry = dict(source[draw(st.sampled_from(sorted(source)))])
    if draw(st.booleans()):
        entry["kid"] = draw(st.one_of(st.text(max_size=8), st.just("k1"), any_values))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(MEMBERS))
        if draw(st.booleans()):
            entry.pop(name, None)
        else:
            entry[name] = draw(member_values)
    return entry


jwks_documents = st.one_of(
    st.builds(lambda keys: {"keys": keys}, st.lists(jwk_entries(), max_size=4)),
    st.builds(
        lambda keys, extra: {"keys": keys, **extra},
        st.lists(st.one_of(jwk_entries(), any_values), max_size=3),
        st.dictionaries(st.text(max_size=4), any_values, max_size=2),
    ),
    st.builds(
        lambda n: {"keys": [dict(PUBLIC_JWKS["ES256"], kid=f"k{i}") for i in range(n)]}, st.integers(49, 51)
    ),
    any_values,
    json_values(8),
)


def fits_some_algorithm(key: JWK) -> bool:
    return any(algorithm.fits(key) for algorithm in ALGORITHMS.values())


@given(jwk_entries(), st.booleans())
@example({**PUBLIC_JWKS["ES256"], "kid": "a", "e": "AQAB"}, True)  # a member of another key type
@example({**PUBLIC_JWKS["RSA-2048"], "kid": "a", "crv": "P-256"}, True)
@example({**PUBLIC_JWKS["ES256"], "kid": "a", "key_ops": ["verify", "verify"]}, True)
@example({**PUBLIC_JWKS["RSA-2048"], "kid": "a", "e": ""}, True)
@example({**PUBLIC_JWKS["ES256"], "kid": "a", "x": "AA"}, True)
@example({**PUBLIC_JWKS["Ed25519"], "kid": "a", "x": ""}, True)
@example({**PUBLIC_JWKS["ES256"], "kid": "a", "generate": "RSA", "size": 4096}, True)
def test_public_jwk_returns_a_verifying_key_or_raises_value_error(entry: Any, require_kid: bool) -> None:
    try:
        key = jwks_validation.public_jwk(entry, require_kid=require_kid)
    except ValueError as exc:
        assert str(exc)
        event("key: refused")
        return
    event("key: accepted")
    assert isinstance(key, JWK)
    assert not key.has_private
    assert fits_some_algorithm(key)
    assert {name for name in key.export_public(as_dict=True)} <= jwks_validation.PUBLIC_JWK_MEMBERS


@given(jwks_documents)
@example({"keys": [{**PUBLIC_JWKS["ES256"], "kid": "a", "e": "AQAB"}]})
def test_validate_public_jwks_returns_none_or_raises_value_error_for_any_document(document: Any) -> None:
    try:
        result = jwks_validation.validate_public_jwks(document)
    except ValueError as exc:
        assert str(exc)
        return
    event(f"valid set of {len(document['keys'])}")
    assert result is None
    # A set that passes validation is fully usable, one distinct kid per key.
    keys = jwks_validation.usable_keys(document)
    assert len(keys) == len(document["keys"]) <= jwks_validation.MAX_KEYS_PER_SET
    assert len({key.get("kid") for key in keys}) == len(keys)


@given(jwks_documents)
@example({"keys": [{**PUBLIC_JWKS["ES256"], "kid": "a", "e": "AQAB"}]})
def test_usable_keys_never_raises_and_gives_only_public_keys_that_fit_an_algorithm(document: Any) -> None:
    keys = jwks_validation.usable_keys(document)
    event(f"usable keys: {min(len(keys), 2)}")
    assert isinstance(keys, tuple)
    assert len(keys) <= jwks_validation.MAX_KEYS_PER_SET
    for key in keys:
        assert isinstance(key, JWK) and not key.has_private
        assert fits_some_algorithm(key)
