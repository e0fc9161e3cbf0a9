"""Issuer side: system checks. Each id is stable and documented in the README."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .common import mtls
from .common.algorithms import ACCESS_TOKEN_ALGORITHMS
from .common.ratelimit import RateError, parse_optional_rate
from .common.setting_checks import (
    NUMERIC_SETTINGS,
    cache_alias_errors,
    issuer_errors,
    numeric_errors,
    throttle_rate_errors,
    unknown_setting_errors,
)
from .conf import DEFAULTS, PER_PROCESS_CACHES, RATE_SETTINGS, oauth_cc_settings
from .issuer import key_encryption

#: Re-exported: the table lives in setting_checks, shared with the resource-only app's checks.
__all__ = ["NUMERIC_SETTINGS", "check_deployment", "check_settings"]


@register(Tags.security, "oauth_cc")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    if getattr(settings, "OAUTH2_PROVIDER_APPLICATION_MODEL", None) != "oauth_cc.Application":
        errors.append(
            Error(
                "oauth_cc's Application model is not swapped in for DOT's.",
                hint='Set OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth_cc.Application" in your settings.',
                id="oauth_cc.E001",
            )
        )
    for app, label in (
        ("rest_framework", "Django REST framework"),
        ("oauth2_provider", "django-oauth-toolkit"),
    ):
        if not apps.is_installed(app):
            errors.append(
                Error(
                    f"{label} is not in INSTALLED_APPS.",
                    hint=f'Add "{app}" to INSTALLED_APPS.',
                    id="oauth_cc.E002",
                )
            )
    user = getattr(settings, "OAUTH_CC", {})
    if not isinstance(user, dict):
        errors.append(Error("OAUTH_CC must be a dict.", id="oauth_cc.E003"))
        return errors
    errors.extend(unknown_setting_errors(user))
    errors.extend(issuer_errors(user))
    if user.get("SIGNING_ALGORITHM", DEFAULTS["SIGNING_ALGORITHM"]) not in ACCESS_TOKEN_ALGORITHMS:
        errors.append(
            Error(
                f"OAUTH_CC['SIGNING_ALGORITHM'] must be one of {', '.join(ACCESS_TOKEN_ALGORITHMS)}.",
                id="oauth_cc.E006",
            )
        )
    errors.extend(numeric_errors(user))
    lifetime = user.get("ACCESS_TOKEN_LIFETIME", DEFAULTS["ACCESS_TOKEN_LIFETIME"])
    if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool) and lifetime > 24 * 3600:
        errors.append(
            Warning(
                "OAUTH_CC['ACCESS_TOKEN_LIFETIME'] is longer than a day.",
                hint="Access tokens are bearer credentials; keep them short-lived (an hour is the default).",
                id="oauth_cc.W002",
            )
        )
    try:
        _ = oauth_cc_settings.CLAIMS_HOOK
    except (ImportError, ImproperlyConfigured) as exc:
        errors.append(
            Error(
                f"OAUTH_CC['CLAIMS_HOOK'] cannot be imported: {exc}.",
                hint='Give the dotted path of a function, like "myproject.tokens.claims".',
                id="oauth_cc.E008",
            )
        )
    errors.extend(cache_alias_errors(user))
    dot = getattr(settings, "OAUTH2_PROVIDER", {}) or {}
    if dot.get("SCOPES_BACKEND_CLASS") not in ("oauth_cc.scopes.DatabaseScopes",):
        errors.append(
            Warning(
                "DOT's scopes backend is not oauth_cc's, so DOT views would see other scopes than oauth_cc.",
                hint='Set OAUTH2_PROVIDER = {"SCOPES_BACKEND_CLASS": "oauth_cc.scopes.DatabaseScopes"}.',
                id="oauth_cc.W003",
            )
        )
    if user.get("JWKS_URI_ALLOW_INSECURE") and not settings.DEBUG:
        errors.append(
            Warning(
                "OAUTH_CC['JWKS_URI_ALLOW_INSECURE'] is on outside DEBUG.",
                hint=(
                    "It lets clients register http:// and private-address key URLs; "
                    "turn it off in production."
                ),
                id="oauth_cc.W004",
            )
        )
    errors.extend(_rate_limit_errors(user))
    errors.extend(throttle_rate_errors())
    if user.get("DPOP_REPLAY_STORE", DEFAULTS["DPOP_REPLAY_STORE"]) not in ("database", "cache"):
        errors.append(
            Error(
                'OAUTH_CC[\'DPOP_REPLAY_STORE\'] must be "database" or "cache".',
                id="oauth_cc.E020",
            )
        )
    problem = key_encryption.settings_problem(user.get("KEY_ENCRYPTION_KEYS"))
    if problem:
        errors.append(
            Error(
                f"OAUTH_CC['KEY_ENCRYPTION_KEYS'] {problem}.",
                hint="Generate a key with: manage.py oauth_cc key generate-encryption-key",
                id="oauth_cc.E012",
            )
        )
    return errors


#: Above these, a deployment is probably mistaken; each is a warning under ``check --deploy``.
DEPLOY_MAX_REFRESH_SECONDS = 60
DEPLOY_MAX_LEEWAY_SECONDS = 300


@register(Tags.security, "oauth_cc", deploy=True)
def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """What ``manage.py check --deploy`` adds: settings that are fine locally, wrong in production.

    Ids W1xx are reserved for these; they never run without ``--deploy``.
    """
    user = getattr(settings, "OAUTH_CC", {})
    if not isinstance(user, dict):
        return []  # E003 already says so
    warnings: list[Any] = []
    issuer = user.get("ISSUER")
    if isinstance(issuer, str) and urlsplit(issuer).scheme == "http":
        warnings.append(
            Warning(
                "OAUTH_CC['ISSUER'] is not an https:// URL.",
                hint=(
                    "Client secrets and tokens cross the token endpoint; serve it over https and set "
                    'ISSUER to the https URL, like "https://auth.example.com".'
                ),
                id="oauth_cc.W101",
            )
        )
    if user.get("JWKS_URI_ALLOW_INSECURE"):
        warnings.append(
            Warning(
                "OAUTH_CC['JWKS_URI_ALLOW_INSECURE'] is on.",
                hint=(
                    "It lets clients register http:// and private-address jwks_uri values, which the "
                    "server then fetches; remove it in production."
                ),
                id="oauth_cc.W102",
            )
        )
    alias = user.get("CACHE_ALIAS", DEFAULTS["CACHE_ALIAS"])
    backend = (getattr(settings, "CACHES", {}).get(alias) or {}).get("BACKEND", "")
    if backend in PER_PROCESS_CACHES:
        warnings.append(
            Warning(
                f"The cache {alias!r} (OAUTH_CC['CACHE_ALIAS']) is {backend.rsplit('.', 1)[-1]}, "
                "which each process keeps to itself.",
                hint=(
                    "With several workers or hosts, each then learns of revocations only from its own "
                    "database refresh and counts its own limits. Use a shared cache (Redis, Memcached)."
                ),
                id="oauth_cc.W103",
            )
        )
    refresh = user.get("STATE_REFRESH_SECONDS", DEFAULTS["STATE_REFRESH_SECONDS"])
    if _is_number(refresh) and refresh > DEPLOY_MAX_REFRESH_SECONDS:
        warnings.append(
            Warning(
                f"OAUTH_CC['STATE_REFRESH_SECONDS'] is {refresh:g}: a disabled client or a revoked "
                f"token stays usable on other workers for up to that long.",
                hint=f"Keep it at {DEPLOY_MAX_REFRESH_SECONDS} seconds or less (the default is "
                f"{DEFAULTS['STATE_REFRESH_SECONDS']:g}).",
                id="oauth_cc.W104",
            )
        )
    leeway = user.get("LEEWAY", DEFAULTS["LEEWAY"])
    if _is_number(leeway) and leeway > DEPLOY_MAX_LEEWAY_SECONDS:
        warnings.append(
            Warning(
                f"OAUTH_CC['LEEWAY'] is {leeway:g} seconds: expired tokens and assertions are accepted "
                "for that long.",
                hint=f"Clock skew between hosts is seconds; keep it at {DEPLOY_MAX_LEEWAY_SECONDS} or less.",
                id="oauth_cc.W105",
            )
        )
    return warnings


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rate_limit_errors(user: dict[str, Any]) -> list[Any]:
    errors: list[Any] = []
    for name in RATE_SETTINGS:
        try:
            parse_optional_rate(user.get(name, DEFAULTS[name]))
        except RateError as exc:
            errors.append(
                Error(
                    f"OAUTH_CC['{name}'] is not a rate: {exc}",
                    hint="Use None to turn this limit off; see the README's Rate limits section.",
                    id="oauth_cc.E010",
                )
            )
    header = user.get("CLIENT_IP_HEADER")
    if header is not None and (not isinstance(header, str) or not re.fullmatch(r"HTTP_[A-Z0-9_]+", header)):
        errors.append(
            Error(
                "OAUTH_CC['CLIENT_IP_HEADER'] must be None or a request.META header name "
                'like "HTTP_X_FORWARDED_FOR".',
                hint="Set it only when every request reaches the site through a proxy that writes it.",
                id="oauth_cc.E011",
            )
        )
    errors.extend(mtls.settings_errors(user))
    return errors


@register(Tags.security, "oauth_cc", deploy=True)
def check_rate_limit_cache(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W106: limits counted in a per-process cache hold per worker, not per site."""
    user = getattr(settings, "OAUTH_CC", {})
    if not isinstance(user, dict):
        return []
    limits_on = any(user.get(name, DEFAULTS[name]) is not None for name in RATE_SETTINGS)
    throttled = "oauth_cc.contrib.rest_framework.ClientRateThrottle" in str(
        (getattr(settings, "REST_FRAMEWORK", {}) or {}).get("DEFAULT_THROTTLE_CLASSES", ())
    )
    alias = user.get("CACHE_ALIAS", DEFAULTS["CACHE_ALIAS"])
    backend = (getattr(settings, "CACHES", {}) or {}).get(alias, {}).get("BACKEND", "")
    if (limits_on or throttled) and backend in PER_PROCESS_CACHES:
        return [
            Warning(
                f"oauth_cc's rate limits are on but the cache {alias!r} is {backend.rsplit('.', 1)[-1]}, "
                "which each worker process keeps to itself.",
                hint=(
                    "Each worker then counts on its own, so the limits multiply by the number of "
                    "workers (DummyCache counts nothing). Point OAUTH_CC['CACHE_ALIAS'] at Redis "
                    "or memcached."
                ),
                id="oauth_cc.W106",
            )
        ]
    return []


