"""Schemathesis against the live example site, over every operation of its OpenAPI schema.

The schema is fetched over HTTP from ``/api/schema/``. Each operation gets generated requests
(positive and negative data, bounded: ``MAX_EXAMPLES`` per operation), with the demo client's
Basic credentials where the schema names client authentication and a bearer token with every
scope where it names the ``oauth_cc`` scheme. Every built-in check runs on every response: no
server error, status codes, content types, headers and bodies as the schema documents them,
invalid data rejected, valid data accepted, an unsupported method answered 405, and a missing
token refused where the schema requires one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from django.test import override_settings

from oauth_cc.openapi import CLIENT_BASIC_SCHEME_NAME, SCHEME_NAME
from tests.helpers import clear_shared_cache

MAX_EXAMPLES = 25
OPERATIONS = {
    "GET /api/health/",
    "GET /api/ping/",
    "GET /api/reports/",
    "POST /api/reports/",
    "GET /api/whoami/",
    "POST /oauth/token/",
    "POST /oauth/introspect/",
    "POST /oauth/revoke/",
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(live_server: Any, make_scope: Any, make_client: Any) -> Iterator[dict[str, Any]]:
    """The live site, its demo client, and a token with both scopes."""
    clear_shared_cache()
    with override_settings(OAUTH_CC={"ISSUER": live_server.url, "JWKS_URI_ALLOW_INSECURE": True}):
        make_scope("reports:read", default=True, description="Read reports")
        make_scope("reports:write", description="Submit reports")
        application, secret = make_client(
            "schemathesis", scopes=["reports:read", "reports:write"], can_introspect=True
        )
        response = requests.post(
            f"{live_server.url}/oauth/token/",
            data={"grant_type": "client_credentials", "scope": "reports:read reports:write"},
            auth=(application.client_id, secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        yield {
            "url": live_server.url,
            "basic": (application.client_id, secret),
            "token": response.json()["access_token"],
        }


def test_every_operation_conforms_to_the_schema(site: dict[str, Any], tmp_path: Path) -> None:
    client_id, secret = site["basic"]
    config = tmp_path / "schemathesis.toml"
    # Credentials per security scheme of the schema: schemathesis sends each where an operation
    # names that scheme, and leaves them out to check that a missing token is refused.
    config.write_text(
        f"""
[auth.openapi.{SCHEME_NAME}]
bearer = "{site["token"]}"

[auth.openapi.{CLIENT_BASIC_SCHEME_NAME}]
username = "{client_id}"
password = "{secret}"
"""
    )
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{site['url']}/api/schema/",
            "--checks",
            "all",
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "9",
            "--workers",
            "1",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache in .schemathesis/ under its working directory
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # Every operation of the schema was tested: the demo API's and the OAuth endpoints.
    tested = {case.get("name") for case in ElementTree.parse(report).getroot().iter("testcase")}
    assert tested == OPERATIONS, result.stdout[-5000:]
