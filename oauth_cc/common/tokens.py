"""Both sides: JWT access tokens per RFC 9068: claims, signing (issuer) and strict verification.

Signing uses jwcrypto's JWA layer through :class:`oauth_cc.issuer.keys.Signer`. The header is
exactly ``{"alg", "typ": "at+jwt", "kid"}``; the registered claims are ``iss, sub, client_id,
aud, exp, iat, jti, scope`` (RFC 9068 §2.2). Verification (§4) goes through
:mod:`oauth_cc.common.jws` (compact serialization only, strict base64url, bounded JSON) and is strict:
the header may carry nothing but those three members; the algorithm must be the one pinned to
the published key named by ``kid`` (so never ``none`` and never HMAC with a public key);
``typ`` must be ``at+jwt``; and ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` are all checked,
on the claims decoded from the very bytes whose signature was verified.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured

from . import claims as claim_values
from . import jws
from .algorithms import ACCESS_TOKEN_ALGORITHMS

#: Claims this module sets and nobody else may change (a claims hook included).
REGISTERED_CLAIMS = frozenset({"iss", "sub", "client_id", "aud", "exp", "iat", "nbf", "jti", "scope", "cnf"})
#: RFC 8705 §3.1 ``cnf.x5t#S256`` and RFC 9449 §6.1 ``cnf.jkt``: base64url SHA-256 thumbprints
#: (of the client certificate, of the DPoP key).
THUMBPRINT_RE = re.compile(r"[A-Za-z0-9_-]{43}")
#: The confirmation methods a token may carry in ``cnf``; exactly one, when it has a ``cnf``.
CONFIRMATION_METHODS = ("jkt", "x5t#S256")
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Longest access token accepted, and issued: ours are ~500 bytes; a claims hook may add some.
#: Also what keeps one Bearer header from costing more than a few KiB of decoding.
MAX_TOKEN_BYTES = 8 * 1024
#: Bounds of the identifiers in a token: a revoked jti is stored (``RevokedToken.jti``), and a
#: client_id is at most what a client can have.
MAX_JTI_LENGTH = 64
MAX_CLIENT_ID_LENGTH = 255
#: The header this site writes, and the only members a token's header may have.
HEADER_POLICY = jws.HeaderPolicy(accepted=frozenset({"alg", "typ", "kid"}), ignore_unknown=False)
_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=False, allow_nan=False)
_WHAT = "The access token"


class KeySource(Protocol):
    """Where the verifying key of a ``kid`` comes from: the site's own keys, or its issuer's."""

    def verifier(self, kid: str) -> Any: ...


class InvalidToken(Exception):
    """The token is not a valid access token for this site. ``str(exc)`` says why, safely."""


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def build_claims(
    *,
    issuer: str,
    client_id: str,
    audience: str,
    scopes: list[str],
    lifetime: int,
    now: int,
    jkt: str | None = None,
) -> dict[str, Any]:
    """The registered claims; ``jkt`` binds the token to a DPoP key (RFC 9449 §6.1: ``cnf.jkt``)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": audience,
        "exp": now + lifetime,
        "iat": now,
        "jti": new_jti(),
        "scope": " ".join(scopes),
    }
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    return claims


