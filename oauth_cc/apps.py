"""Issuer side: the issuer's Django app (``"oauth_cc"``): checks, receivers, token check sources."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OAuthCCConfig(AppConfig):
    name = "oauth_cc"
    verbose_name = _("OAuth client credentials")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (checks, receivers: registered on import)
        from .common import verification
        from .issuer import receivers  # noqa: F401  (checks, receivers: registered on import)
        from .issuer.keys import key_store
        from .issuer.revocation import revocation_state

        # This site's own keys and database revocation state check the tokens it issued.
        verification.use_sources(
            resource_only=False,
            sources=verification.Sources(keys=key_store, revocation=revocation_state),
        )

        try:
            import drf_spectacular  # noqa: F401
        except ImportError:
            return
        # Defining the extension registers it: drf-spectacular then describes the oauth_cc
        # security scheme and each view's scopes (see oauth_cc.openapi).
        from . import openapi  # noqa: F401
