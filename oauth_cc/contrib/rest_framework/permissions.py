"""Both sides: DRF permission that checks the scopes a view needs (RFC 6750 §3.1 ``insufficient_scope``).

On the view, either::

    required_scopes = ["reports:read"]                 # every method

or per HTTP method (methods not listed fall back to ``required_scopes``; a method with no
entry and no fallback is refused)::

    required_scopes_by_method = {
        "GET": ["reports:read"], "HEAD": ["reports:read"], "OPTIONS": [],
        "POST": ["reports:write"],
    }

No token: 401 with ``WWW-Authenticate: Bearer``. A valid token without the scopes: 403 with
``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ...common.verification import AccessToken
from .authentication import REALM


class InsufficientScope(exceptions.PermissionDenied):
    default_detail = "The access token does not grant the scope this request needs."
    default_code = "insufficient_scope"

    def __init__(self, scopes: Sequence[str]) -> None:
        scope = " ".join(scopes)
        super().__init__(f"This request needs the scope: {scope}.")
        # DRF's exception handler copies auth_header into WWW-Authenticate.
        self.auth_header = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'


def required_scopes_for(view: Any, method: str) -> list[str]:
    by_method = getattr(view, "required_scopes_by_method", None)
    if by_method is not None and method in by_method:
        return list(by_method[method])
    scopes = getattr(view, "required_scopes", None)
    if scopes is None:
        if by_method is not None:
            raise exceptions.MethodNotAllowed(method)
        raise ImproperlyConfigured(
            f"{type(view).__name__} uses HasScope but sets neither required_scopes "
            "nor required_scopes_by_method."
        )
    return list(scopes)


class HasScope(BasePermission):
    """Grant access when ``request.auth`` is an oauth_cc access token with the needed scopes."""

    message = "This request needs an OAuth access token."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, AccessToken):
            # No access token: DRF answers 401 with the authenticator's Bearer challenge.
            return False
        required = required_scopes_for(view, request.method or "GET")
        if not token.has_scopes(required):
            raise InsufficientScope(required)
        return True
