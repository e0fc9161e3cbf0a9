"""Properties of the revocation feed (``oauth_cc.views.revocation_feed``) for any request.

Whatever the method, ``Authorization`` header, query string and body, the feed answers either the
feed (200, only to the reader's own credentials) or an RFC 6749 §5.2 JSON error whose code fits
its status and whose description is printable: never a 5xx, never HTML.

The test uses the function-scoped ``db`` through ``reader`` and suppresses Hypothesis's
``function_scoped_fixture`` health check: the fixture makes one client allowed to read the feed,
which the examples only read; a refused authentication writes nothing (the failure limits are off
in the test settings, and no example can forge an assertion whose single use would be recorded).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import basic_auth

from .conftest import db_examples
from .test_client_auth import authorization_headers, params

FEED = "/oauth/revocation-feed/"
#: The codes each status may carry (RFC 6749 §5.2; 403 for a client that may not read the feed).
CODES = {400: {"invalid_request"}, 401: {"invalid_client"}, 403: {"unauthorized_client"}}
REAL = object()  # stands for the reader's genuine Basic credentials


@pytest.fixture
def reader(make_client: Any) -> tuple[str, str]:
    application, secret = make_client("feed-reader", can_introspect=True)
    return application.client_id, secret


bodies = st.one_of(
    params.map(lambda p: urlencode(p).encode("utf-8")),
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8")),
)
content_types = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data"]
)


@db_examples
@given(
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    authorization=st.one_of(authorization_headers, st.just(REAL)),
    query=params,
    body=bodies,
    content_type=content_types,
)
@example(
    method="POST",
    authorization=None,
    query={},
    body=b"client_id=x&client_secret=",
    content_type="application/x-www-form-urlencoded",
)
@example(method="GET", authorization=REAL, query={"client_secret": "x"}, body=b"", content_type="text/plain")
def test_the_feed_answers_the_feed_or_a_json_oauth_error(
    client: Any,
    reader: tuple[str, str],
    method: str,
    authorization: Any,
    query: dict[str, str],
    body: bytes,
    content_type: str,
) -> None:
    extra = {}
    if authorization is REAL:
        extra["HTTP_AUTHORIZATION"] = basic_auth(*reader)
    elif authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    path = f"{FEED}?{urlencode(query)}" if query else FEED
    if method == "POST":
        response = client.post(path, body, content_type=content_type, **extra)
    else:
        response = client.generic(method, path, **extra)
    if response.status_code == 200:
        assert authorization is REAL  # nothing else authenticates
        assert response["Content-Type"] == "application/json"
        return
    assert response.status_code in CODES, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json"
    if method == "HEAD":
        return
    answer = response.json()
    assert answer["error"] in CODES[response.status_code]
    assert answer["error_description"].isprintable() and answer["error_description"].isascii()
