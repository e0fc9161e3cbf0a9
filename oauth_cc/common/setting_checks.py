"""Both sides: settings checks shared by the issuer's system checks and the resource-only app's.

The issuer's checks (:mod:`oauth_cc.checks`) and a resource-only service's
(:mod:`oauth_cc.resource.apps`) read the same ``OAUTH_CC`` dict; the rules for the settings both
read live here once, with their ids: E004 (unknown name), E005/W001 (``ISSUER``), E007 (numbers),
E009 (``CACHE_ALIAS``) and E015 (the DRF throttle's rate, in ``REST_FRAMEWORK``). Each function
takes the user's dict (already known to be a dict, E003) and returns the messages; none reads a
model or imports an issuer module.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from ..conf import DEFAULTS
from .ratelimit import RateError, parse_optional_rate

#: Every numeric setting: whether it must be a whole number, and its smallest allowed value.
#: Counts and byte sizes are whole numbers; durations in seconds may be fractions.
NUMERIC_SETTINGS: dict[str, tuple[type, float]] = {
    "ACCESS_TOKEN_LIFETIME": (int, 1),
    "STATE_REFRESH_SECONDS": (float, 0.001),
    "STALE_STATE_MAX_SECONDS": (float, 0),
    "VERIFIED_TOKEN_CACHE_SIZE": (int, 1),
    "VERIFIED_TOKEN_CACHE_BYTES": (int, 1),
    "CLIENT_CACHE_SIZE": (int, 1),
    "SECRET_ROTATION_GRACE": (int, 1),
    "ASSERTION_MAX_LIFETIME": (float, 1),
    "ASSERTION_MAX_AGE": (float, 1),
    "JWKS_URI_TIMEOUT": (float, 0.001),
    "JWKS_URI_MAX_BYTES": (int, 1),
    "JWKS_URI_CACHE_SECONDS": (float, 0),
    "JWKS_MAX_AGE": (int, 0),
    "LAST_USED_WRITE_INTERVAL": (float, 0),
    "LEEWAY": (float, 0),
    "USAGE_FLUSH_SECONDS": (float, 0),
    # The floor: a month of history for the stale report and the charts.
    "USAGE_RETENTION_DAYS": (int, 30),
    "NOT_CACHING_THRESHOLD": (int, 1),
    "TRUSTED_PROXY_COUNT": (int, 1),
    # Resource-only services (oauth_cc.resource).
    "REVOCATION_FEED_POLL_SECONDS": (float, 0.1),
    "REVOCATION_FEED_STALE_SECONDS": (float, 1),
    "REVOCATION_FEED_MAX_BYTES": (int, 1024),
    "ISSUER_FETCH_TIMEOUT": (float, 0.001),
    "ISSUER_FETCH_MAX_BYTES": (int, 1024),
    "ISSUER_KEYS_MAX_STALE_SECONDS": (float, 0),
    "ISSUER_UNKNOWN_KID_REFETCH_SECONDS": (float, 0.1),
    "DPOP_PROOF_MAX_AGE": (float, 1),
    "DPOP_NONCE_LIFETIME": (float, 1),
}

#: The numeric settings a resource-only service reads: the token check (``LEEWAY``, the memo of
#: verified tokens), DPoP proofs, and the issuer's keys and revocation feed. The others serve
#: the issuer only, so a value there is not checked on a resource-only service.
RESOURCE_NUMERIC_SETTINGS: tuple[str, ...] = (
    "LEEWAY",
    "VERIFIED_TOKEN_CACHE_SIZE",
    "VERIFIED_TOKEN_CACHE_BYTES",
    "REVOCATION_FEED_POLL_SECONDS",
    "REVOCATION_FEED_STALE_SECONDS",
    "REVOCATION_FEED_MAX_BYTES",
    "ISSUER_FETCH_TIMEOUT",
    "ISSUER_FETCH_MAX_BYTES",
    "ISSUER_KEYS_MAX_STALE_SECONDS",
    "ISSUER_UNKNOWN_KID_REFETCH_SECONDS",
    "DPOP_PROOF_MAX_AGE",
    "DPOP_NONCE_LIFETIME",
    "TRUSTED_PROXY_COUNT",  # the client address behind proxies (common.ratelimit)
)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def numeric_problem(value: Any, kind: type, minimum: float) -> str:
    """What is wrong with a numeric setting's value, or "" if nothing is."""
    whole = kind is int
    expected = "a whole number" if whole else "a number"
    bound = f"{expected} of at least {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return bound
    if not math.isfinite(value):
        return f"a finite {expected[2:]}"
    if whole and not isinstance(value, int):
        return bound
    if value < minimum:
        return bound
    return ""


