"""Issuer side: a Postman collection (format v2.1) of the site: ``manage.py oauth_cc export postman``.

What it holds:

- Collection variables ``base_url`` (default: the issuer), ``client_id`` (the given client's, or a
  placeholder), ``client_secret`` (always the placeholder :data:`SECRET_PLACEHOLDER`: the site
  keeps only hashes, and a collection file gets shared), ``scope`` (the client's scopes, or empty
  for the site's default scopes), and ``access_token`` / ``access_token_expires_at``, which the
  pre-request script fills.
- A collection-level **pre-request script** that gets a client-credentials token with
  ``client_secret_basic`` through ``pm.sendRequest`` and keeps it until 60 seconds before it
  expires. Postman's OAuth 2.0 helper only fetches tokens interactively ("Get New Access
  Token"); newman never does, so the script is what makes the collection run unattended.
- A collection-level ``oauth2`` auth block (grant type client_credentials, token URL, client id
  and secret as variables) whose ``accessToken`` is ``{{access_token}}``: requests carry the
  script's token as ``Authorization: Bearer``, and Postman users still find the helper filled in.
- A collection-level test: every request must answer 2xx.
- Folder "OAuth 2.0": the authorization server metadata, the JWKS and a token request.
- Folder "API": one request per API operation. With drf-spectacular installed and configured as
  the site's schema class (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``), the operations come from
  its ``SchemaGenerator``; otherwise from the DRF views of the URLconf (DRF's
  ``EndpointEnumerator``). JSON bodies are sample values for the writable fields of the
  operation's serializer.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from oauth_cc.conf import oauth_cc_settings
from oauth_cc.issuer.client_auth import endpoint_url
from oauth_cc.models import Application

SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
SECRET_PLACEHOLDER = "<set me>"
CLIENT_ID_PLACEHOLDER = "<client_id>"
#: Methods that do not get a request of their own.
SKIPPED_METHODS = {"HEAD", "OPTIONS", "TRACE"}

#: Refresh this long before the token expires (milliseconds), so no request carries a token
#: that expires in flight.
REFRESH_MARGIN_MS = 60_000

PRE_REQUEST_SCRIPT = """\
// oauth_cc: get a client-credentials token (client_secret_basic) and keep it until shortly
// before it expires. Postman's OAuth 2.0 helper does not fetch tokens under newman; this does.
(function () {
    if (pm.request.auth && pm.request.auth.type !== "oauth2") {
        return; // requests with their own auth (the token request, public documents)
    }
    var token = pm.collectionVariables.get("access_token");
    var expiresAt = Number(pm.collectionVariables.get("access_token_expires_at") || 0);
    if (token && Date.now() < expiresAt - %(margin)d) {
        return;
    }
    var clientId = pm.variables.get("client_id") || "";
    var secret = pm.variables.get("client_secret") || "";
    if (!secret || secret === "%(placeholder)s" || !clientId || clientId === "%(id_placeholder)s") {
        throw new Error("Set client_id and client_secret (e.g. newman run ... " +
            "--env-var client_secret=...): the collection holds placeholders only.");
    }
    var btoa = require("btoa");
    // RFC 6749 section 2.3.1: form-encode both before joining them for Basic authentication.
    var form = function (value) {
        return encodeURIComponent(value).replace(/%%20/g, "+");
    };
    var body = [{ key: "grant_type", value: "client_credentials" }];
    var scope = pm.variables.get("scope");
    if (scope) {
        body.push({ key: "scope", value: scope });
    }
    pm.sendRequest({
        url: pm.variables.replaceIn("{{base_url}}%(token_path)s"),
        method: "POST",
        header: [
            { key: "Authorization", value: "Basic " + btoa(form(clientId) + ":" + form(secret)) },
            { key: "Accept", value: "application/json" }
        ],
        body: { mode: "urlencoded", urlencoded: body }
    }, function (err, response) {
        // An exception thrown here would be lost (the callback runs after the script); a failed
        // assertion is reported with the request.
        var data = {};
        try {
            data = err ? {} : response.json();
        } catch (e) {
            data = {};
        }
        if (err || response.code !== 200 || !data.access_token) {
            var problem = err ? "Token request failed: " + err : "Token request answered " +
                response.code + ": " + (data.error || "") + " " + (data.error_description || "");
            pm.test(problem, function () {
                throw new Error(problem);
            });
            return;
        }
        pm.collectionVariables.set("access_token", data.access_token);
        pm.collectionVariables.set("access_token_expires_at",
            String(Date.now() + 1000 * Number(data.expires_in || 0)));
    });
})();
"""

TEST_SCRIPT = """\
pm.test(pm.info.requestName + ": 2xx", function () {
    var challenge = pm.response.headers.get("WWW-Authenticate") || "";
    pm.expect(pm.response.code, challenge).to.be.within(200, 299);
});
"""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # a URL path with {name} parameters
    name: str
    description: str = ""
    body: dict[str, Any] | None = field(default=None, compare=False)


class ExportError(ValueError):
    """A value the collection cannot carry safely; the message says what to change."""


def refuse_variable_syntax(what: str, value: str) -> None:
    """Postman resolves ``{{name}}`` in variable values, recursively and with no escape: a value
    holding ``{{client_secret}}`` would make Postman send the secret wherever that value goes
    (a scope echoed back in an error, say). Such values are refused, not exported."""
    if "{{" in value or "}}" in value:
        raise ExportError(
            f'{what} contain(s) "{{{{" or "}}}}", which Postman reads as a variable reference; rename it '
            "before exporting (or export without --client)."
        )


def build_collection(
    application: Application | None = None, *, base_url: str | None = None
) -> dict[str, Any]:
    """The collection as a JSON-ready dict. Holds no secret."""
    base = (base_url or oauth_cc_settings.issuer).rstrip("/")
    token_path = reverse("oauth_cc:token")
    if application is not None:
        client_id = application.client_id
        scope = " ".join(sorted(s.name for s in application.scopes.all()))
        name = f"{application.name} ({base})"
    else:
        client_id, scope, name = CLIENT_ID_PLACEHOLDER, "", base
    for what, value in (("The site URL", base), ("The client_id", client_id), ("The client's scopes", scope)):
        refuse_variable_syntax(what, value)
    script = PRE_REQUEST_SCRIPT % {
        "margin": REFRESH_MARGIN_MS,
        "placeholder": SECRET_PLACEHOLDER,
        "id_placeholder": CLIENT_ID_PLACEHOLDER,
        "token_path": token_path,
    }
    return {
        "info": {
            "_postman_id": str(uuid.uuid5(uuid.NAMESPACE_URL, endpoint_url("token") + "#" + client_id)),
            "name": f"oauth_cc API: {name}",
            "description": (
                "Client-credentials access to the API. Set client_secret (a Postman environment "
                "or `newman run --env-var client_secret=...`); the collection never holds it. The "
                "pre-request script gets a token and keeps it until shortly before it expires."
            ),
            "schema": SCHEMA_URL,
        },
        "auth": _oauth2_auth(token_path),
        "event": [_event("prerequest", script), _event("test", TEST_SCRIPT)],
        "variable": [
            _variable("base_url", base, "The site; the issuer by default."),
            _variable("client_id", client_id, "The API client's client_id."),
            _variable(
                "client_secret",
                SECRET_PLACEHOLDER,
                "Placeholder. Supply the secret at run time; never save it here.",
            ),
            _variable("scope", scope, "Scopes to ask for, space-separated; empty: the default scopes."),
            _variable("access_token", "", "Set by the pre-request script."),
            _variable("access_token_expires_at", "0", "Set by the pre-request script (ms since 1970)."),
        ],
        "item": [
            {"name": "OAuth 2.0", "item": _oauth_items(token_path)},
            {"name": "API", "item": [_operation_item(op) for op in api_operations()]},
        ],
    }


def _oauth2_auth(token_path: str) -> dict[str, Any]:
    params = {
        "grant_type": "client_credentials",
        "accessTokenUrl": "{{base_url}}" + token_path,
        "clientId": "{{client_id}}",
        "clientSecret": "{{client_secret}}",
        "scope": "{{scope}}",
        "client_authentication": "header",
        "accessToken": "{{access_token}}",
        "tokenType": "Bearer",
        "addTokenTo": "header",
        "headerPrefix": "Bearer",
        "tokenName": "oauth_cc",
    }
    return {"type": "oauth2", "oauth2": [{"key": k, "value": v, "type": "string"} for k, v in params.items()]}


def _event(listen: str, source: str) -> dict[str, Any]:
    return {"listen": listen, "script": {"type": "text/javascript", "exec": source.splitlines()}}


def _variable(key: str, value: str, description: str) -> dict[str, Any]:
    return {"key": key, "value": value, "type": "string", "description": description}


def _url(path: str) -> dict[str, Any]:
    """A v2.1 url object for ``{{base_url}}`` + ``path``; ``{name}`` parameters become ``:name``."""
    postman_path = re.sub(r"\{([^}/]+)\}", r":\1", path)
    segments = [s for s in postman_path.split("/") if s]
    url: dict[str, Any] = {
        "raw": "{{base_url}}" + postman_path,
        "host": ["{{base_url}}"],
        "path": segments + ([""] if postman_path.endswith("/") and segments else []),
    }
    names = re.findall(r"\{([^}/]+)\}", path)
    if names:
        url["variable"] = [{"key": n, "value": "", "description": f"The {n} path parameter."} for n in names]
    return url


def _oauth_items(token_path: str) -> list[dict[str, Any]]:
    public = {"type": "noauth"}
    token_test = _event(
        "test",
        'pm.test("token response", function () {\n'
        "    var data = pm.response.json();\n"
        '    pm.expect(data.token_type).to.eql("Bearer");\n'
        '    pm.expect(data.access_token).to.be.a("string");\n'
        "});",
    )
    return [
        {
            "name": "Authorization server metadata",
            "request": {
                "method": "GET",
                "auth": public,
                "url": _url(reverse("oauth_cc:metadata")),
                "description": "RFC 8414 metadata.",
            },
        },
        {
            "name": "JWKS",
            "request": {
                "method": "GET",
                "auth": public,
                "url": _url(reverse("oauth_cc:jwks")),
                "description": "The public keys that sign access tokens.",
            },
        },
        {
            "name": "Token (client_credentials)",
            "event": [token_test],
            "request": {
                "method": "POST",
                "auth": {
                    "type": "basic",
                    "basic": [
                        {"key": "username", "value": "{{client_id}}", "type": "string"},
                        {"key": "password", "value": "{{client_secret}}", "type": "string"},
                    ],
                },
                "header": [{"key": "Accept", "value": "application/json"}],
                "body": {
                    "mode": "urlencoded",
                    "urlencoded": [
                        {"key": "grant_type", "value": "client_credentials", "type": "text"},
                        {"key": "scope", "value": "{{scope}}", "type": "text"},
                    ],
                },
                "url": _url(token_path),
                "description": "A token request as the pre-request script sends it (client_secret_basic).",
            },
        },
    ]


def _operation_item(op: Operation) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": op.method,
        "header": [{"key": "Accept", "value": "application/json"}],
    }
    if op.body is not None:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(op.body, indent=2),
            "options": {"raw": {"language": "json"}},
        }
    request["url"] = _url(op.path)
    if op.description:
        request["description"] = op.description
    return {"name": op.name, "request": request}


# -- operations ------------------------------------------------------------------------------


def api_operations() -> list[Operation]:
    """The API's operations: from drf-spectacular when it is the site's schema class, else the URLconf."""
    if spectacular_in_use():
        return _spectacular_operations()
    return _urlconf_operations()


def spectacular_in_use() -> bool:
    try:
        from drf_spectacular.openapi import AutoSchema
    except ImportError:
        return False
    from rest_framework.settings import api_settings

    schema_class = api_settings.DEFAULT_SCHEMA_CLASS
    return isinstance(schema_class, type) and issubclass(schema_class, AutoSchema)


def _oauth_paths() -> set[str]:
    return {reverse(f"oauth_cc:{n}") for n in ("token", "introspect", "revoke", "jwks", "metadata")}


def _spectacular_operations() -> list[Operation]:
    from drf_spectacular.generators import SchemaGenerator

    # drf-spectacular ships no type information.
    schema = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    components = schema.get("components", {}).get("schemas", {})
    oauth = _oauth_paths()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        if path in oauth:
            continue
        for method, spec in methods.items():
            if method.upper() in SKIPPED_METHODS or not isinstance(spec, dict):
                continue
            body = None
            content = (spec.get("requestBody") or {}).get("content", {})
            json_media = next((m for m in content if m.split(";")[0].strip().endswith("json")), None)
            if json_media is not None:
                body = _sample_from_schema(content[json_media].get("schema", {}), components)
            operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    name=spec.get("summary") or f"{method.upper()} {path}",
                    description=spec.get("description", ""),
                    body=body,
                )
            )
    return operations


def _sample_from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    if depth > 8:
        return None
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    for combined in ("allOf", "oneOf", "anyOf"):
        if schema.get(combined):
            return _sample_from_schema(schema[combined][0], components, depth + 1)
    if "example" in schema:
        return schema["example"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: _sample_from_schema(prop, components, depth + 1)
            for name, prop in schema.get("properties", {}).items()
            if not prop.get("readOnly")
        }
    if kind == "array":
        return [_sample_from_schema(schema.get("items", {}), components, depth + 1)]
    return {"integer": 0, "number": 0, "boolean": False}.get(str(kind), "example")


def _urlconf_operations() -> list[Operation]:
    from rest_framework.schemas.generators import EndpointEnumerator

    oauth = _oauth_paths()
    operations = []
    for path, method, callback in EndpointEnumerator().get_api_endpoints():
        if path in oauth or method.upper() in SKIPPED_METHODS:
            continue
        view_class = callback.cls
        if view_class.__module__.split(".")[0] == "drf_spectacular":
            continue  # the schema and its documentation pages are not operations of the API
        body = None
        serializer_class = getattr(view_class, "serializer_class", None)
        if method.upper() in ("POST", "PUT", "PATCH") and serializer_class is not None:
            body = _sample_from_serializer(serializer_class())
        doc = (view_class.__doc__ or "").strip()
        operations.append(
            Operation(
                method=method.upper(),
                path=path,
                name=f"{method.upper()} {path}",
                description=doc,
                body=body,
            )
        )
    return operations


def _sample_from_serializer(serializer: Any) -> dict[str, Any]:
    from rest_framework import serializers

    sample: dict[str, Any] = {}
    for name, f in serializer.fields.items():
        if f.read_only:
            continue
        if isinstance(f, serializers.BooleanField):
            sample[name] = False
        elif isinstance(f, serializers.IntegerField | serializers.FloatField | serializers.DecimalField):
            sample[name] = 0
        elif isinstance(f, serializers.ChoiceField):
            sample[name] = next(iter(f.choices), "")
        elif isinstance(f, serializers.ListField | serializers.ListSerializer):
            sample[name] = []
        elif isinstance(f, serializers.Serializer):
            sample[name] = _sample_from_serializer(f)
        else:
            sample[name] = "example"
    return sample
