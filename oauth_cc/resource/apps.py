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
        from ..common import verification
        from . import sync

        # The issuer's keys and revocation feed, the poller started by the first check.
        verification.use_sources(
            resource_only=True,
            sources=verification.Sources(
                keys=sync.issuer_keys, revocation=sync.feed_state, before_check=sync.ensure_running
            ),
        )


def check_resource_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The settings a resource-only service reads: the issuer's rules for the shared ones
    (:mod:`oauth_cc.common.setting_checks`: E004, E005/W001, E007, E009, E015) and E101-E106
    for its own."""
    from django.conf import settings

    from ..common import setting_checks
    from ..common.mtls import settings_errors

    errors: list[Any] = []
    if apps.is_installed("oauth_cc"):
        errors.append(
            Error(
                '"oauth_cc" and "oauth_cc.resource" are both in INSTALLED_APPS.',
                hint='An issuer checks its own tokens: keep "oauth_cc" only.',
                id="oauth_cc.E101",
            )
        )
    user = getattr(settings, "OAUTH_CC", {})
    if not isinstance(user, dict):
        errors.append(Error("OAUTH_CC must be a dict.", id="oauth_cc.E003"))
        return errors
    errors.extend(setting_checks.unknown_setting_errors(user))
    errors.extend(_required_errors(user))
    if user.get("ISSUER"):  # missing: E102 says so
        errors.extend(setting_checks.issuer_errors(user))
    errors.extend(setting_checks.numeric_errors(user, setting_checks.RESOURCE_NUMERIC_SETTINGS))
    errors.extend(setting_checks.cache_alias_errors(user))
    errors.extend(setting_checks.throttle_rate_errors())
    if user.get("REVOCATION_FEED_UNREACHABLE", "keep") not in ("keep", "refuse"):
        errors.append(
            Error(
                'OAUTH_CC[\'REVOCATION_FEED_UNREACHABLE\'] must be "keep" or "refuse".',
                id="oauth_cc.E103",
            )
        )
    store = user.get("DPOP_REPLAY_STORE", "cache")
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
    errors.extend(settings_errors(user))
    return errors


def _required_errors(user: dict[str, Any]) -> list[Any]:
    """E102 (a required setting missing), E105 (an unknown feed method), E106 (an unusable key)."""
    from . import feed_auth

    method = user.get("RESOURCE_CLIENT_AUTH_METHOD", feed_auth.CLIENT_SECRET_BASIC)
    required = ["ISSUER", "RESOURCE_IDENTIFIER", "RESOURCE_CLIENT_ID"]
    errors: list[Any] = []
    if method in feed_auth.SECRET_METHODS:
        required.append("RESOURCE_CLIENT_SECRET")
    elif method == feed_auth.PRIVATE_KEY_JWT:
        required.append("RESOURCE_CLIENT_PRIVATE_KEY")
    else:
        errors.append(
            Error(
                "OAUTH_CC['RESOURCE_CLIENT_AUTH_METHOD'] must be one of "
                + ", ".join(f'"{m}"' for m in feed_auth.AUTH_METHODS)
                + ".",
                hint="Use the method the service's client is registered with on the issuer.",
                id="oauth_cc.E105",
            )
        )
    for name in required:
        if not user.get(name):
            needed_by = "" if name in required[:3] else f' whose RESOURCE_CLIENT_AUTH_METHOD is "{method}"'
            errors.append(
                Error(
                    f"OAUTH_CC['{name}'] is required on a resource-only service{needed_by}.",
                    hint="See the README, 'Resource-only services'.",
                    id="oauth_cc.E102",
                )
            )
    if method == feed_auth.PRIVATE_KEY_JWT and user.get("RESOURCE_CLIENT_PRIVATE_KEY"):
        try:
            feed_auth.load_signing_key(
                user["RESOURCE_CLIENT_PRIVATE_KEY"],
                kid=user.get("RESOURCE_CLIENT_KEY_ID"),
                alg=user.get("RESOURCE_CLIENT_KEY_ALG"),
            )
        except Exception as exc:
            # KeyProblem says what to fix; anything else is a library refusing the key in a way
            # load_signing_key does not foresee: still E106, never a traceback from `check`, and
            # named by its type only (its message may quote the key).
            problem = (
                str(exc)
                if isinstance(exc, feed_auth.KeyProblem)
                else "OAUTH_CC['RESOURCE_CLIENT_PRIVATE_KEY'] could not be loaded "
                f"({type(exc).__name__}); check that it was copied whole."
            )
            errors.append(
                Error(
                    problem,
                    hint=(
                        "Give the private key whose public half is registered for the service's client "
                        "on the issuer (an unencrypted PEM, or a private JWK), and the kid and alg it is "
                        "registered with; see the README, 'Resource-only services'."
                    ),
                    id="oauth_cc.E106",
                )
            )
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
