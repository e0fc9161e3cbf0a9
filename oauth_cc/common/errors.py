"""Both sides: token-endpoint errors, one class per RFC 6749 §5.2 error code (plus RFC 8707, RFC 6749
§4.1.2.1).

Views turn any :class:`OAuthError` into a JSON body ``{"error", "error_description"}`` with
the status and headers the class carries, so no other shape ever reaches a client.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpResponse

# RFC 6749 §5.2 and RFC 6750 §3: error_description is printable ASCII without backslash (the
# RFCs also leave out '"', which the descriptions here use to quote names; JSON and the
# challenge header escape it). Anything else, such as a control character echoed from a
# request, never reaches a client, a log line or a terminal as such.
_NOT_DESCRIPTION = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def client_safe(description: str) -> str:
    """``description`` with every character an error_description may not hold replaced by '?'."""
    return _NOT_DESCRIPTION.sub("?", description)


def shown(value: Any, limit: int = 40) -> str:
    """A value taken from a request, for an error message: at most ``limit`` characters, safe.

    Non-strings are shown as JSON would write them (a list ``alg`` is shown as ``["ES256"]``).
    """
    try:
        text = value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return client_safe(text)


class OAuthError(Exception):
    """Base class: ``error`` is the RFC error code, ``status`` the HTTP status."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = dict(headers or {})

    def as_response(self) -> HttpResponse:
        body: dict[str, str] = {"error": self.error}
        if self.description:
            body["error_description"] = client_safe(self.description)
        response = HttpResponse(json.dumps(body), status=self.status, content_type="application/json")
        # RFC 6749 §5.1/§5.2: token responses, errors included, must not be cached.
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        for name, value in self.headers.items():
            response[name] = value
        return response


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed (§5.2). 401, with ``WWW-Authenticate`` when Basic was used."""

    error = "invalid_client"
    status = 401

    def __init__(self, description: str = "Client authentication failed.", *, basic: bool = False) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="oauth_cc", charset="UTF-8"'} if basic else None
        super().__init__(description, headers=headers)


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707 §2: the requested resource is not one this client may use."""

    error = "invalid_target"


class AccessDenied(OAuthError):
    """The claims hook refused issuance."""

    error = "access_denied"
    status = 403


class MethodNotAllowed(OAuthError):
    error = "invalid_request"
    status = 405

    def __init__(self, allowed: str = "POST") -> None:
        super().__init__(f"Use {allowed}.", headers={"Allow": allowed})


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class TooManyRequests(OAuthError):
    """A rate limit refused the request (429, RFC 6585 §4) with ``Retry-After`` in seconds."""

    error = "too_many_requests"
    status = 429

    def __init__(self, description: str, *, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(description, headers={**(headers or {}), "Retry-After": str(retry_after)})
        self.retry_after = retry_after


class TemporarilyUnavailable(OAuthError):
    """The server cannot answer now and the client should retry after ``Retry-After`` seconds.

    Raised when the database cannot be reached (:mod:`oauth_cc.issuer.outage`), when the rate-limit
    cache is down and the site fails closed, and when the signing key cannot be decrypted (an
    operator fixes that, often mid-deployment of a new key list). RFC 6749 defines
    ``temporarily_unavailable`` for the authorization endpoint (§4.1.2.1); the token endpoint
    has no code of its own for it, and a 503 with this code tells a client to retry rather than
    to give up.
    """

    error = "temporarily_unavailable"
    status = 503

    def __init__(self, description: str, *, retry_after: int = 5) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
