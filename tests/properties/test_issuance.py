"""Properties of the token endpoint: its form parser, and the tokens it issues.

``issuance.parse_form`` sees the raw request: any body bytes, content type and
``Content-Length``. It returns the parameters or raises ``InvalidRequest``, nothing else.

Requests are built with Django's ``RequestFactory`` around an ``io.BytesIO`` body (the test
client's ``FakePayload`` asserts when asked for more bytes than it holds, which a real WSGI
server's stream does not), with ``CONTENT_LENGTH`` and ``CONTENT_TYPE`` set in the environ.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from django.http import HttpRequest
from django.test import RequestFactory
from hypothesis import event, example, given
from hypothesis import strategies as st

from oauth_cc.common import tokens
from oauth_cc.common.errors import InvalidRequest
from oauth_cc.common.verification import check_access_token
from oauth_cc.issuer import issuance
from tests.conftest import basic_auth, form_post

from . import claims_hook
from .conftest import db_examples
from .strategies import depth, json_values, unicode_text

FORM = "application/x-www-form-urlencoded"
CORRECT = object()  # the body's real length
factory = RequestFactory()


def form_request(body: bytes, content_type: str | None, content_length: Any) -> HttpRequest:
    environ: dict[str, Any] = {"wsgi.input": io.BytesIO(body)}
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length is CORRECT:
        environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    return factory.generic("POST", "/oauth/token/", **environ)


def expected_form(body: bytes, content_type: str | None, content_length: Any) -> dict[str, str] | None:
    """The parameters a strict reading gives, or None for a refusal; written independently."""
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        return None
    declared = str(len(body)) if content_length is CORRECT else (content_length or "0")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > issuance.MAX_BODY_BYTES:
        return None
    try:
        text = body[: int(declared)].decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=50, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return None
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        return None
    return dict(pairs)


FRAGMENTS = (
    b"grant_type=client_credentials",
    b"scope=a+b",
    b"a=1",
    b"a=2",
    b"%ff=1",
    b"a=%ff",
    b"a=%C3",
    b"%",
    b"%zz",
    b"=",
    b"",
    b";",
    b"a",
    b"a=b=c",
    b"+",
    b"%00=%00",
    b"%C3%A9=%E2%82%AC",
    b"\xff",
    b"\xc3\xa9=1",
    b"\xef\xbb\xbf",
)

bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(st.tuples(unicode_text(max_size=10), unicode_text(max_size=10)), max_size=8).map(
        lambda pairs: urlencode(pairs).encode("ascii")
    ),
    st.lists(st.sampled_from(FRAGMENTS), max_size=10).map(b"&".join),
    st.integers(45, 55).map(lambda n: "&".join(f"k{i}=v" for i in range(n)).encode()),
    st.integers(-4, 4).map(lambda n: b"a=" + b"x" * (issuance.MAX_BODY_BYTES - 2 + n)),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            FORM,
            FORM.upper(),
            f" {FORM} ; charset=latin-1",
            f"{FORM};",
            f"{FORM}x",
            "multipart/form-data; boundary=x",
            "application/json",
            "",
            ";",
        ]
    ),
    st.text(max_size=40),
)
content_lengths = st.one_of(
    st.just(CORRECT),
    st.none(),
    st.integers(0, 70_000).map(str),
    st.sampled_from(["", "0", " 5", "5 ", "-1", "+5", "0x10", "1e3", "9" * 30, "65536", "65537"]),
    st.sampled_from(["\u0661\u0662", "\u00b2", "\uff11"]),  # digits to str.isdigit(), not ASCII
    st.text(max_size=6),
)


@given(
    st.one_of(
        st.tuples(bodies, content_types, content_lengths),
        # Well-formed requests, so that acceptance is checked as often as refusal.
        st.tuples(
            st.dictionaries(unicode_text(max_size=10), unicode_text(max_size=10), max_size=6).map(
                lambda params: urlencode(params).encode("ascii")
            ),
            st.sampled_from([FORM, f"{FORM}; charset=UTF-8"]),
            st.just(CORRECT),
        ),
    )
)
@example((b"a=%ff", FORM, CORRECT))
@example((b"\xff", FORM, CORRECT))
@example((b"a=1&a=2", FORM, CORRECT))
@example((b"a=1", FORM, "\u0661"))  # ARABIC-INDIC DIGIT ONE: isdigit(), not ASCII
@example((b"a=1", FORM, "99999999999999999999"))
@example((b"a=1&", FORM, CORRECT))
def test_parse_form_returns_the_strict_reading_of_the_body_or_raises_invalid_request(
    case: tuple[bytes, str | None, Any],
) -> None:
    body, content_type, content_length = case
    request = form_request(body, content_type, content_length)
    expected = expected_form(body, content_type, content_length)
    event(f"form: {'accepted' if expected is not None else 'refused'}")
    try:
        params = issuance.parse_form(request)
    except InvalidRequest as exc:
        assert expected is None, (expected, exc)
        assert exc.status == 400 and exc.error == "invalid_request" and exc.description
        return
    assert params == expected
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.lists(st.integers(), max_size=2),
    ),
    bodies,
)
def test_parse_form_with_any_python_value_as_content_length_returns_a_dict_or_raises_invalid_request(
    content_length: Any, body: bytes
) -> None:
    """``CONTENT_LENGTH`` set straight in ``request.META``, whatever type a server put there."""
    request = form_request(body, FORM, CORRECT)
    request.META["CONTENT_LENGTH"] = content_length
    try:
        params = issuance.parse_form(request)
    except InvalidRequest:
        return
    assert isinstance(params, dict)


@given(
    st.dictionaries(unicode_text(max_size=20), unicode_text(max_size=40), max_size=50),
    st.sampled_from([FORM, f"{FORM}; charset=utf-8", FORM.upper()]),
)
def test_parse_form_gives_back_exactly_the_parameters_that_were_urlencoded(
    params: dict[str, str], content_type: str
) -> None:
    body = urlencode(params).encode("ascii")
    assert issuance.parse_form(form_request(body, content_type, CORRECT)) == params


# -- what the endpoint issues verifies, with exactly the claims it signed -----------------------

SCOPES = ("reports:read", "reports:write", "admin")


@pytest.fixture
def hooked_client(settings: Any, make_client: Any) -> tuple[Any, str]:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLAIMS_HOOK": f"{claims_hook.__name__}.add_extra_claims"}
    return make_client("hooked", scopes=list(SCOPES))


def payload_of(token: str) -> dict[str, Any]:
    """The signed claims as Python's permissive ``json`` reads them, independently of oauth_cc."""
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


