"""Issuer side: HTTP endpoints. Thin: each parses the request, calls the protocol module, shapes the answer.

Every endpoint a client calls answers JSON, errors included; an unexpected exception is
logged and answered with a JSON ``server_error`` rather than Django's HTML error page, and a
database that cannot be reached with a JSON 503 ``temporarily_unavailable`` (:mod:`oauth_cc.issuer.outage`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .common import dpop
from .common.algorithms import ASSERTION_ALGORITHMS
from .common.errors import MethodNotAllowed, OAuthError, ServerError
from .conf import oauth_cc_settings
from .issuer import introspection, issuance, keys, outage, revocation
from .issuer.client_auth import endpoint_url
from .models import MTLS_AUTH_METHODS, Scope, TokenEndpointAuthMethod

logger = logging.getLogger("oauth_cc.views")


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(data: dict[str, Any], headers: dict[str, str]) -> HttpResponse:
    return HttpResponse(json.dumps(data), content_type="application/json", headers=headers)


def oauth_endpoint(
    *methods: str,
) -> Callable[[Callable[[HttpRequest], HttpResponse]], Callable[..., HttpResponse]]:
    """Allow ``methods`` only, and turn every error into an RFC 6749 §5.2 JSON answer."""

    def decorator(view: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(", ".join(methods))
                return view(request)
            except OAuthError as exc:
                return exc.as_response()
            except outage.UNREACHABLE as exc:
                # A query outside the per-worker state (metadata's scopes, a first signing key):
                # the database is down, not the request wrong. Logged once per outage, not here.
                outage.database.failed(view.__name__, exc)
                return outage.unavailable().as_response()
            except Exception:
                logger.exception("Unexpected error in %s", view.__name__)
                return ServerError("The server could not handle the request.").as_response()

        return wrapper

    return decorator


@oauth_endpoint("POST")
def token(request: HttpRequest) -> HttpResponse:
    """RFC 6749 §4.4 token endpoint."""
    body = issuance.issue_token(request)
    headers = {**NO_STORE, **getattr(request, issuance.RATE_HEADERS_ATTR, {})}
    if body["token_type"] == "DPoP" and oauth_cc_settings.DPOP_REQUIRE_NONCE:
        # RFC 9449 §8.2: a fresh nonce with a success, so the client's next proof need not fail first.
        headers["DPoP-Nonce"] = dpop.current_nonce()
    return _json(body, headers)


@oauth_endpoint("POST")
def introspect(request: HttpRequest) -> HttpResponse:
    """RFC 7662 token introspection."""
    return _json(introspection.introspect(request), NO_STORE)


@oauth_endpoint("POST")
def revoke(request: HttpRequest) -> HttpResponse:
    """RFC 7009 token revocation: 200 with an empty body, also for unknown tokens (§2.2)."""
    introspection.revoke(request)
    return HttpResponse(status=200, content_type="text/plain; charset=utf-8", headers=NO_STORE)


def _etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 §13.1.2 weak comparison of ``If-None-Match`` with ``etag``."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


@oauth_endpoint("GET", "HEAD", "POST")
def revocation_feed(request: HttpRequest) -> HttpResponse:
    """What resource-only services need to refuse revoked tokens (oauth_cc.resource.feed).

    For clients allowed to introspect tokens, authenticated as at the introspection endpoint:
    ``GET`` (or ``HEAD``) with HTTP Basic, or ``POST`` with an
    ``application/x-www-form-urlencoded`` body carrying the credentials (``client_secret_post``,
    ``private_key_jwt``, or a ``client_id`` beside an mTLS certificate). The revoked jtis (until
    their exp), the disabled and deleted clients and the per-client cut-offs, as this worker
    holds them (within ``STATE_REFRESH_SECONDS`` of a change); ``If-None-Match`` with the
    ``ETag`` of an unchanged feed gets a 304 without a body. Reads per client are limited
    (``REVOCATION_FEED_RATE``; 429 past it).
    """
    # A GET carries no form: its query string is never read, so no secret is taken from a URL
    # (where access logs would keep it).
    params = issuance.parse_form(request) if request.method == "POST" else {}
    _, rate_headers = introspection.authenticate_feed_reader(request, params)
    # The body and ETag are built once per change of the state (revocation.FeedMemo): an
    # unchanged feed costs the authentication and a comparison, whatever its size.
    feed = revocation.feed_memo.document(revocation.revocation_state.current(), oauth_cc_settings.issuer)
    headers = {"ETag": feed.etag, "Cache-Control": "private, no-cache", **rate_headers}
    if _etag_matches(request.headers.get("If-None-Match", ""), feed.etag):
        # Also to a POST, although RFC 9110 §13.2.1 would answer it 412: here POST is only a way
        # to carry credentials in a body (as for introspection); the request reads the feed and
        # changes nothing, and its reader wants "unchanged", not an error.
        return HttpResponse(status=304, headers=headers)
    return HttpResponse(feed.body, content_type="application/json", headers=headers)


@oauth_endpoint("GET", "HEAD")
def jwks(request: HttpRequest) -> HttpResponse:
    """RFC 7517 JWK Set of the public signing keys."""
    return _json(
        keys.jwks_document(),
        {
            "Cache-Control": f"public, max-age={int(oauth_cc_settings.JWKS_MAX_AGE)}",
            "Access-Control-Allow-Origin": "*",
        },
    )


@oauth_endpoint("GET", "HEAD")
def server_metadata(request: HttpRequest) -> HttpResponse:
    """RFC 8414 authorization server metadata."""
    issuer = oauth_cc_settings.issuer
    secret_methods = [
        TokenEndpointAuthMethod.CLIENT_SECRET_BASIC.value,
        TokenEndpointAuthMethod.CLIENT_SECRET_POST.value,
    ]
    all_methods = [*secret_methods, TokenEndpointAuthMethod.PRIVATE_KEY_JWT.value]
    mtls_on = bool(oauth_cc_settings.CLIENT_CERT_HEADER)
    if mtls_on:  # RFC 8705 §2: only where a proxy forwards client certificates
        all_methods += [m.value for m in MTLS_AUTH_METHODS]
    algs = list(ASSERTION_ALGORITHMS)
    data: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": endpoint_url("token"),
        "jwks_uri": endpoint_url("jwks"),
        "introspection_endpoint": endpoint_url("introspect"),
        "revocation_endpoint": endpoint_url("revoke"),
        # Not registered with IANA: where resource-only services read revocations (RFC 8414 §2
        # allows extensions; clients that do not know it ignore it).
        "oauth_cc_revocation_feed_endpoint": endpoint_url("revocation_feed"),
        "grant_types_supported": [issuance.GRANT_TYPE],
        # No authorization endpoint: no response types (RFC 8414 §2 still requires the member).
        "response_types_supported": [],
        "scopes_supported": outage.database.run(
            "the scope list", lambda: list(Scope.objects.values_list("name", flat=True))
        ),
        "token_endpoint_auth_methods_supported": all_methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": all_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": all_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        # RFC 9449 §5.1
        "dpop_signing_alg_values_supported": list(dpop.DPOP_ALGORITHMS),
    }
    if mtls_on:
        # RFC 8705 §3.3: this server can bind tokens to client certificates.
        data["tls_client_certificate_bound_access_tokens"] = True
    return JsonResponse(
        data, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"}
    )
