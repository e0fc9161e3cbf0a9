"""Strategies shared by the property tests.

Random text alone rarely gets past the first check of a parser, so most of these build
*structured but hostile* input: valid-looking base64url segments around random JSON, headers
with random members of random types, JSON text written by hand (NaN, Infinity, numbers too
large for a float or for ``int()``, lone surrogate escapes, duplicate members, thousands of
nested brackets, balanced or not), and one-character edits of genuine tokens.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any

from hypothesis import strategies as st

from tests.attacks.forge import b64

B64URL_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"

#: Characters an edit may put into a token: the base64url alphabet first (an edit that keeps the
#: segment decodable is the one that reaches the signature check), then the separators and
#: padding of other encodings, whitespace of every kind, and finally any character at all.
EDIT_CHARACTERS = st.one_of(
    st.sampled_from(B64URL_ALPHABET),
    st.sampled_from(list(".=+/ \t\r\n\x00\x0b\x0c\x1c\x85\xa0\u2028\u3000\ufeff")),
    st.characters(),
)


def unicode_text(**kwargs: Any) -> st.SearchStrategy[str]:
    """Text of Unicode scalar values: no lone surrogates, which cannot be UTF-8 encoded."""
    return st.text(st.characters(exclude_categories=("Cs",)), **kwargs)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), finite_floats, unicode_text(max_size=12))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Values ``json.dumps`` writes as standard JSON (finite floats, no lone surrogates)."""
    return st.recursive(
        json_scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(unicode_text(max_size=8), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def depth(value: Any) -> int:
    """Bracket nesting of ``value`` as JSON text: a scalar 0, ``[]`` 1, ``[[]]`` 2."""
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


def is_standard_json(value: Any) -> bool:
    """Whether ``json.dumps(value)`` is standard JSON: no NaN or Infinity anywhere."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(is_standard_json(item) for item in value.values())
    if isinstance(value, list):
        return all(is_standard_json(item) for item in value)
    return True


def same(a: Any, b: Any) -> bool:
    """Equal *and* of the same JSON types all the way down (``1 == 1.0 == True`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


#: Numbers at and around the edges that matter: the NumericDate range, ±2**53, the float
#: range, int() digit limits.
EDGE_NUMBERS: tuple[Any, ...] = (
    0,
    -0.0,
    -1,
    253_402_300_799,
    253_402_300_799 + 1,
    253_402_300_799.5,
    2**53,
    -(2**53),
    2**53 + 1,
    -(2**53) - 1,
    2.0**53,
    -(2.0**53),
    9007199254740994.0,
    -9007199254740994.0,
    10**400,
    -(10**400),
    1.7976931348623157e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
)

#: Any Python value a parser of decoded JSON could be handed, JSON or not.
any_values = st.recursive(
    st.one_of(
        json_scalars,
        st.floats(),
        st.sampled_from(EDGE_NUMBERS),
        st.text(max_size=8),  # lone surrogates included
        st.binary(max_size=8),
        st.decimals(),
        st.fractions(),
        st.complex_numbers(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=8,
)

#: Pieces of JSON text that Python's ``json`` module, or a careless wrapper around it, gets wrong.
RAW_ATOMS: tuple[str, ...] = (
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "inf",
    "1e999",
    "-1e999",
    "1E400",
    "1e-999",
    "-0",
    "-0.0",
    "9007199254740993",
    "-9007199254740993",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"\\x41"',
    '"\t"',
    '"unterminated',
    '"\\"',
    '"\\\\"',
    '"[[[["',
    '"]]]]"',
    "true",
    "false",
    "null",
    "True",
    "None",
    "tru",
    "",
    " ",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\u00e9",
    '"\u00e9"',
    "\ufeff1",
    "/*c*/1",
)

raw_keys = st.one_of(
    st.sampled_from(['"alg"', '"typ"', '"kid"', '"exp"', '"aud"', '"a"', '"\\ud800"', '""', "1", "null"]),
    unicode_text(max_size=6).map(json.dumps),
)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{name}:{value}" for name, value in pairs) + "}"


def nested_text(depth_: int, leaf: str, opener: str, balanced: bool) -> str:
    """``leaf`` inside ``depth_`` arrays or objects, closed or not."""
    if opener == "[":
        head, tail = "[" * depth_, "]" * depth_
    else:
        head, tail = '{"a":' * depth_, "}" * depth_
    return head + leaf + (tail if balanced else tail[: depth_ // 2])


#: Numbers with more digits than ``int()`` accepts (4300), or than a float can hold.
long_numbers = st.integers(4290, 5000).flatmap(
    lambda digits: st.sampled_from(
        ["1" * digits, "-" + "9" * digits, "0." + "1" * digits, "1" * digits + ".5"]
    )
)

raw_scalars = st.one_of(
    st.sampled_from(RAW_ATOMS),
    long_numbers,
    json_values(6).map(json.dumps),
    st.floats().map(json.dumps),  # NaN and Infinity as Python writes them
    st.integers().map(str),
)

#: JSON text written by hand, hostile at every level (duplicate members, bad literals, depth).
raw_json = st.recursive(
    raw_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(_array),
        st.lists(st.tuples(raw_keys, children), max_size=4).map(_object),
        st.builds(
            nested_text,
            st.integers(0, 3000),
            children,
            st.sampled_from("[{"),
            st.booleans(),
        ),
    ),
    max_leaves=6,
)

#: Documents as a parser of attacker bytes gets them: text, UTF-8, other encodings, raw bytes.
json_documents = st.one_of(
    raw_json,
    raw_json.map(lambda text: text.encode("utf-8")),
    raw_json.map(lambda text: ("\ufeff" + text).encode("utf-8")),
    raw_json.map(lambda text: text.encode("utf-16")),
    json_values().map(json.dumps),
    st.binary(max_size=64),
    st.text(max_size=64),
)

#: Header member names: the accepted ones, the refused ones, and anything else.
HEADER_NAMES = (
    "alg",
    "typ",
    "kid",
    "cty",
    "x5t",
    "x5t#S256",
    "jwk",
    "jku",
    "x5u",
    "x5c",
    "crit",
    "b64",
    "zip",
    "enc",
    "nonce",
    "",
)
ALG_VALUES = ("ES256", "RS256", "PS256", "EdDSA", "none", "None", "HS256", "es256", "ES256 ", "")
TYP_VALUES = ("at+jwt", "AT+JWT", "application/at+jwt", "JWT", "jwt", "")

#: A header member's value: a plausible string, or a value of any JSON type (NaN included).
header_values = st.one_of(
    st.sampled_from(ALG_VALUES + TYP_VALUES),
    json_values(6),
    st.floats(),
    st.sampled_from(EDGE_NUMBERS),
)
header_names = st.one_of(st.sampled_from(HEADER_NAMES), unicode_text(max_size=8))
#: Headers a JOSE library would write (so that many parse), and headers of anything at all.
plausible_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(ALG_VALUES)},
    optional={
        "typ": st.sampled_from(TYP_VALUES),
        "kid": st.text(max_size=8),
        "cty": st.just("JWT"),
        "x5t": st.text(B64URL_ALPHABET, max_size=8),
        "nonce": json_values(3),
    },
)
header_dicts = st.one_of(plausible_headers, st.dictionaries(header_names, header_values, max_size=6))

#: Header JSON text: dicts as Python writes them, and hand-written objects (duplicates, raw values).
header_bytes = st.one_of(
    header_dicts.map(lambda header: json.dumps(header).encode("utf-8")),
    st.lists(st.tuples(header_names.map(json.dumps), raw_json), max_size=5).map(
        lambda pairs: _object(pairs).encode("utf-8")
    ),
    raw_json.map(lambda text: text.encode("utf-8")),
    st.binary(max_size=40),
)

#: Claims JSON text: objects of random claims, raw JSON, or bytes.
payload_bytes = st.one_of(
    st.dictionaries(unicode_text(max_size=8), json_values(6), max_size=8).map(
        lambda claims: json.dumps(claims).encode("utf-8")
    ),
    raw_json.map(lambda text: text.encode("utf-8")),
    st.binary(max_size=64),
)

segments = st.one_of(
    st.binary(max_size=48).map(b64),
    header_bytes.map(b64),
    st.text(B64URL_ALPHABET, max_size=40),
    st.text(B64URL_ALPHABET + "=+/ ", max_size=12),
    st.text(max_size=8),
)

#: Strings shaped like a JWS compact serialization, or almost.
jws_shaped = st.one_of(
    st.text(),
    st.lists(segments, max_size=5).map(".".join),
    st.tuples(header_bytes.map(b64), payload_bytes.map(b64), st.binary(max_size=130).map(b64)).map(".".join),
)


@st.composite
def one_character_edit(draw: st.DrawFn, original: str, kind: str) -> str:
    """``original`` with one character replaced (by a different one), deleted or inserted."""
    if kind == "replace":
        position = draw(st.integers(0, len(original) - 1))
        new = draw(EDIT_CHARACTERS.filter(lambda char: char != original[position]))
        return original[:position] + new + original[position + 1 :]
    if kind == "delete":
        position = draw(st.integers(0, len(original) - 1))
        return original[:position] + original[position + 1 :]
    if kind == "insert":
        position = draw(st.integers(0, len(original)))
        new = draw(EDIT_CHARACTERS)
        return original[:position] + new + original[position:]
    raise ValueError(kind)


EDIT_KINDS = ("replace", "delete", "insert")


def bit_flips(original: str) -> list[str]:
    """Every string obtained by flipping one of the six bits of one base64url character.

    The result stays in the base64url alphabet, so each edit reaches the canonical-encoding and
    signature checks instead of being refused as "not base64url".
    """
    edits = []
    for position, char in enumerate(original):
        if char not in B64URL_ALPHABET:
            continue
        value = B64URL_ALPHABET.index(char)
        for bit in range(6):
            edits.append(original[:position] + B64URL_ALPHABET[value ^ (1 << bit)] + original[position + 1 :])
    return edits
