"""URLs of the resource-only service (example_project.resource_settings): the /api/ views alone."""

from django.urls import path

from example_project.demo import views

handler400 = "example_project.errors.bad_request"
handler403 = "example_project.errors.permission_denied"
handler404 = "example_project.errors.page_not_found"
handler500 = "example_project.errors.server_error"

urlpatterns = [
    path("api/reports/", views.ReportList.as_view(), name="reports"),
    path("api/whoami/", views.WhoAmI.as_view(), name="whoami"),
    path("api/ping/", views.Ping.as_view(), name="ping"),
    path("api/health/", views.Health.as_view(), name="health"),
]
