"""Helpers for tests that need tokens the site did not issue: signed with its own key, or not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.cache import caches

from oauth_cc.issuer import key_encryption
from oauth_cc.issuer.keys import ensure_current_key

ISSUER = "http://testserver"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data, separators=(",", ":")).encode("utf-8"))


def site_private_key() -> tuple[str, str, Any]:
    """``(kid, alg, private key)`` of the site's current signing key, read from its ``SigningKey`` row."""
    row = ensure_current_key()
    return row.kid, row.algorithm, jwt.PyJWK(json.loads(key_encryption.decrypt(row.private_jwk, row.kid))).key


def token_claims(client_id: str = "some-client", **overrides: Any) -> dict[str, Any]:
    """Claims of a token that this site would accept; ``None`` in ``overrides`` drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": client_id,
        "client_id": client_id,
        "aud": ISSUER,
        "exp": now + 600,
        "iat": now,
        "jti": f"jti-{time.monotonic_ns()}",
        "scope": "reports:read",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign_with_site_key(claims: dict[str, Any], **header: Any) -> str:
    """A token signed by the site's current key; ``header`` adds to or replaces header fields."""
    kid, alg, key = site_private_key()
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt", **header})


def unsigned_token(claims: dict[str, Any], **header: Any) -> str:
    """A JWT with ``alg: none`` and an empty signature (RFC 7519 §6)."""
    kid, _, _ = site_private_key()
    return f"{b64url_json({'alg': 'none', 'typ': 'at+jwt', 'kid': kid, **header})}.{b64url_json(claims)}."


def hs256_with_public_key(claims: dict[str, Any]) -> str:
    """The classic key-confusion forgery: HMAC-SHA256 keyed with the site's *public* key."""
    row = ensure_current_key()
    public_key = jwt.PyJWK(row.public_jwk).key
    secret = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'at+jwt', 'kid': row.kid})}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def clear_shared_cache() -> None:
    """Empty the Django cache the workers share; locmem outlives each test's DB rollback."""
    caches["default"].clear()
