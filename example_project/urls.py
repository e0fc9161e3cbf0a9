from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from example_project import home
from example_project.demo import views

handler400 = "example_project.errors.bad_request"
handler403 = "example_project.errors.permission_denied"
handler404 = "example_project.errors.page_not_found"
handler500 = "example_project.errors.server_error"

urlpatterns = [
    path("", home.home, name="home"),
    path("favicon.ico", home.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("", include("oauth_cc.urls")),
    path("api/reports/", views.ReportList.as_view(), name="reports"),
    path("api/whoami/", views.WhoAmI.as_view(), name="whoami"),
    path("api/ping/", views.Ping.as_view(), name="ping"),
    path("api/health/", views.Health.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
