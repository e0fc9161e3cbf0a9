"""The example site's home page: the admin's "View site" link leads here (it was a 404)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_home_page_says_what_the_site_is_and_every_link_works(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "<h1>oauth_cc example site</h1>" in page
    assert "<code>http://testserver/oauth/token/</code>" in page
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)
    assert links == [
        ("/admin/", "Admin"),
        ("/.well-known/oauth-authorization-server", "Authorization server metadata"),
        ("/.well-known/jwks.json", "JWKS"),
        ("/api/docs/", "API docs"),
        ("/api/schema/", "OpenAPI schema"),
    ]
    for href, _ in links:
        answer = client.get(href)
        expected = 302 if href == "/admin/" else 200  # the admin sends a visitor to log in
        assert answer.status_code == expected, (href, answer.status_code)


def test_admin_view_site_link_leads_to_the_home_page(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page


def test_home_page_only_answers_get_and_head(client):
    assert client.head("/").status_code == 200
    response = client.post("/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_favicon_is_served_so_browsers_get_no_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert 'rel="icon" href="/favicon.ico"' in client.get("/").content.decode()
