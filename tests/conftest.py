"""Shared fixtures: scopes, clients with their one-time secrets, and a clean per-worker state."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.cache import cache

from oauth_cc.issuer import clients, state, usage
from oauth_cc.models import Application, Scope

# The kit for oauth_cc's users (also loaded by its pytest11 entry point once installed: same
# name, so it is registered once), and pytester, which tests/test_testing_kit.py runs it with.
pytest_plugins = ("pytester", "oauth_cc.testing")


@pytest.fixture(autouse=True)
def _fresh_worker_state() -> Iterator[None]:
    """Each test starts as a freshly started worker: no cached clients, keys or tokens."""
    state.reset_all()
    usage.reset()
    cache.clear()
    yield
    state.reset_all()
    usage.reset()
    cache.clear()


@pytest.fixture
def make_scope(db: Any) -> Callable[..., Scope]:
    def make(name: str, *, default: bool = False, description: str = "") -> Scope:
        return Scope.objects.create(name=name, is_default=default, description=description)

    return make


@pytest.fixture
def make_client(db: Any) -> Callable[..., tuple[Application, str]]:
    """``make_client("name", scopes=[...], **kwargs) -> (application, secret)``.

    Missing scopes are created first.
    """

    def make(name: str = "client", *, scopes: list[str] = (), **kwargs: Any) -> tuple[Application, str]:
        for scope in scopes:
            Scope.objects.get_or_create(name=scope)
        application, issued = clients.create_client(name, scopes=scopes, **kwargs)
        return application, issued.secret if issued else ""

    return make


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def form_post(client: Any, path: str, data: dict[str, str] | list[tuple[str, str]], **extra: Any) -> Any:
    """POST ``data`` as application/x-www-form-urlencoded, the way OAuth clients do."""
    return client.post(path, urlencode(data), content_type="application/x-www-form-urlencoded", **extra)


@pytest.fixture
def token_for(client: Any) -> Callable[..., dict[str, Any]]:
    """POST a client_credentials request with Basic auth; return the JSON body (asserts 200)."""

    def get(application: Application, secret: str, **params: str) -> dict[str, Any]:
        response = form_post(
            client,
            "/oauth/token/",
            {"grant_type": "client_credentials", **params},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )
        assert response.status_code == 200, response.content
        return response.json()

    return get


#: What every client authentication refused before the credentials were proven answers, whatever
#: the client_id: an unknown one, or a known one whose keys, kids, method or jwks_uri failed.
GENERIC_INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed."}


@pytest.fixture
def auth_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The ``oauth_cc.client_auth`` log at INFO: where the reasons a caller is not told go."""
    caplog.set_level(logging.INFO, logger="oauth_cc.client_auth")
    return caplog


def refused_unproven(response: Any, auth_log: pytest.LogCaptureFixture, reason: str) -> None:
    """401 with the generic ``invalid_client`` of an unknown client_id, ``reason`` only in the log.

    Clears the captured log, so the next call sees only its own request's lines.
    """
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == GENERIC_INVALID_CLIENT
    lines = [r.getMessage() for r in auth_log.records if r.name == "oauth_cc.client_auth"]
    assert any(reason in line for line in lines), lines
    auth_log.clear()
