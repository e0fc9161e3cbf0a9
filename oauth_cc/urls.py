"""Issuer side: URLs. Include at the site root so the ``.well-known`` documents land where RFC 8414 wants
them::

path("", include("oauth_cc.urls")),
"""

from django.urls import path

from . import views

app_name = "oauth_cc"

urlpatterns = [
    path("oauth/token/", views.token, name="token"),
    path("oauth/introspect/", views.introspect, name="introspect"),
    path("oauth/revoke/", views.revoke, name="revoke"),
    path("oauth/revocation-feed/", views.revocation_feed, name="revocation_feed"),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
    path(".well-known/oauth-authorization-server", views.server_metadata, name="metadata"),
    # The same endpoints without the trailing slash: Django's APPEND_SLASH would answer a POST
    # there with a redirect that drops the body (or, with DEBUG on, a RuntimeError).
    path("oauth/token", views.token),
    path("oauth/introspect", views.introspect),
    path("oauth/revoke", views.revoke),
]
