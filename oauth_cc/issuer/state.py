"""Issuer side: per-worker views of database state, refreshed at most every ``STATE_REFRESH_SECONDS``.

The two hot paths (the token endpoint and the per-request token check) must not query the
database in steady state. They read three things that change rarely and are allowed to be a
few seconds stale:

* :class:`ClientCache` - client data, scopes and secret hashes (token endpoint);
* :class:`~oauth_cc.issuer.keys.KeyStore` - signing and verification keys (both paths);
* :class:`~oauth_cc.issuer.revocation.RevocationState` - revoked ``jti`` values, disabled clients and
  per-client "tokens issued before T are invalid" cut-offs (token check).

Client data and the revocation snapshot are kept until the site's change token
(:mod:`oauth_cc.issuer.generation`) changes, which each worker checks at most once per refresh
interval: a disabled client or a revoked secret takes effect within that delay on every worker
without a restart, and an unchanged site costs one cache read per interval, however many
clients are in rotation. Every cache is bounded. When the database cannot be reached, each
keeps serving what it last confirmed for a bounded time (:mod:`oauth_cc.issuer.outage`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..common import resets
from ..common.bounded import BoundedMap
from ..common.mtls import CERTIFICATE_NAME_FIELDS
from ..common.ratelimit import Rate, RateError, parse_rate
from ..conf import oauth_cc_settings
from . import outage
from .generation import CLIENTS, Watcher

#: Forget every per-worker cache (settings changed, or a test wants a cold start): each
#: module registers its own with :mod:`oauth_cc.common.resets`.
reset_all = resets.reset_all

logger = logging.getLogger("oauth_cc.state")


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What the hot paths need to know about a client; immutable, safe to share."""

    pk: int
    client_id: str
    name: str
    is_active: bool
    grant_type: str
    auth_method: str
    allowed_scopes: frozenset[str]
    default_scopes: tuple[str, ...]
    access_token_lifetime: int | None
    audiences: tuple[str, ...]
    can_introspect: bool
    user_id: int | None
    jwks: dict[str, Any] | None
    jwks_uri: str
    #: ``tokens_valid_after`` as epoch seconds, or None.
    tokens_valid_after: float | None = None
    #: The client's own token rate limit (``Application.token_limit`` parsed), or None for
    #: the site's ``TOKEN_RATE_LIMIT``.
    token_limit: Rate | None = None
    #: RFC 8705 §2.1.2: what identifies a tls_client_auth client's certificate: the metadata
    #: name (``"tls_client_auth_san_dns"``, ..., see ``mtls.CERTIFICATE_NAMES``) and its value;
    #: empty when the row holds none, or more than one (then nothing matches).
    tls_name_kind: str = ""
    tls_name: str = ""
    #: RFC 8705 §3: bind this client's tokens to its TLS client certificate.
    certificate_bound_tokens: bool = False

    #: Only DPoP-bound tokens for this client (RFC 9449): a token request needs a proof.
    require_dpop: bool = False


@dataclass(frozen=True, slots=True)
class SecretRecord:
    pk: int
    client_id: str
    secret_hash: str
    expires_at: float | None
    revoked: bool

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


_MISSING: Any = object()  # Any: a sentinel passed where a record is typed


class ClientCache:
    """Client and secret data for the token endpoint, cached in process memory.

    Entries do not expire one by one: once per refresh interval the cache reads the site's
    change token (:mod:`oauth_cc.issuer.generation`) and drops everything if it changed. So a
    worker serving a thousand clients makes one cache read per interval, not a thousand
    reloads, and a change still reaches it within the interval.
    """

    def __init__(self) -> None:
        # None values are kept too: an unknown client_id or secret is not looked up again.
        self._clients: BoundedMap[str, ClientRecord | None] = BoundedMap(
            lambda: oauth_cc_settings.CLIENT_CACHE_SIZE
        )
        self._secrets: BoundedMap[str, SecretRecord | None] = BoundedMap(
            lambda: oauth_cc_settings.CLIENT_CACHE_SIZE
        )
        self._watcher = Watcher(CLIENTS)

    def _drop_if_changed(self) -> None:
        if self._watcher.changed(time.monotonic()):
            self._clients.clear()
            self._secrets.clear()

    def client(self, client_id: str) -> ClientRecord | None:
        """The client with this id, or None. Two queries on a miss, none otherwise."""
        self._drop_if_changed()
        record = self._clients.get(client_id, _MISSING)
        if record is _MISSING:
            seen = self._watcher.seen
            record = outage.database.run("client data", lambda: load_client(client_id))
            # Another thread (gthread workers) saw a change while this one was loading:
            # the row read may predate it, so do not keep it past that change.
            if self._watcher.seen == seen:
                self._clients.put(client_id, record)
        return record

    def secret(self, secret_hash: str) -> SecretRecord | None:
        """The secret with this hash, or None. One indexed query on a miss, none otherwise."""
        self._drop_if_changed()
        record = self._secrets.get(secret_hash, _MISSING)
        if record is _MISSING:
            seen = self._watcher.seen
            record = outage.database.run("client secrets", lambda: load_secret(secret_hash))
            if self._watcher.seen == seen:  # as in client()
                self._secrets.put(secret_hash, record)
        return record

    def held_client(self, client_id: str) -> ClientRecord | None:
        """The client if this worker holds it, without a query or a change-token read."""
        record = self._clients.get(client_id, None)
        return record if isinstance(record, ClientRecord) else None

    def held_secret(self, secret_hash: str) -> SecretRecord | None:
        """The secret if this worker holds it, without a query or a change-token read."""
        record = self._secrets.get(secret_hash, None)
        return record if isinstance(record, SecretRecord) else None

    def clear(self) -> None:
        """Drop every entry (this worker made a change, so it sees it at once)."""
        self._clients.clear()
        self._secrets.clear()

    def reset(self) -> None:
        """Drop every entry and the last seen change token (a cold start)."""
        self.clear()
        self._watcher.reset()


