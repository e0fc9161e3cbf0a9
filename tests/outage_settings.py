"""Settings for the servers of ``tests/test_database_outage.py``: the example project's, from the environment.

Required: ``DATABASE_URL`` (the test points it at a TCP proxy in front of PostgreSQL, with
``?connect_timeout=2`` as the README recommends), ``OAUTH_CC_ISSUER``, ``DJANGO_SECRET_KEY`` and
``DJANGO_ALLOWED_HOSTS``. ``CONN_MAX_AGE`` stays the example project's (600 s), so the test also
shows that a persistent connection broken by the outage is replaced without a restart.

The cache is per process: what the server serves during the outage is what its worker holds,
not what a shared cache still has.
"""

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_DEBUG", "0")

for _name in ("DATABASE_URL", "OAUTH_CC_ISSUER", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
    if not os.environ.get(_name):
        raise ImproperlyConfigured(f"tests.outage_settings needs {_name} in the environment.")

from example_project.settings import *  # noqa: E402, F403

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
OAUTH_CC = {
    "ISSUER": os.environ["OAUTH_CC_ISSUER"],
    "STATE_REFRESH_SECONDS": float(os.environ.get("OAUTH_CC_STATE_REFRESH_SECONDS", "0.5")),
    "STALE_STATE_MAX_SECONDS": float(os.environ.get("OAUTH_CC_STALE_STATE_MAX_SECONDS", "300")),
}
