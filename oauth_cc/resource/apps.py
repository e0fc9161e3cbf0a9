"""Resource side: the resource-only Django app (``"oauth_cc.resource"``) and its settings checks."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import Error, Tags, Warning, register


class ResourceConfig(AppConfig):
    name = "oauth_cc.resource"
    label = "oauth_cc_resource"
    verbose_name = "OAuth client credentials (resource only)"

    def ready(self) -> None:
        register(check_resource_settings)
        register(check_resource_deployment, Tags.security, deploy=True)
        from .. import verification
        from . import sync

        # The issuer's keys and revocation feed, the poller started by the first check.
        verification.use_sources(
            resource_only=True,
            sources=verification.Sources(
                keys=sync.issuer_keys, revocation=sync.feed_state, before_check=sync.ensure_running
            ),
        )


def check_resource_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from ..conf import oauth_cc_settings
    from ..mtls import settings_errors

    errors = []
    if apps.is_installed("oauth_cc"):
        errors.append(
            Error(
                '"oauth_cc" and "oauth_cc.resource" are both in INSTALLED_APPS.',
                hint='An issuer checks its own tokens: keep "oauth_cc" only.',
                id="oauth_cc.E101",
            )
        )
    for name in ("ISSUER", "RESOURCE_IDENTIFIER", "RESOURCE_CLIENT_ID", "RESOURCE_CLIENT_SECRET"):
        if not getattr(oauth_cc_settings, name):
            errors.append(
                Error(
                    f"OAUTH_CC['{name}'] is required on a resource-only service.",
                    hint="See the README, 'Resource-only services'.",
                    id="oauth_cc.E102",
                )
            )
    if oauth_cc_settings.REVOCATION_FEED_UNREACHABLE not in ("keep", "refuse"):
        errors.append(
            Error(
                'OAUTH_CC[\'REVOCATION_FEED_UNREACHABLE\'] must be "keep" or "refuse".',
                id="oauth_cc.E103",
            )
        )
    store = oauth_cc_settings.user_settings.get("DPOP_REPLAY_STORE", "cache")
    if store != "cache":
        # The default, "database", is the issuer's UsedAssertion table, which is not here.
        errors.append(
            Error(
                f"OAUTH_CC['DPOP_REPLAY_STORE'] is {store!r}; a resource-only service has no oauth_cc "
                'tables, so DPoP proof ids are recorded in the cache: leave it unset or set "cache".',
                hint="Use a cache every host of the service shares (Redis, memcached) as CACHE_ALIAS.",
                id="oauth_cc.E104",
            )
        )
    errors.extend(settings_errors(oauth_cc_settings.user_settings))
    return errors


def check_resource_deployment(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W109 (``check --deploy``): a per-process cache on a resource-only service."""
    from django.conf import settings

    from ..conf import PER_PROCESS_CACHES, oauth_cc_settings

    alias = oauth_cc_settings.CACHE_ALIAS
    backend = (getattr(settings, "CACHES", {}) or {}).get(alias, {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        Warning(
            f"The cache {alias!r} (OAUTH_CC['CACHE_ALIAS']) is {backend.rsplit('.', 1)[-1]}, which each "
            "process keeps to itself.",
            hint=(
                "On a resource-only service it records DPoP proof ids: per process, a proof used on one "
                "worker can be replayed on another, and each worker reads the issuer's keys and "
                "revocation feed itself. Use a shared cache (Redis, memcached)."
            ),
            id="oauth_cc.W109",
        )
    ]
