"""The OpenAPI schema drf-spectacular generates with oauth_cc.openapi: security scheme, each
operation's scopes from HasScope, and the OAuth endpoints added by the postprocessing hook."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from django.urls import path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from oauth_cc.contrib.rest_framework import HasScope, JWTAccessTokenAuthentication
from oauth_cc.openapi import CLIENT_BASIC_SCHEME_NAME, SCHEME_NAME, JWTAccessTokenScheme, generate_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def scopes(make_scope: Any) -> None:
    make_scope("reports:read", default=True, description="Read reports")
    make_scope("reports:write", description="Submit reports")


def fetch(client: Any) -> dict[str, Any]:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_extension_is_registered_for_the_authentication_class_and_its_subclasses():
    class Subclass(JWTAccessTokenAuthentication):
        pass

    assert isinstance(
        OpenApiAuthenticationExtension.get_match(JWTAccessTokenAuthentication()), JWTAccessTokenScheme
    )
    assert isinstance(OpenApiAuthenticationExtension.get_match(Subclass()), JWTAccessTokenScheme)


def test_security_scheme_is_client_credentials_with_the_absolute_token_url_and_live_scopes(
    client: Any, scopes: None, make_scope: Any
):
    with override_settings(OAUTH_CC={"ISSUER": "https://api.example.com"}):
        scheme = fetch(client)["components"]["securitySchemes"][SCHEME_NAME]
        assert scheme["type"] == "oauth2"
        assert scheme["flows"] == {
            "clientCredentials": {
                "tokenUrl": "https://api.example.com/oauth/token/",
                "scopes": {"reports:read": "Read reports", "reports:write": "Submit reports"},
            }
        }
        # Read when the schema is generated: a scope added since shows up at once.
        make_scope("audit:read", description="Read the audit log")
        scopes_now = fetch(client)["components"]["securitySchemes"][SCHEME_NAME]["flows"]["clientCredentials"]
        assert scopes_now["scopes"]["audit:read"] == "Read the audit log"


def test_each_operation_requires_the_scopes_hasscope_checks_for_its_method(client: Any, scopes: None):
    paths = fetch(client)["paths"]
    assert paths["/api/reports/"]["get"]["security"] == [{SCHEME_NAME: ["reports:read"]}]
    assert paths["/api/reports/"]["post"]["security"] == [{SCHEME_NAME: ["reports:write"]}]
    assert paths["/api/ping/"]["get"]["security"] == [{SCHEME_NAME: ["reports:read"]}]
    # Any valid token, no scope.
    assert paths["/api/whoami/"]["get"]["security"] == [{SCHEME_NAME: []}]
    # Open: no authentication at all.
    assert paths["/api/health/"]["get"]["security"] == [{}]


def test_protected_operations_document_the_bearer_errors(client: Any, scopes: None):
    paths = fetch(client)["paths"]
    post = paths["/api/reports/"]["post"]["responses"]
    assert set(post) == {"201", "400", "401", "403", "503"}
    assert post["403"]["description"] == "insufficient_scope: the token lacks reports:write."
    assert "WWW-Authenticate" in post["401"]["headers"]
    # No scope needed: no insufficient_scope answer; an open view gets no bearer errors at all.
    assert "403" not in paths["/api/whoami/"]["get"]["responses"]
    assert set(paths["/api/health/"]["get"]["responses"]) == {"200"}


def test_the_oauth_endpoints_are_described_with_bodies_and_errors(client: Any, scopes: None):
    schema = fetch(client)
    paths = schema["paths"]
    assert {
        "/oauth/token/",
        "/oauth/introspect/",
        "/oauth/revoke/",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    } <= set(paths)
    token = paths["/oauth/token/"]["post"]
    assert token["security"] == [{CLIENT_BASIC_SCHEME_NAME: []}, {}]
    body = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert body == {"$ref": "#/components/schemas/TokenRequest"}
    request_schema = schema["components"]["schemas"]["TokenRequest"]
    assert request_schema["required"] == ["grant_type"]
    assert request_schema["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert set(token["responses"]) == {"200", "400", "401", "403", "429", "503"}
    assert token["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OAuthError"
    }
    assert schema["components"]["securitySchemes"][CLIENT_BASIC_SCHEME_NAME] == {
        "type": "http",
        "scheme": "basic",
        "description": "`client_secret_basic`: client_id and secret.",
    }
    assert paths["/oauth/revoke/"]["post"]["responses"]["200"]["content"] == {
        "text/plain": {"schema": {"type": "string", "maxLength": 0}}
    }
    assert paths["/.well-known/jwks.json"]["get"]["security"] == [{}]


# A site of its own: HasScope's fallbacks and permissions other than HasScope.


class EveryMethod(APIView):
    required_scopes = ["a:read"]

    def get(self, request):
        return Response({})

    def delete(self, request):
        return Response({})


class ByMethodWithFallback(APIView):
    required_scopes_by_method = {"POST": ["a:write"]}
    required_scopes = ["a:read"]

    def get(self, request):
        return Response({})

    def post(self, request):
        return Response({})


class ByMethodWithoutFallback(APIView):
    required_scopes_by_method = {"GET": ["a:read"]}

    def get(self, request):
        return Response({})

    def put(self, request):
        return Response({})


class TokenOnly(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({})


class Subclassed(APIView):
    class Strict(HasScope):
        pass

    permission_classes = [Strict]
    required_scopes = ["a:admin"]

    def get(self, request):
        return Response({})


urlpatterns = [
    path("every/", EveryMethod.as_view()),
    path("fallback/", ByMethodWithFallback.as_view()),
    path("nofallback/", ByMethodWithoutFallback.as_view()),
    path("token-only/", TokenOnly.as_view()),
    path("subclassed/", Subclassed.as_view()),
]


def test_hasscope_fallbacks_and_other_permissions(capsys: Any):
    paths = generate_schema(urlconf=__name__)["paths"]
    security = {
        (route, method): operation["security"]
        for route, operations in paths.items()
        for method, operation in operations.items()
        if not route.startswith(("/oauth/", "/.well-known/"))
    }
    assert security == {
        ("/every/", "get"): [{SCHEME_NAME: ["a:read"]}],
        ("/every/", "delete"): [{SCHEME_NAME: ["a:read"]}],
        ("/fallback/", "get"): [{SCHEME_NAME: ["a:read"]}],
        ("/fallback/", "post"): [{SCHEME_NAME: ["a:write"]}],
        ("/nofallback/", "get"): [{SCHEME_NAME: ["a:read"]}],
        ("/nofallback/", "put"): [{SCHEME_NAME: []}],
        ("/token-only/", "get"): [{SCHEME_NAME: []}],
        ("/subclassed/", "get"): [{SCHEME_NAME: ["a:admin"]}],
    }
    # HasScope answers 405 to PUT there: the generator says so.
    assert "ByMethodWithoutFallback.required_scopes_by_method has no PUT entry" in capsys.readouterr().err
    # This urlconf does not include oauth_cc's URLs... but reverse() uses the site's, so the
    # OAuth endpoints are still described, under the site's paths.
    assert "/oauth/token/" in paths


def test_schema_with_the_database_down_is_a_json_503(client, db):
    from django.db import OperationalError, connection

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    with connection.execute_wrapper(refuse):
        response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "The schema cannot be generated right now; try again shortly."}
    assert int(response["Retry-After"]) >= 1
