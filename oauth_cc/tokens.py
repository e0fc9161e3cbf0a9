"""JWT access tokens per RFC 9068: claims, signing and strict verification.

Signing and verification use jwcrypto's JWS layer. The header is ``{"alg", "typ": "at+jwt",
"kid"}``; the registered claims are ``iss, sub, client_id, aud, exp, iat, jti, scope``
(RFC 9068 §2.2). Verification (§4) is strict: the algorithm must be the one pinned to the
published key named by ``kid`` (so never ``none`` and never HMAC with a public key), ``typ``
must be ``at+jwt``, and ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` are all checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from typing import Any

from jwcrypto import jws
from jwcrypto.common import JWException

from .keys import key_store

#: Claims this module sets and nobody else may change (a claims hook included).
REGISTERED_CLAIMS = frozenset({"iss", "sub", "client_id", "aud", "exp", "iat", "nbf", "jti", "scope"})
#: The only algorithms a token may be signed with. Each key is pinned to one of them.
ALLOWED_ALGORITHMS = frozenset({"ES256", "RS256", "EdDSA"})
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=False)


class InvalidToken(Exception):
    """The token is not a valid access token for this site. ``str(exc)`` says why, safely."""


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def build_claims(
    *, issuer: str, client_id: str, audience: str, scopes: list[str], lifetime: int, now: int
) -> dict[str, Any]:
    return {
        "iss": issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": audience,
        "exp": now + lifetime,
        "iat": now,
        "jti": new_jti(),
        "scope": " ".join(scopes),
    }


def sign(claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` with the current key: one signature (~25 µs for ES256), no query in steady state."""
    return key_store.signer().sign(_JSON.encode(dict(claims)).encode("utf-8"))


def b64url_decode(segment: str) -> bytes:
    """RFC 7515 §2 base64url without padding; raises ``binascii.Error`` on bad input."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64decode_json(segment: str) -> Any:
    try:
        return json.loads(b64url_decode(segment))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("The access token is not a well-formed JWT.") from exc


def verify(token: str, *, issuer: str, audience: str | None, leeway: int, now: float) -> dict[str, Any]:
    """Check signature and claims; return the claims or raise :class:`InvalidToken`.

    ``audience=None`` skips the ``aud`` check: only the issuer's own introspection does that.

    Cost: two base64/JSON decodes and one signature verification; no database query
    unless ``kid`` is unknown to this worker (then one, rate-limited per ``kid``).
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise InvalidToken("The access token is not a well-formed JWT.")
    header = _b64decode_json(parts[0])
    if not isinstance(header, dict):
        raise InvalidToken("The access token is not a well-formed JWT.")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise InvalidToken("The access token's signing algorithm is not accepted.")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
        raise InvalidToken('The access token must have typ "at+jwt" (RFC 9068).')
    if "crit" in header:
        raise InvalidToken("The access token uses critical header parameters this site does not support.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("The access token names no signing key (kid).")
    found = key_store.verifier(kid)
    if found is None:
        raise InvalidToken("The access token was signed by an unknown key.")
    key_alg, key = found
    if alg != key_alg:
        raise InvalidToken("The access token's algorithm does not match its key.")
    try:
        checker = jws.JWS()
        checker.deserialize(token)
        checker.verify(key, alg=key_alg)
    except (JWException, ValueError, TypeError) as exc:
        raise InvalidToken("The access token's signature is invalid.") from exc
    claims = _b64decode_json(parts[1])
    if not isinstance(claims, dict):
        raise InvalidToken("The access token's claims are not a JSON object.")
    check_claims(claims, issuer=issuer, audience=audience, leeway=leeway, now=now)
    return claims


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidToken(f'The access token has no "{name}" claim.')
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f'The access token\'s "{name}" claim is not a number.')
    return float(value)


def check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str | None, leeway: int, now: float
) -> None:
    """RFC 9068 §4 claim checks, independent of the signature."""
    if claims.get("iss") != issuer:
        raise InvalidToken("The access token was issued by another issuer.")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not all(isinstance(a, str) and a for a in audiences):
        raise InvalidToken('The access token\'s "aud" claim is malformed.')
    if audience is not None and audience not in audiences:
        raise InvalidToken("The access token is not meant for this resource (aud).")
    exp = _number(claims, "exp", required=True)
    if exp is not None and exp <= now - leeway:
        raise InvalidToken("The access token has expired.")
    iat = _number(claims, "iat", required=True)
    if iat is not None and iat > now + leeway:
        raise InvalidToken("The access token was issued in the future (iat).")
    nbf = _number(claims, "nbf", required=False)
    if nbf is not None and nbf > now + leeway:
        raise InvalidToken("The access token is not valid yet (nbf).")
    for name in ("jti", "client_id", "sub"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise InvalidToken(f'The access token has no "{name}" claim.')
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidToken('The access token\'s "scope" claim is not a string.')
