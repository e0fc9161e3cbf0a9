"""private_key_jwt client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9).

The client proves who it is with a JWT it signed with one of its registered keys
(:mod:`oauth_cc.client_keys`). :func:`verify_client_assertion` checks it top to bottom:

1. **Form** - a JWS in compact serialization (RFC 7515 §7.1), no ``crit`` header.
2. **Algorithm** - ``alg`` is one of :data:`ASSERTION_SIGNING_ALGORITHMS`: never ``none``,
   never HMAC, and the verifying key's type must belong to that algorithm's family, so a
   token "HMAC-signed with the public key" can never verify.
3. **Key and signature** - the key named by ``kid``; without a kid, each of the client's
   keys that fits the algorithm (at most :data:`MAX_KEYS_WITHOUT_KID`).
4. **Claims** (RFC 7523 §3), with ``LEEWAY`` seconds of clock skew allowed:

   * ``iss`` and ``sub`` are both the client_id;
   * ``aud`` (a string or a list) contains the URL of the endpoint being called or the issuer;
   * ``exp`` is present, has not passed, and is at most ``ASSERTION_MAX_LIFETIME`` ahead;
   * ``nbf``, if present, has been reached;
   * ``iat``, if present, is not in the future and not older than ``ASSERTION_MAX_LIFETIME``:
     an assertion is made to be used at once;
   * ``jti`` is present (a string of at most 255 characters).

5. **Single use** (RFC 7523 §3 item 7) - the ``(client_id, jti)`` pair is inserted into
   :class:`~oauth_cc.models.UsedAssertion`, whose unique constraint makes the database the
   referee: of two requests racing with the same assertion on different workers, exactly one
   insert succeeds. Rows are kept until the assertion's ``exp`` (plus leeway), after which the
   assertion would be refused anyway; ``oauth_cc.revocation`` purges them.

Cost per assertion: a JSON decode of header and claims, one signature verification (RSA
~30 µs, ES256 ~60 µs, Ed25519 ~50 µs), and one INSERT. Keys come from the worker's cache;
a jwks_uri is fetched only when its cached copy is older than ``JWKS_URI_CACHE_SECONDS``
or lacks the named ``kid``.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import time
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError, transaction
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from . import client_keys
from .conf import oauth_cc_settings
from .errors import InvalidClient
from .state import ClientRecord
from .tokens import b64url_decode

#: Asymmetric algorithms accepted for client assertions; never "none" or HMAC.
ASSERTION_SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
#: The key type (and curves) that can verify each algorithm (RFC 7518 §3, RFC 8037 §3.1).
KEY_FAMILY: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", ("P-256",)),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
}
#: Without a ``kid``, at most this many of the client's keys are tried, so a client
#: publishing a large key set cannot make each of its requests cost many signature checks.
MAX_KEYS_WITHOUT_KID = 5
#: Length of ``UsedAssertion.jti``.
MAX_JTI_LENGTH = 255

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_NOT_VERIFIED = "The client_assertion signature does not verify with this client's registered keys."


def unverified_client_id(assertion: str) -> str:
    """The ``sub`` an assertion claims, read before any check, only to find the client."""
    try:
        claims = json.loads(b64url_decode(assertion.split(".")[1]))
    except (IndexError, binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("client_assertion is not a well-formed JWT.") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        raise InvalidClient('client_assertion has no "sub" claim.')
    return claims["sub"]


def verify_client_assertion(client: ClientRecord, assertion: str, *, endpoint_url: str) -> None:
    """Authenticate ``client`` by ``assertion`` or raise :class:`~oauth_cc.errors.InvalidClient`.

    ``endpoint_url`` is the URL of the endpoint being called, one of the accepted audiences.
    See the module docstring for the rules and their cost.
    """
    header = _compact_header(assertion)
    alg = _checked_algorithm(header)
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidClient('client_assertion header "kid" must be a string.')
    keys = _candidate_keys(client, alg, kid)
    claims = _verified_claims(assertion, alg, keys)
    now = time.time()
    _check_identity(claims, client.client_id)
    _check_audience(claims, endpoint_url)
    exp = _check_times(claims, now)
    _record_jti(client.client_id, _checked_jti(claims), exp)


def _compact_header(assertion: str) -> dict[str, Any]:
    """RFC 7515 §7.1: three base64url parts; the protected header as a dict."""
    parts = assertion.split(".")
    if len(parts) != 3 or not all(parts[i] and _BASE64URL.match(parts[i]) for i in range(3)):
        raise InvalidClient(
            "client_assertion must be a signed JWT in compact form (three base64url parts separated by dots)."
        )
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidClient("The client_assertion header is not valid JSON.") from None
    if not isinstance(header, dict):
        raise InvalidClient("The client_assertion header is not a JSON object.")
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions we do not understand must make the JWS invalid.
        raise InvalidClient('client_assertion uses "crit" header extensions; this server supports none.')
    return header


def _checked_algorithm(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if alg not in ASSERTION_SIGNING_ALGORITHMS:
        raise InvalidClient(
            f"client_assertion alg {json.dumps(alg)} is not accepted; sign with one of "
            + ", ".join(ASSERTION_SIGNING_ALGORITHMS)
            + "."
        )
    return str(alg)


def _fits(key: JWK, alg: str) -> bool:
    """Whether ``key`` may verify ``alg``: same key family, and the key's own ``alg`` if it names one."""
    kty, curves = KEY_FAMILY[alg]
    if key.get("kty") != kty or (curves is not None and key.get("crv") not in curves):
        return False
    return key.get("alg") in (None, alg)


