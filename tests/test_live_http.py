"""Over real HTTP: a stock OAuth 2.0 client library gets a token and calls the demo API with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test import override_settings
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from example_project.demo.models import Report
from tests.helpers import clear_shared_cache


@pytest.fixture
def site(live_server: Any, transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The live server, issuing tokens under its own URL."""
    # The live server speaks plain http on localhost; oauthlib refuses that unless told.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    clear_shared_cache()
    with override_settings(OAUTH_CC={"ISSUER": live_server.url}):
        yield live_server


@pytest.fixture
def session(site: Any, make_client: Any) -> Iterator[OAuth2Session]:
    """An ``OAuth2Session`` holding a token fetched with requests-oauthlib's backend-application flow."""
    application, secret = make_client("live", scopes=["reports:read", "reports:write"])
    oauth = OAuth2Session(client=BackendApplicationClient(client_id=application.client_id))
    oauth.fetch_token(
        token_url=f"{site.url}/oauth/token/",
        auth=HTTPBasicAuth(application.client_id, secret),
        scope=["reports:read", "reports:write"],
    )
    oauth.application = application  # type: ignore[attr-defined]
    yield oauth
    oauth.close()


def test_fetch_token_gets_a_bearer_token_with_the_requested_scopes(session: OAuth2Session):
    assert session.token["token_type"] == "Bearer"
    assert session.token["scope"] == ["reports:read", "reports:write"]
    assert session.token["expires_in"] == 3600
    assert "refresh_token" not in session.token


def test_whoami_over_http(site: Any, session: OAuth2Session):
    response = session.get(f"{site.url}/api/whoami/")

    assert response.status_code == 200
    assert response.json() == {
        "client_id": session.application.client_id,
        "scopes": ["reports:read", "reports:write"],
    }


def test_post_then_get_reports_over_http(site: Any, session: OAuth2Session):
    created = session.post(f"{site.url}/api/reports/", json={"title": "Live", "body": "over the wire"})
    listed = session.get(f"{site.url}/api/reports/")

    assert created.status_code == 201, created.text
    assert created.json()["submitted_by"] == session.application.client_id
    assert listed.status_code == 200
    assert [report["title"] for report in listed.json()] == ["Live"]
    assert Report.objects.get().submitted_by == session.application.client_id


def test_api_without_a_token_over_http_gets_the_bearer_challenge(site: Any):
    response = requests.get(f"{site.url}/api/reports/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_wrong_secret_over_http_gets_invalid_client_json(site: Any, make_client: Any):
    application, _ = make_client("live", scopes=["reports:read"])
    response = requests.post(
        f"{site.url}/oauth/token/",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        auth=(application.client_id, "occs_wrong"),
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_metadata_over_http_names_the_live_token_endpoint(site: Any):
    metadata = requests.get(f"{site.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["issuer"] == site.url
    assert metadata["token_endpoint"] == f"{site.url}/oauth/token/"
