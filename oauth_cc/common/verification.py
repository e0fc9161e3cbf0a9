"""Both sides: the per-request access-token check used by the protected side (RFC 6750, RFC 9068 §4).

This is the hot path that runs on every protected request. Its cost, top to bottom:

1. a dict lookup in the worker's memo of tokens it has already verified (clients reuse a
   token for its whole life, so this hits almost always);
2. on a miss only: :func:`oauth_cc.common.tokens.verify` - two base64/JSON decodes and one
   signature check (~140 µs for ES256), then the token goes into the memo;
3. every time, hit or miss: ``exp`` against the clock and the revocation snapshot (set and
   dict lookups; a cache read at most once per refresh interval).

No SQL query is made in steady state. The memo is keyed by the exact token string, which is
safe because :mod:`oauth_cc.common.jws` accepts one spelling per segment (canonical base64url), so a
token cannot be written many ways to fill it (two at most: ECDSA's ``(r, n - s)``). It holds
only tokens whose signature and claims were valid, so junk cannot push memory up, and it is
bounded in entries (``VERIFIED_TOKEN_CACHE_SIZE``) and bytes (``VERIFIED_TOKEN_CACHE_BYTES``),
oldest dropped first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, cast

from django.core.exceptions import ImproperlyConfigured

from ..conf import oauth_cc_settings
from . import resets
from .bounded import BoundedMap
from .revocation_snapshot import Snapshot
from .tokens import InvalidToken, KeySource, certificate_thumbprint, dpop_thumbprint, verify


class RevocationSource(Protocol):
    def current(self) -> Snapshot: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Where a side's verifying keys and revocation state come from, and what to do first."""

    keys: KeySource
    revocation: RevocationSource
    #: Called before each check (the resource side starts its poller with it), or None.
    before_check: Callable[[], None] | None = None


#: ``resource_only -> Sources``: filled by each app's ``AppConfig.ready()`` (``oauth_cc`` the
#: issuer's own keys and database state, ``oauth_cc.resource`` the issuer's JWKS and feed), so
#: this module, used by both sides, imports neither side's state.
_sources: dict[bool, Sources] = {}


def use_sources(*, resource_only: bool, sources: Sources) -> None:
    """Check tokens with ``sources`` on a site whose ``resource_only`` is this value."""
    _sources[resource_only] = sources


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified access token: what ``request.auth`` is on a protected DRF view."""

    client_id: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    jti: str
    exp: float
    iat: float
    #: RFC 8705 ``cnf.x5t#S256``: the token is usable only with this client certificate.
    certificate_thumbprint: str | None = None
    #: RFC 9449 ``cnf.jkt``: the token is usable only with DPoP proofs signed by this key.
    jkt: str | None = None

    @property
    def scope(self) -> str:
        return cast(str, self.claims.get("scope", ""))  # tokens.verify() checked it is a string

    def has_scopes(self, required: Iterable[str]) -> bool:
        return set(required).issubset(self.scopes)

    # DOT's AccessToken API, so DOT's own DRF permission classes accept our tokens as well.
    def is_valid(self, scopes: Iterable[str] | None = None) -> bool:
        return self.exp > time.time() and self.has_scopes(scopes or ())

    def allow_scopes(self, scopes: Iterable[str]) -> bool:
        return self.has_scopes(scopes)

    def is_expired(self) -> bool:
        return self.exp <= time.time()

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> AccessToken:
        return cls(
            client_id=claims["client_id"],
            scopes=frozenset(claims.get("scope", "").split()),
            # Read-only: the same object is shared by every request that presents this token.
            claims=MappingProxyType(dict(claims)),
            jti=claims["jti"],
            exp=float(claims["exp"]),
            iat=float(claims["iat"]),
            certificate_thumbprint=certificate_thumbprint(claims),  # checked by tokens.verify()
            jkt=dpop_thumbprint(claims),
        )


#: Memory a memo entry costs beyond its token string: the AccessToken and its claims.
MEMO_ENTRY_OVERHEAD = 1024


def _memo_weight(token: str, info: AccessToken) -> int:
    return len(token) + MEMO_ENTRY_OVERHEAD


class VerifiedTokens(BoundedMap[str, AccessToken]):
    """Bounded memo ``token string -> AccessToken`` of tokens whose signature and claims were valid."""

    def __init__(self) -> None:
        super().__init__(
            lambda: oauth_cc_settings.VERIFIED_TOKEN_CACHE_SIZE,
            max_weight=lambda: oauth_cc_settings.VERIFIED_TOKEN_CACHE_BYTES,
            weigh=_memo_weight,
        )


verified_tokens = VerifiedTokens()
resets.register("oauth_cc.common.verification.verified_tokens", verified_tokens.clear)


def check_access_token(token: str) -> AccessToken:
    """Return the verified token for this site or raise :class:`~oauth_cc.common.tokens.InvalidToken`."""
    now = time.time()
    settings = oauth_cc_settings
    sources = _sources.get(settings.resource_only)
    if sources is None:
        raise ImproperlyConfigured(
            'Access tokens are checked by the "oauth_cc" or the "oauth_cc.resource" app: '
            "put one of them in INSTALLED_APPS."
        )
    if sources.before_check is not None:
        sources.before_check()
    info = verified_tokens.get(token)
    if info is None:
        claims = verify(
            token,
            issuer=settings.issuer,
            audience=settings.resource_identifier,
            leeway=settings.LEEWAY,
            now=now,
            keys=sources.keys,
        )
        info = AccessToken.from_claims(claims)
        verified_tokens.put(token, info)
    elif info.exp <= now - settings.LEEWAY:
        raise InvalidToken("The access token has expired.")
    reason = sources.revocation.current().reason_refused(jti=info.jti, client_id=info.client_id, iat=info.iat)
    if reason is not None:
        raise InvalidToken(reason)
    return info
