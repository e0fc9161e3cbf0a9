"""An operator in a real browser: log in, create an API client, copy the secret, get a token;
and a walk through every page of oauth_cc's admin that a link or button leads to.

Drives Debian's chromium (``apt-get install -y chromium``) through Playwright against the live
test server; skipped when either is missing, unless OAUTH_CC_REQUIRE_BROWSER=1 (CI sets it
after installing chromium), where a missing browser is a failure rather than a silent skip.

The walk keeps screenshots of the key pages in test-output/admin/ (git-ignored; the folder is
printed, and OAUTH_CC_SCREENSHOT_DIR moves it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip

sync_api = playwright_or_skip()

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reports_read(make_scope: Any) -> Any:
    return make_scope("reports:read", default=True)


SCREENSHOTS = Path(
    os.environ.get("OAUTH_CC_SCREENSHOT_DIR") or Path(__file__).resolve().parents[1] / "test-output" / "admin"
)


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
            context = browser.new_context(viewport={"width": 1280, "height": 800})
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


# -- the walk -------------------------------------------------------------------------------------


@pytest.fixture
def walk_site(make_client, reports_read) -> dict[str, Any]:
    """A client of each auth method (the basic one rotated: an expiring and a current secret).

    Everything the walk needs from the database is read here, before the browser starts.
    """
    from django.contrib.contenttypes.models import ContentType
    from jwcrypto import jwk

    from oauth_cc.issuer import clients
    from oauth_cc.models import Application

    basic, _ = make_client("walk-basic", scopes=["reports:read"], audiences=["https://api.example.com"])
    clients.rotate_secret(basic)
    post, _ = make_client("walk-post", scopes=["reports:read"], auth_method="client_secret_post")
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="walk-key")
    signer, _ = make_client(
        "walk-jwt", auth_method="private_key_jwt", jwks={"keys": [key.export_public(as_dict=True)]}
    )
    return {
        "content_type": ContentType.objects.get_for_model(Application).pk,
        "clients": {
            "client_secret_basic": (basic.pk, list(basic.secrets.values_list("pk", flat=True))),
            "client_secret_post": (post.pk, list(post.secrets.values_list("pk", flat=True))),
            "private_key_jwt": (signer.pk, []),
        },
        "jwks": {"keys": [key.export_public(as_dict=True)]},
    }


class Walker:
    """Goes to pages and records what went wrong on them: any response of 400 or more (pages,
    scripts, styles, images) that is not an expected one, any console error, any script error."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        self.expected: dict[str, int] = {}  # path -> the intended 403/404
        self.seen_expected: set[str] = set()
        self.visited: list[str] = []
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _response(self, response: Any) -> None:
        path = urlsplit(response.url).path
        if self.expected.get(path) == response.status:
            self.seen_expected.add(path)
        elif response.status >= 400:
            self.problems.append(f"{response.status} {response.request.method} {response.url}")

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        # Chromium logs every 4xx as "Failed to load resource": not an error for an intended one.
        where = urlsplit(message.location.get("url") or "").path
        if where in self.expected and message.text.startswith("Failed to load resource"):
            return
        self.problems.append(f"console error: {message.text} ({message.location})")

    def go(self, path: str, *, shot: str | None = None) -> Any:
        response = self.page.goto(self.base + path if path.startswith("/") else path)
        self.visited.append(path)
        if shot:
            self.shot(shot)
        return response

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def check(self) -> None:
        assert self.problems == [], "\n".join(self.problems)

    def crawl(self, start: list[str], prefixes: tuple[str, ...], limit: int = 250) -> int:
        """Every link under ``prefixes`` from the pages reached: one page per path and set of
        query parameter names (a filter's other values are the same page), and the links of a
        page with a query (a filtered or sorted list) are not followed (their combinations are
        the same pages again)."""
        queue = list(start)
        done: set[tuple[str, frozenset[str]]] = set()
        while queue:
            url = queue.pop(0)
            parts = urlsplit(url)
            shape = (parts.path, frozenset(k for k, _ in parse_qsl(parts.query, keep_blank_values=True)))
            if shape in done:
                continue
            done.add(shape)
            assert len(done) <= limit, f"more than {limit} pages: {sorted(done)[:20]}"
            self.go(parts.path + (f"?{parts.query}" if parts.query else ""))
            if parts.query:
                continue
            for href in self.page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
                target = urlsplit(href)
                if target.netloc == urlsplit(self.base).netloc and target.path.startswith(prefixes):
                    queue.append(target.path + (f"?{target.query}" if target.query else ""))
        return len(done)


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def row_visible(page: Any, field: str) -> bool:
    return page.locator(f".form-row.field-{field}").first.is_visible()


