"""Client secrets over their life: several at once, rotation with a grace period, revocation,
expiry, the cost of checking one, and a rotation while the client is busy (RFC 6749 §2.3.1).
"""

from __future__ import annotations

import threading
import time
import types
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.cache import caches
from django.utils import timezone

from oauth_cc.issuer import client_auth, clients, state
from oauth_cc.models import Application, ClientSecret

from .assertion_helpers import assert_invalid_client
from .conftest import basic_auth, form_post


@pytest.fixture
def svc(make_client: Any) -> tuple[Application, str]:
    return make_client("svc", scopes=["reports:read"])


def request_token(client: Any, application: Application, secret: str) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def worker_refreshes() -> None:
    """What every worker does within STATE_REFRESH_SECONDS: reload client and secret data."""
    state.client_cache.clear()


@pytest.fixture
def clock_after(monkeypatch: Any) -> Any:
    """Move the clock that secret expiry is judged by ``seconds`` into the future."""

    def advance(seconds: float) -> None:
        fake = types.SimpleNamespace(time=lambda: time.time() + seconds, monotonic=time.monotonic)
        monkeypatch.setattr(client_auth, "time", fake)

    return advance


# -- Several secrets, rotation and its grace period ----------------------------------------


def test_client_may_hold_several_secrets_and_each_works(client: Any, svc: tuple[Application, str]) -> None:
    application, first = svc
    second = clients.add_secret(application).secret
    assert request_token(client, application, first).status_code == 200
    assert request_token(client, application, second).status_code == 200
    assert application.secrets.count() == 2


def test_after_rotation_old_and_new_secret_both_work_during_the_grace_period(
    client: Any, svc: tuple[Application, str]
) -> None:
    application, old = svc
    issued = clients.rotate_secret(application, grace=3600)
    worker_refreshes()

    assert request_token(client, application, old).status_code == 200
    assert request_token(client, application, issued.secret).status_code == 200
    assert [prefix for prefix, _ in issued.expiring] == [
        ClientSecret.objects.get(pk__lt=issued.record.pk).prefix
    ]


def test_old_secret_is_refused_once_the_grace_period_has_passed(
    client: Any, svc: tuple[Application, str], clock_after: Any
) -> None:
    application, old = svc
    issued = clients.rotate_secret(application, grace=3600)
    worker_refreshes()
    clock_after(3601)

    assert_invalid_client(request_token(client, application, old), "expired")
    assert request_token(client, application, issued.secret).status_code == 200


def test_rotation_without_grace_ends_the_old_secret_at_once(
    client: Any, svc: tuple[Application, str]
) -> None:
    application, old = svc
    issued = clients.rotate_secret(application, grace=0)
    worker_refreshes()

    assert_invalid_client(request_token(client, application, old), "expired")
    assert request_token(client, application, issued.secret).status_code == 200


def test_rotation_does_not_extend_a_secret_that_already_expires_sooner(
    client: Any, svc: tuple[Application, str], clock_after: Any
) -> None:
    application, _first = svc
    soon = clients.add_secret(application, expires_at=timezone.now() + timedelta(seconds=60))
    clients.rotate_secret(application, grace=3600)
    worker_refreshes()
    clock_after(120)

    assert_invalid_client(request_token(client, application, soon.secret), "expired")


def test_revoked_secret_is_refused_and_the_others_still_work(
    client: Any, svc: tuple[Application, str]
) -> None:
    application, first = svc
    second = clients.add_secret(application)
    assert request_token(client, application, second.secret).status_code == 200

    clients.revoke_secret(application, second.record.prefix)
    worker_refreshes()

    assert_invalid_client(request_token(client, application, second.secret), "revoked")
    assert request_token(client, application, first).status_code == 200


def test_expired_secret_is_refused(client: Any, svc: tuple[Application, str]) -> None:
    application, _ = svc
    expired = clients.add_secret(application, expires_at=timezone.now() - timedelta(seconds=1))
    assert_invalid_client(request_token(client, application, expired.secret), "expired")


def test_secret_of_another_client_is_refused(client: Any, make_client: Any) -> None:
    mine, _ = make_client("mine", scopes=["reports:read"])
    _theirs, their_secret = make_client("theirs", scopes=["reports:read"])
    assert_invalid_client(request_token(client, mine, their_secret))


def test_client_without_secrets_cannot_rotate(make_client: Any) -> None:
    application, _ = make_client("jwt", auth_method="private_key_jwt", jwks_uri="http://127.0.0.1:9/jwks")
    with pytest.raises(clients.ClientError, match="no secret to rotate"):
        clients.rotate_secret(application)


# -- Cost of a secret check ------------------------------------------------------------------


