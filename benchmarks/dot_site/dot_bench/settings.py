"""Settings for the stock django-oauth-toolkit baseline used by benchmarks/run.py.

This project is deliberately plain: DOT's own models, opaque (random string)
access tokens stored in the database, DOT's default client-secret hashing, and
the middleware stack a typical Django site has. It is the "what you get out of
the box" reference that oauth_cc is compared against.

Environment:
    DOT_BENCH_DB_DIR   directory that holds the SQLite file (required; the
                       benchmark gives every run a fresh temp dir)
    DOT_BENCH_SECRET_KEY  optional; a throwaway default is fine for a
                       loopback-only benchmark
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_db_dir = os.environ.get("DOT_BENCH_DB_DIR")
if not _db_dir:
    raise ImproperlyConfigured("Set DOT_BENCH_DB_DIR to a directory for the SQLite database.")

SECRET_KEY = os.environ.get("DOT_BENCH_SECRET_KEY", "dot-bench-insecure-key-loopback-only")
DEBUG = False
# The benchmark only ever talks to 127.0.0.1.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "oauth2_provider",
    "bench_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "dot_bench.urls"
WSGI_APPLICATION = "dot_bench.wsgi.application"

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
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(_db_dir) / "db.sqlite3"),
        "OPTIONS": {
            # DOT writes a row per issued token. With two gunicorn workers
            # writing concurrently, SQLite's default deferred transactions can
            # fail with "database is locked" instead of waiting; IMMEDIATE plus
            # a busy timeout makes writers queue (Django's documented advice).
            # WAL mode is switched on once by the seeding command.
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        },
        # Persistent connections, as oauth_cc's example project configures
        # (conn_max_age=600), so the comparison measures the token designs and
        # not one site reconnecting to the database on every request.
        "CONN_MAX_AGE": 600,
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"

OAUTH2_PROVIDER = {
    "SCOPES": {
        "reports:read": "Read reports",
        "reports:write": "Write reports",
    },
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
}

# Errors go to stderr (gunicorn's error log); nothing per request.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
