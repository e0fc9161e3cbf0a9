"""Issuer side: a DOT scopes backend that serves the scopes stored in the database.

Set ``OAUTH2_PROVIDER = {"SCOPES_BACKEND_CLASS": "oauth_cc.scopes.DatabaseScopes"}`` so every
DOT view and permission class sees the same scopes as oauth_cc.
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes


class DatabaseScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        from .models import Scope

        return dict(Scope.objects.values_list("name", "description"))

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        from .models import Scope

        queryset = Scope.objects.all() if application is None else application.scopes.all()
        return list(queryset.values_list("name", flat=True))

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        from .models import Scope

        queryset = Scope.objects.all() if application is None else application.scopes.all()
        return list(queryset.filter(is_default=True).values_list("name", flat=True))
