"""The shared cache is an optimisation: with it down, tokens are still issued and checked."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import jwt
import pytest
from django.test import override_settings

from oauth_cc.common import shared
from oauth_cc.issuer import keys
from oauth_cc.models import UsedAssertion
from tests.assertion_helpers import (
    assert_invalid_client,
    assertion_claims,
    generate_key,
    jwks_of,
    post_assertion,
)
from tests.conftest import basic_auth, form_post

# A Redis server nobody listens on: every cache call raises a connection error.
DEAD_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def reader(make_client: Any) -> tuple[Any, str]:
    return make_client("svc", scopes=["reports:read"])


def test_token_issued_and_accepted_while_the_cache_is_down(client, reader, token_for, caplog):
    application, secret = reader
    with override_settings(CACHES=DEAD_REDIS):
        token = token_for(application, secret, scope="reports:read")["access_token"]
        response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert "could not read" in caplog.text


def test_revocation_still_applies_while_the_cache_is_down(client, reader, token_for):
    application, secret = reader
    with override_settings(CACHES=DEAD_REDIS):
        token = token_for(application, secret, scope="reports:read")["access_token"]
        revoked = form_post(
            client,
            "/oauth/revoke/",
            {"token": token},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )
        assert revoked.status_code == 200
        response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


# -- one test per use of the cache (README: "When the cache is down") ----------------------------


def test_replay_store_is_the_database_so_a_dead_cache_cannot_open_it(client, make_client):
    """Single use of client assertions never relies on the cache: a replay is refused all the same."""
    key = generate_key("ES256")
    application, _ = make_client(
        "jwt", scopes=["reports:read"], auth_method="private_key_jwt", jwks=jwks_of(key)
    )
    assertion = key.sign(assertion_claims(application.client_id, "http://testserver/oauth/token/"))
    with override_settings(CACHES=DEAD_REDIS):
        accepted = post_assertion(client, assertion, scope="reports:read")
        replayed = post_assertion(client, assertion, scope="reports:read")
    assert accepted.status_code == 200, accepted.content
    assert_invalid_client(replayed, "already been used")
    assert UsedAssertion.objects.filter(client_id=application.client_id).count() == 1


def test_last_used_writes_stay_throttled_per_worker(client, reader, token_for):
    """With the cache down every worker may write "last used" once per interval, not per request."""
    application, secret = reader
    sentinel = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)
    with override_settings(CACHES=DEAD_REDIS):
        token_for(application, secret, scope="reports:read")
        application.refresh_from_db()
        assert application.last_used_at is not None and application.last_used_at > sentinel
        type(application).objects.filter(pk=application.pk).update(last_used_at=sentinel)
        token_for(application, secret, scope="reports:read")
    application.refresh_from_db()
    assert application.last_used_at == sentinel


def test_revocation_state_read_from_the_database_once_per_refresh_not_per_request(
    client, reader, token_for, django_assert_num_queries
):
    application, secret = reader
    with override_settings(CACHES=DEAD_REDIS):
        token = token_for(application, secret, scope="reports:read")["access_token"]
        assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
        with django_assert_num_queries(0):
            for _ in range(3):
                assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_key_rotation_reaches_this_worker_with_the_cache_down(client, reader, token_for, caplog):
    """Publishing the public keys to the cache fails; the rotating worker uses the new keys anyway."""
    application, secret = reader
    with override_settings(CACHES=DEAD_REDIS):
        old = token_for(application, secret, scope="reports:read")["access_token"]
        result = keys.rotate()
        new = token_for(application, secret, scope="reports:read")["access_token"]
        for token in (old, new):
            assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert jwt.get_unverified_header(new)["kid"] == result.current_kid
    assert "could not write oauth_cc:public_keys:v1 to the cache" in caplog.text


def test_claims_granted_to_every_worker_with_the_cache_down():
    """Pruning and JWKS re-fetch claims only spare duplicate work: with no cache, each worker does it."""
    with override_settings(CACHES=DEAD_REDIS):
        assert shared.claim("oauth_cc:test-claim", 60) is True
        assert shared.claim("oauth_cc:test-claim", 60) is True
    with override_settings(CACHES=LOCMEM):
        assert shared.claim("oauth_cc:test-claim", 60) is True
        assert shared.claim("oauth_cc:test-claim", 60) is False
