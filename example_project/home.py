"""The example site's home page: what the site is, with links to the admin, metadata, JWKS and API docs.

The admin's "View site" link leads here. Also the site's icon, which browsers ask for on their
own (``/favicon.ico``) and which would otherwise be a 404 on every first visit.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from oauth_cc.issuer.client_auth import endpoint_url


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/home.html", {"token_endpoint": endpoint_url("token")})


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#417690"/>'
    '<circle cx="6" cy="8" r="3" fill="none" stroke="#fff" stroke-width="1.5"/>'
    '<path d="M9 8h5M12 8v3" stroke="#fff" stroke-width="1.5"/></svg>'
)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
