"""Both sides: DRF authentication with RFC 9068 JWT access tokens, checked locally (no database query).

``request.auth`` is an :class:`oauth_cc.common.verification.AccessToken` (``client_id``, ``scopes``,
``claims``). ``request.user`` is the client's run-as user, loaded lazily on first use (so a
view that does not touch it makes no query), or ``AnonymousUser``.

DPoP-bound tokens (RFC 9449 §7): a token with ``cnf.jkt`` is accepted only as
``Authorization: DPoP <token>`` with a ``DPoP`` proof for this request (method, URL, ``ath``)
signed by the key the token is bound to; as ``Bearer`` it is refused. The verified-token memo
covers only the token's own signature and claims: the proof is checked, and its ``jti``
recorded, on every request.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils.functional import SimpleLazyObject
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from ...common import dpop
from ...common.errors import TemporarilyUnavailable, client_safe
from ...common.mtls import BindingError, check_binding
from ...common.tokens import InvalidToken
from ...common.verification import AccessToken, check_access_token
from ...conf import oauth_cc_settings

REALM = "api"
logger = logging.getLogger("oauth_cc.authentication")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _run_as_user(client_id: str) -> Any:
    """The client's run-as user; read inside the view, so an outage here is a JSON 503 too."""
    from ...conf import oauth_cc_settings

    if oauth_cc_settings.resource_only:
        return AnonymousUser()  # a resource-only service has no clients, so no run-as users
    from ...issuer import outage
    from ...issuer.state import client_cache

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

    def __init__(self, description: str, scheme: str = "Bearer") -> None:
        super().__init__(description)
        # DRF's exception handler copies auth_header into WWW-Authenticate.
        self.auth_header = (
            f'{_challenge(scheme)}, error="invalid_request", error_description="{_quote(description)}"'
        )


def _challenge(scheme: str) -> str:
    if scheme == "DPoP":
        return f'DPoP realm="{REALM}", algs="{" ".join(dpop.DPOP_ALGORITHMS)}"'
    return f'Bearer realm="{REALM}"'


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
    """``Authorization: Bearer <JWT>`` (RFC 6750 §2.1), or ``DPoP <JWT>`` with a proof (RFC 9449 §7)."""

    def authenticate(self, request: Request) -> tuple[Any, AccessToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        scheme = {"bearer": "Bearer", "dpop": "DPoP"}.get(scheme.lower(), "")
        if not scheme:
            return None
        token = token.strip()
        # Whitespace inside means two values, or a header a proxy folded: malformed (RFC 6750 §2.1).
        if not token or len(token.split()) != 1:
            raise MalformedAuthorization(f"The Authorization header must be '{scheme} <token>'.", scheme)
        try:
            info = check_access_token(token)
            if scheme == "DPoP" or info.jkt is not None:
                self._check_binding(request, scheme, token, info)
        except exceptions.APIException:
            raise
        except InvalidToken as exc:
            self._fail(request, str(exc), "invalid_token", scheme)
        except dpop.UseDPoPNonce as exc:
            self._set_view_header(request, "DPoP-Nonce", exc.nonce)
            self._fail(request, exc.description, exc.error, "DPoP")
        except dpop.InvalidDPoPProof as exc:
            self._fail(request, exc.description, exc.error, "DPoP")
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

    def _check_binding(self, request: Request, scheme: str, token: str, info: AccessToken) -> None:
        """RFC 9449 §7.1: a bound token only with the DPoP scheme and a proof by its key."""
        if info.jkt is None:
            self._fail(
                request,
                "This access token is not DPoP-bound: send it as Authorization: Bearer.",
                "invalid_token",
                "DPoP",
            )
        if scheme != "DPoP":
            # Used as a Bearer token, a stolen DPoP-bound token would need no key at all.
            self._fail(
                request,
                "This access token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof.",
                "invalid_token",
                "DPoP",
            )
        dpop.verify_request_proof(request, access_token=token, expected_jkt=info.jkt)
        if oauth_cc_settings.DPOP_REQUIRE_NONCE:
            # RFC 9449 §8.2: a fresh nonce with the success too, before the one in use expires.
            self._set_view_header(request, "DPoP-Nonce", dpop.current_nonce())

    @staticmethod
    def _set_view_header(request: Request, name: str, value: str) -> None:
        # DRF's error response carries only WWW-Authenticate and Retry-After; the view's own
        # response headers (APIView.headers, applied by finalize_response) carry the rest.
        view = (request.parser_context or {}).get("view")
        if view is not None and isinstance(getattr(view, "headers", None), dict):
            view.headers[name] = value

    def _fail(self, request: Request, description: str, error: str, scheme: str = "Bearer") -> NoReturn:
        description = client_safe(description)
        # DRF asks authenticate_header() for WWW-Authenticate; remember what went wrong.
        request._oauth_cc_error = (error, description, scheme)  # type: ignore[attr-defined]  # our own mark on the request
        raise exceptions.AuthenticationFailed(description, code=error)

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, "_oauth_cc_error", None)
        if error is None:
            return f'Bearer realm="{REALM}"'
        code, description, scheme = error
        return f'{_challenge(scheme)}, error="{code}", error_description="{_quote(description)}"'