@register(Tags.security, "oauth_cc", deploy=True)
def check_key_encryption_deploy(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W107 (``check --deploy`` only): the signing keys are encrypted under the SECRET_KEY derivation."""
    user = getattr(settings, "OAUTH_CC", {})
    if isinstance(user, dict) and user.get("KEY_ENCRYPTION_KEYS") is None:
        return [
            Warning(
                "The signing keys are encrypted with a key derived from SECRET_KEY.",
                hint=(
                    "Whoever has SECRET_KEY and a database dump has the signing keys. Set "
                    "OAUTH_CC['KEY_ENCRYPTION_KEYS'] to a key kept apart from both (manage.py oauth_cc "
                    "key generate-encryption-key), then run: manage.py oauth_cc key reencrypt"
                ),
                id="oauth_cc.W107",
            )
        ]
    return []


@register(Tags.database, "oauth_cc")
def check_stored_keys(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Signing keys no configured key can decrypt, or stored unencrypted or under an old key.

    A database check: it runs with ``check --database default`` and before ``migrate``, not at
    every start (it queries the signing-key table).
    """
    from django.db import DatabaseError

    from .models import SigningKey

    if not databases or SigningKey.objects.db not in databases:
        return []
    if key_encryption.settings_problem(oauth_cc_settings.KEY_ENCRYPTION_KEYS):
        return []  # E010 says what to fix first
    try:
        rows = list(SigningKey.objects.values_list("kid", "state", "private_jwk"))
    except DatabaseError:
        return []  # not migrated yet
    found: dict[key_encryption.Storage, list[str]] = {}
    retired_unreadable: list[str] = []
    for kid, key_state, stored in rows:
        kind = key_encryption.storage(stored)
        if kind is key_encryption.Storage.UNREADABLE and key_state == "retired":
            # A retired key only verifies, with its public half: it does no harm and is
            # deleted when its tokens expire, so it must not block deployments (migrate runs
            # database checks) as an error would.
            retired_unreadable.append(kid)
        else:
            found.setdefault(kind, []).append(kid)
    messages: list[Any] = []
    unreadable = found.get(key_encryption.Storage.UNREADABLE)
    if unreadable:
        messages.append(
            Error(
                f"No configured key decrypts signing key(s) {', '.join(sorted(unreadable))}.",
                hint=(
                    "Add the key they were encrypted with to OAUTH_CC['KEY_ENCRYPTION_KEYS'] (or the old "
                    "SECRET_KEY to SECRET_KEY_FALLBACKS). The token endpoint answers 503 while the "
                    "current key is unreadable."
                ),
                id="oauth_cc.E013",
            )
        )
    if retired_unreadable:
        messages.append(
            Warning(
                f"No configured key decrypts retired signing key(s) {', '.join(sorted(retired_unreadable))}.",
                hint=(
                    "Harmless for tokens (retired keys only verify, with their public half), but "
                    "key reencrypt refuses to run until they are deleted when their tokens expire, "
                    "or until their key is added back to OAUTH_CC['KEY_ENCRYPTION_KEYS']."
                ),
                id="oauth_cc.W007",
            )
        )
    stale = found.get(key_encryption.Storage.PLAINTEXT, []) + found.get(key_encryption.Storage.OLDER_KEY, [])
    if stale:
        messages.append(
            Warning(
                f"Signing key(s) {', '.join(sorted(stale))} are stored unencrypted or under a key "
                "that no longer encrypts.",
                hint="Run: manage.py oauth_cc key reencrypt",
                id="oauth_cc.W006",
            )
        )
    return messages


#: Database engines whose driver waits for the operating system's TCP timeout (minutes) to
#: connect to a server that does not answer, unless OPTIONS["connect_timeout"] says otherwise.
CONNECT_TIMEOUT_ENGINES = ("django.db.backends.postgresql", "django.db.backends.mysql")


@register(Tags.security, "oauth_cc", deploy=True)
def check_connect_timeout(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W108: see :func:`connect_timeout_warnings`."""
    return connect_timeout_warnings(getattr(settings, "DATABASES", {}))


def connect_timeout_warnings(databases: dict[str, Any]) -> list[Any]:
    """W108: during an outage every probe of an unanswering database would hold a worker for minutes."""
    warnings: list[Any] = []
    for alias, config in databases.items():
        engine = config.get("ENGINE", "")
        if engine in CONNECT_TIMEOUT_ENGINES and "connect_timeout" not in (config.get("OPTIONS") or {}):
            warnings.append(
                Warning(
                    f"DATABASES[{alias!r}] has no connect_timeout.",
                    hint=(
                        'Set DATABASES["' + alias + '"]["OPTIONS"]["connect_timeout"] to a few seconds '
                        "(or ?connect_timeout=3 in DATABASE_URL), so that during a database outage a "
                        "request fails fast with a 503 instead of waiting minutes to connect."
                    ),
                    id="oauth_cc.W108",
                )
            )
    return warnings
