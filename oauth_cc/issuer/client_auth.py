"""Issuer side: client authentication at the token, introspection and revocation endpoints.

RFC 6749 §2.3.1 (``client_secret_basic``, ``client_secret_post``), RFC 7523 §2.2 /
OpenID Connect Core §9 (``private_key_jwt``) and RFC 8705 §2 (``tls_client_auth``,
``self_signed_tls_client_auth``: the TLS client certificate a trusted proxy forwards, see
:mod:`oauth_cc.common.mtls`, with the ``client_id`` in the body). A client with a
secret (registered for either secret method) may present it either way, as Keycloak and
django-oauth-toolkit accept: the two
differ only in where the same secret travels, and client libraries pick one by default. A
``private_key_jwt`` client may use only its assertion, never a secret (RFC 9700 §2.5). A
request may carry only one method (RFC 6749 §2.3).

Cost on the token endpoint: one SHA-256 of the presented secret and dict lookups in the
worker's :class:`~oauth_cc.issuer.state.ClientCache`; no query in steady state.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

from cryptography import x509
from django.core.cache import caches
from django.http import HttpRequest
from django.urls import reverse

from ..common import mtls, ratelimit, resets
from ..common.bounded import BoundedMap
from ..common.errors import InvalidClient, InvalidRequest, OAuthError, TemporarilyUnavailable, TooManyRequests
from ..common.tokens import MAX_CLIENT_ID_LENGTH
from ..conf import oauth_cc_settings
from ..models import MTLS_AUTH_METHODS, SECRET_AUTH_METHODS, TokenEndpointAuthMethod
from . import client_jwks_fetch, usage
from .assertions import ParsedAssertion, Unproven, parse_assertion, record_use, verify_client_assertion
from .secrets import hash_secret, hashes_match
from .state import ClientRecord, client_cache

logger = logging.getLogger("oauth_cc.client_auth")

JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The presented method of a request authenticated only by its TLS client certificate; which of
#: the two RFC 8705 methods it is depends on the client's registration.
TLS_CLIENT_CERTIFICATE = "tls_client_certificate"


@dataclass(frozen=True)
class PresentedCredentials:
    method: str
    client_id: str
    secret: str = ""
    assertion: ParsedAssertion | None = None
    #: The TLS client certificate the trusted proxy forwarded, whatever the method (a secret
    #: client's tokens may be bound to it too).
    certificate: x509.Certificate | None = None

    @property
    def basic(self) -> bool:
        return self.method == TokenEndpointAuthMethod.CLIENT_SECRET_BASIC


def _parse_basic(header: str) -> tuple[str, str]:
    """RFC 7617 credentials, strictly: canonical base64, UTF-8, ``id:secret``, valid escapes."""
    invalid = InvalidClient("The Authorization header is not valid HTTP Basic credentials.", basic=True)
    try:
        raw = header.encode("ascii")
        data = base64.b64decode(raw, validate=True)
        if base64.b64encode(data) != raw:  # extra padding or non-zero unused bits
            raise invalid
        client_id, sep, secret = data.decode("utf-8").partition(":")
        if not sep or not client_id:
            raise invalid
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding; an escape
        # that does not decode to UTF-8 is refused, as in the form body.
        return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid from None


def presented_credentials(request: HttpRequest, params: Mapping[str, str]) -> PresentedCredentials:
    """Which credentials the request carries. Raises if none, or more than one method."""
    methods: list[PresentedCredentials] = []
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient(
                "Authenticate with HTTP Basic or the methods in the server metadata.", basic=True
            )
        client_id, secret = _parse_basic(value.strip())
        methods.append(
            PresentedCredentials(TokenEndpointAuthMethod.CLIENT_SECRET_BASIC, client_id, secret=secret)
        )
    if "client_secret" in params:
        methods.append(
            PresentedCredentials(
                TokenEndpointAuthMethod.CLIENT_SECRET_POST,
                params.get("client_id", ""),
                secret=params["client_secret"],
            )
        )
    if "client_assertion" in params or "client_assertion_type" in params:
        if params.get("client_assertion_type") != JWT_BEARER_ASSERTION_TYPE:
            raise InvalidClient(f'client_assertion_type must be "{JWT_BEARER_ASSERTION_TYPE}".')
        if not params.get("client_assertion"):
            raise InvalidClient("client_assertion is missing.")
        assertion = parse_assertion(params["client_assertion"])
        client_id = params.get("client_id") or assertion.unverified_client_id
        methods.append(
            PresentedCredentials(TokenEndpointAuthMethod.PRIVATE_KEY_JWT, client_id, assertion=assertion)
        )
    try:
        certificate = mtls.client_certificate(request)
    except mtls.InvalidClientCertificate:
        # A correctly configured proxy never forwards this: refused, never guessed at.
        raise InvalidRequest("The client certificate forwarded by the proxy could not be read.") from None
    if not methods and certificate is not None:
        # RFC 8705 §2: the certificate authenticates, the body names the client.
        methods.append(PresentedCredentials(TLS_CLIENT_CERTIFICATE, params.get("client_id", "")))
    if not methods:
        raise InvalidClient("Client authentication is required.", basic=True)
    if len(methods) > 1:
        raise InvalidRequest(
            "Use exactly one client authentication method per request (RFC 6749, section 2.3)."
        )
    presented = replace(methods[0], certificate=certificate)
    body_client_id = params.get("client_id")
    if body_client_id is not None and body_client_id != presented.client_id:
        raise InvalidClient("client_id does not match the authenticated client.", basic=presented.basic)
    if not presented.client_id:
        raise InvalidClient("client_id is missing.", basic=presented.basic)
    if len(presented.client_id) > MAX_CLIENT_ID_LENGTH or not presented.client_id.isprintable():
        # No such client can exist; refused before any query (PostgreSQL cannot even compare
        # a string holding NUL, and would raise).
        raise InvalidClient(basic=presented.basic)
    return presented


def authenticate_client(
    request: HttpRequest,
    params: Mapping[str, str],
    *,
    endpoint: str,
    before_use: Callable[[ClientRecord], None] | None = None,
) -> ClientRecord:
    """Authenticate the calling client or raise :class:`~oauth_cc.common.errors.InvalidClient`.

    ``endpoint`` is the URL name (in the ``oauth_cc`` namespace) of the endpoint being called:
    an assertion's ``aud`` may name its URL. ``before_use(client)`` runs once the client is
    authenticated and may still refuse the request (the token endpoint's rate limit) before
    anything is recorded: the assertion's single use and the "last used" time.

    Failed authentications are counted per remote address and per presented client_id
    (``FAILED_AUTH_RATE_PER_*``); past either limit the request is refused with 429 before
    the client is looked up or its secret or assertion checked, so a flood costs one cache
    round trip per request; only a secret that matches a client and secret this worker
    already holds still gets through (one hash, no query), so a flood cannot lock out a
    client in use. The shared counts are read only for an address or client_id this
    worker has seen fail recently (:data:`_suspects`), unless the site fails closed: a request
    from one that has not failed here costs no cache round trip, and a flood spread over W
    workers gets at most W attempts past the limit, one per worker before it saw a failure.
    """
    checks = _address_checks(request)
    try:
        presented = presented_credentials(request, params)
    except OAuthError:
        _refuse_if_over(checks)
        _note_failure(checks)
        raise
    checks += _client_id_checks(presented.client_id)
    _refuse_if_over(checks, presented)
    try:
        client, verified, secret_pk = _verify(presented, endpoint)
    except InvalidClient:
        _note_failure(checks)
        raise
    if before_use is not None:
        before_use(client)
    if verified is not None:
        record_use(verified)  # last: a refused request does not use up its assertion
    usage.note_used(client.pk, secret_pk)
    return client


def _address_checks(request: HttpRequest) -> list[ratelimit.Check]:
    rate = ratelimit.setting_rate("FAILED_AUTH_RATE_PER_ADDRESS")
    if rate is None:
        return []
    address = ratelimit.client_address(request)
    return [] if address is None else [("auth-fail-addr", address, rate)]


def _client_id_checks(client_id: str) -> list[ratelimit.Check]:
    rate = ratelimit.setting_rate("FAILED_AUTH_RATE_PER_CLIENT_ID")
    return [] if rate is None else [("auth-fail-id", ratelimit.ident(client_id), rate)]


#: Failure-limit checks (scope and key) that failed in this worker recently, with the monotonic
#: time until which their shared counts are read before doing the work. Bounded: an attacker
#: rotating through addresses evicts old entries, each of which then gets one more attempt.
_suspects: BoundedMap[tuple[str, str], float] = BoundedMap(10_000)


def reset() -> None:
    """Forget which addresses and client_ids failed here, and which secrets succeeded (a test)."""
    _suspects.clear()
    _good_secrets.clear()
    _good_shared.clear()


resets.register("oauth_cc.issuer.client_auth", reset)


def _note_failure(checks: list[ratelimit.Check]) -> None:
    ratelimit.note(checks)
    now = time.monotonic()
    for scope, key, rate in checks:
        # Two periods: the sliding window looks back that far.
        _suspects.put((scope, key), now + 2 * rate.period)


#: How long a secret that authenticated stays "known good" for the failure limits' pre-check.
GOOD_SECRET_SECONDS = 24 * 3600
#: How often a worker refreshes a known-good secret's entry in the shared cache.
GOOD_SECRET_SHARE_SECONDS = 300
#: (client_id, secret hash) -> when this worker last saw it authenticate (monotonic). Only
#: successful authentications add entries, so a flood of bad credentials cannot evict them.
_good_secrets: BoundedMap[tuple[str, str], float] = BoundedMap(10_000)
#: (client_id, secret hash) -> when this worker last wrote it to the shared cache (monotonic).
_good_shared: BoundedMap[tuple[str, str], float] = BoundedMap(10_000)


def _good_secret_key(client_id: str) -> str:
    return f"oauth_cc:good-secret:v1:{ratelimit.ident(client_id)}"


def _note_good_secret(client_id: str, secret_hash: str) -> None:
    """Remember a secret that authenticated: in this worker at once, site-wide now and then.

    The site-wide entry (the latest few hashes per client, for a day) lets a worker that has
    restarted, or dropped its caches after a change elsewhere, still recognise a client in use.
    """
    now = time.monotonic()
    entry = (client_id, secret_hash)
    _good_secrets.put(entry, now)
    last = _good_shared.get(entry)
    if last is not None and now - last < GOOD_SECRET_SHARE_SECONDS:
        return
    _good_shared.put(entry, now)
    try:
        cache = caches[oauth_cc_settings.CACHE_ALIAS]
        key = _good_secret_key(client_id)
        hashes = [h for h in (cache.get(key) or []) if isinstance(h, str) and h != secret_hash]
        cache.set(key, [secret_hash, *hashes][:3], timeout=GOOD_SECRET_SECONDS)
    except Exception:
        # Only an aid to the failure limits: a cache outage must not fail an authentication.
        logger.warning("oauth_cc could not share a known-good secret in the cache")


def _held_secret_matches(presented: PresentedCredentials) -> bool:
    """Whether secret credentials are ones that authenticated lately: one hash, no query.

    Lets the right secret through a failure limit, so that a flood of bad credentials from a
    shared address (a proxy, a NAT) or for a known client_id cannot lock out a client in use:
    known from this worker's own record of recent successes, from its client cache, or from the
    site-wide entry in the shared cache (survives restarts and cache drops). Only a pre-check:
    the request is then authenticated in full as usual, so a secret revoked since is refused.
    """
    if presented.assertion is not None or not presented.secret:
        return False
    presented_hash = hash_secret(presented.secret)
    seen = _good_secrets.get((presented.client_id, presented_hash))
    if seen is not None and time.monotonic() - seen < GOOD_SECRET_SECONDS:
        return True
    client = client_cache.held_client(presented.client_id)
    if client is not None and _method_allowed(client, presented) and client.is_active:
        record = client_cache.held_secret(presented_hash)
        if (
            record is not None
            and hashes_match(record.secret_hash, presented_hash)
            and hmac.compare_digest(record.client_id.encode("utf-8"), client.client_id.encode("utf-8"))
            and not record.revoked
            and not record.expired(time.time())
        ):
            return True
    try:
        shared = caches[oauth_cc_settings.CACHE_ALIAS].get(_good_secret_key(presented.client_id)) or []
    except Exception:
        return False
    return any(isinstance(h, str) and hashes_match(h, presented_hash) for h in shared)


def _refuse_if_over(checks: list[ratelimit.Check], presented: PresentedCredentials | None = None) -> None:
    if oauth_cc_settings.RATE_LIMIT_FAIL_OPEN:
        # Failing closed reads every count, so that a cache outage refuses as promised.
        now = time.monotonic()
        checks = [c for c in checks if (_suspects.get((c[0], c[1])) or 0.0) > now]
    if not checks:
        return
    try:
        refusal = ratelimit.over(checks)
    except ratelimit.CacheUnavailable:
        raise TemporarilyUnavailable(
            "Client authentication is unavailable right now; retry shortly."
        ) from None
    if refusal is not None and not (presented is not None and _held_secret_matches(presented)):
        raise TooManyRequests(
            f"Too many failed client authentications; retry after {refusal.reset} seconds.",
            retry_after=refusal.reset,
        )


def _verify(presented: PresentedCredentials, endpoint: str) -> tuple[ClientRecord, Any, int | None]:
    """The client the credentials authenticate, its verified assertion, and the secret's pk.

    The rule for what a refusal says: until the credentials are proven (the client's key
    verified the assertion's signature, the secret matched, the certificate is the registered
    one), every refusal that depends on the client's registration (that it exists, its method,
    keys, kids, key types, a jwks_uri that fails) is the generic ``invalid_client`` an unknown
    client_id gets, so a caller learns nothing about a client it cannot authenticate as; the
    operator's log (``oauth_cc.client_auth``) says what happened. Refusals that do not depend on
    the client (a malformed assertion, an algorithm outside the table) came earlier, the same
    for every client_id. After the proof, the caller holds the client's credentials and is told
    what to fix (an expired assertion or secret, a disabled client).
    """
    client = client_cache.client(presented.client_id)
    if client is None:
        raise InvalidClient(basic=presented.basic)
    if not _method_allowed(client, presented):
        logger.info(
            "client %s presented %s but is registered for %s",
            client.client_id,
            presented.method,
            client.auth_method,
        )
        raise InvalidClient(basic=presented.basic)
    verified = None
    secret_pk = None
    if presented.assertion is not None:
        try:
            verified = verify_client_assertion(
                client, presented.assertion, endpoint_url=endpoint_url(endpoint)
            )
        except Unproven as refusal:
            logger.info(
                "client %s presented a client_assertion refused before its signature verified: %s",
                client.client_id,
                refusal.reason,
            )
            raise InvalidClient(basic=presented.basic) from None
    elif presented.method == TLS_CLIENT_CERTIFICATE:
        _verify_certificate(client, presented)
    else:
        secret_pk = _verify_secret(client, presented)
    if not client.is_active:
        raise InvalidClient("This client is disabled.", basic=presented.basic)
    return client, verified, secret_pk


def _method_allowed(client: ClientRecord, presented: PresentedCredentials) -> bool:
    """Whether ``client`` may authenticate with the method ``presented`` uses.

    The method a secret client is registered with is what it prefers (server metadata, the
    admin); it may present its secret either way. A private_key_jwt client only by assertion.
    """
    if client.auth_method in SECRET_AUTH_METHODS:
        return presented.method in SECRET_AUTH_METHODS
    if client.auth_method in MTLS_AUTH_METHODS:
        return presented.method == TLS_CLIENT_CERTIFICATE and presented.certificate is not None
    return client.auth_method == presented.method


def _verify_certificate(client: ClientRecord, presented: PresentedCredentials) -> None:
    """RFC 8705 §2.1 (PKI: the registered certificate name) or §2.2 (the registered key).

    The proxy proved that the client holds the certificate's private key (the TLS handshake)
    and, for ``tls_client_auth``, must also verify the chain to the CA it trusts; this checks
    that the certificate is the one registered for this client, and for ``tls_client_auth``
    its validity dates again. A self-signed certificate is only a wrapper for the registered
    key, so its dates are not checked (RFC 8705 §2.2). Every refusal, a jwks_uri that cannot be
    fetched included, is the same generic ``invalid_client`` as for an unknown client_id (any
    self-signed certificate would otherwise tell an outsider which client_ids have a failing
    jwks_uri); the operator's log says which check failed.
    """
    certificate = presented.certificate
    if certificate is None:  # _method_allowed() checked it already
        raise InvalidClient()
    if client.auth_method == TokenEndpointAuthMethod.TLS_CLIENT_AUTH:
        name = mtls.CERTIFICATE_NAMES_BY_METADATA.get(client.tls_name_kind)
        if name is None:
            problem = "cannot match: the client has no single registered certificate name"
        elif not name.matches(certificate, client.tls_name):
            problem = f"does not carry the registered {name.label}"
        elif not mtls.within_validity(certificate):
            problem = "is outside its validity period"
        else:
            return
    else:
        # Cost: one SHA-256 over the key; with a jwks_uri, a fetch only when the cached set is
        # stale or lacks this key (then at most once per KID_MISS_REFETCH_INTERVAL per URL).
        presented_key = mtls.key_thumbprint(certificate)
        try:
            keys = client_jwks_fetch.keys_for(client, thumbprint=presented_key)
        except client_jwks_fetch.JWKSFetchError as exc:
            problem = f"could not be checked: could not fetch the client's JWKS: {exc}"
        else:
            if mtls.key_among(presented_key, keys):
                return
            problem = "does not hold a key of the registered JWKS"
    logger.info("client %s presented a TLS client certificate that %s", client.client_id, problem)
    raise InvalidClient()


def endpoint_url(name: str) -> str:
    """Absolute URL of an oauth_cc endpoint under the configured issuer."""
    return oauth_cc_settings.issuer + reverse(f"oauth_cc:{name}")


def _verify_secret(client: ClientRecord, presented: PresentedCredentials) -> int:
    if not presented.secret:
        raise InvalidClient(basic=presented.basic)
    # The hash is the lookup key (see oauth_cc.issuer.secrets); the comparisons below are
    # constant-time so nothing about a near-miss leaks through timing.
    presented_hash = hash_secret(presented.secret)
    record = client_cache.secret(presented_hash)
    if record is None or not hashes_match(record.secret_hash, presented_hash):
        raise InvalidClient(basic=presented.basic)
    # client_id is free text (DOT lets an operator edit it) and may be non-ASCII, which
    # hashes_match (hex digests only) cannot encode; compare its UTF-8 bytes instead.
    if not hmac.compare_digest(record.client_id.encode("utf-8"), client.client_id.encode("utf-8")):
        raise InvalidClient(basic=presented.basic)
    if record.revoked:
        raise InvalidClient("This client secret has been revoked.", basic=presented.basic)
    if record.expired(time.time()):
        raise InvalidClient("This client secret has expired.", basic=presented.basic)
    _note_good_secret(client.client_id, presented_hash)
    return record.pk
