"""Issuer side: private_key_jwt client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9).

The client proves who it is with a JWT it signed with one of its registered keys
(:mod:`oauth_cc.issuer.client_jwks_fetch`). :func:`verify_client_assertion` checks it top to bottom:

1. **Form** - parsed once by :func:`parse_assertion` through :mod:`oauth_cc.common.jws`: a JWS in
   compact serialization with strict base64url, bounded JSON, and no header member that
   brings its own key (``jwk``, ``jku``, ``x5u``, ``x5c``) or extension (``crit``). A ``typ`` of
   ``at+jwt`` is refused: an access token is not a client assertion (RFC 8725 §3.11).
2. **Algorithm** - ``alg`` is one of :data:`~oauth_cc.common.algorithms.ASSERTION_ALGORITHMS`: never
   ``none``, never HMAC, and the verifying key's type must belong to that algorithm's family
   (:mod:`oauth_cc.common.algorithms`), so a token "HMAC-signed with the public key" never verifies.
   Checked when parsing, before the client is looked up: the answer is the same for every client_id.
3. **Key and signature** - the key named by ``kid``; without a kid, each of the client's
   keys that fits the algorithm (at most :data:`MAX_KEYS_WITHOUT_KID`). Every refusal up to
   here that depends on the client's registration is :class:`Unproven`: answered like an
   unknown client_id, its reason only logged (see :class:`Unproven`).
4. **Claims** (RFC 7523 §3), decoded from the payload bytes the signature covers and read
   with :mod:`oauth_cc.common.claims`, with ``LEEWAY`` seconds of clock skew allowed:

   * ``iss`` and ``sub`` are both the client_id;
   * ``aud`` (a string or a list) contains the URL of the endpoint being called or the issuer;
   * ``exp`` is present and has not passed;
   * ``nbf``, if present, has been reached;
   * with an ``iat`` (as Keycloak does): ``iat`` is not in the future and not older than
     ``ASSERTION_MAX_AGE`` (an assertion is made to be used at once), and ``exp`` is at most
     :data:`MAX_LIFETIME_WITH_IAT` (an hour, Okta's limit) ahead, so a client library's default
     ``exp = iat + 3600`` (Authlib's) is accepted;
   * without an ``iat``: ``exp`` is at most ``ASSERTION_MAX_LIFETIME`` ahead, since nothing
     else bounds how long the assertion stays usable;
   * ``jti`` is present (a printable string of at most 255 characters).

5. **Single use** (RFC 7523 §3 item 7) - the ``(client_id, jti)`` pair is inserted into
   :class:`~oauth_cc.models.UsedAssertion`, whose unique constraint makes the database the
   referee: of two requests racing with the same assertion on different workers, exactly one
   insert succeeds. Rows are kept only while the assertion could still be accepted: until
   ``exp``, or ``iat + ASSERTION_MAX_AGE`` if sooner, plus leeway; after that it would be
   refused anyway, and ``oauth_cc.issuer.revocation`` purges them.

Cost per assertion: a JSON decode of header and claims, one signature verification (RSA
~30 µs, ES256 ~60 µs, Ed25519 ~50 µs), and one INSERT. Keys come from the worker's cache;
a jwks_uri is fetched only when its cached copy is older than ``JWKS_URI_CACHE_SECONDS``
or lacks the named ``kid``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError, transaction
from jwcrypto.jwk import JWK

from ..common import claims as claim_values
from ..common import jws
from ..common.algorithms import ALGORITHMS, ASSERTION_ALGORITHMS
from ..common.errors import InvalidClient, shown
from ..common.tokens import ACCEPTED_TYPES as ACCESS_TOKEN_TYPES
from ..conf import oauth_cc_settings
from . import client_jwks_fetch, outage
from .state import ClientRecord

#: Without a ``kid``, at most this many of the client's keys are tried, so a client
#: publishing a large key set cannot make each of its requests cost many signature checks.
MAX_KEYS_WITHOUT_KID = 5
#: How far ahead an assertion with an ``iat`` may set its ``exp`` (seconds, before leeway).
#: Its age is bounded by ``ASSERTION_MAX_AGE``, so a longer ``exp`` does not keep it usable.
MAX_LIFETIME_WITH_IAT = 3600
#: Length of ``UsedAssertion.jti``.
MAX_JTI_LENGTH = 255
#: Longest assertion accepted (RSA-signed ones with an x5t are under 1 KiB).
MAX_ASSERTION_BYTES = 8 * 1024
#: Header members an assertion may carry, each a string. Others that bring a key or an
#: extension are refused (see :data:`oauth_cc.common.jws.REFUSED_HEADER_PARAMETERS`); the rest are
#: ignored, as RFC 7515 §4 asks, since client libraries add members of their own.
HEADER_POLICY = jws.HeaderPolicy(
    accepted=frozenset({"alg", "kid", "typ", "cty", "x5t", "x5t#S256"}), ignore_unknown=True
)

_WHAT = "client_assertion"
_NOT_VERIFIED = "The client_assertion signature does not verify with this client's registered keys."


class Unproven(InvalidClient):
    """A refusal before the client's own key has verified the assertion's signature.

    Until then the caller has proved nothing, so its answer must not depend on the client's
    registration (that it exists, how it authenticates, its keys, kids and key types, whether its
    jwks_uri answers): otherwise anyone could probe client_ids, kid guesses and key types with
    assertions signed by any key. It is the generic ``invalid_client`` an unknown client_id gets;
    ``reason`` says what failed, for the operator's log (``oauth_cc.client_auth``), never for the
    caller.
    """

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


@dataclass(frozen=True)
class ParsedAssertion:
    """A client assertion parsed once: its JWS and the claims decoded from the signed payload.

    The claims are not trusted until :func:`verify_client_assertion` has checked the
    signature over the very payload bytes they were decoded from.
    """

    jws: jws.CompactJWS
    claims: dict[str, Any]

    @property
    def unverified_client_id(self) -> str:
        """The ``sub`` the assertion claims, read before any check, only to find the client."""
        try:
            return claim_values.string(self.claims, "sub")
        except claim_values.ClaimError as exc:
            raise InvalidClient(f"client_assertion {exc}.") from None


def parse_assertion(assertion: str) -> ParsedAssertion:
    """Parse ``assertion`` (strictly, once) or raise :class:`~oauth_cc.common.errors.InvalidClient`."""
    try:
        parsed = jws.parse(assertion, policy=HEADER_POLICY, max_bytes=MAX_ASSERTION_BYTES, what=_WHAT)
        if parsed.typ is not None and parsed.typ.lower() in ACCESS_TOKEN_TYPES:
            raise jws.MalformedJWS(
                f'{_WHAT} has typ "{parsed.typ}": an access token is not a client assertion.'
            )
        claims = jws.claims(parsed, max_bytes=MAX_ASSERTION_BYTES, what=_WHAT)
    except jws.MalformedJWS as exc:
        raise InvalidClient(str(exc)) from None
    # Here, before the client is looked up, so that its description is the same for every
    # client_id (after the lookup, only an unknown client would get the generic answer).
    _checked_algorithm(parsed.alg)
    return ParsedAssertion(jws=parsed, claims=claims)


@dataclass(frozen=True)
class VerifiedAssertion:
    """What :func:`record_use` needs of an assertion that passed every check."""

    client_id: str
    jti: str
    #: Until when (before leeway) the assertion could still be accepted: its ``exp``, or
    #: ``iat + ASSERTION_MAX_AGE`` if that is sooner.
    accepted_until: float


def verify_client_assertion(
    client: ClientRecord, assertion: ParsedAssertion, *, endpoint_url: str
) -> VerifiedAssertion:
    """Check ``assertion`` for ``client`` or raise :class:`~oauth_cc.common.errors.InvalidClient`.

    ``endpoint_url`` is the URL of the endpoint being called, one of the accepted audiences.
    See the module docstring for the rules and their cost. The single-use record is the
    caller's last step (:func:`record_use`), once nothing else can refuse the request's
    authentication: a refused request must not use up its assertion.

    The rule for what a refusal says: before the signature verifies with one of the client's
    keys, :class:`Unproven` (the generic answer, the reason logged); after it, the caller holds
    the client's key, and the claim checks (``iss``/``sub``, ``aud``, times, ``jti``, single
    use) say what to fix.
    """
    alg = _checked_algorithm(assertion.jws.alg)  # parse_assertion checked it: the same for all
    keys = _candidate_keys(client, alg, assertion.jws.kid)
    if not any(jws.verify_signature(assertion.jws, key, (alg,)) for key in keys):
        raise Unproven(_NOT_VERIFIED)
    claims = assertion.claims
    try:
        _check_identity(claims, client.client_id)
        _check_audience(claims, endpoint_url)
        accepted_until = _check_times(claims, time.time())
        jti = _checked_jti(claims)
    except claim_values.ClaimError as exc:
        raise InvalidClient(f"client_assertion {exc}.") from None
    return VerifiedAssertion(client_id=client.client_id, jti=jti, accepted_until=accepted_until)


def _checked_algorithm(alg: str) -> str:
    if alg not in ASSERTION_ALGORITHMS:
        raise InvalidClient(
            f'client_assertion alg "{shown(alg, 20)}" is not accepted; sign with one of '
            + ", ".join(ASSERTION_ALGORITHMS)
            + "."
        )
    return alg


def _candidate_keys(client: ClientRecord, alg: str, kid: str | None) -> list[JWK]:
    """The client's keys that may verify ``alg`` (named by ``kid`` if given), else :class:`Unproven`.

    Every refusal here depends on the client's registration and comes before any signature is
    checked, so none may reach the caller: the reasons are the operator's (``kid`` is shown
    safely cut, it is the caller's text).
    """
    try:
        keys = client_jwks_fetch.keys_for(client, kid)
    except client_jwks_fetch.JWKSFetchError as exc:
        raise Unproven(f"Could not fetch the client's JWKS: {exc}.") from None
    if not keys:
        raise Unproven("This client has no public keys registered for private_key_jwt.")
    algorithm = ALGORITHMS[alg]
    if kid is not None:
        named = [key for key in keys if key.get("kid") == kid]
        if not named:
            raise Unproven(f'No key with kid "{shown(kid, 100)}" is registered for this client.')
        fitting = [key for key in named if algorithm.fits(key)]
        if not fitting:
            raise Unproven(_why_unfit(shown(kid, 100), named[0], alg))
        return fitting
    fitting = [key for key in keys if algorithm.fits(key)]
    if not fitting:
        raise Unproven(f"None of this client's registered keys can verify {alg}.")
    return fitting[:MAX_KEYS_WITHOUT_KID]


def _why_unfit(kid: str, key: JWK, alg: str) -> str:
    kty, pinned = key.get("kty"), key.get("alg")
    if kty == ALGORITHMS[alg].kty and pinned not in (None, alg):
        return f'Key "{kid}" is registered for {pinned} only and cannot verify {alg}.'
    article = "an" if str(kty)[:1] in "AEIOR" else "a"  # an RSA, an EC, an OKP
    return f'Key "{kid}" is {article} {kty} key and cannot verify {alg}.'


def _check_identity(claims: dict[str, Any], client_id: str) -> None:
    """RFC 7523 §3 items 1-2: ``iss`` and ``sub`` are both the client_id."""
    for name in ("iss", "sub"):
        if claim_values.string(claims, name) != client_id:
            raise claim_values.ClaimError(f'"{name}" claim must be the client_id')


def _check_audience(claims: dict[str, Any], endpoint_url: str) -> None:
    """RFC 7523 §3 item 3: ``aud`` names this server: the endpoint URL or the issuer."""
    accepted = {endpoint_url, oauth_cc_settings.issuer} - {""}
    if accepted.isdisjoint(claim_values.audiences(claims)):
        raise claim_values.ClaimError(
            f'"aud" claim must contain the endpoint URL ({endpoint_url}) or the issuer '
            f"({oauth_cc_settings.issuer})"
        )


def _check_times(claims: dict[str, Any], now: float) -> float:
    """RFC 7523 §3 items 4-6, with ``LEEWAY`` for clock skew.

    Returns the time until which (before leeway) the assertion could be accepted.
    """
    leeway = float(oauth_cc_settings.LEEWAY)
    exp = claim_values.numeric_date(claims, "exp", required=True)
    assert exp is not None  # required=True
    if exp + leeway <= now:
        raise claim_values.ClaimError(
            '"exp" claim has passed: the assertion has expired; sign a new one for each request'
        )
    nbf = claim_values.numeric_date(claims, "nbf", required=False)
    if nbf is not None and nbf > now + leeway:
        raise claim_values.ClaimError('"nbf" claim is in the future: the assertion is not valid yet')
    iat = claim_values.numeric_date(claims, "iat", required=False)
    if iat is None:
        max_lifetime = float(oauth_cc_settings.ASSERTION_MAX_LIFETIME)
        if exp > now + max_lifetime + leeway:
            raise claim_values.ClaimError(
                f'"exp" claim is more than {int(max_lifetime)} seconds ahead; use short-lived '
                'assertions, or add an "iat" claim'
            )
        return exp
    max_age = float(oauth_cc_settings.ASSERTION_MAX_AGE)
    if iat > now + leeway:
        raise claim_values.ClaimError('"iat" claim is in the future; check the client\'s clock')
    if iat < now - max_age - leeway:
        raise claim_values.ClaimError(
            f'"iat" claim says it was issued more than {int(max_age)} seconds ago; sign a new one'
        )
    if exp > now + MAX_LIFETIME_WITH_IAT + leeway:
        raise claim_values.ClaimError(
            f'"exp" claim is more than {MAX_LIFETIME_WITH_IAT} seconds ahead; use short-lived assertions'
        )
    return min(exp, iat + max_age)


def _checked_jti(claims: dict[str, Any]) -> str:
    return claim_values.identifier(claims, "jti", max_length=MAX_JTI_LENGTH)


def record_use(verified: VerifiedAssertion) -> None:
    """RFC 7523 §3 item 7: accept each ``jti`` once. One INSERT; the unique constraint decides races."""
    from ..models import UsedAssertion

    # Kept exactly as long as the assertion could be accepted again: after that it is refused
    # by its exp or iat anyway.
    keep_until = datetime.fromtimestamp(
        verified.accepted_until + float(oauth_cc_settings.LEEWAY), tz=timezone.utc
    )

    def insert() -> bool:
        try:
            # A savepoint, so a refused insert leaves an enclosing transaction usable.
            with transaction.atomic():
                UsedAssertion.objects.create(
                    client_id=verified.client_id, jti=verified.jti, expires_at=keep_until
                )
        except IntegrityError:
            return False
        return True

    # The database is the only referee of single use: with it down the assertion is refused
    # with a 503 (TemporarilyUnavailable), never accepted unrecorded.
    if not outage.database.run("a client assertion's single-use record", insert):
        raise InvalidClient('This client_assertion has already been used; sign a new one with a fresh "jti".')
