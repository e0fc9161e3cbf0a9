from bench_api.views import HealthView, PingView
from django.urls import path
from oauth2_provider.views import TokenView

urlpatterns = [
    path("o/token/", TokenView.as_view(), name="token"),
    path("api/ping/", PingView.as_view(), name="ping"),
    path("api/health/", HealthView.as_view(), name="health"),
]
