"""private_key_jwt client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9)."""

from __future__ import annotations

import base64
import binascii
import json

from .errors import InvalidClient
from .state import ClientRecord

#: Asymmetric algorithms accepted for client assertions; never "none" or HMAC.
ASSERTION_SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


def unverified_client_id(assertion: str) -> str:
    """The ``sub`` an assertion claims, read before any check, only to find the client."""
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("client_assertion is not a well-formed JWT.") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        raise InvalidClient('client_assertion has no "sub" claim.')
    return claims["sub"]


def verify_client_assertion(client: ClientRecord, assertion: str, *, endpoint_url: str) -> None:
    raise InvalidClient("private_key_jwt is not available yet.")
