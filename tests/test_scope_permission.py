"""HasScope and AccessToken's scope checks: a request needs *every* scope its view names.

A view that names two scopes must refuse a token that carries only one of them (all-of, never
any-of), with RFC 6750 §3.1 ``insufficient_scope``, the full list of needed scopes in the
challenge, and the same rule through DOT's API (``is_valid``, ``allow_scopes``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from oauth_cc.common.verification import AccessToken
from oauth_cc.contrib.rest_framework import HasScope, JWTAccessTokenAuthentication
from oauth_cc.contrib.rest_framework.permissions import InsufficientScope, required_scopes_for

READ_AND_WRITE = ["reports:read", "reports:write"]


class NeedsReadAndWrite(APIView):
    authentication_classes = [JWTAccessTokenAuthentication]
    permission_classes = [HasScope]
    required_scopes = READ_AND_WRITE

    def get(self, request: Any) -> Response:
        return Response({"client_id": request.auth.client_id})


class PerMethod(APIView):
    authentication_classes = [JWTAccessTokenAuthentication]
    permission_classes = [HasScope]
    required_scopes_by_method = {"GET": ["reports:read"], "POST": READ_AND_WRITE}

    def get(self, request: Any) -> Response:
        return Response({"ok": "get"})

    def post(self, request: Any) -> Response:
        return Response({"ok": "post"})

    def delete(self, request: Any) -> Response:
        return Response({"ok": "delete"})


def _call(view: type[APIView], method: str, token: str) -> Any:
    request = getattr(APIRequestFactory(), method)("/x/", HTTP_AUTHORIZATION=f"Bearer {token}")
    response = view.as_view()(request)
    response.render()
    return response


def _token(make_client: Any, token_for: Any, scopes: list[str]) -> str:
    application, secret = make_client("scoped", scopes=READ_AND_WRITE)
    return token_for(application, secret, scope=" ".join(scopes))["access_token"]


def test_token_with_one_of_two_required_scopes_is_refused_with_insufficient_scope(make_client, token_for):
    token = _token(make_client, token_for, ["reports:read"])

    response = _call(NeedsReadAndWrite, "get", token)

    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="reports:read reports:write"'
    )
    assert response.data["detail"] == "This request needs the scope: reports:read reports:write."
    assert response.data["detail"].code == "insufficient_scope"


def test_token_with_the_other_one_of_two_required_scopes_is_refused(make_client, token_for):
    token = _token(make_client, token_for, ["reports:write"])

    response = _call(NeedsReadAndWrite, "get", token)

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_token_with_every_required_scope_is_let_through(make_client, token_for):
    token = _token(make_client, token_for, READ_AND_WRITE)

    response = _call(NeedsReadAndWrite, "get", token)

    assert response.status_code == 200, response.data
    assert "WWW-Authenticate" not in response


def test_per_method_scopes_need_all_of_the_methods_scopes(make_client, token_for):
    reader = _token(make_client, token_for, ["reports:read"])

    assert _call(PerMethod, "get", reader).status_code == 200
    post = _call(PerMethod, "post", reader)
    assert post.status_code == 403
    assert post["WWW-Authenticate"].endswith('scope="reports:read reports:write"')


def test_method_missing_from_required_scopes_by_method_without_fallback_is_405(make_client, token_for):
    token = _token(make_client, token_for, READ_AND_WRITE)

    response = _call(PerMethod, "delete", token)

    assert response.status_code == 405
    assert response.data["detail"] == 'Method "DELETE" not allowed.'
    assert response.data["detail"].code == "method_not_allowed"


def test_request_without_a_token_is_401_with_the_bare_challenge(db):
    request = APIRequestFactory().get("/x/")
    response = NeedsReadAndWrite.as_view()(request)
    response.render()

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_has_permission_is_false_without_an_access_token():
    request = APIRequestFactory().get("/x/")
    request.auth = "not an AccessToken"  # what another authentication class might set

    assert HasScope().has_permission(request, NeedsReadAndWrite()) is False


def test_required_scopes_for_reads_per_method_then_falls_back():
    class Both:
        required_scopes_by_method = {"POST": ("a", "b")}
        required_scopes = ("c",)

    assert required_scopes_for(Both(), "POST") == ["a", "b"]
    assert required_scopes_for(Both(), "GET") == ["c"]


def test_required_scopes_for_a_view_that_names_none_is_a_configuration_error():
    class Neither:
        pass

    with pytest.raises(ImproperlyConfigured) as raised:
        required_scopes_for(Neither(), "GET")
    assert str(raised.value) == (
        "Neither uses HasScope but sets neither required_scopes nor required_scopes_by_method."
    )


def test_required_scopes_for_an_unlisted_method_without_fallback_is_method_not_allowed():
    class OnlyGet:
        required_scopes_by_method = {"GET": []}

    with pytest.raises(exceptions.MethodNotAllowed):
        required_scopes_for(OnlyGet(), "PUT")


def test_insufficient_scope_names_every_needed_scope():
    exc = InsufficientScope(["a:read", "b:write"])

    assert exc.status_code == 403
    assert str(exc.detail) == "This request needs the scope: a:read b:write."
    assert exc.auth_header == 'Bearer realm="api", error="insufficient_scope", scope="a:read b:write"'


def _access_token(scopes: str, exp: float) -> AccessToken:
    return AccessToken.from_claims({"client_id": "c", "scope": scopes, "jti": "j", "exp": exp, "iat": 1})


def test_has_scopes_is_all_of_the_required_scopes():
    token = _access_token("reports:read other", time.time() + 60)

    assert token.has_scopes([]) is True
    assert token.has_scopes(["reports:read"]) is True
    assert token.has_scopes(["reports:read", "other"]) is True
    assert token.has_scopes(["reports:read", "reports:write"]) is False
    assert token.has_scopes(["reports:write"]) is False


def test_dot_api_allow_scopes_is_all_of_the_scopes():
    token = _access_token("reports:read", time.time() + 60)

    assert token.allow_scopes(["reports:read"]) is True
    assert token.allow_scopes(["reports:read", "reports:write"]) is False


def test_dot_api_is_valid_needs_an_unexpired_token_with_every_scope(monkeypatch):
    now = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    token = _access_token("reports:read", now + 1)

    assert token.is_valid() is True
    assert token.is_valid(["reports:read"]) is True
    assert token.is_valid(["reports:read", "reports:write"]) is False
    assert token.is_expired() is False


def test_dot_api_token_is_expired_at_its_exp_second(monkeypatch):
    now = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    token = _access_token("reports:read", now)

    assert token.is_valid() is False
    assert token.is_expired() is True
    assert _access_token("", now + 0.5).is_expired() is False


def test_access_token_scope_is_the_scope_claim_or_empty():
    assert _access_token("a b", 1).scope == "a b"
    assert _access_token("a b", 1).scopes == frozenset({"a", "b"})
    no_scope = AccessToken.from_claims({"client_id": "c", "jti": "j", "exp": 1, "iat": 1})
    assert no_scope.scope == ""
    assert no_scope.scopes == frozenset()
