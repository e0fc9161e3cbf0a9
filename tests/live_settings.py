"""Settings for real server processes in tests (``tests/test_real_workers.py``): the example project's,
with everything that must be shared by the servers and the operator commands read from the environment.

Required: ``DATABASE_URL``, ``REDIS_URL`` (the servers must share one cache, as hosts of one site
do), ``OAUTH_CC_ISSUER``, ``DJANGO_SECRET_KEY`` and ``DJANGO_ALLOWED_HOSTS`` (``DEBUG`` is off).
Optional: ``OAUTH_CC_STATE_REFRESH_SECONDS`` (default 0.5), ``OAUTH_CC_CACHE_KEY_PREFIX``
(keeps the cache entries of one test run apart from any other run using the same Redis database)
and ``OAUTH_CC_CLIENT_CERT_HEADER`` (mutual TLS: the header a test sends as a proxy would).
"""

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_DEBUG", "0")

for _name in ("DATABASE_URL", "REDIS_URL", "OAUTH_CC_ISSUER", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
    if not os.environ.get(_name):
        # Without REDIS_URL the example settings fall back to a per-process cache: not what is tested.
        raise ImproperlyConfigured(f"tests.live_settings needs {_name} in the environment.")

from example_project.settings import *  # noqa: E402, F403
from example_project.settings import CACHES  # noqa: E402

if os.environ.get("OAUTH_CC_CACHE_KEY_PREFIX"):
    CACHES["default"]["KEY_PREFIX"] = os.environ["OAUTH_CC_CACHE_KEY_PREFIX"]

OAUTH_CC = {
    "ISSUER": os.environ["OAUTH_CC_ISSUER"],
    "STATE_REFRESH_SECONDS": float(os.environ.get("OAUTH_CC_STATE_REFRESH_SECONDS", "0.5")),
}
if os.environ.get("OAUTH_CC_CLIENT_CERT_HEADER"):
    OAUTH_CC["CLIENT_CERT_HEADER"] = os.environ["OAUTH_CC_CLIENT_CERT_HEADER"]
