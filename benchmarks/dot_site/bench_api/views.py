"""The two resource views of the DOT baseline.

PingView is the protected endpoint: DOT's DRF authentication looks the opaque
bearer token up in the database and TokenHasScope checks its scope.
HealthView does no authentication at all; it is the ceiling for what a DRF
view costs on this stack.
"""

from __future__ import annotations

from oauth2_provider.contrib.rest_framework import OAuth2Authentication, TokenHasScope
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class PingView(APIView):
    authentication_classes = [OAuth2Authentication]
    permission_classes = [TokenHasScope]
    required_scopes = ["reports:read"]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class HealthView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})
