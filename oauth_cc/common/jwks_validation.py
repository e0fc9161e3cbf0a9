"""Both sides: checks of public JWKs and JWK Sets (RFC 7517, RFC 7518 §6), without network or state.

What an operator enters for a private_key_jwt client (``Application.client_jwks``, a JWK Set
document, RFC 7517 §5, or ``Application.client_jwks_uri``) is validated here, by the model's
field validation; the same per-key rules pick the usable keys of a fetched set, the client's
(:mod:`oauth_cc.issuer.client_jwks_fetch`) or the issuer's on a resource-only service
(:mod:`oauth_cc.resource.issuer_keys`). This module reads settings and nothing else: no
network, no cache, no database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

from ..conf import oauth_cc_settings
from .algorithms import MIN_RSA_BITS, algorithms_for_key_type, curves_for_key_type
from .errors import shown
from .hardened_http import FetchError, check_url

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# Which key types, curves and sizes may verify an assertion comes from oauth_cc.common.algorithms.
# ``oct`` (HMAC) is never accepted: a client secret has no place in a public JWKS.


#: Members a public signing JWK may have that this site reads (RFC 7517 §4, RFC 7518 §6).
#: A key is rebuilt from these alone before jwcrypto sees it: jwcrypto's ``JWK(**members)``
#: also takes instructions such as ``generate`` and ``size``, which must never come from outside.
PUBLIC_JWK_MEMBERS = frozenset({"kty", "kid", "use", "key_ops", "alg", "n", "e", "crv", "x", "y"})
#: Members that only a private (or symmetric) JWK has (RFC 7518 §6).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Largest key set read: real ones hold a handful; each key costs a parse and may cost a check.
MAX_KEYS_PER_SET = 50
#: Largest RSA key accepted; bigger ones only make each verification slower.
MAX_RSA_BITS = 8192


def validate_public_jwks(jwks: Any) -> None:
    """Raise ``ValueError`` with a sentence unless ``jwks`` is a JWK Set of usable public keys.

    Checked: the ``{"keys": [...]}`` shape (RFC 7517 §5), each key parses, is asymmetric and of a
    type and size the assertion algorithms can use, carries no private part, and has a ``kid``
    that no other key in the set has (the assertion header's ``kid`` picks the key).
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError('A JWKS must be a JSON object of the form {"keys": [ ... ]}.')
    if not jwks["keys"]:
        raise ValueError('This JWKS has no keys; add at least one public key to "keys".')
    if len(jwks["keys"]) > MAX_KEYS_PER_SET:
        raise ValueError(f"This JWKS has more than {MAX_KEYS_PER_SET} keys; register only the signing keys.")
    seen: set[str] = set()
    for position, entry in enumerate(jwks["keys"], start=1):
        kid = str(public_jwk(entry, position=position).get("kid"))
        if kid in seen:
            raise ValueError(f'Two keys in this JWKS have the kid "{kid}"; give each key its own kid.')
        seen.add(kid)


def public_jwk(entry: Any, *, position: int = 1, require_kid: bool = True) -> JWK:
    """Check one public signing JWK and return it parsed. Raises ``ValueError`` with a sentence."""
    if not isinstance(entry, dict):
        raise ValueError(f"Key #{position} of this JWKS is not a JSON object.")
    kid = entry.get("kid")
    if kid is None and not require_kid:
        kid = f"#{position}"
    elif not isinstance(kid, str) or not kid:
        raise ValueError(f'Key #{position} of this JWKS has no "kid"; give every key a unique kid.')
    name = shown(kid)
    if entry.get("kty") == "oct":
        raise ValueError(
            f'Key "{name}" is a symmetric (kty "oct") key. Use an RSA, EC (P-256) or Ed25519 public key.'
        )
    if PRIVATE_JWK_MEMBERS & entry.keys():
        raise ValueError(f"This JWKS contains a private key (kid {name}). Paste only the public keys.")
    kty = entry.get("kty")
    algorithms = algorithms_for_key_type(kty) if isinstance(kty, str) else ()
    if not algorithms:
        raise ValueError(f'Key "{name}" has kty {shown(kty)}; use an RSA, EC (P-256) or Ed25519 public key.')
    members = {member: value for member, value in entry.items() if member in PUBLIC_JWK_MEMBERS}
    for member, value in members.items():
        if member == "key_ops":
            valid = isinstance(value, list) and all(isinstance(op, str) for op in value)
        else:
            valid = isinstance(value, str)
        if not valid:
            raise ValueError(f'Key "{name}" has a malformed "{member}" member.')
    curves = curves_for_key_type(cast(str, kty))  # algorithms is empty unless kty is a str
    if curves is not None and members.get("crv") not in curves:
        raise ValueError(
            f'Key "{name}" uses curve {shown(members.get("crv"))}; '
            f"use one of {', '.join(curves)} for kty {kty}."
        )
    alg = members.get("alg")
    if alg is not None and alg not in algorithms:
        raise ValueError(
            f'Key "{name}" names alg {shown(alg)}; a {kty} key may name {" or ".join(algorithms)}, '
            "or leave alg out."
        )
    try:
        key = JWK(**members)
        # jwcrypto parses lazily; building the verifying key checks the numbers themselves
        # (a point on the curve, a well-formed modulus) and that "use"/"key_ops" allow signing.
        # Its key_size is read for an RSA key only, whose verifying key is an RSAPublicKey.
        verifier = cast("RSAPublicKey", key.get_op_key("verify"))
    except (JWException, ValueError, TypeError, KeyError) as exc:
        # KeyError: jwcrypto refuses a member of another key type ("e" on an EC key) with it.
        reason = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ValueError(f'Key "{name}" is not a valid JWK: {reason.rstrip(".")}.') from exc
    if kty == "RSA" and not MIN_RSA_BITS <= verifier.key_size <= MAX_RSA_BITS:
        raise ValueError(
            f'Key "{name}" is a {verifier.key_size}-bit RSA key; use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits.'
        )
    return key


def validate_jwks_uri(url: str) -> None:
    """Raise ``ValueError`` with a sentence unless ``url`` is an acceptable JWKS URI.

    It must be https and must not name a literal private, loopback or link-local address
    (the server fetches it, so such a URL would let a client probe the internal network).
    Both are allowed when ``JWKS_URI_ALLOW_INSECURE`` is set (development and tests). Host
    names are checked again after DNS resolution at fetch time, by the same rules
    (:func:`oauth_cc.common.hardened_http.check_url`) worded the same way.
    """
    try:
        check_url(url, allow_insecure=bool(oauth_cc_settings.JWKS_URI_ALLOW_INSECURE), subject="the JWKS URI")
    except FetchError as exc:
        reason = str(exc)
        raise ValueError(f"{reason[0].upper()}{reason[1:]}.") from None


def jwk_thumbprints(jwks: dict[str, Any]) -> list[tuple[str, str]]:
    """``(kid, RFC 7638 SHA-256 thumbprint)`` of each key, for operators to compare with the client's."""
    result: list[tuple[str, str]] = []
    for entry in (jwks or {}).get("keys", []):
        try:
            thumbprint = JWK(**entry).thumbprint()
        except (JWException, ValueError, TypeError):
            thumbprint = "(not a valid key)"
        result.append((str(entry.get("kid", "")), thumbprint))
    return result


def usable_keys(document: Any) -> tuple[JWK, ...]:
    """The public signing keys of a JWK Set that the assertion algorithms can use.

    Keys that fail :func:`public_jwk` (encryption keys, other curves, private
    keys) are skipped rather than failing the set: a published JWKS may legitimately carry
    keys for other purposes. A key without ``kid`` is kept; it is tried when the assertion
    names no kid. Only the first :data:`MAX_KEYS_PER_SET` entries are read.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return ()
    keys: list[JWK] = []
    for position, entry in enumerate(document["keys"][:MAX_KEYS_PER_SET], start=1):
        try:
            keys.append(public_jwk(entry, position=position, require_kid=False))
        except ValueError:
            continue
    return tuple(keys)
