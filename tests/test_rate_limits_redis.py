"""The rate limits on a real Redis (database 4 unless OAUTH_CC_RATELIMIT_REDIS_URL names another):
one count for every worker and host.

Two separate processes, each with four threads and so eight connections in all, race to count
against one limit. Exactly the limit is admitted: the count is Redis INCR, not DRF's get-then-set
(with which all racing requests read the same history and all pass).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import override_settings

from oauth_cc.common import ratelimit
from oauth_cc.common.ratelimit import Rate

REDIS_URL = os.environ.get("OAUTH_CC_RATELIMIT_REDIS_URL", "redis://127.0.0.1:6379/4")
REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import json, os, sys, threading, time
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
from django.conf import settings
settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                               "LOCATION": os.environ["REDIS_URL"]}}
import django
django.setup()
from oauth_cc.common import ratelimit
scope, start, per_thread, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
now = float(sys.argv[5])
rate = ratelimit.Rate(count, 3600)
results = []
def run():
    time.sleep(max(0.0, start - time.time()))
    for _ in range(per_thread):
        results.append(ratelimit.hit(scope, "the-client", rate, now=now).allowed)
threads = [threading.Thread(target=run) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
"""


@pytest.fixture
def scope() -> str:
    """A scope of its own, so the test never touches keys it did not write."""
    return f"test-{uuid.uuid4().hex}"


def test_two_processes_racing_admit_exactly_the_limit(scope):
    start = time.time() + 1.5  # both processes are up and connected by then
    # Every hit counts at one pinned time, half-way through the current hour: all in one window,
    # whenever the test runs (a run across an hour boundary would split the count).
    now = time.time() // 3600 * 3600 + 1800
    rate = Rate(100, 3600)
    current, previous, _ = ratelimit._keys(scope, "the-client", rate, now)
    try:
        results = race(scope, start, now)
        assert len(results) == 320
        assert results.count(True) == 100
        with override_settings(CACHES=REDIS):
            # And the count left behind is the admitted requests only: refusals were taken back.
            assert caches["default"].get(current) == 100
    finally:
        with override_settings(CACHES=REDIS):
            caches["default"].delete_many([current, previous])


def race(scope: str, start: float, now: float) -> list[bool]:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, scope, str(start), "40", "100", repr(now)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        results.extend(json.loads(out))
    return results


def test_the_token_endpoint_limit_holds_through_redis(client, make_client):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="2/minute")
    from .test_rate_limits import token_request

    # Only this client's keys: its token counts and its "last used" marks.
    patterns = [
        f"*oauth_cc:rl:token:*:{ratelimit.ident(application.client_id)}:*",
        f"*oauth_cc:last_used:{application.pk}:*",
    ]
    with override_settings(CACHES=REDIS):
        redis = caches["default"]._cache.get_client()
        try:
            codes = [token_request(client, application.client_id, secret).status_code for _ in range(3)]
            counted = redis.keys(patterns[0])
        finally:
            for pattern in patterns:
                for key in redis.keys(pattern):
                    redis.delete(key)
    assert codes == [200, 200, 429]
    assert counted  # counted in Redis, not in this process
