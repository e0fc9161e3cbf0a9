"""Per-worker views of database state, refreshed at most every ``STATE_REFRESH_SECONDS``.

The two hot paths (the token endpoint and the per-request token check) must not query the
database in steady state. They read three things that change rarely and are allowed to be a
few seconds stale:

* :class:`ClientCache` - client data, scopes and secret hashes (token endpoint);
* :class:`~oauth_cc.keys.KeyStore` - signing and verification keys (both paths);
* :class:`~oauth_cc.revocation.RevocationState` - revoked ``jti`` values, disabled clients and
  per-client "tokens issued before T are invalid" cut-offs (token check).

Each entry is reloaded from the database once it is older than the refresh interval, so a
disabled client or a revoked secret takes effect within that delay on every worker without a
restart. Every cache is bounded. When the database cannot be reached, each keeps serving what
it last loaded for a bounded time (:mod:`oauth_cc.outage`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import outage
from .bounded import BoundedMap
from .conf import oauth_cc_settings
from .errors import TemporarilyUnavailable
from .ratelimit import Rate, RateError, parse_rate

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


class _TTLMap:
    """A :class:`~oauth_cc.bounded.BoundedMap` whose entries go stale after the refresh interval."""

    def __init__(self, max_size_setting: str) -> None:
        self._data: BoundedMap[str, tuple[float, Any]] = BoundedMap(
            lambda: getattr(oauth_cc_settings, max_size_setting)
        )

    def get(self, key: str) -> tuple[bool, Any]:
        hit = self._data.get(key)
        if hit is None or time.monotonic() - hit[0] > oauth_cc_settings.STATE_REFRESH_SECONDS:
            return False, None
        return True, hit[1]

    def held(self, key: str) -> tuple[float, Any] | None:
        """``(loaded_at, value)`` whatever its age, or None: for serving it in an outage."""
        return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        self._data.put(key, (time.monotonic(), value))

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class ClientCache:
    """Client and secret data for the token endpoint, cached in process memory."""

    def __init__(self) -> None:
        self._clients = _TTLMap("CLIENT_CACHE_SIZE")
        self._secrets = _TTLMap("CLIENT_CACHE_SIZE")

    def client(self, client_id: str) -> ClientRecord | None:
        """The client with this id, or None. Two queries when stale, none otherwise."""
        fresh, record = self._clients.get(client_id)
        if not fresh:
            record = _reload(self._clients, client_id, "client data", load_client)
        return record

    def secret(self, secret_hash: str) -> SecretRecord | None:
        """The secret with this hash, or None. One indexed query when stale, none otherwise."""
        fresh, record = self._secrets.get(secret_hash)
        if not fresh:
            record = _reload(self._secrets, secret_hash, "client secrets", load_secret)
        return record

    def clear(self) -> None:
        self._clients.clear()
        self._secrets.clear()


def _reload(entries: _TTLMap, key: str, what: str, load: Callable[[str], Any]) -> Any:
    """``load(key)`` into ``entries``; with the database down, the held value while usable.

    The held value keeps its load time, so the ``STALE_STATE_MAX_SECONDS`` bound counts from
    the last load that reached the database, however many refreshes failed since.
    """
    try:
        value = outage.database.run(what, lambda: load(key))
    except TemporarilyUnavailable:
        held = entries.held(key)
        if held is None or not outage.usable(held[0]):
            raise
        return held[1]
    entries.put(key, value)
    return value


def load_client(client_id: str) -> ClientRecord | None:
    from .models import Application, Scope

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
            "jwks",
            "jwks_uri",
            "tokens_valid_after",
            "token_limit",
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
        jwks=row["jwks"],
        jwks_uri=row["jwks_uri"],
        tokens_valid_after=_ts(row["tokens_valid_after"]),
        token_limit=_stored_rate(row["client_id"], row["token_limit"]),
    )


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
    from .models import ClientSecret

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


def reset_all() -> None:
    """Forget every per-worker cache (settings changed, or a test wants a cold start)."""
    from . import client_auth, client_keys
    from .keys import key_store
    from .revocation import revocation_state
    from .verification import verified_tokens

    client_cache.clear()
    outage.database.reset()
    key_store.reset()
    revocation_state.reset()
    verified_tokens.clear()
    client_keys.reset()
    client_auth.reset()
