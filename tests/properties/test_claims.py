"""Properties of ``oauth_cc.common.claims``: the one reader of each kind of claim value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oauth_cc.common import claims, json_input
from oauth_cc.common.claims import MAX_NUMERIC_DATE, ClaimError

from .strategies import EDGE_NUMBERS, any_values, raw_scalars, unicode_text

numbers_and_more = st.one_of(
    st.integers(),
    st.integers(-(2**60), 2**60),
    st.floats(),
    st.sampled_from(EDGE_NUMBERS),
    st.booleans(),
    any_values,
)


def is_numeric_date(value: Any) -> bool:
    """The rule, written independently: a non-bool int or float, finite, epoch to end of 9999."""
    if type(value) is int:
        return 0 <= value <= 253_402_300_799
    if type(value) is float:
        return math.isfinite(value) and 0.0 <= value <= float(253_402_300_799)
    return False


@given(numbers_and_more, st.booleans())
@example(True, True)
@example(2**53 + 1, True)
@example(253_402_300_799, True)
@example(253_402_300_799 + 1, True)
@example(-1, True)
@example(float("nan"), True)
@example(10**400, True)
def test_numeric_date_accepts_exactly_finite_non_bool_numbers_from_the_epoch_to_year_9999(
    value: Any, required: bool
) -> None:
    if is_numeric_date(value):
        result = claims.numeric_date({"exp": value}, "exp", required=required)
        assert type(result) is float and result == value
        assert 0 <= result <= MAX_NUMERIC_DATE
    else:
        with pytest.raises(ClaimError, match=r'^"exp" claim'):
            claims.numeric_date({"exp": value}, "exp", required=required)


@given(st.dictionaries(unicode_text(max_size=5), any_values, max_size=4), unicode_text(max_size=5))
def test_numeric_date_of_a_missing_claim_is_none_unless_required(others: dict, name: str) -> None:
    others.pop(name, None)
    assert claims.numeric_date(others, name, required=False) is None
    with pytest.raises(ClaimError, match="is missing"):
        claims.numeric_date(others, name, required=True)


@given(raw_scalars)
@example("1e999")
@example("-1e999")
@example("9007199254740993")
@example("1" * 5000)
def test_numeric_date_of_any_json_number_text_is_a_float_or_a_claim_error(raw: str) -> None:
    """The path a token takes: JSON text decoded by ``json_input``, then read as a NumericDate."""
    text = '{"exp":' + raw + "}"
    try:
        decoded = json_input.loads(text, max_bytes=len(text))
    except json_input.JSONInputError:
        return
    if not isinstance(decoded, dict) or "exp" not in decoded:
        return
    try:
        result = claims.numeric_date(decoded, "exp", required=True)
    except ClaimError:
        assert not is_numeric_date(decoded["exp"])
    else:
        assert result is not None and math.isfinite(result) and abs(result) <= MAX_NUMERIC_DATE


@given(any_values)
@example("")
@example([])
@example([""])
@example(["a", ""])
@example(("a",))
def test_audiences_accepts_exactly_a_non_empty_string_or_non_empty_list_of_them(value: Any) -> None:
    if isinstance(value, str) and value:
        expected: tuple[str, ...] | None = (value,)
    elif isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        expected = tuple(value)
    else:
        expected = None
    if expected is None:
        with pytest.raises(ClaimError, match=r'^"aud" claim'):
            claims.audiences({"aud": value})
    else:
        assert claims.audiences({"aud": value}) == expected
    with pytest.raises(ClaimError, match="missing"):
        claims.audiences({"other": value})


@given(any_values, st.booleans(), st.booleans())
def test_string_accepts_exactly_strings_and_the_empty_one_only_when_allowed(
    value: Any, required: bool, empty: bool
) -> None:
    if isinstance(value, str) and (value or empty):
        assert claims.string({"jti": value}, "jti", required=required, empty=empty) == value
    else:
        with pytest.raises(ClaimError, match=r'^"jti" claim'):
            claims.string({"jti": value}, "jti", required=required, empty=empty)
    if required:
        with pytest.raises(ClaimError, match="missing"):
            claims.string({}, "jti", required=True, empty=empty)
    else:
        assert claims.string({}, "jti", required=False, empty=empty) == ""


@given(st.dictionaries(unicode_text(max_size=6), any_values, max_size=6))
def test_claim_errors_are_sentences_naming_the_claim_and_safe_to_show(document: dict) -> None:
    for name in ("exp", "iat", "nbf"):
        try:
            claims.numeric_date(document, name, required=True)
        except ClaimError as exc:
            assert str(exc).startswith(f'"{name}" claim')
            json.dumps(str(exc))
    for name in ("iss", "sub", "jti"):
        try:
            claims.string(document, name)
        except ClaimError as exc:
            assert str(exc).startswith(f'"{name}" claim')
