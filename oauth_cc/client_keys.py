"""Public keys of private_key_jwt clients (RFC 7523 §2.2, OpenID Connect Core §9, RFC 7517).

A client registers its public keys either inline (``Application.jwks``, a JWK Set document,
RFC 7517 §5) or by URL (``Application.jwks_uri``). This module validates what an operator
enters and, for the assertion check, gives the keys of a client.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

from .conf import oauth_cc_settings

#: Key types and curves that can verify one of ``assertions.ASSERTION_SIGNING_ALGORITHMS``.
#: ``oct`` (HMAC) is never accepted: a client secret has no place in a public JWKS.
SIGNING_CURVES = {"EC": ("P-256",), "OKP": ("Ed25519", "Ed448")}
#: RFC 7518 §3.3: RSA keys for RS256/PS256 must be at least 2048 bits.
MIN_RSA_BITS = 2048
#: Algorithms a key may name in its ``alg`` member, by key type.
ALGORITHMS_BY_KTY = {"RSA": ("RS256", "PS256"), "EC": ("ES256",), "OKP": ("EdDSA",)}


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
    seen: set[str] = set()
    for position, entry in enumerate(jwks["keys"], start=1):
        kid = validate_public_jwk(entry, position=position)
        if kid in seen:
            raise ValueError(f'Two keys in this JWKS have the kid "{kid}"; give each key its own kid.')
        seen.add(kid)


def validate_public_jwk(entry: Any, *, position: int = 1) -> str:
    """Check one public signing JWK; return its ``kid``. Raises ``ValueError`` with a sentence."""
    if not isinstance(entry, dict):
        raise ValueError(f"Key #{position} of this JWKS is not a JSON object.")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError(f'Key #{position} of this JWKS has no "kid"; give every key a unique kid.')
    kty = entry.get("kty")
    if kty == "oct":
        raise ValueError(
            f'Key "{kid}" is a symmetric (kty "oct") key. Use an RSA, EC (P-256) or Ed25519 public key.'
        )
    if kty not in ALGORITHMS_BY_KTY:
        raise ValueError(f'Key "{kid}" has kty {kty!r}; use an RSA, EC (P-256) or Ed25519 public key.')
    try:
        key = JWK(**entry)
        private = key.has_private
        # jwcrypto parses lazily; building the verifying key checks the numbers themselves
        # (a point on the curve, a well-formed modulus) and that "use"/"key_ops" allow signing.
        verifier = key.get_op_key("verify")
    except (JWException, ValueError, TypeError) as exc:
        raise ValueError(f'Key "{kid}" is not a valid JWK: {str(exc).rstrip(".")}.') from exc
    if private:
        raise ValueError(f"This JWKS contains a private key (kid {kid}). Paste only the public keys.")
    curves = SIGNING_CURVES.get(kty)
    if curves is not None and entry.get("crv") not in curves:
        raise ValueError(
            f'Key "{kid}" uses curve {entry.get("crv")!r}; use one of {", ".join(curves)} for kty {kty}.'
        )
    if kty == "RSA" and verifier.key_size < MIN_RSA_BITS:
        raise ValueError(
            f'Key "{kid}" is a {verifier.key_size}-bit RSA key; use at least {MIN_RSA_BITS} bits.'
        )
    alg = entry.get("alg")
    if alg is not None and alg not in ALGORITHMS_BY_KTY[kty]:
        raise ValueError(
            f'Key "{kid}" names alg {alg!r}; a {kty} key may name {" or ".join(ALGORITHMS_BY_KTY[kty])}, '
            "or leave alg out."
        )
    return kid


def validate_jwks_uri(url: str) -> None:
    """Raise ``ValueError`` with a sentence unless ``url`` is an acceptable JWKS URI.

    It must be https and must not name a literal private, loopback or link-local address
    (the server fetches it, so such a URL would let a client probe the internal network).
    Both are allowed when ``JWKS_URI_ALLOW_INSECURE`` is set (development and tests). Host
    names are checked again after DNS resolution at fetch time.
    """
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ValueError(f"The JWKS URI is not a valid URL: {str(exc).rstrip('.')}.") from exc
    if parts.scheme not in ("https", "http") or not hostname:
        raise ValueError("The JWKS URI must be an absolute https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise ValueError("The JWKS URI must not contain a user name or password.")
    if oauth_cc_settings.JWKS_URI_ALLOW_INSECURE:
        return
    if parts.scheme != "https":
        raise ValueError("The JWKS URI must use https://.")
    if hostname.lower() == "localhost" or hostname.lower().endswith(".localhost"):
        raise ValueError("The JWKS URI must not point at this machine (localhost).")
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return  # A host name; its addresses are checked when it is fetched.
    if not is_public_address(address):
        raise ValueError(
            f"The JWKS URI points at {address}, a private, loopback or link-local address; "
            "use a public https URL."
        )


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether the server may fetch from ``address``: globally routable unicast only."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def jwk_thumbprints(jwks: dict) -> list[tuple[str, str]]:
    """``(kid, RFC 7638 SHA-256 thumbprint)`` of each key, for operators to compare with the client's."""
    result: list[tuple[str, str]] = []
    for entry in (jwks or {}).get("keys", []):
        try:
            thumbprint = JWK(**entry).thumbprint()
        except (JWException, ValueError, TypeError):
            thumbprint = "(not a valid key)"
        result.append((str(entry.get("kid", "")), thumbprint))
    return result
