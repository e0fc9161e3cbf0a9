from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OAuthCCConfig(AppConfig):
    name = "oauth_cc"
    verbose_name = _("OAuth client credentials")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401  (registers checks and signal receivers)

        try:
            import drf_spectacular  # noqa: F401
        except ImportError:
            return
        # Defining the extension registers it: drf-spectacular then describes the oauth_cc
        # security scheme and each view's scopes (see oauth_cc.openapi).
        from . import openapi  # noqa: F401
