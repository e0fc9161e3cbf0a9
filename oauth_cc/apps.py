from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OAuthCCConfig(AppConfig):
    name = "oauth_cc"
    verbose_name = _("OAuth client credentials")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401  (registers checks and signal receivers)
