from django.contrib import admin
from django.urls import include, path

from example_project.demo import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("oauth_cc.urls")),
    path("api/reports/", views.ReportList.as_view(), name="reports"),
    path("api/whoami/", views.WhoAmI.as_view(), name="whoami"),
    path("api/ping/", views.Ping.as_view(), name="ping"),
    path("api/health/", views.Health.as_view(), name="health"),
]
