"""Settings of the example project: one site that issues tokens and serves a protected API.

Read from the environment: DATABASE_URL (default: SQLite file next to manage.py),
OAUTH_CC_ISSUER (default http://127.0.0.1:8000), DJANGO_SECRET_KEY, DJANGO_DEBUG,
REDIS_URL (optional: share oauth_cc's state between hosts through Redis).
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "example-project-insecure-key-for-local-demo-only" if DEBUG else ""
)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "oauth_cc",
    "example_project.demo",
]

MIDDLEWARE = [
    # First: answers requests Django itself would turn into a 500 (see the module).
    "example_project.middleware.MalformedRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'example.sqlite3'}", conn_max_age=600
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # Fail fast when the database does not answer (README "Outages", check oauth_cc.W005).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)

if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# --- oauth_cc -----------------------------------------------------------------------------
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth_cc.Application"
OAUTH2_PROVIDER = {"SCOPES_BACKEND_CLASS": "oauth_cc.scopes.DatabaseScopes"}
OAUTH_CC = {
    "ISSUER": os.environ.get("OAUTH_CC_ISSUER", "http://127.0.0.1:8000"),
    "JWKS_URI_ALLOW_INSECURE": DEBUG,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["oauth_cc.contrib.rest_framework.JWTAccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["oauth_cc.contrib.rest_framework.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["example_project.demo.parsers.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI schema at /api/schema/, Swagger UI at /api/docs/ (served from drf-spectacular-sidecar,
# no CDN). "Authorize" in Swagger UI gets a token with the client-credentials flow.
SPECTACULAR_SETTINGS = {
    "TITLE": "oauth_cc example API",
    "DESCRIPTION": "The demo API and the OAuth 2.0 endpoints that issue its access tokens.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, with the constraints of writing (minLength...).
    "COMPONENT_SPLIT_REQUEST": True,
    # drf-spectacular's `check --deploy` generates the schema, whose scopes are read from the
    # database (oauth_cc.openapi): a deploy check must not need the database.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "oauth_cc.openapi.postprocess",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "oauth_cc": {"handlers": ["console"], "level": os.environ.get("OAUTH_CC_LOG_LEVEL", "INFO")},
    },
}
