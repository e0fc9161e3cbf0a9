"""Properties of ``oauth_cc.common.json_input.loads``: a value or ``JSONInputError``, never anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oauth_cc.common import json_input
from oauth_cc.common.json_input import JSONInputError

from .strategies import depth, json_documents, json_values, nested_text, same, unicode_text


@given(
    json_documents,
    st.integers(0, 100_000),
    st.integers(0, 64),
)
def test_loads_returns_a_value_or_raises_json_input_error_for_any_document(
    data: str | bytes, max_bytes: int, max_depth: int
) -> None:
    try:
        value = json_input.loads(data, max_bytes=max_bytes, max_depth=max_depth, what="The input")
    except JSONInputError as exc:
        assert str(exc).startswith("The input ")
    else:
        assert len(data) <= max_bytes
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        assert json_input.nesting_depth(text) <= max_depth
        # Whatever is accepted is what the standard decoder reads; literals NaN/Infinity are not
        # accepted (a number too large for a float still reads as inf: callers check ranges).
        assert same(value, json.loads(text))


@given(
    st.one_of(st.integers(0, 3000), st.sampled_from([16, 17, 300, 900, 1000, 1500, 1999, 3000])),
    st.one_of(st.integers(0, 5000), st.just(5000)),
    st.sampled_from(['"\\u00e9"', '"é"', "1", '"a"', "NaN", "[]", '"\\ud800"']),
    st.sampled_from("[{"),
    st.booleans(),
)
@example(depth_=900, max_depth=1000, leaf='"\\u00e9"', opener="[", balanced=True)
def test_loads_of_nesting_up_to_thousands_of_levels_never_raises_recursion_error(
    depth_: int, max_depth: int, leaf: str, opener: str, balanced: bool
) -> None:
    """Whatever ``max_depth`` a caller chooses (the module promises that no bound set too high
    turns input into an unhandled exception), deep input gives a value or ``JSONInputError``."""
    text = nested_text(depth_, leaf, opener, balanced)
    try:
        json_input.loads(text, max_bytes=len(text), max_depth=max_depth)
    except JSONInputError:
        pass


@given(st.integers(0, 3000), st.integers(0, 64), st.sampled_from("[{"))
def test_loads_refuses_exactly_the_input_nested_deeper_than_max_depth(
    depth_: int, max_depth: int, opener: str
) -> None:
    text = nested_text(depth_, "1", opener, balanced=True)
    if depth_ > max_depth:
        with pytest.raises(JSONInputError, match="nested more than"):
            json_input.loads(text, max_bytes=len(text), max_depth=max_depth)
    else:
        assert json_input.loads(text, max_bytes=len(text), max_depth=max_depth) == json.loads(text)


@given(json_values(20).filter(lambda value: depth(value) <= json_input.MAX_DEPTH))
def test_loads_of_json_dumps_gives_back_the_same_value_within_the_depth_bound(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value, indent=1)):
        assert same(json_input.loads(text, max_bytes=len(text)), value)
        encoded = text.encode("utf-8")
        assert same(json_input.loads(encoded, max_bytes=len(encoded)), value)


@given(
    json_values(8),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
    st.sampled_from(
        ["{0}", "[{1},{0}]", '{{"a":{1},"b":{0}}}', '[{{"a":[{0}]}},{1}]', '{{"a":{{"b":[1,{0}]}}}}']
    ),
)
def test_loads_refuses_nan_and_infinity_literals_wherever_they_are(
    around: Any, literal: str, template: str
) -> None:
    text = template.format(literal, json.dumps(around))
    with pytest.raises(JSONInputError):
        json_input.loads(text, max_bytes=len(text), max_depth=64)


@given(unicode_text(max_size=10), json_values(4), json_values(4), st.lists(unicode_text(max_size=4)))
def test_loads_refuses_any_object_with_a_duplicate_member(
    name: str, first: Any, second: Any, others: list[str]
) -> None:
    members = [json.dumps(other) + ":0" for other in others if other != name]
    members[len(members) // 2 : len(members) // 2] = [
        f"{json.dumps(name)}:{json.dumps(first)}",
        f"{json.dumps(name, ensure_ascii=False)}:{json.dumps(second)}",
    ]
    text = "{" + ",".join(members) + "}"
    with pytest.raises(JSONInputError, match="more than once"):
        json_input.loads(text, max_bytes=len(text), max_depth=64)


@given(st.binary())
def test_loads_of_bytes_refuses_anything_that_is_not_utf8_without_bom(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(JSONInputError, match="not UTF-8"):
            json_input.loads(data, max_bytes=len(data))
        return
    if text.startswith("\ufeff"):
        with pytest.raises(JSONInputError, match="byte order mark"):
            json_input.loads(data, max_bytes=len(data))


@given(
    st.text(st.characters(categories=("Cs",)), min_size=1, max_size=3),
    st.sampled_from(['"{}"', '["{}"]', '{{"{}":1}}', '{{"a":"x{}y"}}']),
)
def test_loads_refuses_lone_surrogates_written_raw_or_escaped(surrogates: str, template: str) -> None:
    escaped = "".join(f"\\u{ord(char):04x}" for char in surrogates)
    for text in (template.format(surrogates), template.format(escaped)):
        value = None
        try:
            value = json_input.loads(text, max_bytes=len(text))
        except JSONInputError:
            continue
        # Only a surrogate *pair* escape may be accepted, and then it decodes to a real character.
        assert value is not None and "\\ud" in text.lower()
        json.dumps(value, ensure_ascii=False).encode("utf-8")


@given(json_documents, st.integers(0, 200))
def test_loads_refuses_input_longer_than_max_bytes_before_decoding(data: str | bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        with pytest.raises(JSONInputError, match="larger than"):
            json_input.loads(data, max_bytes=max_bytes)
