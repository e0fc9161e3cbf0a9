"""Properties of ``oauth_cc.issuer.client_auth.presented_credentials``: which credentials a request carries.

Any ``Authorization`` header and any form parameters give a ``PresentedCredentials`` or an
``OAuthError`` subclass (``invalid_client``, ``invalid_request``): never another exception, and
never a client_id that cannot exist (empty, longer than 255, or with control characters, which
PostgreSQL cannot even compare).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.test import RequestFactory
from hypothesis import event, example, given
from hypothesis import strategies as st

from oauth_cc.common.errors import InvalidClient, InvalidRequest, OAuthError
from oauth_cc.issuer.client_auth import (
    JWT_BEARER_ASSERTION_TYPE,
    MAX_CLIENT_ID_LENGTH,
    PresentedCredentials,
    presented_credentials,
)
from oauth_cc.models import TokenEndpointAuthMethod

from .strategies import json_values, jws_shaped, unicode_text

factory = RequestFactory()
PARAM_NAMES = (
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "grant_type",
    "scope",
)


def request_with(authorization: str | None) -> Any:
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return factory.post("/oauth/token/", **extra)


def basic(client_id: str, secret: str, *, urlencode: bool = True) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then HTTP Basic (RFC 7617)."""
    if urlencode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


authorization_headers = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.builds(basic, unicode_text(max_size=20), unicode_text(max_size=20)),
    st.builds(lambda i, s: basic(i, s, urlencode=False), st.text(max_size=20), unicode_text(max_size=20)),
    st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode("ascii")),
    st.tuples(
        st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "Digest", "", "Basic\t"]),
        st.sampled_from([" ", "  ", "", "\t"]),
        st.one_of(st.text(max_size=30), jws_shaped),
    ).map("".join),
)
param_values = st.one_of(
    unicode_text(max_size=20),
    st.text(max_size=8),
    st.just(JWT_BEARER_ASSERTION_TYPE),
    jws_shaped,
    st.sampled_from(["", "\x00", "a" * 256, "client\n"]),
)
params = st.dictionaries(
    st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=6)), param_values, max_size=5
)


def acceptable_client_id(client_id: str) -> bool:
    return bool(client_id) and len(client_id) <= MAX_CLIENT_ID_LENGTH and client_id.isprintable()


def fake_assertion(sub: Any) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"ES256"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": sub}).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.AA"


client_ids = st.one_of(
    st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=20),  # printable
    unicode_text(max_size=20),
    st.sampled_from(["", "\x00", "a" * 255, "a" * 256, "client\n"]),
)
#: Requests carrying one method each, well formed, so that success is checked as often as refusal.
well_formed = st.one_of(
    st.builds(lambda i, s: (basic(i, s), {}), client_ids, unicode_text(max_size=10)),
    st.builds(lambda i, s: (basic(i, s), {"client_id": i}), client_ids, unicode_text(max_size=10)),
    st.builds(
        lambda i, s: (None, {"client_id": i, "client_secret": s}), client_ids, unicode_text(max_size=10)
    ),
    st.builds(
        lambda sub, with_id: (
            None,
            {
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": fake_assertion(sub),
                **({"client_id": sub} if with_id and isinstance(sub, str) else {}),
            },
        ),
        st.one_of(client_ids, json_values(3)),
        st.booleans(),
    ),
)


@given(st.one_of(st.tuples(authorization_headers, params), well_formed))
@example(("Basic", {}))
@example(("Basic Og==", {}))  # ":" - no client_id
@example(("Basic JQ==", {}))  # "%" - broken escape, decoded leniently
@example(("Basic /w==", {}))  # not UTF-8
@example(("Basic YTpi", {"client_secret": "x"}))  # two methods
@example((None, {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": "a.b.c"}))
@example((None, {"client_secret": "s", "client_id": "\x00"}))
def test_presented_credentials_are_returned_or_an_oauth_error_is_raised_for_any_request(
    case: tuple[str | None, dict[str, str]],
) -> None:
    authorization, form = case
    try:
        presented = presented_credentials(request_with(authorization), form)
    except OAuthError as exc:
        event(f"refused: {exc.error}")
        assert isinstance(exc, (InvalidClient, InvalidRequest)), exc
        assert exc.status in (400, 401)
        return
    assert isinstance(presented, PresentedCredentials)
    event(f"presented: {presented.method}")
    assert acceptable_client_id(presented.client_id)
    assert presented.method in TokenEndpointAuthMethod.values
    if "client_id" in form:
        assert form["client_id"] == presented.client_id
    if presented.method == TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
        assert presented.assertion is not None and not authorization and "client_secret" not in form
    else:
        assert presented.assertion is None


@given(unicode_text(max_size=300), unicode_text(max_size=40), st.booleans())
@example("a:b", "c:d", False)
@example("\x00", "s", False)
@example("é", "€ %", False)
def test_basic_credentials_give_back_exactly_the_client_id_and_secret_that_were_encoded(
    client_id: str, secret: str, with_body_client_id: bool
) -> None:
    form = {"client_id": client_id} if with_body_client_id else {}
    request = request_with(basic(client_id, secret))
    if not acceptable_client_id(client_id):
        with pytest.raises(InvalidClient):
            presented_credentials(request, form)
        return
    presented = presented_credentials(request, form)
    assert (presented.method, presented.client_id, presented.secret) == (
        TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
        client_id,
        secret,
    )
    assert presented.basic


@given(
    unicode_text(min_size=1, max_size=20), unicode_text(min_size=1, max_size=20), unicode_text(max_size=20)
)
def test_a_body_client_id_that_differs_from_the_basic_one_is_refused(
    client_id: str, other: str, secret: str
) -> None:
    if other == client_id:
        return
    with pytest.raises(InvalidClient):
        presented_credentials(request_with(basic(client_id, secret)), {"client_id": other})
