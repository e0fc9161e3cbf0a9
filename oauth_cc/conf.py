"""Both sides: the ``OAUTH_CC`` settings dict, read lazily.

Every value is read from ``settings.OAUTH_CC`` the first time it is asked for and cached
until Django sends ``setting_changed`` for ``OAUTH_CC`` (``override_settings`` in tests),
so no module reads settings at import time.
"""

from __future__ import annotations

import math
from typing import Any, cast

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .common import resets

#: Documented defaults. See the README's "Settings" section for what each one means.
DEFAULTS: dict[str, Any] = {
    # The ``iss`` of every token and the identifier in the RFC 8414 metadata. Required.
    "ISSUER": None,
    # This site's identifier as a protected resource: the default ``aud`` of tokens and the
    # audience the DRF authentication class accepts. ``None`` means "the issuer".
    "RESOURCE_IDENTIFIER": None,
    # Access-token lifetime in seconds, unless the client has its own.
    "ACCESS_TOKEN_LIFETIME": 3600,
    # Algorithm for new signing keys: "ES256", "RS256" or "EdDSA".
    "SIGNING_ALGORITHM": "ES256",
    # Clock skew tolerated on exp/nbf/iat, in seconds.
    "LEEWAY": 30,
    # Dotted path to ``hook(client, claims) -> dict`` adding claims to a token, or None.
    "CLAIMS_HOOK": None,
    # Django cache alias used to share revocation and key state between workers.
    "CACHE_ALIAS": "default",
    # How often (seconds) a worker checks whether client data or revocation state changed
    # (one read of the site's change token; see generation.py) and refreshes signing keys.
    # A revoked token or a disabled client is refused within about twice this.
    "STATE_REFRESH_SECONDS": 2.0,
    # While the database cannot be reached, how long (seconds) after its last successful load a
    # worker keeps serving what it holds (client data, keys, revocation state) instead of
    # answering 503; 0 never serves held state. See oauth_cc/issuer/outage.py.
    "STALE_STATE_MAX_SECONDS": 300,
    # How many verified tokens each worker remembers, and how many bytes of them at most
    # (token length plus about 1 KiB each); the oldest are dropped first.
    "VERIFIED_TOKEN_CACHE_SIZE": 10_000,
    "VERIFIED_TOKEN_CACHE_BYTES": 16 * 1024 * 1024,
    # How many clients each worker keeps in its in-process client cache.
    "CLIENT_CACHE_SIZE": 10_000,
    # Seconds an old secret stays valid after a rotation.
    "SECRET_ROTATION_GRACE": 24 * 3600,
    # Each worker writes the "last used" times it collected in one statement per this many
    # seconds, however many clients (oauth_cc.issuer.usage): they are late by at most this much.
    "LAST_USED_WRITE_INTERVAL": 60,
    # Usage counts (oauth_cc.issuer.usage_counts): each worker writes its per-client, per-hour token
    # counts at most once per this many seconds (0: on every token request).
    "USAGE_FLUSH_SECONDS": 60,
    # Days hourly usage counts are kept; older ones are pruned.
    "USAGE_RETENTION_DAYS": 35,
    # A client is "not caching tokens" when it gets more than this many tokens per token
    # lifetime (measured over the last hour; see usage_counts.not_caching).
    "NOT_CACHING_THRESHOLD": 10,
    # Max-Age of the JWKS document.
    "JWKS_MAX_AGE": 300,
    # private_key_jwt: how far ahead an assertion's exp may be, in seconds, when it has no iat
    # (with an iat, its age is bounded instead; see oauth_cc.issuer.assertions).
    "ASSERTION_MAX_LIFETIME": 300,
    # private_key_jwt: how old (by its iat) an assertion may be, in seconds.
    "ASSERTION_MAX_AGE": 300,
    # private_key_jwt: jwks_uri fetching.
    "JWKS_URI_TIMEOUT": 3.0,
    "JWKS_URI_MAX_BYTES": 64 * 1024,
    "JWKS_URI_CACHE_SECONDS": 300,
    # Allow http:// and private/loopback addresses for jwks_uri (development and tests only).
    "JWKS_URI_ALLOW_INSECURE": False,
    # Name of the logger that records token issuance (one line per token, no secrets).
    "ISSUANCE_LOGGER": "oauth_cc.issuance",
    # Rate limits, counted in the CACHE_ALIAS cache (see oauth_cc/common/ratelimit.py). A rate is
    # "N/second|minute|hour|day"; None turns that limit off.
    # Token requests per client, unless the client has its own limit.
    "TOKEN_RATE_LIMIT": None,
    # Failed client authentications per presented client_id, and per remote address; past
    # them every authentication attempt is refused with 429 before any secret or assertion
    # is checked. The per-client_id one is higher: an attacker who knows a client_id can
    # spend it to lock that client out.
    "FAILED_AUTH_RATE_PER_CLIENT_ID": "120/minute",
    "FAILED_AUTH_RATE_PER_ADDRESS": "60/minute",
    # Revocation feed reads (oauth_cc.views.revocation_feed) per client, 304s included: room
    # for a reader polling every second from several hosts, not for one reading in a loop.
    "REVOCATION_FEED_RATE": "600/minute",
    # The request.META name of a trusted proxy's forwarding header (e.g.
    # "HTTP_X_FORWARDED_FOR"), and how many trusted proxies append to it. None: REMOTE_ADDR.
    "CLIENT_IP_HEADER": None,
    "TRUSTED_PROXY_COUNT": 1,
    # Mutual TLS (RFC 8705; see oauth_cc/common/mtls.py): the request.META name of the header in which
    # the TLS-terminating proxy forwards the client certificate (e.g. "HTTP_X_SSL_CLIENT_CERT"),
    # and its format: "nginx-escaped-pem" ($ssl_client_escaped_cert) or "rfc9440" (Client-Cert).
    # None: no client certificates (such a header from a client is ignored).
    "CLIENT_CERT_HEADER": None,
    "CLIENT_CERT_HEADER_FORMAT": "nginx-escaped-pem",
    # With the cache down: True lets requests through (logged), False answers 503.
    "RATE_LIMIT_FAIL_OPEN": True,
    # Keys that encrypt the signing keys' private halves in the database: Fernet keys (32
    # random bytes, urlsafe base64). The first encrypts, all decrypt (rotation). None: a key
    # derived from SECRET_KEY (and SECRET_KEY_FALLBACKS); see oauth_cc/issuer/key_encryption.py.
    "KEY_ENCRYPTION_KEYS": None,
    # --- Resource-only services (INSTALLED_APPS has "oauth_cc.resource", not "oauth_cc"; see
    # oauth_cc/resource/). ISSUER names the issuer whose tokens are accepted, RESOURCE_IDENTIFIER
    # the aud this service accepts (required there).
    # This service's own client (one allowed to introspect tokens) for the revocation feed.
    "RESOURCE_CLIENT_ID": None,
    "RESOURCE_CLIENT_SECRET": None,
    # How it authenticates there, as its client is registered on the issuer (see
    # oauth_cc/resource/feed_auth.py): "client_secret_basic" (GET with HTTP Basic),
    # "client_secret_post" (POST, the secret in the form) or "private_key_jwt" (POST, a fresh
    # RFC 7523 assertion signed with RESOURCE_CLIENT_PRIVATE_KEY: a PEM private key or a private
    # JWK, as JSON or a dict). RESOURCE_CLIENT_KEY_ID / _KEY_ALG: the kid and alg its header
    # names; None takes the key's own (or no kid, and the usual algorithm of its key type).
    "RESOURCE_CLIENT_AUTH_METHOD": "client_secret_basic",
    "RESOURCE_CLIENT_PRIVATE_KEY": None,
    "RESOURCE_CLIENT_KEY_ID": None,
    "RESOURCE_CLIENT_KEY_ALG": None,
    # Seconds between two polls of the issuer's revocation feed (one worker per poll site-wide).
    "REVOCATION_FEED_POLL_SECONDS": 2.0,
    # When the feed has not been read for REVOCATION_FEED_STALE_SECONDS: "keep" serves with the
    # last state (logged), "refuse" answers 503 until the feed is read again.
    "REVOCATION_FEED_UNREACHABLE": "keep",
    "REVOCATION_FEED_STALE_SECONDS": 30,
    "REVOCATION_FEED_MAX_BYTES": 16 * 1024 * 1024,
    # The issuer's metadata and JWKS: fetch deadline and size cap.
    "ISSUER_FETCH_TIMEOUT": 3.0,
    "ISSUER_FETCH_MAX_BYTES": 64 * 1024,
    # How long past their Cache-Control max-age the last good issuer keys are used while the
    # issuer cannot be reached; after that, protected views answer 503.
    "ISSUER_KEYS_MAX_STALE_SECONDS": 3600,
    # Seconds between two fetches for a kid the service does not know (per site).
    "ISSUER_UNKNOWN_KID_REFETCH_SECONDS": 5.0,
    # Allow http:// and private/loopback addresses for the issuer (development and tests only).
    "ISSUER_ALLOW_INSECURE": False,
    # DPoP (RFC 9449, oauth_cc/common/dpop.py): how old (by its iat, plus LEEWAY) a proof may be;
    # whether proofs must carry a server nonce (DPoP-Nonce), and how long a nonce's time
    # window is (a nonce is accepted in its window and the next); where single use of proof
    # ids is recorded: "database" (UsedAssertion) or "cache" (CACHE_ALIAS, shared by all hosts).
    "DPOP_PROOF_MAX_AGE": 60,
    "DPOP_REQUIRE_NONCE": False,
    "DPOP_NONCE_LIFETIME": 300,
    "DPOP_REPLAY_STORE": "database",
}

