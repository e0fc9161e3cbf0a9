"""Building hostile tokens byte by byte, independently of oauth_cc's own JOSE code.

Signatures come from PyJWT's algorithm objects over signing inputs this module assembles, so
a test can put anything in a header or a payload (a list as ``alg``, a duplicate member, a
``NaN``, thousands of nested brackets) and still have a genuine signature by the site's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms

from oauth_cc.issuer import key_encryption
from oauth_cc.issuer.keys import ensure_current_key

ISSUER = "http://testserver"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def dumps(value: Any) -> bytes:
    """Compact JSON, as bytes (``allow_nan`` so a test can write NaN on purpose)."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def as_bytes(part: bytes | dict[str, Any] | str) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode("utf-8")
    return dumps(part)


def site_key() -> tuple[str, str, Any]:
    """``(kid, alg, private key)`` of the site's current signing key."""
    row = ensure_current_key()
    return row.kid, row.algorithm, jwt.PyJWK(json.loads(key_encryption.decrypt(row.private_jwk, row.kid))).key


def site_public_key() -> Any:
    return jwt.PyJWK(ensure_current_key().public_jwk).key


def site_header(**overrides: Any) -> dict[str, Any]:
    """The header the site writes: ``alg``, ``typ``, ``kid``; ``None`` drops a member."""
    kid, alg, _ = site_key()
    header = {"alg": alg, "typ": "at+jwt", "kid": kid, **overrides}
    return {name: value for name, value in header.items() if value is not None}


def sign_with(key: Any, alg: str, header: bytes | dict | str, payload: bytes | dict | str) -> str:
    """``b64(header).b64(payload).b64(signature)`` with ``alg`` (a PyJWT name) and ``key``."""
    signing_input = f"{b64(as_bytes(header))}.{b64(as_bytes(payload))}"
    algorithm = get_default_algorithms()[alg]
    signature = algorithm.sign(signing_input.encode("ascii"), algorithm.prepare_key(key))
    return f"{signing_input}.{b64(signature)}"


def site_signed(payload: bytes | dict | str, header: bytes | dict | str | None = None) -> str:
    """A token whose signature by the site's current key is genuine, whatever its bytes say."""
    _, alg, key = site_key()
    return sign_with(key, alg, site_header() if header is None else header, payload)


def hmac_signed(
    secret: bytes, header: dict[str, Any], payload: dict[str, Any], digest: Any = hashlib.sha256
) -> str:
    signing_input = f"{b64(dumps(header))}.{b64(dumps(payload))}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode('ascii'), digest).digest())}"


def public_key_encodings(public_key: Any, public_jwk: dict[str, Any]) -> dict[str, bytes]:
    """The forms an attacker might guess a verifier uses as an HMAC secret."""
    encodings = {
        "pem": public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(public_jwk).encode(),
        "jwk-json-sorted": json.dumps(public_jwk, sort_keys=True, separators=(",", ":")).encode(),
    }
    try:
        encodings["x962-point"] = public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    except (ValueError, TypeError):
        encodings["pkcs1"] = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
    return encodings


def json_smuggled(genuine: str, forged_claims: dict[str, Any]) -> str:
    """The claims-swap forgery: a JWS JSON serialization of ``genuine`` whose first member hides
    a compact-looking ``header.forged.`` string, so a verifier that checks the JSON form's
    signature but reads claims from the second dot-separated part uses ``forged_claims``."""
    header, payload, signature = genuine.split(".")
    smuggled = f"!!{header}.{b64(dumps(forged_claims))}."
    return json.dumps(
        {"": smuggled, "protected": header, "payload": payload, "signature": signature},
        separators=(",", ":"),
    )


def nested(depth: int, leaf: str = "1") -> str:
    """``[[[ ... ]]]`` ``depth`` levels deep, as JSON text."""
    return "[" * depth + leaf + "]" * depth