def sign(claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` with the current key: one signature (~25 µs for ES256), no query in steady state.

    A token longer than :data:`MAX_TOKEN_BYTES` is never issued: every verifier would refuse it.
    Only a claims hook adding too much can cause that, so it is a configuration error.
    """
    from ..issuer.keys import key_store  # the issuer's keys: not loaded on a resource-only service

    token = key_store.signer().sign(_JSON.encode(dict(claims)).encode("utf-8"))
    if len(token) > MAX_TOKEN_BYTES:
        raise ImproperlyConfigured(
            f"An access token would be {len(token)} bytes, over the {MAX_TOKEN_BYTES} verifiers accept; "
            "OAUTH_CC['CLAIMS_HOOK'] adds too much to it."
        )
    return token


def verify(
    token: str,
    *,
    issuer: str,
    audience: str | None,
    leeway: int,
    now: float,
    keys: KeySource | None = None,
) -> dict[str, Any]:
    """Check signature and claims; return the claims or raise :class:`InvalidToken`.

    ``audience=None`` skips the ``aud`` check: only the issuer's own introspection does that.
    ``keys``: where verifying keys come from (default: this site's :data:`~oauth_cc.issuer.keys.key_store`;
    a resource-only service passes its issuer's keys).

    Cost: three base64url decodes, two bounded JSON decodes and one signature verification;
    no database query unless ``kid`` is unknown to this worker (then one, rate-limited).
    """
    try:
        parsed = jws.parse(token, policy=HEADER_POLICY, max_bytes=MAX_TOKEN_BYTES, what=_WHAT)
    except jws.MalformedJWS as exc:
        raise InvalidToken(str(exc)) from None
    if parsed.alg not in ACCESS_TOKEN_ALGORITHMS:
        raise InvalidToken("The access token's signing algorithm is not accepted.")
    if parsed.typ is None or parsed.typ.lower() not in ACCEPTED_TYPES:
        raise InvalidToken('The access token must have typ "at+jwt" (RFC 9068).')
    if parsed.kid is None:
        raise InvalidToken("The access token names no signing key (kid).")
    if keys is None:
        from ..issuer.keys import key_store  # the issuer's own keys

        keys = key_store
    found = keys.verifier(parsed.kid)
    if found is None:
        raise InvalidToken("The access token was signed by an unknown key.")
    key_alg, key = found
    if parsed.alg != key_alg:
        raise InvalidToken("The access token's algorithm does not match its key.")
    if not jws.verify_signature(parsed, key, (key_alg,)):
        raise InvalidToken("The access token's signature is invalid.")
    try:
        claims = jws.claims(parsed, max_bytes=MAX_TOKEN_BYTES, what=_WHAT)
    except jws.MalformedJWS as exc:
        raise InvalidToken(str(exc)) from None
    check_claims(claims, issuer=issuer, audience=audience, leeway=leeway, now=now)
    return claims


def check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str | None, leeway: int, now: float
) -> None:
    """RFC 9068 §4 claim checks, independent of the signature."""
    try:
        if claim_values.string(claims, "iss") != issuer:
            raise InvalidToken("The access token was issued by another issuer.")
        audiences = claim_values.audiences(claims)
        if audience is not None and audience not in audiences:
            raise InvalidToken("The access token is not meant for this resource (aud).")
        exp = claim_values.numeric_date(claims, "exp", required=True)
        iat = claim_values.numeric_date(claims, "iat", required=True)
        nbf = claim_values.numeric_date(claims, "nbf", required=False)
        claim_values.identifier(claims, "jti", max_length=MAX_JTI_LENGTH)
        for name in ("client_id", "sub"):
            claim_values.identifier(claims, name, max_length=MAX_CLIENT_ID_LENGTH)
        claim_values.string(claims, "scope", required=False, empty=True)
        confirmation(claims)
    except claim_values.ClaimError as exc:
        raise InvalidToken(f"The access token's {exc}.") from None
    if exp is not None and exp <= now - leeway:
        raise InvalidToken("The access token has expired.")
    if iat is not None and iat > now + leeway:
        raise InvalidToken("The access token was issued in the future (iat).")
    if nbf is not None and nbf > now + leeway:
        raise InvalidToken("The access token is not valid yet (nbf).")


def confirmation(claims: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(method, thumbprint)`` of the key a token is bound to, or None for a bearer token.

    ``cnf`` must hold exactly one of :data:`CONFIRMATION_METHODS`: a confirmation this site
    cannot check is refused rather than ignored, since ignoring it would turn a bound token
    into a bearer one.
    """
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or len(cnf) != 1 or next(iter(cnf)) not in CONFIRMATION_METHODS:
        raise claim_values.ClaimError(
            '"cnf" claim must hold exactly one of "jkt" (RFC 9449) or "x5t#S256" (RFC 8705)'
        )
    ((method, value),) = cnf.items()
    if not isinstance(value, str) or not THUMBPRINT_RE.fullmatch(value):
        raise claim_values.ClaimError(f'"cnf" claim\'s "{method}" is not a SHA-256 thumbprint')
    return method, value


def certificate_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The ``cnf.x5t#S256`` a token is bound to (RFC 8705 §3.1), or None."""
    bound = confirmation(claims)
    return bound[1] if bound is not None and bound[0] == "x5t#S256" else None


def dpop_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The ``cnf.jkt`` a token is bound to (RFC 9449 §6.1), or None."""
    bound = confirmation(claims)
    return bound[1] if bound is not None and bound[0] == "jkt" else None
