"""A change made on one worker reaches the others within the refresh interval, without a restart.

A "worker" here is its own set of per-process state (key store, revocation snapshot, memo
of verified tokens, client cache) and, for the per-process cache case, its own local-memory
Django cache: what one gunicorn worker process holds. Two layouts are covered:

* ``locmem``: every worker has a private cache, as with the default ``LocMemCache``; a change
  reaches another worker once that worker's copy and its cache entry have gone stale;
* ``redis``: the workers share one Redis cache, to which a change is pushed at once.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import jwt
import pytest
from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from oauth_cc.common import shared, tokens, verification  # noqa: F401
from oauth_cc.common.verification import VerifiedTokens

# Import every module that binds a per-worker singleton by name before any worker patches
# it; a module first imported while a worker runs would keep that worker's object for good.
from oauth_cc.issuer import client_auth, keys, receivers, revocation, usage  # noqa: F401
from oauth_cc.issuer.keys import KeyStore
from oauth_cc.issuer.revocation import CACHE_KEY, RevocationState
from oauth_cc.issuer.state import ClientCache
from tests.conftest import basic_auth, form_post
from tests.helpers import ISSUER, clear_shared_cache

REFRESH = 0.2
#: With a private cache a change can take the worker's interval plus its cache entry's lifetime,
#: which is the interval in whole seconds, at least one (see OAuthCCSettings.shared_state_timeout).
SETTLE = REFRESH + 1 + 0.05
REDIS_URL = "redis://127.0.0.1:6379/15"


def require_redis() -> None:
    """These tests need Redis; a missing service is a failure, never a silent skip."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError as exc:
        pytest.fail(f"Redis is not reachable on 127.0.0.1:6379 ({exc}); start it to run the suite.")


class _OneCache:
    """Stands in for ``django.core.cache.caches``: every alias is this worker's cache."""

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def __getitem__(self, alias: str) -> BaseCache:
        return self.cache


@dataclass
class Worker:
    """The per-process state of one worker, swapped in for the module singletons while it runs."""

    cache: BaseCache
    key_store: KeyStore = field(default_factory=KeyStore)
    revocation_state: RevocationState = field(default_factory=RevocationState)
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)
    client_cache: ClientCache = field(default_factory=ClientCache)

    @contextmanager
    def running(self) -> Iterator[None]:
        one_cache = _OneCache(self.cache)
        # The issuer's verification sources (oauth_cc.apps fills them in at start) for this worker.
        sources = {False: verification.Sources(keys=self.key_store, revocation=self.revocation_state)}
        targets: dict[str, Any] = {
            "oauth_cc.issuer.keys.key_store": self.key_store,
            "oauth_cc.issuer.revocation.revocation_state": self.revocation_state,
            "oauth_cc.common.verification._sources": sources,
            "oauth_cc.common.verification.verified_tokens": self.verified_tokens,
            "oauth_cc.issuer.state.client_cache": self.client_cache,
            "oauth_cc.issuer.client_auth.client_cache": self.client_cache,
            "oauth_cc.issuer.receivers.client_cache": self.client_cache,
            "oauth_cc.common.shared.caches": one_cache,
        }
        with ExitStack() as stack:
            for target, value in targets.items():
                stack.enter_context(mock.patch(target, value))
            yield


@pytest.fixture(params=["locmem", "redis"])
def new_worker(request: pytest.FixtureRequest, db: Any) -> Iterator[Callable[[], Worker]]:
    """A factory of workers sharing the database, with private (locmem) or shared (Redis) caches."""
    clear_shared_cache()
    if request.param == "locmem":
        with override_settings(OAUTH_CC={"ISSUER": ISSUER, "STATE_REFRESH_SECONDS": REFRESH}):
            yield lambda: Worker(cache=LocMemCache(f"worker-{uuid.uuid4().hex}", {}))
        return
    require_redis()
    redis_caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A prefix per test instead of FLUSHDB: nothing else in that database is touched.
            "KEY_PREFIX": f"oauth-cc-test-{uuid.uuid4().hex}",
        }
    }
    with override_settings(
        CACHES=redis_caches, OAUTH_CC={"ISSUER": ISSUER, "STATE_REFRESH_SECONDS": REFRESH}
    ):
        shared = caches["default"]
        yield lambda: Worker(cache=shared)
        shared.close()


