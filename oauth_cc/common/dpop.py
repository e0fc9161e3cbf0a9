"""Both sides: DPoP proofs (RFC 9449): checked at the token endpoint and on every protected request.

Standalone on purpose: it needs Django's settings and (for the default replay store) the
``UsedAssertion`` table, but not oauth_cc's clients, keys or views, so a resource-only service
can check proofs with it. :func:`check_proof` reads top to bottom as RFC 9449 §4.3 lists the
checks:

1. **Form** - one JWS in compact serialization, parsed by :mod:`oauth_cc.common.jws` with strict
   base64url and bounded JSON, under :data:`HEADER_POLICY`: the header MUST embed the signer's
   public key as ``jwk``; ``jku``, ``x5u``, ``x5c``, ``crit``, ``b64`` and ``zip`` stay refused.
2. ``typ`` is ``dpop+jwt`` (so an access token or a client assertion is never a proof).
3. ``alg`` is one of :data:`DPOP_ALGORITHMS` (asymmetric only: never ``none``, never HMAC).
4. ``jwk`` is a **public** key (no ``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi``, ``oth`` or ``k``)
   of the type and curve the algorithm needs (:mod:`oauth_cc.common.algorithms`; RSA at least 2048
   bits), and the signature verifies with it.
5. Claims, decoded from the verified payload: ``htm`` is the request's method; ``htu`` its URL
   (scheme, host, port and path; query and fragment ignored, RFC 9449 §4.3 item 9, after
   RFC 3986 §6.2.2-6.2.3 normalization; a stray ``%`` is refused); ``iat`` within
   ``DPOP_PROOF_MAX_AGE`` seconds before now (``LEEWAY`` of clock skew either way); ``jti`` a
   printable string of at most 255 characters; on a protected request, ``ath`` the base64url
   SHA-256 of the access token.
6. With ``DPOP_REQUIRE_NONCE``: ``nonce`` is one this server issued (:func:`current_nonce`),
   else :class:`UseDPoPNonce` carrying a fresh one for the ``DPoP-Nonce`` header.
7. **Single use** (:func:`record_use`, the caller's last step): the ``(jkt, jti)`` pair is
   inserted once. ``DPOP_REPLAY_STORE = "database"`` (default) uses ``UsedAssertion`` with the
   client-id column set to ``dpop#<jkt>`` (a namespace no client id has: a thumbprint never
   contains ``#``), whose unique constraint referees races between workers and hosts;
   ``"cache"`` uses an atomic ``cache.add`` in ``CACHE_ALIAS`` (Redis or memcached shared by
   every host; a per-process cache would let a proof be replayed on another worker). A
   resource-only service (``oauth_cc.resource``) has no ``UsedAssertion`` table: there the
   cache is the store, whatever the default says (:func:`replay_store`).

The result carries ``jkt``, the RFC 7638 SHA-256 thumbprint of the proof's key: the token
endpoint puts it in the token as ``cnf.jkt`` and the protected side compares it with the
token's.

A client signs every proof with the same key, so a key that passed step 4 is remembered per
worker (:func:`verified_key`), keyed on all of its members as sent and the ``alg``: its next
proofs skip the key import and the thumbprint, never the signature check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from django.utils.encoding import escape_uri_path
from jwcrypto.jwk import JWK

from ..conf import oauth_cc_settings
from . import claims as claim_values
from . import jws, resets
from .algorithms import ALGORITHMS, ASSERTION_ALGORITHMS, MIN_RSA_BITS, rsa_key_bits
from .bounded import BoundedMap
from .errors import OAuthError, TemporarilyUnavailable, shown

#: Algorithms a proof may be signed with (``dpop_signing_alg_values_supported``).
DPOP_ALGORITHMS: tuple[str, ...] = ASSERTION_ALGORITHMS
PROOF_TYPE = "dpop+jwt"
#: A proof with an RSA 4096 key is about 1.3 KiB; with an ``ath`` and a nonce a little more.
MAX_PROOF_BYTES = 4 * 1024
#: Length of ``UsedAssertion.jti``.
MAX_JTI_LENGTH = 255
MAX_HTU_LENGTH = 2048
#: Members of a JWK that hold private (or symmetric) key material (RFC 7518 §6).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Header members a proof may carry, each a string (``jwk`` is the object the policy requires).
#: Others that bring a key or an extension are refused; the rest are ignored (RFC 7515 §4).
HEADER_POLICY = jws.HeaderPolicy(
    accepted=frozenset({"alg", "typ", "kid"}), ignore_unknown=True, embedded_jwk=True
)
#: Namespace of DPoP proof ids in ``UsedAssertion.client_id``.
REPLAY_NAMESPACE = "dpop#"
#: Proof keys remembered per worker once checked, by count and by bytes (oldest dropped first).
MAX_CACHED_KEYS = 4096
MAX_CACHED_KEY_BYTES = 8 * 1024 * 1024
#: Memory an entry costs beyond its JSON: the JWK, the key object OpenSSL holds, the thumbprint.
KEY_ENTRY_OVERHEAD = 4096
_WHAT = "The DPoP proof"
_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5 and §7.1: the proof is missing, malformed or does not fit the request."""

    error = "invalid_dpop_proof"
    status = 400


