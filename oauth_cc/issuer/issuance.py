"""Issuer side: the token endpoint's grant: client credentials (RFC 6749 §4.4) issuing RFC 9068 JWTs.

This is one of the two hot paths; :func:`issue_token` reads top to bottom as the request
is handled. Its cost in steady state: parsing a small form body, one SHA-256 (secret) or one
assertion check (private_key_jwt), dict lookups in the worker's client cache, one signature
(~30 µs for ES256), one log line and one signal. No SQL query: client data comes from the
per-worker cache, and the token is not stored (see :mod:`oauth_cc.issuer.revocation` for why).
Once every few minutes a request also deletes expired revocation and single-use records and
old usage counts, and once per ``USAGE_FLUSH_SECONDS`` it writes the worker's token counts
(:mod:`oauth_cc.issuer.usage_counts`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from ..common import dpop, mtls, ratelimit, tokens
from ..common.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
    shown,
)
from ..conf import oauth_cc_settings
from ..models import Application
from ..signals import token_issued
from . import hooks, keys, revocation, usage_counts
from .client_auth import authenticate_client, endpoint_url
from .resource_indicators import is_resource_identifier
from .state import ClientRecord

GRANT_TYPE = "client_credentials"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Parameters that may appear once at most (RFC 6749 §3.2: "Request and response parameters
# MUST NOT be included more than once"). RFC 8707 ``resource`` may repeat; we accept one.
MAX_BODY_BYTES = 64 * 1024


def _content_length(request: HttpRequest) -> int:
    """The declared body length; a missing header is 0, anything but digits is refused.

    WSGI servers differ: some refuse a bad Content-Length themselves, others pass it through.
    """
    raw = request.META.get("CONTENT_LENGTH") or "0"
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        raise InvalidRequest("The Content-Length header is not a number.")
    if len(raw.lstrip("0")) > len(str(MAX_BODY_BYTES)):
        # Too large whatever the digits; and int() refuses more than 4,300 of them.
        raise InvalidRequest("The request body is too large.")
    return int(raw)


def parse_form(request: HttpRequest) -> dict[str, str]:
    """The POST body as a dict, refusing repeated parameters and other content types.

    Strict on purpose: the body must be UTF-8, percent-escapes must decode to UTF-8 (not be
    replaced by U+FFFD), and it is read only after its declared length is known to be small.
    """
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise InvalidRequest(f"The request body must be {FORM_CONTENT_TYPE}.")
    if _content_length(request) > MAX_BODY_BYTES:
        raise InvalidRequest("The request body is too large.")
    try:
        body = request.body.decode("utf-8")
    except RequestDataTooBig:  # the site's DATA_UPLOAD_MAX_MEMORY_SIZE is below ours
        raise InvalidRequest("The request body is too large.") from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest("The request body is not a valid form.") from exc
    try:
        pairs = parse_qsl(
            body,
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=50,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("The request body is not a valid form.") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f'The parameter "{shown(name)}" was sent more than once.')
        params[name] = value
    return params


def resolve_scopes(client: ClientRecord, requested: str | None) -> list[str]:
    """RFC 6749 §3.3: the requested scopes if all allowed, else the client's defaults."""
    if requested is None:
        if not client.default_scopes:
            raise InvalidScope("No scope was requested and this client has no default scope.")
        return list(client.default_scopes)
    names = requested.split(" ")
    if not requested or any(not name for name in names):
        raise InvalidScope("The scope parameter must be scope names separated by single spaces.")
    refused = sorted(set(names) - client.allowed_scopes)
    if refused:
        raise InvalidScope("Scope not allowed for this client: " + shown(" ".join(refused), 200) + ".")
    return list(dict.fromkeys(names))


def resolve_audience(client: ClientRecord, resource: str | None) -> str:
    """RFC 8707: the token's ``aud``; the first allowed audience when none is requested."""
    allowed = client.audiences or (oauth_cc_settings.resource_identifier,)
    if resource is None:
        return allowed[0]
    if not is_resource_identifier(resource):
        raise InvalidTarget("resource must be an absolute URI without a fragment (RFC 8707, section 2).")
    if resource not in allowed:
        raise InvalidTarget("This client may not request tokens for that resource.")
    return resource


def issued_at(client: ClientRecord) -> int:
    """``iat`` for a new token: now in whole seconds, but never before the client's cut-off.

    ``tokens_valid_after`` is sub-second and ``iat`` is not; a token issued in the same second
    as, but after, a cut-off would otherwise be born invalid. Dating it from the next whole
    second keeps it valid; it is at most one second ahead, well inside the verifiers' leeway.
    """
    now = int(time.time())
    cutoff = client.tokens_valid_after
    if cutoff is not None and now < cutoff:
        return math.ceil(cutoff)
    return now


#: Attribute of the request holding the RateLimit headers of the answer (see views.token).
RATE_HEADERS_ATTR = "_oauth_cc_rate_headers"
#: The quota policy's name in the RateLimit fields.
RATE_POLICY = "token"


