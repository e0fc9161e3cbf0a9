"""A second service of the example project: the same /api/ views, checking the issuer's tokens.

It issues nothing: ``oauth_cc.resource`` instead of ``oauth_cc`` (no oauth_cc tables, no
django-oauth-toolkit). Keys come from the issuer's JWKS, revocations from its revocation feed,
read with this service's own client (one created with ``--introspect``)::

    python manage.py oauth_cc client create resource-service --introspect --json   # on the issuer
    DJANGO_SETTINGS_MODULE=example_project.resource_settings python manage.py migrate
    DJANGO_SETTINGS_MODULE=example_project.resource_settings OAUTH_CC_ISSUER=http://127.0.0.1:8000 \\
        OAUTH_CC_RESOURCE_IDENTIFIER=http://127.0.0.1:8001 OAUTH_CC_RESOURCE_CLIENT_ID=... \\
        OAUTH_CC_RESOURCE_CLIENT_SECRET=... python manage.py runserver 8001

``make demo`` does this on its own: ``manage.py demo --resource-env FILE`` creates the client and
writes these variables to FILE (mode 0600), which the Makefile sources before starting the service.

Read from the environment besides the example settings' variables: OAUTH_CC_ISSUER,
OAUTH_CC_RESOURCE_IDENTIFIER, OAUTH_CC_RESOURCE_CLIENT_ID, OAUTH_CC_RESOURCE_CLIENT_SECRET,
OAUTH_CC_RESOURCE_CLIENT_AUTH_METHOD (how it reads the feed: "client_secret_basic", the default,
"client_secret_post" or "private_key_jwt"), OAUTH_CC_RESOURCE_CLIENT_PRIVATE_KEY (for
private_key_jwt: a PEM private key or a private JWK in JSON; or OAUTH_CC_RESOURCE_CLIENT_PRIVATE_KEY_FILE,
the path of a file holding it), OAUTH_CC_RESOURCE_CLIENT_KEY_ID and OAUTH_CC_RESOURCE_CLIENT_KEY_ALG
(the kid and alg the client's key is registered with; default: from the key),
OAUTH_CC_REVOCATION_FEED_POLL_SECONDS (default 2), OAUTH_CC_REVOCATION_FEED_UNREACHABLE
("keep" or "refuse"), OAUTH_CC_CLIENT_CERT_HEADER (mutual TLS behind a proxy that sets or clears
that header on every request; unset by default), RESOURCE_DATABASE_URL (default: SQLite file
resource.sqlite3) and OAUTH_CC_CACHE_KEY_PREFIX.
"""

import os

import dj_database_url

from example_project.settings import *  # noqa: F403
from example_project.settings import BASE_DIR, CACHES, DEBUG

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "oauth_cc.resource",
    "example_project.demo",
]

MIDDLEWARE = [
    "example_project.middleware.MalformedRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "example_project.resource_urls"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("RESOURCE_DATABASE_URL") or f"sqlite:///{BASE_DIR / 'resource.sqlite3'}",
        conn_max_age=600,
    )
}

if os.environ.get("OAUTH_CC_CACHE_KEY_PREFIX"):
    CACHES["default"]["KEY_PREFIX"] = os.environ["OAUTH_CC_CACHE_KEY_PREFIX"]

for _name in ("OAUTH2_PROVIDER_APPLICATION_MODEL", "OAUTH2_PROVIDER", "SPECTACULAR_SETTINGS"):
    globals().pop(_name, None)


def _private_key() -> str | None:
    """The feed reader's private key (private_key_jwt): inline, or from a file (a mounted secret)."""
    path = os.environ.get("OAUTH_CC_RESOURCE_CLIENT_PRIVATE_KEY_FILE")
    if path:
        with open(path, encoding="utf-8") as key_file:
            return key_file.read()
    return os.environ.get("OAUTH_CC_RESOURCE_CLIENT_PRIVATE_KEY") or None


OAUTH_CC = {
    "ISSUER": os.environ.get("OAUTH_CC_ISSUER", "http://127.0.0.1:8000"),
    "RESOURCE_IDENTIFIER": os.environ.get("OAUTH_CC_RESOURCE_IDENTIFIER", "http://127.0.0.1:8001"),
    "RESOURCE_CLIENT_ID": os.environ.get("OAUTH_CC_RESOURCE_CLIENT_ID"),
    "RESOURCE_CLIENT_SECRET": os.environ.get("OAUTH_CC_RESOURCE_CLIENT_SECRET"),
    "RESOURCE_CLIENT_AUTH_METHOD": os.environ.get("OAUTH_CC_RESOURCE_CLIENT_AUTH_METHOD")
    or "client_secret_basic",
    "RESOURCE_CLIENT_PRIVATE_KEY": _private_key(),
    "RESOURCE_CLIENT_KEY_ID": os.environ.get("OAUTH_CC_RESOURCE_CLIENT_KEY_ID") or None,
    "RESOURCE_CLIENT_KEY_ALG": os.environ.get("OAUTH_CC_RESOURCE_CLIENT_KEY_ALG") or None,
    "REVOCATION_FEED_POLL_SECONDS": float(os.environ.get("OAUTH_CC_REVOCATION_FEED_POLL_SECONDS", "2")),
    "REVOCATION_FEED_UNREACHABLE": os.environ.get("OAUTH_CC_REVOCATION_FEED_UNREACHABLE", "keep"),
    # The demo issuer is http://127.0.0.1: allowed in development only.
    "ISSUER_ALLOW_INSECURE": DEBUG or os.environ.get("OAUTH_CC_ISSUER_ALLOW_INSECURE") == "1",
    # Certificate-bound tokens (RFC 8705): only behind a proxy that sets or clears this header.
    "CLIENT_CERT_HEADER": os.environ.get("OAUTH_CC_CLIENT_CERT_HEADER") or None,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["oauth_cc.contrib.rest_framework.JWTAccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["oauth_cc.contrib.rest_framework.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["example_project.demo.parsers.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
