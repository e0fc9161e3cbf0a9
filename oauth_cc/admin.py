"""Admin screens (placeholder, replaced by the full admin)."""

from django.contrib import admin
from oauth2_provider import admin as dot_admin  # noqa: F401  (DOT registers first, then we replace)
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from .models import Application, Scope

for model in (Application, get_access_token_model(), get_grant_model(), get_id_token_model(), get_refresh_token_model()):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

admin.site.register(Scope)
admin.site.register(Application)