hook_extras = st.dictionaries(
    unicode_text(max_size=8).filter(lambda name: name not in tokens.REGISTERED_CLAIMS),
    st.one_of(json_values(8), st.floats(), st.text(max_size=4)),
    max_size=4,
)


# The db fixture (through make_client) is set up once per test: the examples only read the
# client and the signing key; what each one writes (the client's "last used" time) does not
# change what the next one observes, and the memo of verified tokens holds only valid tokens.
@db_examples
@given(st.sets(st.sampled_from(SCOPES), min_size=1), hook_extras)
@example({"reports:read"}, {"x": float("nan")})
@example({"reports:read"}, {"x": "\ud800"})
@example({"reports:read"}, {"x": json.loads("[" * 16 + "]" * 16)})
@example({"reports:read"}, {"x": "a" * 6000})
def test_every_token_the_endpoint_issues_verifies_and_carries_exactly_the_claims_it_signed(
    client: Any, hooked_client: tuple[Any, str], scopes: set[str], extra: dict[str, Any]
) -> None:
    """With a claims hook adding generated values: a token is either not issued at all, or it
    is accepted by this site's own check and gives back exactly the claims in it."""
    application, secret = hooked_client
    claims_hook.extra = extra
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": " ".join(sorted(scopes))},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    if response.status_code != 200:
        # Only a hook value that cannot be written as JSON may stop issuance (a server error).
        assert response.status_code == 500 and response.json()["error"] == "server_error"
        return
    body = response.json()
    signed = payload_of(body["access_token"])
    info = check_access_token(body["access_token"])  # InvalidToken here: issued but refused
    assert dict(info.claims) == signed
    assert set(signed["scope"].split()) == scopes == set(info.scopes)
    assert body["expires_in"] == signed["exp"] - signed["iat"]
    assert depth(signed) <= 16
    for name, value in extra.items():
        assert json.dumps(signed[name]) == json.dumps(value)