def _within_limit(request: HttpRequest) -> Callable[[ClientRecord], None]:
    """The per-client token rate limit, run once the client is authenticated (after the check that
    a client with certificate-bound tokens presented a certificate).

    It counts authenticated token requests (the work a client makes the site do), before
    anything is recorded for the request: over the limit, no token, no signal, no "last used"
    write, and a private_key_jwt assertion stays unused. Failed authentications have their
    own limits (:func:`oauth_cc.issuer.client_auth.authenticate_client`).
    """

    def check(client: ClientRecord) -> None:
        if client.certificate_bound_tokens and mtls.client_certificate(request) is None:
            # RFC 8705 §3: a token this client gets is bound to the certificate it connects with;
            # without one it would be a plain bearer token, which the client asked never to hold.
            raise InvalidRequest(
                "This client's tokens are bound to its TLS client certificate; connect with it."
            )
        rate = client.token_limit or ratelimit.setting_rate("TOKEN_RATE_LIMIT")
        if rate is None:
            return
        headers = ratelimit.limit_client(
            "token",
            client.client_id,
            rate,
            RATE_POLICY,
            refused=f"This client may request {rate} tokens",
            unavailable="The token endpoint is unavailable right now; retry shortly.",
        )
        setattr(request, RATE_HEADERS_ATTR, headers)

    return check


def _dpop_proof(request: HttpRequest) -> dpop.VerifiedProof | None:
    """The request's DPoP proof checked for this endpoint (not yet recorded), or None."""
    header = request.META.get("HTTP_DPOP")
    if header is None:
        return None
    urls = (dpop.request_url(request), endpoint_url("token"))
    return dpop.check_proof(header, method=request.method or "", url=urls)


def issue_token(request: HttpRequest) -> dict[str, Any]:
    """Handle a token request; return the RFC 6749 §5.1 response body or raise an OAuthError."""
    params = parse_form(request)

    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required.")
    if grant_type != GRANT_TYPE:
        raise UnsupportedGrantType("Only grant_type=client_credentials is supported.")

    # RFC 9449 §5: a DPoP proof binds the token to the proof's key. Checked before the client
    # authenticates (no state), recorded as used only once the request is otherwise accepted,
    # so self-signed proofs from nobody in particular never reach the database.
    proof = _dpop_proof(request)

    client = authenticate_client(request, params, endpoint="token", before_use=_within_limit(request))
    if client.grant_type != Application.GRANT_CLIENT_CREDENTIALS:
        raise UnauthorizedClient("This client may not use the client_credentials grant.")
    if proof is None and client.require_dpop:
        raise dpop.InvalidDPoPProof("This client gets only DPoP-bound tokens: send a DPoP proof (RFC 9449).")

    scopes = resolve_scopes(client, params.get("scope"))
    audience = resolve_audience(client, params.get("resource"))
    if proof is not None and client.certificate_bound_tokens:
        # One binding per token: cnf carries exactly one confirmation method (tokens.confirmation).
        raise InvalidRequest(
            "This client's tokens are bound to its TLS client certificate (RFC 8705); send no DPoP header."
        )
    if proof is not None:
        dpop.record_use(proof)
    lifetime = client.access_token_lifetime or int(oauth_cc_settings.ACCESS_TOKEN_LIFETIME)
    claims = tokens.build_claims(
        issuer=oauth_cc_settings.issuer,
        client_id=client.client_id,
        audience=audience,
        scopes=scopes,
        lifetime=lifetime,
        now=issued_at(client),
        jkt=proof.jkt if proof is not None else None,
    )
    if client.certificate_bound_tokens:
        # Checked present (and parsed, once per request) by _within_limit before any use.
        certificate = mtls.client_certificate(request)
        if certificate is not None:
            claims["cnf"] = {"x5t#S256": mtls.thumbprint(certificate)}
    try:
        claims.update(hooks.extra_claims(client, claims))
    except hooks.DenyIssuance as exc:
        raise AccessDenied(str(exc) or "The token request was refused.") from exc

    try:
        access_token = tokens.sign(claims)
    except keys.SigningKeyUnavailable:
        # Logged (kid and what to fix) by the key store; the client learns only to retry.
        # Retry-After 30: an operator has to act (a key-encryption key is missing).
        raise TemporarilyUnavailable(
            "The server cannot issue tokens right now; try again later.", retry_after=30
        ) from None

    logging.getLogger(oauth_cc_settings.ISSUANCE_LOGGER).info(
        "issued token jti=%s client_id=%s scope=%r aud=%s exp=%s",
        claims["jti"],
        client.client_id,
        claims["scope"],
        audience,
        claims["exp"],
    )
    token_issued.send(
        sender=Application,
        client_id=client.client_id,
        jti=claims["jti"],
        scopes=scopes,
        audience=audience,
        expires_at=claims["exp"],
        request=request,
    )
    usage_counts.count_issued(client.client_id)  # a clock read and a dict update; a write per interval
    revocation.prune_now_and_then()  # a clock read; a few DELETEs once every few minutes
    return {
        "access_token": access_token,
        "token_type": "DPoP" if proof is not None else "Bearer",
        "expires_in": lifetime,
        "scope": claims["scope"],
    }
