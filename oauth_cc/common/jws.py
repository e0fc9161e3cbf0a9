"""Both sides: JWS compact serialization (RFC 7515 §7.1), parsed once and strictly, and signature checks.

Access tokens and client assertions are both attacker bytes until their signature is
checked. Both go through :func:`parse` and :func:`verify_signature`, which follow RFC 8725
(JWT BCP) and keep one rule: *what was verified is what is used*.

* **One serialization.** Exactly three dot-separated segments; the JSON serialization and
  anything else are refused before any JSON is decoded.
* **Strict, canonical base64url** (RFC 7515 §2, RFC 4648 §5): the URL-safe alphabet only, no
  padding, no whitespace or stray characters, and the unused low bits of the last character
  zero, so each segment has exactly one spelling. (An ECDSA signature ``(r, s)`` also verifies
  as ``(r, n - s)``: an ES256 token can be written two ways, never more. Both carry the same
  claims and ``jti``, so revocation and single use, which go by ``jti``, cover both.)
* **Bounded.** The whole token is size-checked first, and header and claims are decoded by
  :mod:`oauth_cc.common.json_input` (depth bound, strict UTF-8, no duplicate members, no NaN).
* **Header members are type-checked** against a :class:`HeaderPolicy`. Members that carry or
  point at a key (``jwk``, ``jku``, ``x5u``, ``x5c``), change how the payload is read
  (``b64``, ``zip``) or demand extensions (``crit``) are refused outright: the verifying key
  always comes from the site's own registry, never from the token.
* **The signature covers exactly** ``segment1.segment2`` as sent, is of the exact length the
  algorithm and key produce, and is checked with the key type that :mod:`oauth_cc.common.algorithms`
  pins to the algorithm. The claims are then decoded from the bytes of segment 2, the ones
  that were verified; nothing is parsed a second time from the raw string.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from jwcrypto.common import JWException
from jwcrypto.jwa import JWA
from jwcrypto.jwk import JWK

from . import json_input
from .algorithms import ALGORITHMS
from .errors import shown

#: Header members never accepted, with the reason given to the sender.
REFUSED_HEADER_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        "jwk": "carries its own key",
        "jku": "points at a key URL",
        "x5u": "points at a certificate URL",
        "x5c": "carries its own certificate",
        "crit": "demands extensions this server does not support",
        "b64": "changes how the payload is encoded (RFC 7797)",
        "zip": "asks for compression",
        "enc": "is a JWE header",
    }
)
#: Bound on a header: ours is under 100 bytes; a client's with x5t and cty well under 1 KiB.
MAX_HEADER_BYTES = 2048
#: Accepted header values are flat strings; the bound leaves room for a refused ``jwk`` object
#: or ``crit`` list to be parsed and named in the error rather than refused as "too deep".
MAX_HEADER_DEPTH = 4

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class MalformedJWS(ValueError):
    """The input is not an acceptable JWS. ``str(exc)`` is a sentence safe to show the sender."""


@dataclass(frozen=True)
class HeaderPolicy:
    """Which header members one kind of JWS may carry.

    Every member named in ``accepted`` must be a string. Members in
    :data:`REFUSED_HEADER_PARAMETERS` are always refused. Any other member is refused too,
    unless ``ignore_unknown`` (RFC 7515 §4: a recipient ignores parameters it does not
    understand), which is right for JWSs made by other software and wrong for our own tokens,
    whose header we write ourselves.
    """

    accepted: frozenset[str]
    ignore_unknown: bool
    #: DPoP proofs (RFC 9449 §4.2) only: the header MUST carry the signer's public key as a
    #: ``jwk`` object. It is then required, must be a JSON object, and is the one member of
    #: :data:`REFUSED_HEADER_PARAMETERS` let through; what it may hold is the caller's rule
    #: (:mod:`oauth_cc.common.dpop`). Every other policy keeps refusing ``jwk``.
    embedded_jwk: bool = False


@dataclass(frozen=True)
class CompactJWS:
    """A parsed, not yet verified JWS. ``payload`` is the exact bytes the signature covers."""

    header: Mapping[str, Any]
    alg: str
    kid: str | None
    typ: str | None
    signing_input: bytes
    payload: bytes
    signature: bytes


def b64url_encode(data: bytes) -> str:
    """RFC 7515 §2 base64url, without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Strict, canonical base64url; raises :class:`MalformedJWS`.

    Refused: any character outside ``A-Z a-z 0-9 - _`` (so padding, whitespace and the
    ``+/`` alphabet), a length that no byte string encodes to (``len % 4 == 1``), and a last
    character with non-zero unused bits (a second spelling of the same bytes).
    """
    if len(segment) % 4 == 1 or not _BASE64URL.fullmatch(segment):
        raise MalformedJWS("not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedJWS("not base64url") from None
    if b64url_encode(data) != segment:
        raise MalformedJWS("not canonical base64url")
    return data


def parse(token: Any, *, policy: HeaderPolicy, max_bytes: int, what: str) -> CompactJWS:
    """Split and decode a JWS compact serialization; check its header against ``policy``.

    ``what`` names the input in error messages (``"The access token"``). The algorithm is only
    type-checked here: which algorithms are acceptable is the caller's rule. Raises
    :class:`MalformedJWS`.
    """
    if not isinstance(token, str):
        raise MalformedJWS(f"{what} is not a string.")
    if len(token) > max_bytes:
        raise MalformedJWS(f"{what} is longer than {max_bytes} bytes.")
    parts = token.split(".")
    # An empty signature segment parses (an "alg": "none" token has one), so that such a
    # token is refused for its algorithm; no allowed algorithm has an empty signature.
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise MalformedJWS(
            f"{what} is not a well-formed JWT: it must be a JWS in compact serialization, "
            "three base64url segments separated by dots."
        )
    try:
        header_bytes = b64url_decode(parts[0])
        payload = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
    except MalformedJWS as exc:
        raise MalformedJWS(
            f"{what} is not a well-formed JWT: a segment is {exc} (JWS compact serialization, RFC 7515)."
        ) from None
    try:
        header = json_input.loads(
            header_bytes, max_bytes=MAX_HEADER_BYTES, max_depth=MAX_HEADER_DEPTH, what=f"{what}'s header"
        )
    except json_input.JSONInputError as exc:
        raise MalformedJWS(str(exc)) from None
    if not isinstance(header, dict):
        raise MalformedJWS(f"{what}'s header is not a JSON object.")
    for name in header:
        if name == "jwk" and policy.embedded_jwk:
            continue
        if name in REFUSED_HEADER_PARAMETERS:
            raise MalformedJWS(
                f'{what}\'s header has "{name}", which {REFUSED_HEADER_PARAMETERS[name]}; it is not accepted.'
            )
        if name not in policy.accepted and not policy.ignore_unknown:
            raise MalformedJWS(f'{what}\'s header has the unexpected member "{shown(name)}".')
    for name in policy.accepted.intersection(header):
        if not isinstance(header[name], str):
            raise MalformedJWS(f'{what}\'s header "{name}" is not a string.')
    if "alg" not in header:
        raise MalformedJWS(f'{what}\'s header has no "alg".')
    if policy.embedded_jwk and not isinstance(header.get("jwk"), dict):
        raise MalformedJWS(f'{what}\'s header has no "jwk" object (the public key that signed it).')
    kid = header.get("kid")
    if kid is not None and not kid:
        raise MalformedJWS(f'{what}\'s header "kid" is empty.')
    return CompactJWS(
        header=MappingProxyType(header),
        alg=header["alg"],
        kid=kid,
        typ=header.get("typ"),
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        payload=payload,
        signature=signature,
    )


def verify_signature(jws: CompactJWS, key: JWK, allowed: Collection[str]) -> bool:
    """Whether ``key`` signed ``jws`` with an algorithm from ``allowed``.

    False (never an exception) when the algorithm is not allowed, the key does not fit it
    (type, curve, or the key's own ``alg``), the signature has the wrong length, or it does
    not verify. The check runs over ``signing_input`` only.
    """
    algorithm = ALGORITHMS.get(jws.alg) if jws.alg in allowed else None
    if algorithm is None or not algorithm.fits(key):
        return False
    try:
        if len(jws.signature) != algorithm.signature_length(key):
            return False
        # types-jwcrypto types signing_alg() as the JWAAlgorithm base, which declares no verify().
        JWA.signing_alg(jws.alg).verify(key, jws.signing_input, jws.signature)  # type: ignore[attr-defined]
    except (InvalidSignature, JWException, ValueError, TypeError):
        return False
    return True


def claims(jws: CompactJWS, *, max_bytes: int, what: str) -> dict[str, Any]:
    """The payload of ``jws`` as a JSON object, decoded with bounds. Raises :class:`MalformedJWS`."""
    try:
        value = json_input.loads(jws.payload, max_bytes=max_bytes, what=f"{what}'s claims")
    except json_input.JSONInputError as exc:
        raise MalformedJWS(str(exc)) from None
    if not isinstance(value, dict):
        raise MalformedJWS(f"{what}'s claims are not a JSON object.")
    return value