KEY_ROWS = ("client_jwks", "client_jwks_uri")


@pytest.mark.timeout(600)
def test_every_admin_page_answers_without_errors(live_server, admin_user, walk_site, page):
    base = live_server.url
    walker = Walker(page, base)
    print(f"\nadmin screenshots: {SCREENSHOTS}")
    log_in(page, base, admin_user.username)

    # Signing keys: none until the first token; the page says so, and its button makes them.
    walker.go("/admin/oauth_cc/signingkey/", shot="signingkey-list-empty")
    assert "No signing key yet. The first token request creates one" in page.inner_text("#content")
    page.click("text=Rotate signing keys")
    page.wait_for_selector("select#id_algorithm")
    walker.shot("signingkey-rotate-confirm")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "Now signing with key" in page.inner_text(".messagelist")
    assert page.locator("#result_list tbody tr").count() == 2  # the current key and the next
    assert "No signing key yet" not in page.content()
    walker.shot("signingkey-list")

    # The client list fits a 1280-pixel window: nothing to scroll sideways, every column in view.
    walker.go("/admin/oauth_cc/application/", shot="application-list")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # The admin scrolls a too-wide table inside its box: that is the overflow to look for.
    results = page.locator("#changelist .results")
    assert results.evaluate("box => box.scrollWidth <= box.clientWidth"), results.evaluate(
        "box => [box.scrollWidth, box.clientWidth]"
    )
    right_edge = results.evaluate("box => box.getBoundingClientRect().right")
    for column in ("client_id", "auth_method_short", "last_used", "secret_expires", "tokens_last_hour"):
        box = page.locator(f"#result_list th.column-{column}").bounding_box()
        assert box is not None and box["x"] + box["width"] <= right_edge, (column, box, right_edge)
    assert page.locator("td.field-auth_method_short", has_text="key (JWT)").count() == 1
    assert page.locator(".oauth-cc-secret-expires").count() == 1

    # Each client's pages.
    content_type = walk_site["content_type"]
    for method, (pk, secret_pks) in walk_site["clients"].items():
        change = f"/admin/oauth_cc/application/{pk}/change/"
        walker.go(change, shot=f"application-change-{method}")
        # The key rows show only for the method that uses them; no "null" in an empty box.
        for field in (*KEY_ROWS, "key_thumbprints"):
            assert row_visible(page, field) == (method == "private_key_jwt"), (method, field)
        assert page.input_value("#id_client_jwks") != "null"
        assert page.locator("a.viewsitelink").count() == 0
        walker.go(f"{change[:-7]}history/", shot=f"application-history-{method}")
        walker.go(f"{change[:-7]}delete/", shot=f"application-delete-{method}")
        # View on site is gone; its old URL is an intended 404, not a 500.
        on_site = f"/admin/r/{content_type}/{pk}/"
        walker.expected[on_site] = 404
        assert walker.go(on_site).status == 404
        if secret_pks:
            walker.go(f"{change[:-7]}rotate-secret/", shot=f"application-rotate-secret-{method}")
            assert "Yes, issue a new secret" in page.content()
            for secret_pk in secret_pks:
                walker.go(f"{change[:-7]}secrets/{secret_pk}/revoke/")
                assert "Yes, revoke it" in page.content()
        else:
            walker.go(f"{change[:-7]}rotate-secret/")
            assert page.url == base + change  # sent back: there is no secret to rotate
            assert "has no secret to rotate" in page.inner_text(".messagelist")
    assert walker.seen_expected == set(walker.expected)

    # The add page: the key rows follow the method as it changes.
    walker.go("/admin/oauth_cc/application/add/", shot="application-add")
    assert not any(row_visible(page, f) for f in KEY_ROWS)
    page.select_option("#id_token_endpoint_auth_method", "private_key_jwt")
    assert all(row_visible(page, f) for f in KEY_ROWS)
    walker.shot("application-add-private-key-jwt")
    page.select_option("#id_token_endpoint_auth_method", "client_secret_post")
    assert not any(row_visible(page, f) for f in KEY_ROWS)
    # A private_key_jwt client, audiences one per line.
    page.fill("#id_name", "walk-added")
    page.select_option("#id_token_endpoint_auth_method", "private_key_jwt")
    page.fill("#id_client_jwks", json.dumps(walk_site["jwks"]))
    page.fill("#id_audiences", "https://api.example.com\nnot a uri#x")
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    error = page.inner_text(".field-audiences .errorlist")
    assert error.startswith("Not an absolute URI without a \"#\" fragment: 'not a uri#x'.")
    assert all(row_visible(page, f) for f in KEY_ROWS)
    walker.shot("application-add-audience-error")
    page.fill("#id_audiences", "https://api.example.com\nurn:example:reports")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assert "was added successfully" in page.inner_text(".messagelist")
    # A secret method chosen while keys are still in the box: the server refuses, the row shows.
    page.click("text=walk-added")
    page.wait_for_selector("#application_form")
    assert page.input_value("#id_audiences") == "https://api.example.com\nurn:example:reports"
    page.select_option("#id_token_endpoint_auth_method", "client_secret_basic")
    assert not row_visible(page, "client_jwks")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    assert row_visible(page, "client_jwks")
    assert "Public keys are only used by private_key_jwt and self_signed_tls_client_auth clients" in (
        page.inner_text(".field-client_jwks")
    )
    walker.shot("application-change-method-error")

    # Each action on every client, from the list: delete's confirmation page (not confirmed), the
    # new secrets page of "rotate", and the messages of the others.
    def run_action(name: str) -> None:
        walker.go("/admin/oauth_cc/application/")
        page.check("#action-toggle")
        page.select_option("select[name=action]", name)
        page.click("button[name=index]")
        page.wait_for_load_state()

    run_action("delete_selected")
    assert "Are you sure you want to delete the selected" in page.inner_text("#content")
    walker.shot("action-delete-selected-confirm")
    run_action("rotate_secret_action")
    assert page.locator(".client-secret").count() == 2  # the basic and post clients
    walker.shot("action-rotate-secret")
    for name, text in [
        ("revoke_tokens_action", "Revoked the tokens of 4 API clients"),
        ("disable_action", "Disabled 4 API clients"),
        ("enable_action", "Enabled 4 API clients"),
    ]:
        run_action(name)
        assert text in page.inner_text(".messagelist"), name

    # Everything else a link leads to: lists, filters, sorting, change and history pages of
    # scopes, keys, audit events; the admin's "View site" link, the example site's home page.
    walker.go("/admin/", shot="admin-index")
    assert page.get_attribute("#user-tools a[href='/']", "href") == "/"
    walker.go("/", shot="example-home")
    assert "oauth_cc example site" in page.inner_text("h1")
    pages = walker.crawl(["/admin/", "/admin/oauth_cc/"], prefixes=("/admin/oauth_cc/",))
    assert pages > 30
    walker.go("/admin/oauth_cc/auditevent/", shot="auditevent-list")
    walker.check()
