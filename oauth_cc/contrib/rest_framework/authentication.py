"""DRF authentication with RFC 9068 JWT access tokens, checked locally (no database query).

``request.auth`` is an :class:`oauth_cc.verification.AccessToken` (``client_id``, ``scopes``,
``claims``). ``request.user`` is the client's run-as user, loaded lazily on first use (so a
view that does not touch it makes no query), or ``AnonymousUser``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils.functional import SimpleLazyObject
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from ...errors import TemporarilyUnavailable, client_safe
from ...mtls import BindingError, check_binding
from ...tokens import InvalidToken
from ...verification import AccessToken, check_access_token

REALM = "api"
logger = logging.getLogger("oauth_cc.authentication")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _run_as_user(client_id: str) -> Any:
    """The client's run-as user; read inside the view, so an outage here is a JSON 503 too."""
    from ... import outage
    from ...conf import oauth_cc_settings

    if oauth_cc_settings.resource_only:
        return AnonymousUser()  # a resource-only service has no clients, so no run-as users
    from ...state import client_cache

    try:
        record = client_cache.client(client_id)
        if record is None or record.user_id is None:
            return AnonymousUser()
        user = outage.database.run(
            "the run-as user",
            # cast: not None (checked above); mypy does not carry that into the lambda.
            lambda: (
                get_user_model()._default_manager.filter(pk=cast(int, record.user_id), is_active=True).first()
            ),
        )
    except TemporarilyUnavailable as exc:
        # Neither the client's anonymous view nor its user's: the view cannot run as asked.
        raise CheckUnavailable(exc.retry_after) from None
    return user if user is not None else AnonymousUser()


class MalformedAuthorization(exceptions.APIException):
    """RFC 6750 §3.1: a malformed request gets 400 ``invalid_request``, not 401."""

    status_code = 400
    default_code = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        # DRF's exception handler copies auth_header into WWW-Authenticate.
        self.auth_header = (
            f'Bearer realm="{REALM}", error="invalid_request", error_description="{_quote(description)}"'
        )


class CheckUnavailable(exceptions.APIException):
    """The token could not be checked because something on the server failed (a database outage).

    A JSON 503, so the client retries with the same token instead of treating it as invalid.
    """

    status_code = 503
    default_detail = "The access token could not be checked right now; try again shortly."
    default_code = "temporarily_unavailable"

    def __init__(self, retry_after: int | None = None, detail: str | None = None) -> None:
        super().__init__(detail)
        # DRF's exception handler turns ``wait`` into a Retry-After header.
        self.wait = retry_after


class JWTAccessTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <JWT>`` (RFC 6750 §2.1)."""

    def authenticate(self, request: Request) -> tuple[Any, AccessToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        # Whitespace inside means two values, or a header a proxy folded: malformed (RFC 6750 §2.1).
        if not token or len(token.split()) != 1:
            raise MalformedAuthorization("The Authorization header must be 'Bearer <token>'.")
        try:
            info = check_access_token(token)
        except InvalidToken as exc:
            self._fail(request, str(exc), "invalid_token")
        except TemporarilyUnavailable as exc:
            # The database is down and this worker does not hold (fresh enough) keys or revocation
            # state to check the token: neither accept nor refuse it. Logged by oauth_cc.outage.
            raise CheckUnavailable(exc.retry_after) from None
        except Exception:
            # Never a bare 500 (Django's HTML page) for a client; the token is not logged.
            logger.exception("Could not check an access token")
            raise CheckUnavailable() from None
        try:
            # RFC 8705 §3: on every request, not only when the token was first verified (the
            # memo covers the signature and claims, never the connection).
            check_binding(request, info.certificate_thumbprint)
        except BindingError as exc:
            self._fail(request, str(exc), "invalid_token")
        client_id = info.client_id
        return SimpleLazyObject(lambda: _run_as_user(client_id)), info

    def _fail(self, request: Request, description: str, error: str) -> None:
        description = client_safe(description)
        # DRF asks authenticate_header() for WWW-Authenticate; remember what went wrong.
        request._oauth_cc_error = (error, description)  # type: ignore[attr-defined]  # our own mark on the request
        raise exceptions.AuthenticationFailed(description, code=error)

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, "_oauth_cc_error", None)
        if error is None:
            return f'Bearer realm="{REALM}"'
        code, description = error
        return f'Bearer realm="{REALM}", error="{code}", error_description="{_quote(description)}"'
