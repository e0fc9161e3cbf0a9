"""Issuer side: token introspection (RFC 7662) and revocation (RFC 7009) for self-contained JWT access tokens.

Both endpoints authenticate the calling client like the token endpoint does. Introspection
is limited to clients with ``can_introspect``; revocation lets a client revoke only tokens
issued to itself, by ``jti`` (see :mod:`oauth_cc.issuer.revocation`).
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest

from ..common import tokens
from ..common.errors import InvalidRequest, OAuthError
from ..conf import oauth_cc_settings
from ..signals import token_revoked
from . import revocation
from .client_auth import authenticate_client
from .issuance import parse_form


class UnauthorizedIntrospection(OAuthError):
    error = "unauthorized_client"
    status = 403


def _token_param(params: dict[str, str]) -> str:
    token = params.get("token")
    if not token:
        raise InvalidRequest("The token parameter is required.")
    return token


def _signed_claims(token: str) -> dict[str, Any] | None:
    """The claims of a token this issuer signed (any audience) that verifiers still accept, or None.

    With the same ``LEEWAY`` as the protected views: a token they accept is active here, and can
    be revoked.
    """
    try:
        return tokens.verify(
            token,
            issuer=oauth_cc_settings.issuer,
            audience=None,
            leeway=int(oauth_cc_settings.LEEWAY),
            now=time.time(),
        )
    except tokens.InvalidToken:
        return None


def _valid_claims(token: str) -> dict[str, Any] | None:
    """As :func:`_signed_claims`, and not revoked either."""
    claims = _signed_claims(token)
    if claims is None:
        return None
    snapshot = revocation.revocation_state.current()
    if snapshot.reason_refused(jti=claims["jti"], client_id=claims["client_id"], iat=float(claims["iat"])):
        return None
    return claims


def introspect(request: HttpRequest) -> dict[str, Any]:
    """RFC 7662 §2.2: ``{"active": true, ...claims}`` or ``{"active": false}``."""
    params = parse_form(request)
    client = authenticate_client(request, params, endpoint="introspect")
    if not client.can_introspect:
        raise UnauthorizedIntrospection("This client is not allowed to introspect tokens.")
    claims = _valid_claims(_token_param(params))
    if claims is None:
        return {"active": False}
    # RFC 7662 §2.2 with RFC 9449 §6.2 / RFC 8705 §3.2: a bound token's cnf is among its claims,
    # and a DPoP-bound token's type is DPoP.
    cnf = claims.get("cnf")
    token_type = "DPoP" if isinstance(cnf, dict) and "jkt" in cnf else "Bearer"
    return {"active": True, "token_type": token_type, **claims}


def revoke(request: HttpRequest) -> None:
    """RFC 7009 §2.1. Invalid, expired or unknown tokens are not an error (§2.2)."""
    params = parse_form(request)
    client = authenticate_client(request, params, endpoint="revoke")
    claims = _signed_claims(_token_param(params))
    if claims is None:
        return
    if claims["client_id"] != client.client_id:
        # §2.1: a client may only revoke its own tokens.
        raise InvalidRequest("This token was not issued to the authenticated client.")
    if revocation.revoke_jti(jti=claims["jti"], client_id=client.client_id, expires_at=float(claims["exp"])):
        token_revoked.send(sender=None, client_id=client.client_id, jti=claims["jti"])
