"""Client-side key handling for private_key_jwt tests, written apart from the server's code.

Keys come from ``cryptography``, public JWKs and signed assertions from PyJWT, so the tests
check oauth_cc (which uses jwcrypto) against an independent implementation. Also the check
of an ``invalid_client`` answer that every client-authentication test uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/oauth/token/"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


@dataclass
class ClientKey:
    """A client's key pair; ``sign`` makes an assertion with PyJWT."""

    alg: str
    kid: str
    private_key: Any = field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if self.alg in ("RS256", "PS256"):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif self.alg == "ES256":
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid}

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, kid: str | bool | None = True, alg: str | None = None) -> str:
        """``kid=True`` puts this key's kid in the header, ``None``/``False`` leaves it out, a str uses it."""
        headers: dict[str, Any] = {}
        if kid is True:
            headers["kid"] = self.kid
        elif isinstance(kid, str):
            headers["kid"] = kid
        return jwt.encode(claims, self.private_key, algorithm=alg or self.alg, headers=headers)


def generate_key(alg: str, kid: str | None = None) -> ClientKey:
    if alg in ("RS256", "PS256"):
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(alg)
    return ClientKey(alg=alg, kid=kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", private_key=private)


def jwks_of(*keys: ClientKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def assertion_claims(client_id: str, audience: Any, **overrides: Any) -> dict[str, Any]:
    """RFC 7523 §3 claims, valid now; an override of ``None`` removes that claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256_with_public_key(claims: dict[str, Any], key: ClientKey) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the client's *public* key bytes.

    Done by hand because PyJWT (rightly) refuses to use a PEM public key as an HMAC secret.
    """
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def assertion_form(assertion: str, **params: str) -> str:
    return urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            **params,
        }
    )


def post_assertion(client: Any, assertion: str, **params: str) -> Any:
    """POST a token request authenticated by ``assertion`` through Django's test client."""
    return client.post(
        TOKEN_PATH, assertion_form(assertion, **params), content_type="application/x-www-form-urlencoded"
    )


def assert_invalid_client(response: Any, mentions: str = "") -> None:
    """The token endpoint refused the client: 401, JSON ``invalid_client`` mentioning ``mentions``."""
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_client"
    assert mentions in body.get("error_description", ""), body
