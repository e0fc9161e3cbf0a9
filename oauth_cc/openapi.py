"""Issuer side: OpenAPI 3 description of oauth_cc for drf-spectacular (``pip install oauth-cc[openapi]``).

Two pieces, both used by a site that serves its schema with drf-spectacular:

- :class:`JWTAccessTokenScheme`, an ``OpenApiAuthenticationExtension`` for
  :class:`~oauth_cc.contrib.rest_framework.JWTAccessTokenAuthentication`. The app registers it in
  ``ready()`` when drf-spectacular is installed. It declares the ``oauth_cc`` security scheme, an
  OAuth 2.0 ``clientCredentials`` flow whose ``tokenUrl`` is the absolute token endpoint and whose
  ``scopes`` are the ``Scope`` rows with their descriptions, read when the schema is generated.
  Each operation's requirement is what :class:`~oauth_cc.contrib.rest_framework.HasScope` checks
  for that HTTP method (``required_scopes_by_method``, else ``required_scopes``).
- :func:`postprocess`, a drf-spectacular postprocessing hook. It adds the OAuth endpoints (token,
  introspection, revocation, JWKS, metadata: plain Django views drf-spectacular cannot see) with
  their request bodies and RFC 6749 §5.2 error responses, and documents the 400/401/403 answers
  of every operation that takes an access token::

    SPECTACULAR_SETTINGS = {
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "oauth_cc.openapi.postprocess",
        ],
    }

:func:`generate_schema` returns the schema of the current site as a dict (for exports, tests).
"""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions

from .common.algorithms import ASSERTION_ALGORITHMS
from .issuer import issuance
from .issuer.client_auth import endpoint_url
from .models import Scope, TokenEndpointAuthMethod

#: Name of the access-token security scheme in ``components.securitySchemes``.
SCHEME_NAME = "oauth_cc"
#: Name of the HTTP Basic scheme of the OAuth endpoints' client authentication.
CLIENT_BASIC_SCHEME_NAME = "oauth_cc_client_basic"

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def live_scopes() -> dict[str, str]:
    """``{name: description}`` of every ``Scope`` row, as the schema's OAuth 2.0 flow lists them.

    Through the outage gate: with the database down the schema view answers a JSON 503, as
    the metadata endpoint does, not a 500.
    """
    from .common.errors import TemporarilyUnavailable
    from .contrib.rest_framework.authentication import CheckUnavailable
    from .issuer import outage

    try:
        rows = outage.database.run(
            "the scopes", lambda: list(Scope.objects.values_list("name", "description"))
        )
    except TemporarilyUnavailable as exc:
        # The schema view is a DRF view: a DRF exception, so the answer is a JSON 503.
        raise CheckUnavailable(
            exc.retry_after, "The schema cannot be generated right now; try again shortly."
        ) from None
    return {name: description or name for name, description in rows}


# drf-spectacular ships no type information: its calls below are untyped.
class JWTAccessTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The ``oauth_cc`` security scheme and each operation's scope requirement."""

    target_class = "oauth_cc.contrib.rest_framework.authentication.JWTAccessTokenAuthentication"
    match_subclasses = True
    name = SCHEME_NAME

    def get_security_requirement(self, auto_schema: Any) -> dict[str, list[str]]:
        from .contrib.rest_framework.permissions import HasScope, required_scopes_for

        view, method = auto_schema.view, auto_schema.method
        if not any(isinstance(permission, HasScope) for permission in view.get_permissions()):
            # Another permission decides; a token is what this authenticator takes, any scope.
            return {SCHEME_NAME: []}
        try:
            scopes = required_scopes_for(view, method)
        except exceptions.MethodNotAllowed:
            warn(
                f"{type(view).__name__}.required_scopes_by_method has no {method} entry and the view "
                "sets no required_scopes: HasScope answers 405 to this method."
            )
            scopes = []
        return {SCHEME_NAME: scopes}

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return security_scheme()


def security_scheme() -> dict[str, Any]:
    return {
        "type": "oauth2",
        "description": (
            "RFC 9068 JWT access tokens from the client-credentials grant (RFC 6749 §4.4), sent as "
            "`Authorization: Bearer <token>`."
        ),
        "flows": {"clientCredentials": {"tokenUrl": endpoint_url("token"), "scopes": live_scopes()}},
    }


# --- components ---------------------------------------------------------------------------------

OAUTH_ERROR_CODES = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "access_denied",
    "too_many_requests",
    "temporarily_unavailable",
]


