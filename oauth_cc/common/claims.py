"""Both sides: reading JWT claim values (RFC 7519 §4.1), shared by access tokens and client assertions.

One parser per kind of value, so both verifiers apply the same rule and a fix reaches both:

* :func:`numeric_date` - ``exp``, ``nbf``, ``iat``: a JSON number (never a boolean, a string or
  null), finite, between the epoch and the end of year 9999 (a range in which a float counts
  whole seconds, I-JSON RFC 7493 §2.2, and a ``datetime`` can hold it). ``NaN`` and
  ``Infinity`` cannot reach it (the JSON decoder refuses them) and are refused here again,
  since a ``NaN`` ``exp`` compares false with everything and would never expire;
* :func:`audiences` - ``aud``: one non-empty string or a non-empty list of them;
* :func:`string` - ``iss``, ``scope``: a string;
* :func:`identifier` - ``jti``, ``sub``, ``client_id``: a non-empty printable string no longer
  than the column it may be stored in (:func:`identifier_problem`, the same rule for such an
  identifier outside a claim).

Each raises :class:`ClaimError`, whose message starts with the claim's quoted name and is safe
to show; the verifiers wrap it in their own error (``invalid_token``, ``invalid_client``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Range accepted for a NumericDate: from the epoch to the end of year 9999, the range in
#: which the value is an exact float and a Python ``datetime`` (a revocation record's expiry).
MIN_NUMERIC_DATE = 0
MAX_NUMERIC_DATE = 253_402_300_799


class ClaimError(ValueError):
    """A claim is missing or has the wrong type. The message is safe to show."""


def numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    """``claims[name]`` as seconds since the epoch; None if absent and not ``required``."""
    if name not in claims:
        if required:
            raise ClaimError(f'"{name}" claim is missing')
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClaimError(f'"{name}" claim is not a number of seconds since the epoch')
    # An int is checked before any conversion: float() of a huge int raises OverflowError.
    if isinstance(value, float) and not math.isfinite(value):
        raise ClaimError(f'"{name}" claim is not a finite number')
    if not MIN_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE:
        raise ClaimError(f'"{name}" claim is out of range')
    return float(value)


def audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """``aud`` as a tuple of one or more non-empty strings (RFC 7519 §4.1.3)."""
    if "aud" not in claims:
        raise ClaimError('"aud" claim is missing')
    value = claims["aud"]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(a, str) and a for a in values):
        raise ClaimError('"aud" claim must be a string or a list of strings')
    return tuple(values)


def string(claims: Mapping[str, Any], name: str, *, required: bool = True, empty: bool = False) -> str:
    """``claims[name]`` as a string; "" if absent and not ``required``.

    ``empty`` allows the empty string (``scope`` may be empty; an identifier may not).
    """
    if name not in claims:
        if required:
            raise ClaimError(f'"{name}" claim is missing')
        return ""
    value = claims[name]
    if not isinstance(value, str):
        raise ClaimError(f'"{name}" claim is not a string')
    if not value and not empty:
        raise ClaimError(f'"{name}" claim is empty')
    return value


def identifier(claims: Mapping[str, Any], name: str, *, max_length: int) -> str:
    """``claims[name]`` as a non-empty, printable string of at most ``max_length`` characters.

    Identifiers end up in database columns and log lines; control characters (NUL, which
    PostgreSQL cannot store, or an escape sequence) and overlong values are refused here.
    """
    value = string(claims, name)
    problem = identifier_problem(value, max_length=max_length)
    if problem:
        raise ClaimError(f'"{name}" claim {problem}')
    return value


def identifier_problem(value: str, *, max_length: int) -> str:
    """What keeps ``value`` from being an identifier (``"is empty"``, ...), or "" if nothing.

    The rule of :func:`identifier`, for identifiers that arrive outside a claim (the revocation
    feed's jtis and client_ids): one rule, so a fix reaches every reader.
    """
    if not value:
        return "is empty"
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if not value.isprintable():
        return "contains control characters"
    return ""
