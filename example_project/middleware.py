"""A guard in front of the whole example site for requests Django itself mishandles.

Django 5.2 turns a few malformed requests into a 500 instead of a 400, each before any view
or error handler of the site can step in (found by the HTTP fuzz in ``tests/test_http_fuzz.py``):

* a non-numeric or enormous ``Content-Length`` (``HttpRequest.body`` calls ``int()`` on it
  unguarded; a value past ``sys.maxsize`` overflows the multipart reader);
* a ``charset`` that names a codec which is not a text encoding (``base64``, ``zlib_codec``):
  decoding the query string with it raises ``LookupError``;
* a form body with a ``charset`` other than UTF-8 (RFC 1866 forms are UTF-8; Django refuses
  the others with ``BadRequest``), and a ``charset`` that is not ASCII-compatible (UTF-16):
  parsing the form raises, and Django's CSRF failure view reads it again and raises once more.

oauth_cc's own endpoints check these themselves (``oauth_cc.issuer.issuance.parse_form``); this
guard covers the rest of the site (the demo API, the admin), in two places, because the
charset case already raises while Django builds the request object (its ``encoding`` setter
evaluates ``request.GET``), before any middleware runs:

* :class:`RequestGuard` wraps the WSGI application (``example_project/wsgi.py``, which
  ``runserver`` and gunicorn load) and answers a JSON 400 before Django sees the request;
* :class:`MalformedRequestMiddleware` goes first in ``MIDDLEWARE`` for the other ways a request
  reaches Django (an embedding server, a test client), for the cases that get that far.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import parse_header_parameters

#: Longest Content-Length accepted as a number: 18 digits stay below sys.maxsize.
MAX_CONTENT_LENGTH_DIGITS = 18


def malformed(meta: dict) -> str:
    """Why a request's framing cannot be handled safely, or "" when it can."""
    # The same sentences as oauth_cc's endpoints give for these (oauth_cc.issuer.issuance.parse_form).
    length = meta.get("CONTENT_LENGTH") or ""
    if length and not (length.isascii() and length.isdigit()):
        return "The Content-Length header is not a number."
    if len(length) > MAX_CONTENT_LENGTH_DIGITS:
        return "The request body is too large."
    content_type, params = parse_header_parameters(meta.get("CONTENT_TYPE") or "")
    charset = params.get("charset")
    if charset and content_type == "application/x-www-form-urlencoded" and charset.lower() != "utf-8":
        return "A form body must be UTF-8: leave out the charset or make it utf-8."
    if charset:
        try:
            info = codecs.lookup(charset)
            ascii_compatible = "a=b&c".encode(info.name) == b"a=b&c"
        except (LookupError, ValueError, UnicodeError):
            return "The charset of the Content-Type header is not a text encoding this server knows."
        if not info._is_text_encoding or not ascii_compatible:  # type: ignore[attr-defined]
            return "The charset of the Content-Type header is not an ASCII-compatible text encoding."
    return ""


def refusal(problem: str) -> JsonResponse:
    """The answer to a malformed request: a JSON 400, as the OAuth endpoints give."""
    response = JsonResponse({"error": "invalid_request", "error_description": problem}, status=400)
    response["Cache-Control"] = "no-store"
    return response


class RequestGuard:
    """WSGI middleware: a JSON 400 for a request :func:`malformed` refuses, else the wrapped app."""

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        problem = malformed(environ)
        if not problem:
            return self.application(environ, start_response)
        response = refusal(problem)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [response.content]


class MalformedRequestMiddleware:
    """Answer requests Django would turn into a 500 with a JSON 400 instead."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = malformed(request.META)
        return refusal(problem) if problem else self.get_response(request)
