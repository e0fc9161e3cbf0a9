"""Both sides: JSON from outside (token headers and claims, client assertions, JWK Sets), decoded with bounds.

Python's ``json`` module is fine with well-behaved input and wrong for attacker bytes in four
ways, each of which this module closes before or while decoding:

* **depth**: a few thousand nested brackets raise ``RecursionError``, which escapes every
  ``except ValueError``. The nesting is measured first, outside any string, and input deeper
  than ``max_depth`` is refused without being decoded;
* **size**: refused above ``max_bytes`` before anything else is done with it;
* **encoding**: ``json.loads(bytes)`` guesses UTF-16/32 from the first bytes; RFC 8259 §8.1 and
  RFC 7519 §7.2 want UTF-8, so bytes are decoded as strict UTF-8 (no BOM) first. Lone UTF-16
  surrogate escapes (``"\\ud800"``) are refused too: they make strings that cannot be encoded
  again (a database driver would raise on them);
* **ambiguity**: duplicate member names (RFC 7515 §4, RFC 7519 §4: reject or take the last;
  we reject, so two parsers can never read two different values) and the non-standard
  ``NaN``/``Infinity`` literals are refused.

Every refusal raises :class:`JSONInputError`, a ``ValueError`` with a sentence safe to show.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from .errors import shown

#: Default nesting bound: tokens and JWK Sets are two or three levels deep.
MAX_DEPTH = 16


class JSONInputError(ValueError):
    """The input is not acceptable JSON. ``str(exc)`` says why and is safe to show."""


# A JSON string: a quote, runs of plain characters and escapes, and the closing quote *if there
# is one*. The optional closing quote keeps matching linear: an unterminated string is taken to
# the end of the input in one pass, where a required quote would make the engine fail there
# and start again at every escaped quote inside it (quadratic: 16 KB of \" cost a second).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text`` outside JSON strings.

    Linear in the length of ``text`` whatever it holds, with no recursion; the running depth
    is summed in C (``accumulate``), so a megabyte of brackets costs milliseconds.
    """
    if "[" not in text and "{" not in text:
        return 0
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise JSONInputError(f'the member "{shown(name)}" appears more than once')
            seen.add(name)
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_refuse_constant)


def loads(data: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "The JSON") -> Any:
    """Decode ``data`` or raise :class:`JSONInputError`; see the module docstring for the bounds.

    ``what`` names the input in the error messages (``"The client_assertion header"``).
    """
    if len(data) > max_bytes:
        raise JSONInputError(f"{what} is larger than {max_bytes} bytes.")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONInputError(f"{what} is not UTF-8.") from None
    else:
        text = data
    if text.startswith("\ufeff"):
        raise JSONInputError(f"{what} starts with a byte order mark.")
    if nesting_depth(text) > max_depth:
        raise JSONInputError(f"{what} is nested more than {max_depth} levels deep.")
    try:
        value = _DECODER.decode(text)
    except JSONInputError as exc:
        raise JSONInputError(f"{what} is not valid JSON: {exc}.") from None
    except (ValueError, RecursionError):
        # RecursionError cannot happen within max_depth; it is caught so no bound set too
        # high by a caller can turn input into an unhandled exception.
        raise JSONInputError(f"{what} is not valid JSON.") from None
    if ("\\u" in text or not text.isascii()) and _has_surrogate(value):
        raise JSONInputError(f"{what} contains an unpaired UTF-16 surrogate.")
    return value


def _has_surrogate(value: Any) -> bool:
    """Whether a decoded value holds a lone surrogate; iterative, so no depth can overflow it."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
