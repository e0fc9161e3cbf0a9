"""Test-only URLs: the example project's, plus views that show what a protected view sees."""

from __future__ import annotations

from django.urls import path
from oauth2_provider.contrib.rest_framework import TokenHasScope
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from example_project.urls import urlpatterns as example_urlpatterns
from oauth_cc.contrib.rest_framework import ClientRateThrottle


class Me(APIView):
    """Any valid token; reports ``request.user`` (the run-as user) and ``request.auth``."""

    required_scopes: list[str] = []

    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "user": user.get_username() if user.is_authenticated else None,
                "is_anonymous": user.is_anonymous,
                "client_id": request.auth.client_id,
                "scopes": sorted(request.auth.scopes),
                "claims": dict(request.auth.claims),
            }
        )


class DotScoped(APIView):
    """Protected by DOT's own permission class, to show it accepts oauth_cc's tokens."""

    permission_classes = [TokenHasScope]
    required_scopes = ["reports:read"]

    def get(self, request: Request) -> Response:
        return Response({"client_id": request.auth.client_id})


class Throttled(APIView):
    """Any valid token, throttled per client by ``ClientRateThrottle`` (scope "oauth_cc_client")."""

    required_scopes: list[str] = []
    throttle_classes = [ClientRateThrottle]

    def get(self, request: Request) -> Response:
        return Response({"client_id": request.auth.client_id})


urlpatterns = [
    *example_urlpatterns,
    path("api/me/", Me.as_view(), name="me"),
    path("api/dot-scoped/", DotScoped.as_view(), name="dot-scoped"),
    path("api/throttled/", Throttled.as_view(), name="throttled"),
]