def _candidate_keys(client: ClientRecord, alg: str, kid: str | None) -> list[JWK]:
    try:
        keys = client_keys.keys_for(client, kid)
    except client_keys.JWKSFetchError as exc:
        raise InvalidClient(f"Could not fetch the client's JWKS: {exc}.") from None
    if not keys:
        raise InvalidClient("This client has no public keys registered for private_key_jwt.")
    if kid is not None:
        shown = kid if len(kid) <= 100 else kid[:100] + "…"
        named = [key for key in keys if key.get("kid") == kid]
        if not named:
            raise InvalidClient(f'No key with kid "{shown}" is registered for this client.')
        fitting = [key for key in named if _fits(key, alg)]
        if not fitting:
            raise InvalidClient(f'Key "{shown}" is a {named[0].get("kty")} key and cannot verify {alg}.')
        return fitting
    fitting = [key for key in keys if _fits(key, alg)]
    if not fitting:
        raise InvalidClient(f"None of this client's registered keys can verify {alg}.")
    return fitting[:MAX_KEYS_WITHOUT_KID]


def _verified_claims(assertion: str, alg: str, keys: list[JWK]) -> dict[str, Any]:
    """Verify the signature with the first key that fits; return the claims.

    The JWS is parsed once; each further candidate key costs only its signature check.
    """
    token = JWS()
    try:
        token.deserialize(assertion)
    except JWException:
        raise InvalidClient(_NOT_VERIFIED) from None
    token.allowed_algs = [alg]
    for key in keys:
        try:
            token.verify(key, alg=alg)
        except JWException:
            continue
        try:
            claims = json.loads(token.payload)
        except (ValueError, UnicodeDecodeError):
            raise InvalidClient("The client_assertion claims are not valid JSON.") from None
        if not isinstance(claims, dict):
            raise InvalidClient("The client_assertion claims are not a JSON object.")
        return claims
    raise InvalidClient(_NOT_VERIFIED)


def _check_identity(claims: dict[str, Any], client_id: str) -> None:
    """RFC 7523 §3 items 1-2: ``iss`` and ``sub`` are both the client_id."""
    for name in ("iss", "sub"):
        if claims.get(name) != client_id:
            raise InvalidClient(f'client_assertion "{name}" must be the client_id.')


def _check_audience(claims: dict[str, Any], endpoint_url: str) -> None:
    """RFC 7523 §3 item 3: ``aud`` names this server: the endpoint URL or the issuer."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    accepted = {endpoint_url, oauth_cc_settings.issuer} - {""}
    if not any(isinstance(value, str) and value in accepted for value in audiences):
        raise InvalidClient(
            f'client_assertion "aud" must contain the endpoint URL ({endpoint_url}) or the issuer '
            f"({oauth_cc_settings.issuer})."
        )


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidClient(f'client_assertion "{name}" must be a number of seconds since the epoch.')
    return float(value)


def _check_times(claims: dict[str, Any], now: float) -> float:
    """RFC 7523 §3 items 4-6, with ``LEEWAY`` for clock skew. Returns ``exp``."""
    leeway = float(oauth_cc_settings.LEEWAY)
    max_lifetime = float(oauth_cc_settings.ASSERTION_MAX_LIFETIME)
    exp = _number(claims, "exp")
    if exp is None:
        raise InvalidClient('client_assertion has no "exp" claim.')
    if exp + leeway <= now:
        raise InvalidClient("client_assertion has expired; sign a new one for each request.")
    if exp > now + max_lifetime + leeway:
        raise InvalidClient(
            f'client_assertion "exp" is more than {int(max_lifetime)} seconds ahead; '
            "use short-lived assertions."
        )
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + leeway:
        raise InvalidClient('client_assertion is not valid yet ("nbf" is in the future).')
    iat = _number(claims, "iat")
    if iat is not None:
        if iat > now + leeway:
            raise InvalidClient('client_assertion "iat" is in the future; check the client\'s clock.')
        if iat < now - max_lifetime - leeway:
            raise InvalidClient(
                f"client_assertion was issued more than {int(max_lifetime)} seconds ago; sign a new one."
            )
    return exp


def _checked_jti(claims: dict[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient('client_assertion has no "jti" claim; give each assertion a unique jti.')
    if len(jti) > MAX_JTI_LENGTH:
        raise InvalidClient(f'client_assertion "jti" is longer than {MAX_JTI_LENGTH} characters.')
    return jti


def _record_jti(client_id: str, jti: str, exp: float) -> None:
    """RFC 7523 §3 item 7: accept each ``jti`` once. One INSERT; the unique constraint decides races."""
    from .models import UsedAssertion

    keep_until = datetime.fromtimestamp(exp + float(oauth_cc_settings.LEEWAY), tz=timezone.utc)
    try:
        # A savepoint, so a refused insert leaves an enclosing transaction usable.
        with transaction.atomic():
            UsedAssertion.objects.create(client_id=client_id, jti=jti, expires_at=keep_until)
    except IntegrityError:
        raise InvalidClient(
            'This client_assertion has already been used; sign a new one with a fresh "jti".'
        ) from None