#: Settings holding a rate string (or None), checked by oauth_cc.E010.
RATE_SETTINGS = (
    "TOKEN_RATE_LIMIT",
    "FAILED_AUTH_RATE_PER_CLIENT_ID",
    "FAILED_AUTH_RATE_PER_ADDRESS",
    "REVOCATION_FEED_RATE",
)

#: Cache backends whose data each process keeps to itself: nothing set by one worker is seen by
#: another, so they carry no state between the workers and hosts of a site, and a limit counted
#: there is per worker.
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)

IMPORT_STRINGS = ("CLAIMS_HOOK",)


class OAuthCCSettings:
    """Attribute access to ``settings.OAUTH_CC`` merged over :data:`DEFAULTS`."""

    def __init__(self) -> None:
        self._cached: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "OAUTH_CC", {}) or {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Invalid oauth_cc setting: {name!r}")
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        # Cache as an instance attribute: later reads skip __getattr__ entirely (the hot paths
        # read several settings per request). reload() removes them again.
        self._cached[name] = value
        setattr(self, name, value)
        return value

    @property
    def issuer(self) -> str:
        """``ISSUER`` without a trailing slash (read on every token request, so cached)."""
        if "_issuer" not in self._cached:
            self._cached["_issuer"] = str(self.ISSUER).rstrip("/") if self.ISSUER else ""
        return cast(str, self._cached["_issuer"])  # set just above, or before, as a str

    @property
    def resource_identifier(self) -> str:
        if "_resource" not in self._cached:
            self._cached["_resource"] = str(self.RESOURCE_IDENTIFIER or self.issuer)
        return cast(str, self._cached["_resource"])  # as above

    @property
    def shared_state_timeout(self) -> int:
        """Lifetime of shared-cache entries: the refresh interval in whole seconds, at least 1.

        Some cache backends (Redis) truncate timeouts to integers, and a timeout of 0 means
        "delete now", so a sub-second interval would otherwise defeat the shared cache.
        """
        return max(1, math.ceil(float(self.STATE_REFRESH_SECONDS)))

    @property
    def resource_only(self) -> bool:
        """True on a resource-only service: ``oauth_cc.resource`` is installed, not ``oauth_cc``."""
        if "_resource_only" not in self._cached:
            from django.apps import apps

            self._cached["_resource_only"] = apps.is_installed("oauth_cc.resource")
        return cast(bool, self._cached["_resource_only"])

    def reload(self) -> None:
        for name in self._cached:
            if name in DEFAULTS:
                delattr(self, name)
        self._cached.clear()


oauth_cc_settings = OAuthCCSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("OAUTH_CC", "CACHES"):
        oauth_cc_settings.reload()
        # Caches built from settings must follow the settings: each registered its reset.
        resets.reset_all()


setting_changed.connect(_reload)
