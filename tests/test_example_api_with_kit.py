"""The example project's demo API, tested the way a site using oauth_cc tests its own API.

Only the kit's fixtures (oauth_cc.testing): no token endpoint, no secrets, no key handling.
"""

from __future__ import annotations

import time

from example_project.demo.models import Report
from oauth_cc.issuer import clients


def test_reading_reports_needs_reports_read(oauth_cc_api_client):
    Report.objects.create(title="Q3", submitted_by="someone")
    api = oauth_cc_api_client("reports:read")

    response = api.get("/api/reports/")

    assert response.status_code == 200
    assert [report["title"] for report in response.json()] == ["Q3"]


def test_posting_a_report_records_the_client(oauth_cc_client, oauth_cc_api_client):
    application, _ = oauth_cc_client(scopes=["reports:read", "reports:write"])
    api = oauth_cc_api_client("reports:write", client=application)

    response = api.post("/api/reports/", {"title": "Outage", "body": "db down"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["submitted_by"] == application.client_id
    assert Report.objects.get().submitted_by == application.client_id


def test_posting_without_reports_write_is_forbidden(oauth_cc_api_client):
    api = oauth_cc_api_client("reports:read")

    response = api.post("/api/reports/", {"title": "Outage"}, format="json")

    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="reports:write"'
    )
    assert not Report.objects.exists()


def test_whoami_tells_the_client_and_its_scopes(oauth_cc_token, client):
    token = oauth_cc_token("reports:read", "reports:write")

    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert response.json() == {
        "client_id": token.application.client_id,
        "scopes": ["reports:read", "reports:write"],
    }


def test_an_expired_token_is_refused(oauth_cc_api_client):
    now = int(time.time())
    api = oauth_cc_api_client("reports:read", iat=now - 7200, exp=now - 3600)

    response = api.get("/api/reports/")

    assert response.status_code == 401
    assert response.json() == {"detail": "The access token has expired."}
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The access token has expired."'
    )


def test_a_token_of_another_issuer_is_refused(oauth_cc_api_client):
    api = oauth_cc_api_client("reports:read", iss="https://elsewhere.example")

    response = api.get("/api/reports/")

    assert response.status_code == 401
    assert response.json() == {"detail": "The access token was issued by another issuer."}


def test_a_disabled_clients_token_is_refused(oauth_cc_client, oauth_cc_api_client):
    application, _ = oauth_cc_client(scopes=["reports:read"])
    api = oauth_cc_api_client("reports:read", client=application)
    assert api.get("/api/reports/").status_code == 200

    clients.set_active(application, False)

    response = api.get("/api/reports/")
    assert response.status_code == 401
    assert response.json() == {"detail": "The client of this access token is disabled."}


def test_no_token_is_unauthorized(client, db):
    response = client.get("/api/reports/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
