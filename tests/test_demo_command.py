"""``manage.py demo``: idempotent set-up of the example project, with credentials that work."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from oauth_cc.models import Application, Scope

from .conftest import basic_auth, form_post


def demo(*args: str) -> str:
    out = StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def demo_json() -> dict[str, Any]:
    return json.loads(demo("--json"))


def test_demo_is_idempotent(db):
    first = demo_json()
    second = demo_json()

    assert Application.objects.filter(name="demo-client").count() == 1
    assert first["client_id"] == second["client_id"]
    assert first["client_secret"] != second["client_secret"]
    assert dict(Scope.objects.values_list("name", "is_default")) == {
        "reports:read": True,
        "reports:write": False,
    }
    application = Application.objects.get(name="demo-client")
    assert sorted(application.scopes.values_list("name", flat=True)) == ["reports:read", "reports:write"]
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_demo_credentials_work_and_a_rerun_retires_the_previous_secret(db, client, token_for):
    first = demo_json()
    second = demo_json()
    application = Application.objects.get(client_id=second["client_id"])

    token = token_for(application, second["client_secret"], scope="reports:read reports:write")[
        "access_token"
    ]
    stale = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(first["client_id"], first["client_secret"]),
    )

    assert stale.json()["error"] == "invalid_client"
    whoami = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert whoami.json() == {"client_id": application.client_id, "scopes": ["reports:read", "reports:write"]}
    created = client.post(
        "/api/reports/",
        {"title": "t", "body": "b"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert created.status_code == 201


def test_demo_text_output_gives_a_working_walkthrough(db, client, token_for):
    output = demo()

    values = dict(re.findall(r"^(ISSUER|CLIENT_ID|CLIENT_SECRET)=(\S+)$", output, re.MULTILINE))
    application = Application.objects.get(client_id=values["CLIENT_ID"])
    assert values["ISSUER"] == "http://testserver"
    assert token_for(application, values["CLIENT_SECRET"])["scope"] == "reports:read"
    for path in (
        "/oauth/token/",
        "/api/whoami/",
        "/api/reports/",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ):
        assert f"$ISSUER{path}" in output
    assert "scope=reports:read reports:write" in output


def test_demo_creates_an_admin_only_when_no_superuser_exists(db, client):
    output = demo()
    password = re.search(r"user: admin  password: (\S+)", output).group(1)
    assert client.login(username="admin", password=password)

    again = demo_json()

    assert again["admin_password"] is None
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


@pytest.mark.parametrize(
    "changed", [{"is_active": False}, {"token_endpoint_auth_method": "client_secret_post"}]
)
def test_demo_restores_a_demo_client_changed_in_the_admin(db, token_for, changed):
    demo_json()
    Application.objects.filter(name="demo-client").update(**changed)

    credentials = demo_json()

    application = Application.objects.get(client_id=credentials["client_id"])
    assert token_for(application, credentials["client_secret"])


def test_demo_records_its_credential_changes_in_the_audit_trail(db):
    from oauth_cc.models import AuditAction, AuditEvent

    first = demo_json()
    demo_json()

    events = list(AuditEvent.objects.filter(object_id=first["client_id"]).order_by("id"))
    assert [event.action for event in events] == [AuditAction.CLIENT_CREATED, AuditAction.SECRET_ROTATED]
    assert all(event.actor.startswith("cli:") for event in events)
    assert first["client_secret"] not in json.dumps([event.changes for event in events])
