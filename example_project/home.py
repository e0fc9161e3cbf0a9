"""The example site's home page: what the site is, with links to the admin, metadata, JWKS and API docs.

The admin's "View site" link leads here.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from oauth_cc.client_auth import endpoint_url


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/home.html", {"token_endpoint": endpoint_url("token")})
