"""The shared cache is an optimisation: with it down, tokens are still issued and checked."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

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
