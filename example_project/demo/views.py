"""The demo API, protected by oauth_cc's DRF classes (set as defaults in settings).

The ``extend_schema`` decorators describe the bodies for the OpenAPI schema at /api/schema/;
the security requirements come from oauth_cc.openapi (the scopes HasScope checks).
"""

from django.db import models
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Report


class StrictCharField(serializers.CharField):
    """A string field that takes only JSON strings (DRF's would store ``0`` as ``"0"``)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ReportSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }

    class Meta:
        model = Report
        fields = ["id", "title", "body", "submitted_by", "created"]
        read_only_fields = ["id", "submitted_by", "created"]


class ReportList(APIView):
    """GET needs reports:read; POST needs reports:write and stores the report."""

    # Not used by the view itself: tells schema generators (and the Postman export) the body.
    serializer_class = ReportSerializer

    required_scopes_by_method = {
        "GET": ["reports:read"],
        "HEAD": ["reports:read"],
        "OPTIONS": [],
        "POST": ["reports:write"],
    }

    @extend_schema(responses=ReportSerializer(many=True))
    def get(self, request):
        reports = Report.objects.all()[:100]
        return Response(ReportSerializer(reports, many=True).data)

    @extend_schema(request=ReportSerializer, responses={201: ReportSerializer})
    def post(self, request):
        serializer = ReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save(submitted_by=request.auth.client_id)
        return Response(serializer.data, status=status.HTTP_201_CREATED)


class WhoAmI(APIView):
    """Any valid token: who the caller is and what it may do."""

    required_scopes: list[str] = []

    @extend_schema(
        responses=inline_serializer(
            "WhoAmI",
            {
                "client_id": serializers.CharField(),
                "scopes": serializers.ListField(child=serializers.CharField()),
            },
        )
    )
    def get(self, request):
        return Response({"client_id": request.auth.client_id, "scopes": sorted(request.auth.scopes)})


class Ping(APIView):
    """A scope-protected view that does no work of its own: what the benchmark measures."""

    required_scopes = ["reports:read"]

    @extend_schema(responses=inline_serializer("Ping", {"ok": serializers.BooleanField()}))
    def get(self, request):
        return Response({"ok": True})


class Health(APIView):
    """Unauthenticated: the benchmark's ceiling for this site."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses=inline_serializer("Health", {"status": serializers.CharField()}))
    def get(self, request):
        return Response({"status": "ok"})
