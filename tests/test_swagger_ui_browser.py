"""Swagger UI at /api/docs/ in a real browser: "Authorize" with a client's id and secret gets a
token through the client-credentials flow, and "Try it out" on GET /api/reports/ returns 200.

Drives Debian's chromium through Playwright like tests/test_admin_browser.py: skipped when either
is missing, unless OAUTH_CC_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure.
Swagger UI's files come from drf-spectacular-sidecar, served by the site itself: no CDN.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from tests.browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip
from tests.helpers import clear_shared_cache

sync_api = playwright_or_skip()

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(live_server: Any, make_scope: Any, make_client: Any) -> Iterator[dict[str, Any]]:
    """The live site issuing tokens under its own URL, one report, and a client that may read it."""
    from example_project.demo.models import Report

    clear_shared_cache()
    with override_settings(OAUTH_CC={"ISSUER": live_server.url, "JWKS_URI_ALLOW_INSECURE": True}):
        make_scope("reports:read", default=True, description="Read reports")
        make_scope("reports:write", description="Submit reports")
        application, secret = make_client("swagger", scopes=["reports:read"])
        Report.objects.create(title="From the fixture", body="", submitted_by="someone")
        yield {"url": live_server.url, "client_id": application.client_id, "secret": secret}


@pytest.fixture
def page(site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A chromium page (after every fixture that writes to the database; see test_admin_browser)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


def test_authorize_with_client_credentials_then_try_it_out(site: dict[str, Any], page: Any):
    requests_seen: list[Any] = []
    page.on("request", lambda request: requests_seen.append(request))

    page.goto(f"{site['url']}/api/docs/")
    page.click("button.btn.authorize")
    dialog = page.locator(".auth-container").filter(has_text="clientCredentials")
    # The scheme's scopes are the Scope rows with their descriptions.
    assert "Read reports" in dialog.inner_text()
    assert "Submit reports" in dialog.inner_text()
    dialog.locator("#client_id_clientCredentials").fill(site["client_id"])
    dialog.locator("#client_secret_clientCredentials").fill(site["secret"])
    dialog.locator("input[type=checkbox][data-value='reports:read'] + label").click()
    assert dialog.locator("input[type=checkbox][data-value='reports:read']").is_checked()
    with page.expect_response(re.compile(r"/oauth/token/$")) as token_response:
        dialog.locator("button.authorize").click()
    assert token_response.value.status == 200
    assert token_response.value.json()["scope"] == "reports:read"
    token_request = token_response.value.request
    # Swagger UI authenticates the client with HTTP Basic (client_secret_basic).
    assert token_request.headers["authorization"].startswith("Basic ")
    assert "client_secret" not in (token_request.post_data or "")
    page.wait_for_selector("button.btn-done")
    assert page.locator(".auth-container").filter(has_text="Logout").count() == 1
    page.click("button.btn-done")

    page.click("#operations-reports-reports_list .opblock-summary")
    page.click("#operations-reports-reports_list button.try-out__btn")
    with page.expect_response(re.compile(r"/api/reports/$")) as api_response:
        page.click("#operations-reports-reports_list button.execute")
    assert api_response.value.status == 200
    assert api_response.value.request.headers["authorization"].startswith("Bearer ")
    assert [report["title"] for report in api_response.value.json()] == ["From the fixture"]
    status_cell = "#operations-reports-reports_list .live-responses-table tbody .response-col_status"
    page.wait_for_selector(status_cell)
    status = page.inner_text(status_cell)
    assert status.strip() == "200"

    # Everything came from the site itself: no CDN.
    origins = {re.match(r"^[a-z]+://[^/]+", request.url).group(0) for request in requests_seen}
    assert origins == {site["url"]}, json.dumps(sorted(origins))
