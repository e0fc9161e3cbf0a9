"""oauth_cc.common.json_input: bounded, strict JSON decoding of attacker bytes, with exact refusals."""

from __future__ import annotations

import pytest

from oauth_cc.common import json_input
from oauth_cc.common.json_input import JSONInputError, loads, nesting_depth


def refused(data: str | bytes, message: str, **bounds: int) -> None:
    with pytest.raises(JSONInputError) as raised:
        loads(data, what="The input", **{"max_bytes": 1000, **bounds})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[["', 0),
        ("[]", 1),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ("[[]][[[]]]", 3),
        ('["]", "[", "\\"[["]', 1),
        ('[["\\\\"], "{"]', 2),
        ("[" * 20 + "]" * 20, 20),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(text, depth):
    assert nesting_depth(text) == depth


def test_nesting_depth_of_text_without_any_opening_bracket_is_zero():
    assert nesting_depth("]]]}}") == 0
    assert nesting_depth('"a"') == 0


def test_input_at_the_size_limit_is_decoded_and_one_byte_more_is_refused():
    assert loads(b"[1, 2]", max_bytes=6) == [1, 2]
    refused(b"[1, 22]", "The input is larger than 6 bytes.", max_bytes=6)
    refused("[1, 22]", "The input is larger than 6 bytes.", max_bytes=6)


def test_input_at_the_depth_limit_is_decoded_and_one_level_more_is_refused():
    assert loads("[[[1]]]", max_bytes=100, max_depth=3) == [[[1]]]
    refused("[[[[1]]]]", "The input is nested more than 3 levels deep.", max_depth=3)


def test_the_default_depth_bound_is_16():
    assert json_input.MAX_DEPTH == 16
    assert loads("[" * 16 + "]" * 16, max_bytes=100) == [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]
    refused("[" * 17 + "]" * 17, "The input is nested more than 16 levels deep.")


def test_bytes_must_be_utf8():
    refused(b'"\xff"', "The input is not UTF-8.")
    refused('{"a": 1}'.encode("utf-16"), "The input is not UTF-8.")
    assert loads('"é"'.encode(), max_bytes=10) == "é"


@pytest.mark.parametrize("data", ['\ufeff{"a": 1}', '\ufeff{"a": 1}'.encode("utf-8")])
def test_a_byte_order_mark_is_refused(data):
    refused(data, "The input starts with a byte order mark.")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_constants_are_refused(constant):
    refused(f'{{"exp": {constant}}}', f"The input is not valid JSON: {constant} is not a JSON number.")


def test_duplicate_members_are_refused_naming_the_member():
    refused('{"a": 1, "b": 2, "a": 3}', 'The input is not valid JSON: the member "a" appears more than once.')
    refused('{"x": {"k": 1, "k": 1}}', 'The input is not valid JSON: the member "k" appears more than once.')


def test_a_long_duplicate_member_name_is_shortened():
    name = "d" * 50
    refused(
        f'{{"{name}": 1, "{name}": 2}}',
        f'The input is not valid JSON: the member "{"d" * 40}..." appears more than once.',
    )


def test_distinct_members_are_kept_in_order():
    assert list(loads('{"b": 1, "a": 2, "c": {"z": 0, "y": 1}}', max_bytes=100)) == ["b", "a", "c"]


@pytest.mark.parametrize("text", ["{", "[1,]", "", "'a'", '{"a" 1}', "1 2"])
def test_syntax_errors_are_refused_without_detail(text):
    refused(text, "The input is not valid JSON.")


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', '["ok", "\\udfff"]', '{"\\ud83d": 1}', '{"a": ["\\ud83dx"]}', '{"a": {"b": "\\udc00"}}'],
)
def test_lone_surrogates_are_refused_anywhere(text):
    refused(text, "The input contains an unpaired UTF-16 surrogate.")


@pytest.mark.parametrize("text", ['"\\ud83d\\ude00"', '{"\\u00e9": "\\u00e9"}', '["😀", {"k": "é"}]'])
def test_paired_surrogates_and_other_escapes_are_accepted(text):
    assert loads(text, max_bytes=100) is not None


def test_values_are_decoded_as_json():
    assert loads('{"a": [1, 2.5, true, null, "s"]}', max_bytes=100) == {"a": [1, 2.5, True, None, "s"]}