class UseDPoPNonce(InvalidDPoPProof):
    """RFC 9449 §8-9: the server requires a nonce; ``nonce`` goes in the ``DPoP-Nonce`` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description, headers={"DPoP-Nonce": nonce})
        self.nonce = nonce


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that passed every check but single use (:func:`record_use`)."""

    jkt: str
    jti: str
    #: Until when (before leeway) the proof could still be accepted by its ``iat``.
    accepted_until: float


def thumbprint(key: JWK) -> str:
    """RFC 7638 SHA-256 thumbprint of ``key``, base64url (what ``cnf.jkt`` holds)."""
    return key.thumbprint()


def access_token_hash(token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url SHA-256 of the ASCII access token."""
    return jws.b64url_encode(hashlib.sha256(token.encode("ascii", "replace")).digest())


def request_url(request: HttpRequest) -> str:
    """The URL the server received the request at, without query (what ``htu`` must match).

    Built by Django from ``Host`` (``ALLOWED_HOSTS`` applies) and the scheme it sees: behind
    a TLS-terminating proxy set ``SECURE_PROXY_SSL_HEADER``, and ``USE_X_FORWARDED_HOST`` /
    ``USE_X_FORWARDED_PORT`` if the proxy rewrites the host, or every proof's ``htu`` fails.
    """
    return request.build_absolute_uri(escape_uri_path(request.path))


def _normalized_url(url: str) -> tuple[str, str, int | None, str] | None:
    """Scheme, host, port (None when default) and path per RFC 3986 §6.2.2-6.2.3; None if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    # A "%" that starts no percent-encoding is not allowed in a URI (RFC 3986 §2.1), and decoding
    # next to it could complete one ("%%41" decodes to "%A"): two paths for different resources
    # would then normalize alike.
    if _STRAY_PERCENT.search(parts.path):
        return None

    def escape(match: re.Match[str]) -> str:
        char = chr(int(match.group()[1:], 16))
        return char if _UNRESERVED.fullmatch(char) else match.group().upper()

    return scheme, parts.hostname.lower(), port, _PERCENT.sub(escape, parts.path) or "/"


def _nonce_for(window: int) -> str:
    mac = salted_hmac("oauth_cc.common.dpop.nonce", str(window), algorithm="sha256").digest()
    return jws.b64url_encode(mac[:24])


def current_nonce(now: float | None = None) -> str:
    """A server nonce (RFC 9449 §8): an HMAC of the time window under a key from ``SECRET_KEY``.

    Nothing is stored: a nonce is accepted during its window and the next one, so for between
    one and two ``DPOP_NONCE_LIFETIME`` periods.
    """
    lifetime = float(oauth_cc_settings.DPOP_NONCE_LIFETIME)
    return _nonce_for(int((time.time() if now is None else now) // lifetime))


def nonce_is_valid(nonce: Any, now: float) -> bool:
    if not isinstance(nonce, str):
        return False
    window = int(now // float(oauth_cc_settings.DPOP_NONCE_LIFETIME))
    return any(hmac.compare_digest(nonce, _nonce_for(w)) for w in (window, window - 1))


def public_key(jwk: dict[str, Any], alg: str) -> JWK:
    """The proof's embedded key as a public JWK fitting ``alg``, or :class:`InvalidDPoPProof`."""
    private = sorted(PRIVATE_JWK_MEMBERS.intersection(jwk))
    if private:
        raise InvalidDPoPProof(
            f'{_WHAT}\'s "jwk" holds private key material ("{private[0]}"); embed the public key only.'
        )
    algorithm = ALGORITHMS[alg]
    if jwk.get("kty") != algorithm.kty:
        raise InvalidDPoPProof(f'{_WHAT}\'s "jwk" is not a {algorithm.kty} key, as {alg} needs.')
    try:
        key = JWK(**jwk)
        key.get_op_key("verify")  # builds the key: a point off the curve or a bad modulus fails here
    except Exception:  # jwcrypto and cryptography raise many types on malformed keys
        raise InvalidDPoPProof(f'{_WHAT}\'s "jwk" is not a valid public key.') from None
    if key.has_private or not algorithm.fits(key):
        raise InvalidDPoPProof(f'{_WHAT}\'s "jwk" cannot verify {alg}.')
    # rsa_key_bits cannot raise here: it reads the key get_op_key("verify") built above.
    if algorithm.kty == "RSA" and rsa_key_bits(key) < MIN_RSA_BITS:
        raise InvalidDPoPProof(f'{_WHAT}\'s "jwk" is an RSA key under {MIN_RSA_BITS} bits.')
    return key


def _key_weight(cache_key: tuple[str, str], entry: tuple[JWK, str]) -> int:
    return len(cache_key[1]) + KEY_ENTRY_OVERHEAD


# Read at each insertion (the lambdas), so a test can lower the bounds.
_verified_keys: BoundedMap[tuple[str, str], tuple[JWK, str]] = BoundedMap(
    lambda: MAX_CACHED_KEYS, max_weight=lambda: MAX_CACHED_KEY_BYTES, weigh=_key_weight
)
resets.register("oauth_cc.common.dpop.verified_keys", _verified_keys.clear)


def verified_key(jwk: dict[str, Any], alg: str) -> tuple[JWK, str]:
    """:func:`public_key` of ``jwk`` for ``alg`` and its thumbprint, checked once per worker.

    Keyed on ``alg`` and every member of ``jwk`` as sent (canonical JSON), not on ``kid`` or
    the thumbprint: a key that differs in any member (another ``x``, an ``alg`` or a private
    ``d`` added) is another entry and is checked in full. Only keys that passed are kept.
    """
    cache_key = (alg, json.dumps(jwk, sort_keys=True, separators=(",", ":")))
    entry = _verified_keys.get(cache_key)
    if entry is None:
        key = public_key(jwk, alg)
        entry = (key, thumbprint(key))
        _verified_keys.put(cache_key, entry)
    return entry


def check_proof(
    proof: Any,
    *,
    method: str,
    url: str | tuple[str, ...],
    access_token: str | None = None,
    now: float | None = None,
) -> VerifiedProof:
    """Check a ``DPoP`` header value for a request, all but single use; see the module docstring.

    ``url``: the request's URL, or several URLs that all name the endpoint (the token endpoint
    also accepts its URL under ``ISSUER``, which a proxy in front cannot change).
    ``access_token``: the token the request presents (protected requests), whose hash ``ath``
    must be; None at the token endpoint. Raises :class:`InvalidDPoPProof` or :class:`UseDPoPNonce`.
    """
    now = time.time() if now is None else now
    try:
        parsed = jws.parse(proof, policy=HEADER_POLICY, max_bytes=MAX_PROOF_BYTES, what=_WHAT)
    except jws.MalformedJWS as exc:
        raise InvalidDPoPProof(str(exc)) from None
    if parsed.typ is None or parsed.typ.lower() != PROOF_TYPE:
        raise InvalidDPoPProof(f'{_WHAT} must have typ "{PROOF_TYPE}" (RFC 9449).')
    if parsed.alg not in DPOP_ALGORITHMS:
        raise InvalidDPoPProof(
            f'{_WHAT}\'s alg "{shown(parsed.alg, 20)}" is not accepted; sign with one of '
            + ", ".join(DPOP_ALGORITHMS)
            + "."
        )
    key, jkt = verified_key(parsed.header["jwk"], parsed.alg)
    if not jws.verify_signature(parsed, key, (parsed.alg,)):
        raise InvalidDPoPProof(f'{_WHAT}\'s signature does not verify with its "jwk".')
    try:
        claims = jws.claims(parsed, max_bytes=MAX_PROOF_BYTES, what=_WHAT)
    except jws.MalformedJWS as exc:
        raise InvalidDPoPProof(str(exc)) from None
    try:
        if claim_values.string(claims, "htm") != method:
            raise claim_values.ClaimError(f'"htm" claim is not the request\'s method ({method})')
        urls = (url,) if isinstance(url, str) else url
        htu = claim_values.string(claims, "htu")
        normalized = _normalized_url(htu) if len(htu) <= MAX_HTU_LENGTH else None
        if normalized is None or normalized not in {_normalized_url(u) for u in urls}:
            raise claim_values.ClaimError(f'"htu" claim is not the request\'s URL ({urls[0]})')
        accepted_until = _check_iat(claims, now)
        jti = claim_values.identifier(claims, "jti", max_length=MAX_JTI_LENGTH)
        if access_token is not None and claim_values.string(claims, "ath") != access_token_hash(access_token):
            raise claim_values.ClaimError('"ath" claim is not the hash of the access token sent')
    except claim_values.ClaimError as exc:
        raise InvalidDPoPProof(f"{_WHAT}'s {exc}.") from None
    if oauth_cc_settings.DPOP_REQUIRE_NONCE and not nonce_is_valid(claims.get("nonce"), now):
        raise UseDPoPNonce(
            f'{_WHAT} must carry the "nonce" this server gave in the DPoP-Nonce header.',
            nonce=current_nonce(now),
        )
    return VerifiedProof(jkt=jkt, jti=jti, accepted_until=accepted_until)


def _check_iat(claims: dict[str, Any], now: float) -> float:
    leeway = float(oauth_cc_settings.LEEWAY)
    max_age = float(oauth_cc_settings.DPOP_PROOF_MAX_AGE)
    iat = claim_values.numeric_date(claims, "iat", required=True)
    assert iat is not None  # required=True
    if iat > now + leeway:
        raise claim_values.ClaimError('"iat" claim is in the future; check the client\'s clock')
    if iat < now - max_age - leeway:
        raise claim_values.ClaimError(
            f'"iat" claim is more than {int(max_age)} seconds ago; make a new proof for each request'
        )
    return iat + max_age


def replay_store() -> str:
    """Where proof ids are recorded: ``DPOP_REPLAY_STORE``, but always the cache on a resource-only
    service, which has no ``UsedAssertion`` table (check ``oauth_cc.E104`` refuses "database" there)."""
    if oauth_cc_settings.resource_only:
        return "cache"
    return str(oauth_cc_settings.DPOP_REPLAY_STORE)


def record_use(verified: VerifiedProof) -> None:
    """Accept each proof once (RFC 9449 §11.1): one atomic insert; raises :class:`InvalidDPoPProof`.

    The record is kept while the proof could still be accepted: ``iat + DPOP_PROOF_MAX_AGE``
    plus ``LEEWAY``. Neither store is ever skipped: with it down the request gets a 503.
    """
    keep_until = verified.accepted_until + float(oauth_cc_settings.LEEWAY)
    if replay_store() == "cache":
        first = _record_in_cache(verified, keep_until)
    else:
        first = _record_in_database(verified, keep_until)
    if not first:
        raise InvalidDPoPProof(f'{_WHAT} has already been used; make a new one (a fresh "jti") per request.')


def _record_in_database(verified: VerifiedProof, keep_until: float) -> bool:
    from django.db import IntegrityError, transaction

    from ..issuer import outage
    from ..models import UsedAssertion

    def insert() -> bool:
        try:
            with transaction.atomic():  # a savepoint: a refused insert leaves the transaction usable
                UsedAssertion.objects.create(
                    client_id=REPLAY_NAMESPACE + verified.jkt,
                    jti=verified.jti,
                    expires_at=datetime.fromtimestamp(keep_until, tz=timezone.utc),
                )
        except IntegrityError:
            return False
        return True

    return outage.database.run("a DPoP proof's single-use record", insert)


def _record_in_cache(verified: VerifiedProof, keep_until: float) -> bool:
    from django.core.cache import caches

    digest = hashlib.sha256(f"{verified.jkt}\0{verified.jti}".encode()).digest()
    key = "oauth_cc:dpop:" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    timeout = max(1, math.ceil(keep_until - time.time()))
    try:
        return bool(caches[oauth_cc_settings.CACHE_ALIAS].add(key, 1, timeout=timeout))
    except Exception:
        raise TemporarilyUnavailable("DPoP proofs cannot be checked right now; retry shortly.") from None


def verify_request_proof(request: HttpRequest, *, access_token: str, expected_jkt: str) -> VerifiedProof:
    """A protected request's ``DPoP`` header checked against its token and recorded (RFC 9449 §7.1).

    ``expected_jkt`` is the token's ``cnf.jkt``: the proof must be signed by that key.
    Raises :class:`InvalidDPoPProof` or :class:`UseDPoPNonce`.
    """
    proof = request.META.get("HTTP_DPOP")
    if proof is None:
        raise InvalidDPoPProof("A DPoP proof (DPoP header) must come with Authorization: DPoP.")
    verified = check_proof(
        proof, method=request.method or "", url=request_url(request), access_token=access_token
    )
    if not hmac.compare_digest(verified.jkt, expected_jkt):
        raise InvalidDPoPProof("The DPoP proof is not signed by the key the access token is bound to.")
    record_use(verified)
    return verified
