"""Token-endpoint errors, one class per RFC 6749 §5.2 error code (plus RFC 8707, RFC 6749 §4.1.2.1).

Views turn any :class:`OAuthError` into a JSON body ``{"error", "error_description"}`` with
the status and headers the class carries, so no other shape ever reaches a client.
"""

from __future__ import annotations

import json

from django.http import HttpResponse


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
            body["error_description"] = self.description
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