def _components() -> dict[str, dict[str, Any]]:
    string = {"type": "string"}
    return {
        "OAuthError": {
            "type": "object",
            "description": "RFC 6749 §5.2 error.",
            "properties": {
                "error": {"type": "string", "description": "One of: " + ", ".join(OAUTH_ERROR_CODES) + "."},
                "error_description": string,
            },
            "required": ["error"],
        },
        "ApiError": {
            "type": "object",
            "description": "Django REST framework error; `WWW-Authenticate` carries the RFC 6750 challenge.",
            "properties": {"detail": string},
            "required": ["detail"],
        },
        "TokenRequest": {
            "type": "object",
            "properties": {
                "grant_type": {"type": "string", "enum": [issuance.GRANT_TYPE]},
                "scope": {
                    **string,
                    "description": "Space-separated scopes; the client's default scopes if absent.",
                },
                "resource": {**string, "description": "RFC 8707 resource indicator (an absolute URI)."},
            },
            "required": ["grant_type"],
            # Unknown parameters are ignored (RFC 6749 §3.2); no parameter may be repeated.
            "additionalProperties": string,
        },
        "TokenResponse": {
            "type": "object",
            "properties": {
                "access_token": {**string, "description": "An RFC 9068 JWT."},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "minimum": 1},
                "scope": string,
            },
            "required": ["access_token", "token_type", "expires_in", "scope"],
        },
        "TokenParameterRequest": {
            "type": "object",
            "properties": {
                "token": {"type": "string", "minLength": 1},
                "token_type_hint": string,
            },
            "required": ["token"],
            "additionalProperties": string,
        },
        "IntrospectionResponse": {
            "type": "object",
            "description": "RFC 7662 §2.2: `active`, and for an active token its claims.",
            "properties": {
                "active": {"type": "boolean"},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "client_id": string,
                "scope": string,
                "iss": string,
                "sub": string,
                "aud": {"oneOf": [string, {"type": "array", "items": string}]},
                "exp": {"type": "integer"},
                "iat": {"type": "integer"},
                "jti": string,
            },
            "required": ["active"],
        },
        "JWKSet": {
            "type": "object",
            "description": "RFC 7517 JWK Set of the public signing keys.",
            "properties": {
                "keys": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"kty": string, "kid": string, "alg": string, "use": string},
                        "required": ["kty", "kid"],
                    },
                }
            },
            "required": ["keys"],
        },
        "ServerMetadata": {
            "type": "object",
            "description": "RFC 8414 authorization server metadata.",
            "properties": {
                "issuer": string,
                "token_endpoint": string,
                "jwks_uri": string,
                "introspection_endpoint": string,
                "revocation_endpoint": string,
                "oauth_cc_revocation_feed_endpoint": {
                    **string,
                    "description": "oauth_cc's extension: the revocation feed for resource-only services.",
                },
                "grant_types_supported": {"type": "array", "items": string},
                "response_types_supported": {"type": "array", "items": string},
                "scopes_supported": {"type": "array", "items": string},
                "token_endpoint_auth_methods_supported": {
                    "type": "array",
                    "items": {"type": "string", "enum": [m.value for m in TokenEndpointAuthMethod]},
                },
                "token_endpoint_auth_signing_alg_values_supported": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(ASSERTION_ALGORITHMS)},
                },
            },
            "required": ["issuer", "token_endpoint", "jwks_uri", "grant_types_supported"],
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def _oauth_errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: (
            "invalid_request, unsupported_grant_type, invalid_scope, invalid_target, unauthorized_client.",
            {},
        ),
        401: (
            "invalid_client: client authentication failed.",
            {"WWW-Authenticate": _header("`Basic` challenge when the client used HTTP Basic.")},
        ),
        403: ("access_denied, or unauthorized_client (a client that may not introspect).", {}),
        405: (
            "invalid_request: another HTTP method.",
            {"Allow": _header("The methods this endpoint allows.")},
        ),
        429: ("too_many_requests: a rate limit.", {"Retry-After": _header("Seconds to wait.")}),
        503: (
            "temporarily_unavailable: the database cannot be reached.",
            {"Retry-After": _header("Seconds.")},
        ),
    }
    return {
        str(status): _json(described[status][0], "OAuthError", described[status][1]) for status in statuses
    }


def _form_body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": _ref(schema)}},
    }


def _client_security() -> list[dict[str, list[str]]]:
    # HTTP Basic (client_secret_basic), or credentials in the form (client_secret_post,
    # private_key_jwt), which OpenAPI cannot name as a security scheme: hence the empty alternative.
    return [{CLIENT_BASIC_SCHEME_NAME: []}, {}]


# The form credentials are not in the body schemas: a request must use exactly one client
# authentication method (RFC 6749 §2.3), and a schema cannot say "these fields only without an
# Authorization header"; a fuzzer sending both would get a (correct) 400 for a schema-valid body.
CLIENT_AUTHENTICATION = (
    "Client authentication, exactly one of: HTTP Basic with the client_id and secret "
    "(`client_secret_basic`); form fields `client_id` and `client_secret` (`client_secret_post`); "
    "form fields `client_assertion_type=" + ASSERTION_TYPE + "` and `client_assertion`, a JWT "
    "the client signs (`private_key_jwt`, RFC 7523)."
)


