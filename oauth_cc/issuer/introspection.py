"""Issuer side: token introspection (RFC 7662) and revocation (RFC 7009) for self-contained JWT access tokens.

Both endpoints authenticate the calling client like the token endpoint does. Introspection
is limited to clients with ``can_introspect``; revocation lets a client revoke only tokens
issued to itself, by ``jti`` (see :mod:`oauth_cc.issuer.revocation`). The revocation feed
(oauth_cc's own, for resource-only services) takes the readers introspection takes, each within
``REVOCATION_FEED_RATE`` (:func:`authenticate_feed_reader`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest

from ..common import ratelimit, tokens
from ..common.errors import InvalidRequest, OAuthError
from ..conf import oauth_cc_settings
from ..signals import token_revoked
from . import revocation
from .client_auth import authenticate_client
from .issuance import parse_form
from .state import ClientRecord


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


#: The quota policy's name in the revocation feed's RateLimit fields.
FEED_RATE_POLICY = "feed"


def authenticate_feed_reader(
    request: HttpRequest, params: Mapping[str, str]
) -> tuple[ClientRecord, dict[str, str]]:
    """The client reading the revocation feed, and the RateLimit fields for the answer.

    Authenticated as at introspection and allowed to introspect. Each authenticated read (a 304
    too: it costs the authentication) counts against ``REVOCATION_FEED_RATE`` per client, before
    anything is recorded: over it, 429 ``too_many_requests`` and a private_key_jwt assertion
    stays unused. A reader polls every few seconds; the limit stops one that reads in a loop
    (each read of a large feed is a large answer) from starving the site.
    """
    fields: dict[str, str] = {}

    def within_limit(client: ClientRecord) -> None:
        rate = ratelimit.setting_rate("REVOCATION_FEED_RATE")
        if rate is None:
            return
        headers = ratelimit.limit_client(
            "feed",
            client.client_id,
            rate,
            FEED_RATE_POLICY,
            refused=f"This client may read the revocation feed {rate}",
            unavailable="The revocation feed is unavailable right now; retry shortly.",
        )
        fields.update(headers)

    client = authenticate_client(request, params, endpoint="revocation_feed", before_use=within_limit)
    if not client.can_introspect:
        raise UnauthorizedIntrospection("This client is not allowed to read the revocation feed.")
    return client, fields