def load_client(client_id: str) -> ClientRecord | None:
    from ..models import Application, Scope

    row = (
        Application.objects.filter(client_id=client_id)
        .values(
            "pk",
            "client_id",
            "name",
            "is_active",
            "authorization_grant_type",
            "token_endpoint_auth_method",
            "access_token_lifetime",
            "audiences",
            "can_introspect",
            "user_id",
            "client_jwks",
            "client_jwks_uri",
            "tokens_valid_after",
            "token_limit",
            *CERTIFICATE_NAME_FIELDS,
            "tls_client_certificate_bound_access_tokens",
            "require_dpop",
        )
        .first()
    )
    if row is None:
        return None
    scopes = list(Scope.objects.filter(applications__pk=row["pk"]).values_list("name", "is_default"))
    return ClientRecord(
        pk=row["pk"],
        client_id=row["client_id"],
        name=row["name"],
        is_active=row["is_active"],
        grant_type=row["authorization_grant_type"],
        auth_method=row["token_endpoint_auth_method"],
        allowed_scopes=frozenset(name for name, _ in scopes),
        default_scopes=tuple(sorted(name for name, is_default in scopes if is_default)),
        access_token_lifetime=row["access_token_lifetime"],
        audiences=tuple(row["audiences"] or ()),
        can_introspect=row["can_introspect"],
        user_id=row["user_id"],
        jwks=row["client_jwks"],
        jwks_uri=row["client_jwks_uri"],
        tokens_valid_after=_ts(row["tokens_valid_after"]),
        token_limit=_stored_rate(row["client_id"], row["token_limit"]),
        **_certificate_name(row),
        certificate_bound_tokens=row["tls_client_certificate_bound_access_tokens"],
        require_dpop=row["require_dpop"],
    )


def _certificate_name(row: dict[str, Any]) -> dict[str, str]:
    """The one registered certificate name of a client row (``ClientRecord`` fields)."""
    given = [field for field in CERTIFICATE_NAME_FIELDS if row[field]]
    if len(given) > 1:
        # Written past the model validation (SQL, an old release): which name was meant is
        # unknown, so no certificate is accepted rather than the first name that matches.
        logger.error(
            "client %s has more than one TLS client certificate name; none is used", row["client_id"]
        )
    if len(given) != 1:
        return {}
    return {"tls_name_kind": given[0], "tls_name": row[given[0]]}


def _stored_rate(client_id: str, text: str | None) -> Rate | None:
    """A client's stored rate; one the model validation would refuse (written past it, with
    SQL or an old release) is logged and the site default applies."""
    if not text:
        return None
    try:
        return parse_rate(text)
    except RateError:
        logger.error("client %s has an invalid token_limit %r; using the site default", client_id, text)
        return None


def load_secret(secret_hash: str) -> SecretRecord | None:
    from ..models import ClientSecret

    row = (
        ClientSecret.objects.filter(secret_hash=secret_hash)
        .values("pk", "application__client_id", "secret_hash", "expires_at", "revoked_at")
        .first()
    )
    if row is None:
        return None
    return SecretRecord(
        pk=row["pk"],
        client_id=row["application__client_id"],
        secret_hash=row["secret_hash"],
        expires_at=_ts(row["expires_at"]),
        revoked=row["revoked_at"] is not None,
    )


client_cache = ClientCache()
resets.register("oauth_cc.issuer.state.client_cache", client_cache.reset)
