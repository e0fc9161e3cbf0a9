"""oauth_cc.common.claims: the readers of claim values both verifiers share, with their exact refusals."""

from __future__ import annotations

import pytest

from oauth_cc.common import claims
from oauth_cc.common.claims import ClaimError


def refused(call, message: str) -> None:
    with pytest.raises(ClaimError) as raised:
        call()
    assert str(raised.value) == message


@pytest.mark.parametrize("value", [0, 1, 1_700_000_000, 1_700_000_000.5, claims.MAX_NUMERIC_DATE])
def test_numeric_date_accepts_numbers_in_range_as_float(value):
    result = claims.numeric_date({"exp": value}, "exp", required=True)
    assert result == float(value)
    assert type(result) is float


def test_numeric_date_absent():
    assert claims.numeric_date({}, "nbf", required=False) is None
    refused(lambda: claims.numeric_date({}, "exp", required=True), '"exp" claim is missing')


@pytest.mark.parametrize("value", [True, False, None, "1700000000", [1], {"a": 1}])
def test_numeric_date_must_be_a_json_number(value):
    refused(
        lambda: claims.numeric_date({"iat": value}, "iat", required=True),
        '"iat" claim is not a number of seconds since the epoch',
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numeric_date_must_be_finite(value):
    refused(
        lambda: claims.numeric_date({"exp": value}, "exp", required=True),
        '"exp" claim is not a finite number',
    )


@pytest.mark.parametrize(
    "value",
    [claims.MIN_NUMERIC_DATE - 1, -0.5, claims.MAX_NUMERIC_DATE + 1, claims.MAX_NUMERIC_DATE + 0.5, 10**400],
)
def test_numeric_date_must_be_in_range(value):
    refused(lambda: claims.numeric_date({"exp": value}, "exp", required=True), '"exp" claim is out of range')


@pytest.mark.parametrize(
    ("value", "expected"),
    [("https://api.example", ("https://api.example",)), (["a", "b"], ("a", "b")), (["a"], ("a",))],
)
def test_audiences_is_one_string_or_a_list_of_them(value, expected):
    assert claims.audiences({"aud": value}) == expected


def test_audiences_missing():
    refused(lambda: claims.audiences({}), '"aud" claim is missing')


@pytest.mark.parametrize("value", ["", [], [""], ["a", ""], ["a", 1], 1, None, {"a": "b"}, ("a",)])
def test_audiences_must_be_non_empty_strings(value):
    refused(lambda: claims.audiences({"aud": value}), '"aud" claim must be a string or a list of strings')


def test_string_rules():
    assert claims.string({"iss": "x"}, "iss") == "x"
    assert claims.string({}, "scope", required=False) == ""
    assert claims.string({"scope": ""}, "scope", required=False, empty=True) == ""
    refused(lambda: claims.string({}, "iss"), '"iss" claim is missing')
    refused(lambda: claims.string({"iss": ""}, "iss"), '"iss" claim is empty')
    refused(lambda: claims.string({"scope": ""}, "scope", required=False), '"scope" claim is empty')
    for value in (1, None, ["x"], True):
        refused(lambda value=value: claims.string({"iss": value}, "iss"), '"iss" claim is not a string')


def test_identifier_rules():
    assert claims.identifier({"jti": "a" * 10}, "jti", max_length=10) == "a" * 10
    refused(
        lambda: claims.identifier({"jti": "a" * 11}, "jti", max_length=10),
        '"jti" claim is longer than 10 characters',
    )
    for value in ("a\x00b", "line\nbreak", "\x1b[31m", "tab\t"):
        refused(
            lambda value=value: claims.identifier({"sub": value}, "sub", max_length=99),
            '"sub" claim contains control characters',
        )
    refused(lambda: claims.identifier({}, "client_id", max_length=9), '"client_id" claim is missing')
    refused(lambda: claims.identifier({"sub": ""}, "sub", max_length=9), '"sub" claim is empty')
    refused(lambda: claims.identifier({"sub": 5}, "sub", max_length=9), '"sub" claim is not a string')
