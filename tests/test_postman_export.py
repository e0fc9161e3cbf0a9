"""``oauth_cc export postman``: the collection's shape, and newman running it against the live site.

newman (npm) comes from ``make newman`` (``.node/``), ``OAUTH_CC_NEWMAN`` or the PATH. Without it
the newman tests are skipped, except when OAUTH_CC_REQUIRE_NEWMAN=1 (CI sets it after installing
newman), where a missing newman is a failure.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from example_project.demo.models import Report
from oauth_cc.issuer import clients, postman
from oauth_cc.models import Application, Scope
from oauth_cc.signals import token_issued
from tests.helpers import clear_shared_cache

REPO = Path(__file__).resolve().parent.parent
SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
API_OPERATIONS = {
    ("GET", "/api/reports/"),
    ("POST", "/api/reports/"),
    ("GET", "/api/whoami/"),
    ("GET", "/api/ping/"),
    ("GET", "/api/health/"),
}


def find_newman() -> str | None:
    candidates = [os.environ.get("OAUTH_CC_NEWMAN"), str(REPO / ".node/node_modules/.bin/newman")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("newman")


NEWMAN = find_newman()
needs_newman = pytest.mark.skipif(
    NEWMAN is None and os.environ.get("OAUTH_CC_REQUIRE_NEWMAN") != "1",
    reason="newman is not installed (make newman)",
)


def export(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("oauth_cc", "export", "postman", *args, stdout=out)
    return json.loads(out.getvalue())


def requests_of(collection: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for folder in collection["item"] for item in folder["item"]]


def variables(collection: dict[str, Any]) -> dict[str, str]:
    return {v["key"]: v["value"] for v in collection["variable"]}


# -- strict v2.1 shape ------------------------------------------------------------------------
# The members the Postman v2.1.0 collection schema (SCHEMA_URL) defines for each object this
# export uses, and the types it requires: an unknown member or a wrong type is an error here.

KEY_VALUE = {"key": str, "value": str, "type": str, "description": str, "disabled": bool}
SCRIPT = {"type": str, "exec": list}
URL = {"raw": str, "host": list, "path": list, "variable": list, "query": list}
REQUEST = {"method": str, "header": list, "body": dict, "url": dict, "auth": dict, "description": str}
ITEM = {"name": str, "request": dict, "event": list, "description": str}
FOLDER = {"name": str, "item": list, "description": str, "event": list, "auth": dict}
AUTH_TYPES = {"noauth", "basic", "bearer", "oauth2", "apikey"}
METHODS = {"GET", "PUT", "POST", "PATCH", "DELETE", "COPY", "HEAD", "OPTIONS"}


def check_members(obj: Any, allowed: dict[str, type], where: str, required: tuple[str, ...] = ()) -> None:
    assert isinstance(obj, dict), f"{where}: not an object"
    unknown = set(obj) - set(allowed)
    assert not unknown, f"{where}: members outside the v2.1 schema: {sorted(unknown)}"
    for name in required:
        assert name in obj, f"{where}: {name} is required"
    for name, value in obj.items():
        assert isinstance(value, allowed[name]), f"{where}.{name}: {type(value).__name__}"


def check_auth(auth: dict[str, Any], where: str) -> None:
    assert auth["type"] in AUTH_TYPES, where
    assert set(auth) <= {"type", auth["type"]}, where
    for attribute in auth.get(auth["type"], []):
        check_members(attribute, {"key": str, "value": str, "type": str}, f"{where}.{auth['type']}", ("key",))


def check_events(events: list[Any], where: str) -> None:
    for event in events:
        check_members(event, {"listen": str, "script": dict, "id": str, "disabled": bool}, where, ("listen",))
        assert event["listen"] in {"prerequest", "test"}, where
        check_members(event["script"], SCRIPT, f"{where}.script", ("exec",))
        assert all(isinstance(line, str) for line in event["script"]["exec"]), where


def check_request(request: dict[str, Any], where: str) -> None:
    check_members(request, REQUEST, where, ("method", "url"))
    assert request["method"] in METHODS, where
    check_members(request["url"], URL, f"{where}.url", ("raw",))
    assert all(isinstance(p, str) for p in request["url"]["host"] + request["url"]["path"]), where
    for variable in request["url"].get("variable", []):
        check_members(variable, KEY_VALUE, f"{where}.url.variable", ("key",))
    for header in request.get("header", []):
        check_members(header, KEY_VALUE, f"{where}.header", ("key", "value"))
    if "auth" in request:
        check_auth(request["auth"], f"{where}.auth")
    if "body" in request:
        body = request["body"]
        check_members(
            body, {"mode": str, "raw": str, "urlencoded": list, "options": dict}, f"{where}.body", ("mode",)
        )
        assert body["mode"] in {"raw", "urlencoded"} and body["mode"] in body, where
        for field in body.get("urlencoded", []):
            check_members(field, KEY_VALUE, f"{where}.body.urlencoded", ("key",))


def check_collection(collection: dict[str, Any]) -> None:
    check_members(
        collection,
        {"info": dict, "item": list, "auth": dict, "event": list, "variable": list},
        "collection",
        ("info", "item"),
    )
    check_members(
        collection["info"],
        {"_postman_id": str, "name": str, "description": str, "schema": str},
        "info",
        ("name", "schema"),
    )
    assert collection["info"]["schema"] == SCHEMA_URL
    check_auth(collection["auth"], "auth")
    check_events(collection["event"], "event")
    for variable in collection["variable"]:
        check_members(variable, KEY_VALUE, "variable", ("key", "value"))
    for folder in collection["item"]:
        check_members(folder, FOLDER, "folder", ("name", "item"))
        for item in folder["item"]:
            where = f"item {item.get('name')!r}"
            check_members(item, ITEM, where, ("name", "request"))
            check_events(item.get("event", []), where)
            check_request(item["request"], f"{where}.request")


# -- the collection ---------------------------------------------------------------------------


@pytest.fixture
def billing(make_client: Any) -> tuple[Any, str]:
    return make_client("billing", scopes=["reports:write", "reports:read"])


def test_collection_for_a_client_has_its_id_and_scopes_and_a_placeholder_secret(billing: Any):
    application, secret = billing
    collection = export("--client", application.client_id)

    check_collection(collection)
    assert variables(collection) == {
        "base_url": "http://testserver",
        "client_id": application.client_id,
        "client_secret": "<set me>",
        "scope": "reports:read reports:write",
        "access_token": "",
        "access_token_expires_at": "0",
    }
    text = json.dumps(collection)
    stored = application.secrets.get()
    assert secret not in text
    assert stored.secret_hash not in text
    assert stored.prefix not in text


def test_auth_block_is_oauth2_client_credentials_carrying_the_scripts_token(db: Any):
    collection = export()

    auth = collection["auth"]
    assert auth["type"] == "oauth2"
    params = {p["key"]: p["value"] for p in auth["oauth2"]}
    assert params["grant_type"] == "client_credentials"
    assert params["accessTokenUrl"] == "{{base_url}}/oauth/token/"
    assert params["clientId"] == "{{client_id}}"
    assert params["clientSecret"] == "{{client_secret}}"
    assert params["scope"] == "{{scope}}"
    assert params["client_authentication"] == "header"
    assert params["accessToken"] == "{{access_token}}"
    assert params["addTokenTo"] == "header"
    events = {e["listen"]: "\n".join(e["script"]["exec"]) for e in collection["event"]}
    assert "pm.sendRequest" in events["prerequest"]
    assert '"{{base_url}}/oauth/token/"' in events["prerequest"]
    assert "within(200, 299)" in events["test"]


def test_collection_without_client_has_placeholders_and_default_scopes(db: Any):
    values = variables(export())

    assert values["client_id"] == "<client_id>"
    assert values["client_secret"] == "<set me>"
    assert values["scope"] == ""


def test_base_url_option_replaces_the_issuer(db: Any):
    assert (
        variables(export("--base-url", "https://api.example.com/"))["base_url"] == "https://api.example.com"
    )


@pytest.mark.parametrize("url", ["ftp://x", "https://a.example/?q=1", "not a url", "https://a b"])
def test_base_url_that_is_not_an_http_url_is_refused(db: Any, url: str):
    with pytest.raises(CommandError, match=r"is not an http\(s\) URL without query or fragment"):
        export("--base-url", url)


def test_unknown_client_is_a_command_error(db: Any):
    with pytest.raises(CommandError) as excinfo:
        export("--client", "no-such-client")
    assert str(excinfo.value) == 'No API client has the client_id "no-such-client".'


def test_one_request_per_api_operation_from_the_urlconf(db: Any):
    # A site whose DRF schema class is not drf-spectacular's.
    rest = {k: v for k, v in settings.REST_FRAMEWORK.items() if k != "DEFAULT_SCHEMA_CLASS"}
    with override_settings(REST_FRAMEWORK=rest):
        assert not postman.spectacular_in_use()
        collection = export()

    oauth, api = collection["item"]
    assert [i["name"] for i in oauth["item"]] == [
        "Authorization server metadata",
        "JWKS",
        "Token (client_credentials)",
    ]
    operations = {(i["request"]["method"], i["request"]["url"]["raw"]) for i in api["item"]}
    assert operations == {(m, "{{base_url}}" + p) for m, p in API_OPERATIONS}
    assert len(api["item"]) == len(API_OPERATIONS)
    post = next(i for i in api["item"] if i["request"]["method"] == "POST")
    assert json.loads(post["request"]["body"]["raw"]) == {"title": "example", "body": "example"}
    assert all("auth" not in i["request"] for i in api["item"]), "API requests inherit the collection auth"


def test_operations_come_from_drf_spectacular_when_it_is_the_schema_class(db: Any, monkeypatch: Any):
    def not_the_urlconf() -> None:
        raise AssertionError("the URLconf fallback was used")

    monkeypatch.setattr(postman, "_urlconf_operations", not_the_urlconf)
    rest = {**settings.REST_FRAMEWORK, "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
    with override_settings(REST_FRAMEWORK=rest):
        assert postman.spectacular_in_use()
        collection = export()

    check_collection(collection)
    api = collection["item"][1]["item"]
    assert {(i["request"]["method"], i["request"]["url"]["raw"]) for i in api} == {
        (m, "{{base_url}}" + p) for m, p in API_OPERATIONS
    }
    post = next(i for i in api if i["request"]["method"] == "POST")
    assert json.loads(post["request"]["body"]["raw"]) == {"title": "example", "body": "example"}


def test_path_parameters_become_postman_variables():
    url = postman._url("/api/reports/{id}/items/{item}/")

    assert url["raw"] == "{{base_url}}/api/reports/:id/items/:item/"
    assert url["path"] == ["api", "reports", ":id", "items", ":item", ""]
    assert [v["key"] for v in url["variable"]] == ["id", "item"]


# -- newman against the live site ---------------------------------------------------------------


@pytest.fixture
def site(live_server: Any, transactional_db: Any) -> Iterator[Any]:
    clear_shared_cache()
    with override_settings(OAUTH_CC={**settings.OAUTH_CC, "ISSUER": live_server.url}):
        yield live_server


@pytest.fixture
def issued() -> Iterator[list[dict[str, Any]]]:
    tokens: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        tokens.append(kwargs)

    token_issued.connect(receiver, weak=False)
    yield tokens
    token_issued.disconnect(receiver)


def run_newman(collection: dict[str, Any], tmp_path: Path, *env_vars: str) -> tuple[int, str, dict[str, Any]]:
    if NEWMAN is None:
        pytest.fail("newman is missing: run `make newman` (npm install --prefix .node newman)")
    path = tmp_path / "collection.json"
    path.write_text(json.dumps(collection))
    report = tmp_path / "report.json"
    command = [NEWMAN, "run", str(path), "--reporters", "cli,json", "--reporter-json-export", str(report)]
    for env_var in env_vars:
        command += ["--env-var", env_var]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text())


@needs_newman
def test_newman_runs_the_collection_unattended(site: Any, billing: Any, issued: list, tmp_path: Path):
    application, secret = billing
    collection = export("--client", application.client_id)
    assert variables(collection)["base_url"] == site.url

    code, output, report = run_newman(collection, tmp_path, f"client_secret={secret}")

    assert code == 0, output
    assert "deprecated" not in output
    run = report["run"]
    assert run["failures"] == [], output
    assert run["stats"]["assertions"] == {"total": 9, "pending": 0, "failed": 0}
    assert run["stats"]["prerequestScripts"]["failed"] == 0
    calls = {
        (e["request"]["method"], "/" + "/".join(e["request"]["url"]["path"])): e for e in run["executions"]
    }
    assert set(calls) >= {(m, p) for m, p in API_OPERATIONS}
    for operation in API_OPERATIONS:
        assert 200 <= calls[operation]["response"]["code"] < 300, operation
    whoami = bytes(calls[("GET", "/api/whoami/")]["response"]["stream"]["data"])
    assert json.loads(whoami) == {
        "client_id": application.client_id,
        "scopes": ["reports:read", "reports:write"],
    }
    report_row = Report.objects.get()
    assert (report_row.title, report_row.submitted_by) == ("example", application.client_id)
    # One token from the pre-request script, reused by every API request, and one from the
    # collection's own token request.
    assert [t["client_id"] for t in issued] == [application.client_id] * 2
    assert all(sorted(t["scopes"]) == ["reports:read", "reports:write"] for t in issued)


@needs_newman
def test_newman_without_a_secret_fails_with_the_scripts_message(
    site: Any, billing: Any, issued: list, tmp_path: Path
):
    application, _ = billing

    code, output, report = run_newman(export("--client", application.client_id), tmp_path)

    assert code != 0
    messages = " ".join(f["error"]["message"] for f in report["run"]["failures"])
    assert "Set client_id and client_secret" in messages, output
    assert report["run"]["stats"]["prerequestScripts"]["failed"] > 0
    assert issued == []
    assert not Report.objects.exists()


@needs_newman
def test_newman_with_a_wrong_secret_reports_invalid_client(
    site: Any, billing: Any, issued: list, tmp_path: Path
):
    application, _ = billing

    code, output, report = run_newman(
        export("--client", application.client_id), tmp_path, "client_secret=not-the-secret"
    )

    assert code != 0
    messages = {f["error"]["message"] for f in report["run"]["failures"]}
    assert "Token request answered 401: invalid_client Client authentication failed." in messages, output
    assert issued == []
    assert not Report.objects.exists()


@pytest.mark.parametrize("where", ["scope", "client_id"])
def test_values_postman_would_read_as_variables_are_refused(db: Any, where: str):
    """Postman resolves {{...}} in variable values recursively: a scope named
    "x:{{client_secret}}" would make it send the secret as a scope, which the endpoint echoes."""
    application, _ = clients.create_client("svc", scopes=[])
    if where == "scope":
        application.scopes.add(Scope.objects.create(name="weird:{{client_secret}}"))
    else:
        Application.objects.filter(pk=application.pk).update(client_id="id{{client_secret}}")
        application.refresh_from_db()
    with pytest.raises(
        CommandError, match=r'contain\(s\) "\{\{" or "\}\}", which Postman reads as a variable'
    ):
        call_command("oauth_cc", "export", "postman", "--client", application.client_id, stdout=io.StringIO())