def _oauth_paths() -> dict[str, dict[str, Any]]:
    tags = ["oauth"]
    no_store = {"Cache-Control": _header("`no-store`.")}
    return {
        "token": {
            "post": {
                "operationId": "oauth_token",
                "description": CLIENT_AUTHENTICATION,
                "summary": "Get an access token (client credentials, RFC 6749 §4.4)",
                "tags": tags,
                "security": _client_security(),
                "requestBody": _form_body("TokenRequest"),
                "responses": {
                    "200": _json("An access token.", "TokenResponse", no_store),
                    **_oauth_errors(400, 401, 403, 429, 503),
                },
            }
        },
        "introspect": {
            "post": {
                "operationId": "oauth_introspect",
                "description": CLIENT_AUTHENTICATION,
                "summary": "Introspect an access token (RFC 7662); clients with “may introspect tokens”",
                "tags": tags,
                "security": _client_security(),
                "requestBody": _form_body("TokenParameterRequest"),
                "responses": {
                    "200": _json(
                        "Whether the token is active, and its claims.", "IntrospectionResponse", no_store
                    ),
                    **_oauth_errors(400, 401, 403, 429, 503),
                },
            }
        },
        "revoke": {
            "post": {
                "operationId": "oauth_revoke",
                "description": CLIENT_AUTHENTICATION,
                "summary": "Revoke one of the client's own access tokens (RFC 7009)",
                "tags": tags,
                "security": _client_security(),
                "requestBody": _form_body("TokenParameterRequest"),
                "responses": {
                    "200": {
                        "description": "Revoked, or not a token of this client (RFC 7009 §2.2). Empty body.",
                        "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}},
                    },
                    **_oauth_errors(400, 401, 403, 429, 503),
                },
            }
        },
        "jwks": {
            "get": {
                "operationId": "oauth_jwks",
                "summary": "The public keys that verify access tokens",
                "tags": tags,
                "security": [{}],
                "responses": {"200": _json("JWK Set.", "JWKSet"), **_oauth_errors(503)},
            }
        },
        "metadata": {
            "get": {
                "operationId": "oauth_server_metadata",
                "summary": "Authorization server metadata (RFC 8414)",
                "tags": tags,
                "security": [{}],
                "responses": {"200": _json("Metadata.", "ServerMetadata"), **_oauth_errors(503)},
            }
        },
    }


def _bearer_responses(operation: dict[str, Any]) -> dict[str, Any]:
    challenge = {"WWW-Authenticate": _header('The RFC 6750 challenge, `Bearer realm="api"`, ...')}
    scopes = {
        scope for requirement in operation.get("security", []) for scope in requirement.get(SCHEME_NAME, [])
    }
    optional = {} in operation.get("security", [])
    responses: dict[str, Any] = {
        "400": {
            "description": "invalid_request: a malformed `Authorization: Bearer` header, or an invalid body.",
            "headers": challenge,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            _ref("ApiError"),
                            {
                                "type": "object",
                                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                            },
                        ]
                    }
                }
            },
        },
        "401": _json("No access token, or invalid_token.", "ApiError", challenge),
        "503": _json("The token could not be checked (the database cannot be reached).", "ApiError"),
    }
    if optional:
        # Reachable without a token; a token sent is still checked.
        responses["401"]["description"] = "invalid_token: a token was sent and it is not valid."
    if scopes:
        responses["403"] = _json(
            f"insufficient_scope: the token lacks {' '.join(sorted(scopes))}.", "ApiError", challenge
        )
    return responses


def postprocess(
    result: dict[str, Any], generator: Any = None, request: Any = None, public: bool = True, **kwargs: Any
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the OAuth endpoints, and the access-token errors."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in _components().items():
        schemas.setdefault(name, schema)
    security_schemes = components.setdefault("securitySchemes", {})
    security_schemes.setdefault(SCHEME_NAME, security_scheme())
    security_schemes.setdefault(
        CLIENT_BASIC_SCHEME_NAME,
        {"type": "http", "scheme": "basic", "description": "`client_secret_basic`: client_id and secret."},
    )

    paths = result.setdefault("paths", {})
    for operations in paths.values():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            if any(SCHEME_NAME in requirement for requirement in operation.get("security", [])):
                responses = operation.setdefault("responses", {})
                for status, response in _bearer_responses(operation).items():
                    responses.setdefault(status, response)

    for url_name, operations in _oauth_paths().items():
        try:
            path = reverse(f"oauth_cc:{url_name}")
        except NoReverseMatch:
            continue  # oauth_cc's URLs are not on this site
        paths.setdefault(path, operations)
    result.setdefault("tags", [])
    if not any(tag.get("name") == "oauth" for tag in result["tags"]):
        result["tags"].append({"name": "oauth", "description": "OAuth 2.0 endpoints of oauth_cc."})
    return result


def generate_schema(urlconf: str | None = None, *, public: bool = True) -> dict[str, Any]:
    """The OpenAPI schema of the site (or of ``urlconf``) as drf-spectacular generates it, as a dict."""
    from drf_spectacular.generators import SchemaGenerator

    generator = SchemaGenerator(urlconf=urlconf)  # type: ignore[no-untyped-call]
    schema: dict[str, Any] = generator.get_schema(request=None, public=public)  # type: ignore[no-untyped-call]
    return schema
