"""DPoP proofs built with PyJWT (not oauth_cc's code), and an independent RFC 7638 thumbprint."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_jwk(key: Any) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(public, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(public, as_dict=True))


def private_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(key, as_dict=True))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jkt(key: Any) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace."""
    jwk = public_jwk(key)
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def proof(
    key: Any,
    *,
    htm: str = "POST",
    htu: str = "http://testserver/oauth/token/",
    alg: str | None = None,
    typ: str = "dpop+jwt",
    jwk: Any = "public",
    token: str | None = None,
    omit: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A DPoP proof signed by ``key`` with PyJWT; ``jwk="public"`` embeds the key's public JWK."""
    if alg is None:
        alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    payload: dict[str, Any] = {
        "htm": htm,
        "htu": htu,
        "iat": int(time.time()),
        "jti": secrets.token_urlsafe(12),
    }
    if token is not None:
        payload["ath"] = ath(token)
    payload.update(claims)
    for name in omit:
        payload.pop(name, None)
    headers: dict[str, Any] = {"typ": typ}
    if jwk == "public":
        headers["jwk"] = public_jwk(key)
    elif jwk is not None:
        headers["jwk"] = jwk
    return jwt.encode(payload, key, algorithm=alg, headers=headers)
