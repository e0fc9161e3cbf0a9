"""An operator in a real browser: log in, create an API client, copy the secret, get a token.

Drives Debian's chromium (``apt-get install -y chromium``) through Playwright against the live
test server; skipped when either is missing, unless OAUTH_CC_REQUIRE_BROWSER=1 (CI sets it
after installing chromium), where a missing browser is a failure rather than a silent skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if os.environ.get("OAUTH_CC_REQUIRE_BROWSER") == "1":
    from playwright import sync_api

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install -y chromium)"
else:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reports_read(make_scope: Any) -> Any:
    return make_scope("reports:read", default=True)


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A chromium page. Request it after every fixture that writes to the database.

    While Playwright's sync API is active this thread runs an event loop, and an ORM call made
    then gets a database connection of its own that nothing closes (PostgreSQL then cannot drop
    the test database). So the test body only uses the browser and plain HTTP, and all database
    work happens in fixtures set up before this one.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


def test_operator_creates_a_client_and_its_secret_gets_a_token(live_server, admin_user, reports_read, page):
    base = live_server.url

    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    page.goto(f"{base}/admin/oauth_cc/application/add/")
    page.fill("#id_name", "browser-client")
    page.fill("#id_description", "Made in a browser test")
    page.select_option("#id_scopes_from", label="reports:read")
    page.click("#id_scopes_add")
    page.click("input[name=_save]")

    client_id = page.inner_text(".client-id").strip()
    secret = page.inner_text(".client-secret").strip()
    assert re.fullmatch(r"occs_[A-Za-z0-9_-]{43}", secret)
    assert "cannot be shown again" in page.content()

    token = requests.post(
        f"{base}/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "reports:read"
    whoami = requests.get(
        f"{base}/api/whoami/", headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=10
    )
    assert whoami.json() == {"client_id": client_id, "scopes": ["reports:read"]}

    # On to the client's page: the secret is not there any more, only its prefix.
    page.click("text=I have copied it")
    page.wait_for_selector("#application_form")
    assert secret not in page.content()
    assert secret[:13] in page.content()
