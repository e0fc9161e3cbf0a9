"""Both sides: the one table of signing algorithms and the keys that may use them (RFC 7518 §3, RFC 8037).

Every rule about algorithms lives here: which algorithms sign access tokens, which are
accepted in client assertions, which key type and curve each needs, and how long its
signature is. Access-token verification, assertion verification, the client key checks,
key generation, the settings checks and the admin all read this table, so a change made
here reaches each of them and cannot miss a copy.

``none`` and the HMAC algorithms are absent on purpose: a JWS is only ever verified with an
asymmetric public key, so an "HMAC keyed with the public key" forgery has nothing to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

#: RFC 7518 §3.3: RSA keys for RS256/PS256 must be at least 2048 bits.
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class Algorithm:
    """One JWS algorithm: the key type it needs, and how this site generates such a key."""

    name: str
    kty: str
    #: Curves a key of ``kty`` may use; None when the type has no curve (RSA).
    curves: tuple[str, ...] | None
    #: Arguments of ``JWK.generate`` for a new key of this algorithm.
    generate: tuple[tuple[str, Any], ...]

    def fits(self, key: JWK) -> bool:
        """Whether ``key`` may verify this algorithm: its type, its curve and its own ``alg``."""
        if key.get("kty") != self.kty:
            return False
        if self.curves is not None and key.get("crv") not in self.curves:
            return False
        return key.get("alg") in (None, self.name)

    def signature_length(self, key: JWK) -> int:
        """The exact length in bytes of a signature by ``key`` (RFC 7518 §3.3-3.5, RFC 8037 §3.1).

        A signature of any other length is refused before it reaches the crypto library: a
        padded or shortened signature that still verifies would let one token be written
        several ways.
        """
        if self.kty == "RSA":
            # An RSA JWK's verifying key is an RSAPublicKey (get_op_key() is typed for every kty).
            return (cast("RSAPublicKey", key.get_op_key("verify")).key_size + 7) // 8
        if self.kty == "EC":
            return 64  # P-256: R and S, 32 bytes each
        return 114 if key.get("crv") == "Ed448" else 64


ALGORITHMS: dict[str, Algorithm] = {
    "ES256": Algorithm("ES256", "EC", ("P-256",), (("kty", "EC"), ("crv", "P-256"))),
    "RS256": Algorithm("RS256", "RSA", None, (("kty", "RSA"), ("size", 2048))),
    "PS256": Algorithm("PS256", "RSA", None, (("kty", "RSA"), ("size", 2048))),
    "EdDSA": Algorithm("EdDSA", "OKP", ("Ed25519", "Ed448"), (("kty", "OKP"), ("crv", "Ed25519"))),
}

#: Algorithms this site signs access tokens with (the choices of ``SIGNING_ALGORITHM``).
ACCESS_TOKEN_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA")
#: Algorithms accepted in client assertions (private_key_jwt).
ASSERTION_ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")


def algorithms_for_key_type(kty: str) -> tuple[str, ...]:
    """Names of the assertion algorithms a key of type ``kty`` can verify, in table order."""
    return tuple(name for name in ASSERTION_ALGORITHMS if ALGORITHMS[name].kty == kty)


def curves_for_key_type(kty: str) -> tuple[str, ...] | None:
    """The curves a ``kty`` key may use for some assertion algorithm; None when it has none."""
    curves: list[str] = []
    for name in algorithms_for_key_type(kty):
        if ALGORITHMS[name].curves is None:
            return None
        curves.extend(c for c in ALGORITHMS[name].curves or () if c not in curves)
    return tuple(curves)


def generate_key(algorithm: str, **members: Any) -> JWK:
    """A new private key for one of :data:`ACCESS_TOKEN_ALGORITHMS`, with ``members`` added."""
    if algorithm not in ACCESS_TOKEN_ALGORITHMS:
        raise ValueError(
            f"Unsupported signing algorithm {algorithm!r}; use one of {', '.join(ACCESS_TOKEN_ALGORITHMS)}."
        )
    return JWK.generate(**dict(ALGORITHMS[algorithm].generate), alg=algorithm, **members)


def rsa_key_bits(key: JWK) -> int:
    """The modulus size of an RSA key; raises ``ValueError`` if it cannot be read."""
    try:
        return int(cast("RSAPublicKey", key.get_op_key("verify")).key_size)  # an RSA key, as above
    except (JWException, ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from exc
