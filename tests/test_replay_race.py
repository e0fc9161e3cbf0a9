"""Two workers racing with the same client assertion: the database lets exactly one through.

RFC 7523 §3 item 7 asks that a ``jti`` be accepted once. oauth_cc relies on the unique
constraint of ``UsedAssertion`` rather than a read-then-write check, which is only meaningful
with a database that runs the two INSERTs concurrently, so this runs on PostgreSQL only.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from django.db import connection

from oauth_cc.issuer import assertions, client_auth
from oauth_cc.models import Scope, UsedAssertion

from .assertion_helpers import ASSERTION_TYPE, ClientKey, assertion_claims, generate_key, jwks_of

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("Needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def issuer(live_server: Any, settings: Any) -> str:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ISSUER": live_server.url}
    return live_server.url


@pytest.fixture
def inserts_meet(monkeypatch: Any) -> threading.Barrier:
    """Hold each request just before its INSERT until the other one gets there too.

    Without this the second request could simply arrive after the first finished, and the
    test would only show a sequential replay being refused.
    """
    barrier = threading.Barrier(2)
    original = client_auth.record_use

    def meet_then_record(verified: assertions.VerifiedAssertion) -> None:
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass  # The other request failed earlier; the assertions below will say so.
        original(verified)

    monkeypatch.setattr(client_auth, "record_use", meet_then_record)
    return barrier


def _post_together(url: str, body: dict[str, str]) -> list[requests.Response]:
    start = threading.Barrier(2)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        start.wait(timeout=5)
        response = requests.post(url, data=body, timeout=15)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return responses


def test_same_assertion_sent_twice_at_once_gets_one_token(
    issuer: str, make_client: Any, inserts_meet: threading.Barrier
) -> None:
    key: ClientKey = generate_key("ES256")
    Scope.objects.get_or_create(name="reports:read", defaults={"is_default": True})
    application, _ = make_client(
        "racer", scopes=["reports:read"], auth_method="private_key_jwt", jwks=jwks_of(key)
    )
    token_url = f"{issuer}/oauth/token/"

    for round_number in range(3):
        inserts_meet.reset()
        assertion = key.sign(assertion_claims(application.client_id, token_url, jti=f"race-{round_number}"))
        body = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }

        responses = _post_together(token_url, body)

        assert sorted(r.status_code for r in responses) == [200, 401], [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 401)
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.json()["error"] == "invalid_client"
        assert "already been used" in refused.json()["error_description"]
    assert UsedAssertion.objects.filter(client_id=application.client_id).count() == 3
