"""Error pages of the example site: JSON for API and OAuth clients, Django's pages for people.

Django answers some requests before any view runs (a Host header outside ALLOWED_HOSTS, a URL
that matches nothing). A machine client of ``/oauth/``, ``/.well-known/`` or ``/api/`` gets
those answers as JSON too, never an HTML page; the admin keeps Django's own pages.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

MACHINE_PREFIXES = ("/oauth/", "/.well-known/", "/api/")


def _for_machines(request: HttpRequest) -> bool:
    return request.path_info.startswith(MACHINE_PREFIXES)


def _json(status: int, error: str, description: str) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def bad_request(request: HttpRequest, exception: Any, template_name: str = "400.html") -> HttpResponse:
    if _for_machines(request):
        return _json(400, "invalid_request", "The request is malformed.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Any, template_name: str = "403.html") -> HttpResponse:
    if _for_machines(request):
        return _json(403, "access_denied", "Access to this resource is denied.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Any, template_name: str = "404.html") -> HttpResponse:
    if _for_machines(request):
        return _json(404, "not_found", "There is no such endpoint.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    if _for_machines(request):
        return _json(500, "server_error", "The server could not handle the request.")
    return defaults.server_error(request)