def test_secret_check_is_one_indexed_lookup_on_a_cold_cache_and_none_when_warm(
    client: Any, svc: tuple[Application, str], django_assert_num_queries: Any
) -> None:
    application, secret = svc
    assert request_token(client, application, secret).status_code == 200  # Signing key, last-used write.
    worker_refreshes()

    # Cold: the client row, its scopes, and the secret found by its hash.
    with django_assert_num_queries(3) as cold:
        assert request_token(client, application, secret).status_code == 200
    secret_queries = [q["sql"] for q in cold.captured_queries if "oauth_cc_clientsecret" in q["sql"]]
    assert len(secret_queries) == 1
    assert '"oauth_cc_clientsecret"."secret_hash" =' in secret_queries[0]
    assert ClientSecret._meta.get_field("secret_hash").unique  # unique, hence indexed

    with django_assert_num_queries(0):
        assert request_token(client, application, secret).status_code == 200


def test_unknown_secret_costs_one_lookup_and_is_remembered(
    client: Any, svc: tuple[Application, str], django_assert_num_queries: Any
) -> None:
    application, secret = svc
    assert request_token(client, application, secret).status_code == 200
    with django_assert_num_queries(1):
        assert_invalid_client(request_token(client, application, "occs_not-a-real-secret"))
    with django_assert_num_queries(0):
        assert_invalid_client(request_token(client, application, "occs_not-a-real-secret"))


@pytest.fixture
def empty_shared_cache() -> None:
    """Workers claim the last-used write in the Django cache; start with no claim left over."""
    caches["default"].clear()


def _updates(captured: Any) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]


def test_last_used_is_written_at_most_once_per_interval(
    client: Any,
    settings: Any,
    svc: tuple[Application, str],
    django_assert_max_num_queries: Any,
    empty_shared_cache: None,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LAST_USED_WRITE_INTERVAL": 60}
    application, secret = svc

    with django_assert_max_num_queries(100) as captured:
        for _ in range(10):
            assert request_token(client, application, secret).status_code == 200
    updates = _updates(captured)
    assert len(updates) == 2  # the client row and the secret row, once each
    assert any("oauth_cc_application" in sql for sql in updates)
    assert any("oauth_cc_clientsecret" in sql for sql in updates)
    assert ClientSecret.objects.get(application=application).last_used_at is not None


def test_last_used_is_written_again_after_the_interval(
    client: Any,
    settings: Any,
    svc: tuple[Application, str],
    django_assert_max_num_queries: Any,
    empty_shared_cache: None,
) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LAST_USED_WRITE_INTERVAL": 1}
    application, secret = svc
    assert request_token(client, application, secret).status_code == 200
    first_use = ClientSecret.objects.get(application=application).last_used_at

    time.sleep(1.1)
    with django_assert_max_num_queries(100) as captured:
        for _ in range(3):
            assert request_token(client, application, secret).status_code == 200
    assert len(_updates(captured)) == 2
    assert ClientSecret.objects.get(application=application).last_used_at > first_use


# -- Rotation while the client is busy -------------------------------------------------------


class Hammer(threading.Thread):
    """A client calling the live token endpoint in a loop with whichever secret it holds."""

    def __init__(self, token_url: str, client_id: str, secret: str) -> None:
        super().__init__(daemon=True)
        self.token_url = token_url
        self.client_id = client_id
        self.secret = secret
        self.stop = threading.Event()
        self.sent = 0
        self.sent_with: dict[str, int] = {}
        self.failures: list[str] = []

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                secret = self.secret
                try:
                    response = session.post(
                        self.token_url,
                        data={"grant_type": "client_credentials", "scope": "reports:read"},
                        auth=(self.client_id, secret),
                        timeout=10,
                    )
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text}")
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))
                self.sent += 1
                self.sent_with[secret] = self.sent_with.get(secret, 0) + 1

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while self.sent < count and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.sent >= count, f"only {self.sent} requests were made"


def test_rotation_under_traffic_loses_no_request(
    transactional_db: Any, live_server: Any, settings: Any, make_client: Any
) -> None:
    # Workers reload secrets often, so the rotation's new expiry is seen while traffic flows.
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ISSUER": live_server.url, "STATE_REFRESH_SECONDS": 0.05}
    application, old = make_client("busy", scopes=["reports:read"])
    hammer = Hammer(f"{live_server.url}/oauth/token/", application.client_id, old)
    hammer.start()
    try:
        hammer.wait_for(20)
        issued = clients.rotate_secret(application)  # default grace period
        hammer.wait_for(hammer.sent + 20)  # still the old secret, now expiring
        hammer.secret = issued.secret  # the client deploys its new secret
        hammer.wait_for(hammer.sent + 20)
    finally:
        hammer.stop.set()
        hammer.join(15)

    assert hammer.failures == []
    assert hammer.sent_with[old] >= 40
    assert hammer.sent_with[issued.secret] >= 20
