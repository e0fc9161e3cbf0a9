"""JWTAccessTokenAuthentication: reading ``Authorization: Bearer`` (RFC 6750 §2.1, §3) exactly.

What each kind of header gets: no header or another scheme, no authentication (so DRF answers
401 with the bare challenge); a malformed Bearer header, 400 ``invalid_request``; a token that
does not verify, 401 ``invalid_token`` with the reason, quoted, in the challenge; a server-side
failure while checking, a JSON 503 ``temporarily_unavailable``, logged without the token.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from oauth_cc.common.tokens import InvalidToken
from oauth_cc.common.verification import AccessToken
from oauth_cc.contrib.rest_framework import HasScope, JWTAccessTokenAuthentication, authentication


class Protected(APIView):
    authentication_classes = [JWTAccessTokenAuthentication]
    permission_classes = [HasScope]
    required_scopes: list[str] = []

    def get(self, request: Any) -> Response:
        return Response({"client_id": request.auth.client_id})


def call(authorization: str | None) -> Any:
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Protected.as_view()(APIRequestFactory().get("/x/", **headers))
    response.render()
    return response


@pytest.fixture
def token(make_client: Any, token_for: Any) -> str:
    application, secret = make_client("bearer-client", scopes=["reports:read"])
    return token_for(application, secret, scope="reports:read")["access_token"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(token, scheme):
    response = call(f"{scheme} {token}")
    assert response.status_code == 200, response.data


def test_whitespace_around_the_token_is_ignored(token):
    assert call(f"Bearer   {token}  ").status_code == 200


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Token abc", "Bearer-x abc", "Bearerabc"])
def test_no_bearer_header_gets_the_bare_challenge(db, header):
    response = call(header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer    ", "Bearer a b", "Bearer a\tb"])
def test_a_malformed_bearer_header_is_a_bad_request(db, header):
    response = call(header)
    assert response.status_code == 400
    assert response.data["detail"] == "The Authorization header must be 'Bearer <token>'."
    assert response.data["detail"].code == "invalid_request"
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_request", '
        "error_description=\"The Authorization header must be 'Bearer <token>'.\""
    )


def test_an_invalid_token_gets_invalid_token_with_the_reason(db):
    response = call("Bearer not-a-jwt")
    reason = (
        "The access token is not a well-formed JWT: it must be a JWS in compact serialization, "
        "three base64url segments separated by dots."
    )
    assert response.status_code == 401
    assert response.data["detail"] == reason
    assert response.data["detail"].code == "invalid_token"
    assert (
        response["WWW-Authenticate"]
        == f'Bearer realm="api", error="invalid_token", error_description="{reason}"'
    )


def test_quotes_in_a_reason_are_escaped_in_the_challenge_and_a_backslash_is_replaced(db, monkeypatch):
    def refuse(token: str) -> AccessToken:
        raise InvalidToken('The "kid" \\ is odd')

    monkeypatch.setattr(authentication, "check_access_token", refuse)
    response = call("Bearer abc")

    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The \\"kid\\" ? is odd"'
    )
    assert response.data["detail"] == 'The "kid" ? is odd'


def test_quote_escapes_backslash_before_quote():
    assert authentication._quote('a"b\\c') == 'a\\"b\\\\c'
    assert authentication._quote("plain") == "plain"


def test_a_server_failure_while_checking_is_a_json_503_and_logged_without_the_token(db, monkeypatch, caplog):
    def broken(token: str) -> AccessToken:
        raise RuntimeError("database is down")

    monkeypatch.setattr(authentication, "check_access_token", broken)
    with caplog.at_level(logging.ERROR, logger="oauth_cc.authentication"):
        response = call("Bearer secret-token-value")

    assert response.status_code == 503
    assert response.data["detail"] == "The access token could not be checked right now; try again shortly."
    assert response.data["detail"].code == "temporarily_unavailable"
    [record] = [r for r in caplog.records if r.name == "oauth_cc.authentication"]
    assert record.getMessage() == "Could not check an access token"
    assert record.exc_info and record.exc_info[0] is RuntimeError
    assert "secret-token-value" not in caplog.text


def test_authenticate_returns_the_lazy_run_as_user_and_the_access_token(token):
    request = APIRequestFactory().get("/x/", HTTP_AUTHORIZATION=f"Bearer {token}")
    user, info = JWTAccessTokenAuthentication().authenticate(request)

    assert isinstance(info, AccessToken)
    assert info.scopes == frozenset({"reports:read"})
    assert user.is_anonymous


def test_authenticate_header_without_a_failure_is_the_bare_challenge():
    request = APIRequestFactory().get("/x/")
    assert JWTAccessTokenAuthentication().authenticate_header(request) == 'Bearer realm="api"'