@pytest.fixture
def svc(make_client) -> tuple[Any, str]:
    return make_client("svc", scopes=["reports:read"])


def get_token(http: Any, application: Any, secret: str) -> Any:
    return form_post(
        http,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def ping(http: Any, token: str) -> Any:
    return http.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_revoked_token_is_refused_by_another_worker_after_the_refresh_interval(client, new_worker, svc):
    application, secret = svc
    a, b = new_worker(), new_worker()
    with a.running():
        token = get_token(client, application, secret).json()["access_token"]
    with b.running():
        assert ping(client, token).status_code == 200

    with a.running():
        revoked = form_post(
            client,
            "/oauth/revoke/",
            {"token": token},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )
        assert revoked.status_code == 200
        assert ping(client, token).status_code == 401
    time.sleep(SETTLE)

    with b.running():
        response = ping(client, token)
    assert response.status_code == 401
    assert "revoked" in response["WWW-Authenticate"]


def test_disabled_clients_token_is_refused_by_another_worker_after_the_refresh_interval(
    client, new_worker, svc
):
    application, secret = svc
    a, b = new_worker(), new_worker()
    with a.running():
        token = get_token(client, application, secret).json()["access_token"]
    with b.running():
        assert ping(client, token).status_code == 200

    with a.running():
        application.is_active = False
        application.save()
    time.sleep(SETTLE)

    with b.running():
        response = ping(client, token)
    assert response.status_code == 401
    assert "disabled" in response["WWW-Authenticate"]


def test_disabled_client_gets_no_token_from_another_worker_after_the_refresh_interval(
    client, new_worker, svc
):
    application, secret = svc
    a, b = new_worker(), new_worker()
    with b.running():
        assert get_token(client, application, secret).status_code == 200

    with a.running():
        application.is_active = False
        application.save()
    time.sleep(SETTLE)

    with b.running():
        response = get_token(client, application, secret)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_invalidated_client_tokens_are_refused_by_another_worker(client, new_worker, svc):
    application, secret = svc
    a, b = new_worker(), new_worker()
    with a.running():
        token = get_token(client, application, secret).json()["access_token"]
    with b.running():
        assert ping(client, token).status_code == 200

    with a.running():
        revocation.invalidate_client_tokens(application.client_id)
    time.sleep(SETTLE)

    with b.running():
        response = ping(client, token)
    assert response.status_code == 401
    assert "invalidated" in response["WWW-Authenticate"]


def test_token_signed_after_a_rotation_verifies_on_a_worker_that_has_not_refreshed(client, new_worker, svc):
    application, secret = svc
    a, b = new_worker(), new_worker()
    with a.running():
        assert get_token(client, application, secret).status_code == 200
    with b.running():
        b.key_store.public_jwks()  # b knows the keys as they were

    with a.running():
        keys.rotate()
        newest = keys.rotate().current_kid
        time.sleep(REFRESH + 0.05)  # a's signer follows the rotation after its refresh interval
        token = get_token(client, application, secret).json()["access_token"]

    assert jwt.get_unverified_header(token)["kid"] == newest
    with b.running():
        assert ping(client, token).status_code == 200


def test_revocation_is_pushed_to_redis_at_once_for_every_worker(client, db, svc):
    require_redis()
    # The default two-second interval: Redis timeouts are whole seconds.
    redis_caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"oauth-cc-test-{uuid.uuid4().hex}",
        }
    }
    application, secret = svc
    with override_settings(CACHES=redis_caches):
        shared = caches["default"]
        a, b = Worker(cache=shared), Worker(cache=shared)
        with a.running():
            token = get_token(client, application, secret).json()["access_token"]
            form_post(
                client,
                "/oauth/revoke/",
                {"token": token},
                HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
            )
        snapshot = shared.get(CACHE_KEY)
        with b.running():
            response = ping(client, token)
        shared.close()

    assert jwt.decode(token, options={"verify_signature": False})["jti"] in snapshot.revoked_jtis
    assert response.status_code == 401
    assert "revoked" in response["WWW-Authenticate"]