def numeric_errors(user: dict[str, Any], names: tuple[str, ...] | None = None) -> list[CheckMessage]:
    """E007 for each of ``names`` (default: every numeric setting) whose value is unusable."""
    errors: list[CheckMessage] = []
    for name in names if names is not None else tuple(NUMERIC_SETTINGS):
        kind, minimum = NUMERIC_SETTINGS[name]
        problem = numeric_problem(user.get(name, DEFAULTS[name]), kind, minimum)
        if problem:
            errors.append(
                Error(
                    f"OAUTH_CC['{name}'] must be {problem}.",
                    hint=f"The default is {DEFAULTS[name]!r}; see the README's Settings table.",
                    id="oauth_cc.E007",
                )
            )
    return errors


def unknown_setting_errors(user: dict[str, Any]) -> list[CheckMessage]:
    """E004: names that are no setting (a typo would otherwise leave the default in force)."""
    unknown = sorted(set(user) - set(DEFAULTS))
    if not unknown:
        return []
    return [
        Error(
            f"Unknown OAUTH_CC setting(s): {', '.join(unknown)}.",
            hint="Check the spelling against the settings listed in the README.",
            id="oauth_cc.E004",
        )
    ]


def issuer_errors(user: dict[str, Any]) -> list[CheckMessage]:
    """E005 when ``ISSUER`` is not a base URL; W001 when it is http:// for a host that is not local."""
    issuer = user.get("ISSUER")
    parts = urlsplit(issuer) if isinstance(issuer, str) else None
    if (
        not parts
        or parts.scheme not in ("https", "http")
        or not parts.netloc
        or parts.query
        or parts.fragment
    ):
        return [
            Error(
                "OAUTH_CC['ISSUER'] must be the site's base URL, like \"https://auth.example.com\".",
                hint="It becomes the iss claim of every token and must not change once tokens are issued.",
                id="oauth_cc.E005",
            )
        ]
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        return [
            Warning(
                "OAUTH_CC['ISSUER'] uses http:// for a host that is not local.",
                hint="Serve the token endpoint over https (RFC 6749 §3.2 requires TLS).",
                id="oauth_cc.W001",
            )
        ]
    return []


def cache_alias_errors(user: dict[str, Any]) -> list[CheckMessage]:
    """E009: ``CACHE_ALIAS`` names no cache of ``CACHES`` (every shared read would raise)."""
    alias = user.get("CACHE_ALIAS", DEFAULTS["CACHE_ALIAS"])
    if isinstance(alias, str) and alias in getattr(settings, "CACHES", {"default": {}}):
        return []
    return [
        Error(
            f"OAUTH_CC['CACHE_ALIAS'] names the cache {alias!r}, which is not in CACHES.",
            hint="Name one of the caches in CACHES, or add it there.",
            id="oauth_cc.E009",
        )
    ]


#: The DRF throttle (:class:`oauth_cc.contrib.rest_framework.ClientRateThrottle`): its dotted
#: path as a site names it, and the scope whose rate it reads.
CLIENT_THROTTLE = "oauth_cc.contrib.rest_framework.ClientRateThrottle"
CLIENT_THROTTLE_SCOPE = "oauth_cc_client"


def throttle_rate_errors() -> list[CheckMessage]:
    """E015: ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["oauth_cc_client"]`` is no rate.

    ClientRateThrottle parses it when DRF creates the throttle, inside a request: a bad value
    would be a server error on every throttled request instead of a message at start-up. Parsed
    here with the throttle's own parser. A missing rate is reported only when the throttle is
    a default class: a site that names it on some views only may give those views their own.
    """
    drf = getattr(settings, "REST_FRAMEWORK", None)
    if not isinstance(drf, dict):
        return []
    rates = drf.get("DEFAULT_THROTTLE_RATES")
    rates = rates if isinstance(rates, dict) else {}
    setting = f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["{CLIENT_THROTTLE_SCOPE}"]'
    if CLIENT_THROTTLE_SCOPE not in rates:
        if CLIENT_THROTTLE not in [str(name) for name in drf.get("DEFAULT_THROTTLE_CLASSES") or ()]:
            return []
        return [
            Error(
                f'REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] names {CLIENT_THROTTLE}, but {setting} '
                "is not set: every request it throttles would fail.",
                hint=f'Set {setting} to a rate like "1000/hour", or to None to turn the throttle off.',
                id="oauth_cc.E015",
            )
        ]
    try:
        parse_optional_rate(rates[CLIENT_THROTTLE_SCOPE])
    except RateError as exc:
        return [
            Error(
                f"{setting} is not a rate: {exc}",
                hint="ClientRateThrottle reads it on each request it throttles; None turns it off.",
                id="oauth_cc.E015",
            )
        ]
    return []
