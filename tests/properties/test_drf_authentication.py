"""Properties of ``JWTAccessTokenAuthentication.authenticate`` for any ``Authorization`` header.

It returns None (not for this scheme), a (user, token) pair, or raises a DRF ``APIException``:
400 ``invalid_request`` for a malformed Bearer header, 401 ``invalid_token`` for a bad token.
A 503 (``CheckUnavailable``) means the check itself crashed, so for junk it is a failure too:
it would hide an unexpected exception behind "try again later".

The tests use the function-scoped ``db`` through ``access_token`` and suppress Hypothesis's
``function_scoped_fixture`` health check: the fixture makes one client and one genuine token
per test, which the examples only read; ``authenticate`` writes nothing (the run-as user is
loaded lazily and no example touches it).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from oauth_cc.common.verification import AccessToken
from oauth_cc.contrib.rest_framework.authentication import (
    JWTAccessTokenAuthentication,
    MalformedAuthorization,
)

from .conftest import db_examples
from .strategies import EDIT_KINDS, jws_shaped, one_character_edit

factory = APIRequestFactory()

SCHEMES = ("Bearer", "bearer", "BEARER", "BeArEr", "Basic", "Bearerx", "Bear", "", "Bearer\t", "Token")
SEPARATORS = (" ", "  ", "\t", "", " \t ", "\u00a0", "\n")
WHITESPACE = ("", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\x0b", "\x1c")

GENUINE = object()  # stands for the genuine token, which exists only once the fixture has run


def header_values(token_values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``scheme sep [ws] token [ws]`` with every part varied, or any text at all."""
    return st.one_of(
        st.text(),
        st.tuples(
            st.sampled_from(["Bearer", "bearer", "BEARER"]),
            st.sampled_from([" ", "  ", " \t"]),
            st.sampled_from(["", "", " ", "\t"]),
            st.one_of(st.just(GENUINE), token_values),
            st.sampled_from(["", "", " ", "\r\n"]),
            st.just(""),
        ),
        st.tuples(
            st.sampled_from(SCHEMES),
            st.sampled_from(SEPARATORS),
            st.sampled_from(WHITESPACE),
            st.one_of(token_values, st.just(GENUINE)),
            st.sampled_from(WHITESPACE),
            st.one_of(st.just(""), st.sampled_from(WHITESPACE[1:]).map(lambda ws: ws + "extra")),
        ),
    )


def build_header(value: Any, genuine: str) -> str:
    if isinstance(value, str):
        return value
    return "".join(genuine if part is GENUINE else part for part in value)


def authenticate(header: str | None) -> tuple[Any, Request, JWTAccessTokenAuthentication]:
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    request = Request(factory.get("/api/whoami/", **extra))
    auth = JWTAccessTokenAuthentication()
    return auth.authenticate(request), request, auth


def expected_outcome(header: str, genuine: str) -> str:
    """RFC 6750 §2.1 for this class, written independently: none, malformed, valid or invalid."""
    if not header:
        return "none"
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "bearer":
        return "none"
    token = rest.strip()
    if not token or len(token.split()) != 1:
        return "malformed"
    return "valid" if token == genuine else "invalid"


@db_examples
@given(header_values(jws_shaped))
@example("")
@example("Bearer")
@example("Bearer ")
@example("Bearer a b")
@example("bearer\u00a0x")
@example(("Bearer", " ", "", GENUINE, "", ""))
@example(("bearer", "  ", "\t", GENUINE, "\u3000", ""))
@example(("Bearer", " ", "", GENUINE, "", " extra"))
def test_authenticate_gives_none_a_pair_or_a_400_or_401_api_exception_for_any_header(
    access_token: str, value: Any
) -> None:
    header = build_header(value, access_token)
    expected = expected_outcome(header, access_token)
    event(f"expected: {expected}")
    try:
        result, request, auth = authenticate(header)
    except exceptions.APIException as exc:
        if expected == "malformed":
            assert isinstance(exc, MalformedAuthorization) and exc.status_code == 400
            assert exc.auth_header.startswith('Bearer realm="api", error="invalid_request"')
        else:
            assert expected == "invalid", (expected, exc)
            assert isinstance(exc, exceptions.AuthenticationFailed) and exc.status_code == 401
            assert exc.get_codes() == "invalid_token"
        return
    if expected == "none":
        assert result is None
        assert auth.authenticate_header(request) == 'Bearer realm="api"'
    else:
        assert expected == "valid", (expected, result)
        _user, token = result
        assert isinstance(token, AccessToken) and token.scopes == {"reports:read"}


def test_authenticate_without_an_authorization_header_is_none(access_token: str) -> None:
    assert authenticate(None)[0] is None


@db_examples
@pytest.mark.parametrize("kind", EDIT_KINDS)
@given(data=st.data())
def test_any_one_character_edit_of_a_genuine_token_is_refused_by_the_drf_authentication(
    access_token: str, kind: str, data: st.DataObject
) -> None:
    edited = data.draw(one_character_edit(access_token, kind), label="edited token")
    if edited.strip() == access_token:
        return  # whitespace added at either end: "Bearer" 1*SP b64token allows it, same token
    with pytest.raises(exceptions.APIException) as refused:
        authenticate(f"Bearer {edited}")
    # 401 invalid_token, or 400 invalid_request when the edit put whitespace inside the token
    assert isinstance(refused.value, (exceptions.AuthenticationFailed, MalformedAuthorization))
