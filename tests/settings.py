"""Test settings: the example project's, with a test database from DATABASE_URL (default SQLite)."""

import os

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-use-0123456789")

import dj_database_url

from example_project.settings import *  # noqa: F403

DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL") or "sqlite:///:memory:")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": None}
else:
    # As the README recommends (check oauth_cc.W005): fail fast when the database does not answer.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
OAUTH_CC = {
    "ISSUER": "http://testserver",
    "JWKS_URI_ALLOW_INSECURE": True,
    # The attack batteries, properties and the fuzz send thousands of failed authentications
    # (and feed reads) from 127.0.0.1 within one test; tests/test_rate_limits*.py turn these
    # limits on.
    "FAILED_AUTH_RATE_PER_CLIENT_ID": None,
    "FAILED_AUTH_RATE_PER_ADDRESS": None,
    "REVOCATION_FEED_RATE": None,
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
