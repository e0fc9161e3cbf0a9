"""The rules of a database outage (``oauth_cc/issuer/outage.py``), in process, one per test.

``tests/test_database_outage.py`` takes a real PostgreSQL away from a real server; here the
database is made unreachable with Django's own query hook (``connection.execute_wrapper``):
every query, savepoints included, fails with the ``OperationalError`` a refused connection
raises, without touching oauth_cc's code. That makes each rule quick to pin down: held state
and its bound, failing fast, logging once, refusing writes, the 503's exact shape.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, ProgrammingError, connection

from oauth_cc.common.errors import TemporarilyUnavailable
from oauth_cc.issuer import outage, state
from oauth_cc.issuer.keys import key_store
from oauth_cc.models import UsedAssertion
from tests.assertion_helpers import assertion_claims, generate_key, jwks_of, post_assertion
from tests.conftest import basic_auth, form_post

REFUSED = "connection to server at 127.0.0.1, port 5432 failed: Connection refused"
UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "The authorization server cannot reach its database right now; retry shortly.",
}
TOKEN_ENDPOINT = "http://testserver/oauth/token/"


@pytest.fixture
def database_down() -> Callable[[], contextlib.AbstractContextManager[list[str]]]:
    """``with database_down() as attempts:`` every query raises; ``attempts`` lists the SQL tried."""

    @contextlib.contextmanager
    def down() -> Iterator[list[str]]:
        attempts: list[str] = []

        def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            attempts.append(sql)
            raise OperationalError(REFUSED)

        with connection.execute_wrapper(refuse):
            yield attempts

    return down


@pytest.fixture
def fast_refresh(settings: Any) -> float:
    """A refresh interval short enough that held state goes stale after a short sleep."""
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 0.01}
    return 0.01


@pytest.fixture
def clock(monkeypatch: Any) -> list[float]:
    """The worker's monotonic clock, moved by hand (``clock[0] += 31``): state ages without sleeping."""
    now = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


#: Reload every 10 s; held state served for 30 s after its last load (the clock tests).
BOUNDED = {"STATE_REFRESH_SECONDS": 10, "STALE_STATE_MAX_SECONDS": 30}


def stale(interval: float) -> None:
    """Let the worker's state go stale (not a timing assertion: only "later than the interval")."""
    time.sleep(interval * 3)


@pytest.fixture
def svc(make_client: Any) -> tuple[Any, str]:
    return make_client("svc", scopes=["reports:read"], can_introspect=True)


def token_response(client: Any, application: Any, secret: str) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def assert_unavailable(response: Any, retry_after: str = "2") -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == UNAVAILABLE
    assert response["Retry-After"] == retry_after
    assert response["Cache-Control"] == "no-store"


def assert_check_unavailable(response: Any, retry_after: str = "2") -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "The access token could not be checked right now; try again shortly."
    }
    assert response["Retry-After"] == retry_after


# -- the token endpoint ------------------------------------------------------------------------


def test_token_issued_from_held_state_when_the_reload_fails(client, svc, fast_refresh, database_down):
    application, secret = svc
    assert token_response(client, application, secret).status_code == 200
    stale(fast_refresh)
    with database_down() as attempts:
        response = token_response(client, application, secret)
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "reports:read"
    assert attempts, "the stale state was not even tried to reload"


def test_token_endpoint_refuses_held_state_older_than_the_bound(client, svc, settings, database_down):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 0.01, "STALE_STATE_MAX_SECONDS": 0.02}
    application, secret = svc
    assert token_response(client, application, secret).status_code == 200
    stale(0.02)
    with database_down():
        assert_unavailable(token_response(client, application, secret), retry_after="1")


def test_client_data_older_than_the_bound_is_refused_though_the_keys_are_fresh(
    client, svc, settings, clock, database_down
):
    """Each kind of held state has its own bound: fresh keys do not stretch old client data."""
    settings.OAUTH_CC = {**settings.OAUTH_CC, **BOUNDED}
    application, secret = svc
    assert token_response(client, application, secret).status_code == 200  # client data held at t0
    clock[0] += 11
    key_store.signer()  # the keys reloaded at t0 + 11, database up
    key_store.public_jwks()
    clock[0] += 20  # client data and secret 31 s old, keys 20 s
    cache.clear()
    with database_down():
        assert_unavailable(token_response(client, application, secret), retry_after="10")


def test_signing_key_older_than_the_bound_is_refused_though_client_data_is_fresh(
    client, svc, settings, clock, database_down
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, **BOUNDED}
    application, secret = svc
    key_store.signer()  # the signing key held from t0
    clock[0] += 5
    assert token_response(client, application, secret).status_code == 200  # client data from t0 + 5
    clock[0] += 26  # signing key 31 s old, client data 26 s
    cache.clear()
    with database_down():
        assert_unavailable(token_response(client, application, secret), retry_after="10")


def test_zero_bound_never_serves_held_state(client, svc, settings, database_down):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 0.01, "STALE_STATE_MAX_SECONDS": 0}
    application, secret = svc
    assert token_response(client, application, secret).status_code == 200
    stale(0.01)
    with database_down():
        assert_unavailable(token_response(client, application, secret), retry_after="1")


def test_cold_worker_answers_503_not_invalid_client(client, svc, database_down):
    """A client or secret the worker has not loaded cannot be judged: 503, not 401 (no oracle either)."""
    application, secret = svc
    with database_down():
        assert_unavailable(token_response(client, application, secret))
        assert_unavailable(token_response(client, application, "wrong"))
        assert_unavailable(token_response(client, type(application)(client_id="nobody"), "wrong"))


def test_fresh_state_needs_no_database_at_all(client, svc, database_down):
    """Within the refresh interval nothing is reloaded, so an outage is not even noticed."""
    application, secret = svc
    assert token_response(client, application, secret).status_code == 200
    with database_down() as attempts:
        assert token_response(client, application, secret).status_code == 200
    assert attempts == []
    assert not outage.database.down


def test_retry_after_is_the_refresh_interval_rounded_up(client, svc, settings, database_down):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 2.5}
    application, secret = svc
    with database_down():
        assert_unavailable(token_response(client, application, secret), retry_after="3")


# -- failing fast, logging once ----------------------------------------------------------------


def test_one_attempt_per_retry_interval_then_fail_fast(client, svc, settings, database_down):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 3600}
    application, secret = svc
    with database_down() as attempts:
        assert_unavailable(token_response(client, application, secret), retry_after="3600")
        tried = len(attempts)
        for _ in range(5):
            assert_unavailable(token_response(client, application, secret), retry_after="3600")
        other = type(application)(client_id="other")  # not held: needs the database
        assert_unavailable(token_response(client, other, "x"), retry_after="3600")
        assert client.get("/.well-known/oauth-authorization-server").status_code == 503
    assert tried == 1
    assert len(attempts) == tried, "requests inside the retry interval went to the database"


def test_outage_logged_once_and_its_end_once(client, svc, fast_refresh, database_down, caplog):
    caplog.set_level(logging.INFO, logger="oauth_cc.outage")
    application, secret = svc
    with database_down():
        for _ in range(4):
            assert_unavailable(token_response(client, application, secret), retry_after="1")
            stale(fast_refresh)  # past the retry interval: every request probes again
    assert token_response(client, application, secret).status_code == 200
    messages = [r.getMessage() for r in caplog.records if r.name == "oauth_cc.outage"]
    assert len(messages) == 2, messages
    assert messages[0].startswith(
        "oauth_cc cannot reach the database (OperationalError: connection to server"
    )
    assert "while loading the change token" in messages[0]  # a cold worker reads it first
    assert messages[1].startswith("oauth_cc reaches the database again after ")
    assert "(4 failed attempts)" in messages[1]
    assert not outage.database.down


def test_reminder_while_the_outage_lasts(fast_refresh, monkeypatch, caplog):
    monkeypatch.setattr(outage, "REMINDER_SECONDS", 0.0)
    gate = outage.DatabaseGate()

    def refused() -> None:
        raise OperationalError(REFUSED)

    for _ in range(3):
        with pytest.raises(TemporarilyUnavailable):
            gate.run("x", refused)
        stale(fast_refresh)
    messages = [r.getMessage() for r in caplog.records if r.name == "oauth_cc.outage"]
    assert len(messages) == 3
    assert "still cannot reach the database" in messages[2] and "(3 failed attempts)" in messages[2]


def test_held_state_is_served_up_to_exactly_the_bound(clock, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, **BOUNDED}
    loaded_at = clock[0]
    clock[0] += 30
    assert outage.usable(loaded_at)
    clock[0] += 0.001
    assert not outage.usable(loaded_at)


def test_outage_log_lines_say_what_failed_since_when_and_how_often(clock, settings, caplog):
    """The first failure, a reminder exactly a minute later, the recovery: each with its figures."""
    settings.OAUTH_CC = {**settings.OAUTH_CC, **BOUNDED}
    caplog.set_level(logging.INFO, logger="oauth_cc.outage")
    gate = outage.DatabaseGate()
    start = clock[0]
    gate.failed("client data", OperationalError("  " + "a" * 400 + "\n"))  # the driver's text, cut
    clock[0] = start + 30
    gate.failed("client data", OperationalError(REFUSED))  # within the minute: not logged
    clock[0] = start + 60
    gate.failed("client data", OperationalError(REFUSED))
    clock[0] = start + 75.5  # past the retry interval: the next attempt goes through
    assert gate.run("client data", lambda: "loaded") == "loaded"
    messages = [r.getMessage() for r in caplog.records if r.name == "oauth_cc.outage"]
    assert messages == [
        "oauth_cc cannot reach the database (OperationalError: " + "a" * 300 + ", while loading client "
        "data); serving held state for up to 30s, retrying every 10s",
        "oauth_cc still cannot reach the database after 60s (3 failed attempts)",
        "oauth_cc reaches the database again after 75.5s (3 failed attempts)",
    ]


@pytest.mark.parametrize("error", [ProgrammingError("no such table"), DatabaseError("disk I/O")])
def test_other_database_errors_are_not_an_outage(error):
    """A missing table is a bug, not an outage: it is not turned into a 503 nor served around."""
    gate = outage.DatabaseGate()

    def fail() -> None:
        raise error

    with pytest.raises(type(error)):
        gate.run("x", fail)
    assert not gate.down


def test_a_closed_connection_is_an_outage_too():
    """Django raises InterfaceError for a connection already closed: unreachable, like a refusal."""
    gate = outage.DatabaseGate()

    def closed() -> None:
        raise InterfaceError("connection already closed")

    with pytest.raises(TemporarilyUnavailable):
        gate.run("x", closed)
    assert gate.down


def test_while_one_request_probes_the_database_the_others_fail_fast(clock):
    """Past the retry interval one request tries again; those arriving meanwhile do not."""
    gate = outage.DatabaseGate()

    def refused() -> None:
        raise OperationalError(REFUSED)

    with pytest.raises(TemporarilyUnavailable):
        gate.run("x", refused)
    clock[0] += 3  # past the retry interval (2 s)
    tried: list[str] = []

    def probe() -> str:
        # Another request arrives while this probe is still waiting for the database.
        with pytest.raises(TemporarilyUnavailable):
            gate.run("y", lambda: tried.append("other"))
        return "back"

    assert gate.run("x", probe) == "back"
    assert tried == []
    assert not gate.down


def test_secret_in_a_connection_error_is_not_logged_by_the_views(client, svc, database_down, caplog):
    application, secret = svc
    with database_down():
        assert_unavailable(token_response(client, application, secret))
    assert secret not in caplog.text
    assert "Traceback" not in caplog.text


# -- the protected side ------------------------------------------------------------------------


def test_protected_view_checks_tokens_with_held_keys_and_revocation(
    client, svc, token_for, fast_refresh, database_down
):
    application, secret = svc
    good = token_for(application, secret, scope="reports:read")["access_token"]
    revoked = token_for(application, secret, scope="reports:read")["access_token"]
    assert (
        form_post(
            client,
            "/oauth/revoke/",
            {"token": revoked},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        ).status_code
        == 200
    )
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 200
    stale(fast_refresh)
    cache.clear()  # the shared copy has expired too: only the worker's own is left
    with database_down() as attempts:
        accepted = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {good}")
        refused = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {revoked}")
    assert attempts
    assert accepted.status_code == 200, accepted.content
    assert refused.status_code == 401
    assert refused.json()["detail"] == "The access token has been revoked."


def test_protected_view_refuses_revocation_state_older_than_the_bound(
    client, svc, token_for, settings, database_down
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 0.01, "STALE_STATE_MAX_SECONDS": 0.02}
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    stale(0.02)
    cache.clear()
    with database_down():
        assert_check_unavailable(
            client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}"), retry_after="1"
        )


def test_public_keys_older_than_the_bound_are_refused_though_revocation_state_is_fresh(
    client, svc, token_for, settings, clock, database_down
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, **BOUNDED}
    application, secret = svc
    first = token_for(application, secret, scope="reports:read")["access_token"]
    second = token_for(application, secret, scope="reports:read")["access_token"]
    state.reset_all()  # a worker that has loaded nothing yet
    cache.clear()
    key_store.public_jwks()  # the public keys held from t0
    clock[0] += 5
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 200
    clock[0] += 26  # public keys 31 s old, revocation state 26 s
    cache.clear()
    with database_down():
        # Another token than the one checked before: no verdict remembered for it.
        assert_check_unavailable(
            client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {second}"), retry_after="10"
        )


def test_unknown_kid_during_an_outage_is_503_never_accepted(
    client, svc, token_for, fast_refresh, database_down
):
    """A kid the worker does not hold cannot be checked: 503 (retry), not 200, and not 401."""
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(
        claims,
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": "other"},
    )
    # A warm worker: it has checked a token, so it holds the keys and the revocation state.
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    with database_down():
        # Mark the outage (a token request that must reload fails), then present the token.
        assert_unavailable(token_response(client, application, "wrong"), retry_after="1")
        assert_check_unavailable(
            client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {forged}"), retry_after="1"
        )
        # Again at once: the kid was just looked up, so no new lookup; still no verdict, not 401.
        assert_check_unavailable(
            client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {forged}"), retry_after="1"
        )
        assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    # The next reload that works ends the outage; then the same forged token is simply invalid.
    stale(fast_refresh)  # past the retry interval
    assert token_response(client, application, "still-wrong").status_code == 401
    assert not outage.database.down
    response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json()["detail"] == "The access token was signed by an unknown key."


def test_cold_worker_cannot_check_tokens(client, svc, token_for, database_down):

    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    state.reset_all()  # a worker started after the token was issued
    cache.clear()  # and nothing in the shared cache either
    with database_down():
        assert_check_unavailable(client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}"))
        assert_unavailable(client.get("/.well-known/jwks.json"))


# -- writes: revocation and single use ---------------------------------------------------------


def test_revocation_refused_with_503_during_an_outage(client, svc, token_for, database_down):
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    with database_down():
        response = form_post(
            client,
            "/oauth/revoke/",
            {"token": token},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )
    assert_unavailable(response)
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_introspection_answers_from_held_state(client, svc, token_for, fast_refresh, database_down):
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    # A warm worker: it has checked a token, so it holds the keys and the revocation state.
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    stale(fast_refresh)
    with database_down():
        response = form_post(
            client,
            "/oauth/introspect/",
            {"token": token},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )
    assert response.status_code == 200, response.content
    assert response.json()["active"] is True


def test_assertion_refused_not_accepted_unrecorded(client, make_client, settings, database_down):
    """The single-use record is the database's: with it down the assertion gets a 503, no token."""
    key = generate_key("ES256")
    application, _ = make_client(
        "jwt", scopes=["reports:read"], auth_method="private_key_jwt", jwks=jwks_of(key)
    )
    warm = post_assertion(
        client, key.sign(assertion_claims(application.client_id, TOKEN_ENDPOINT)), scope="reports:read"
    )
    assert warm.status_code == 200, warm.content
    assertion = key.sign(assertion_claims(application.client_id, TOKEN_ENDPOINT))
    with database_down() as attempts:
        response = post_assertion(client, assertion, scope="reports:read")
    assert_unavailable(response)
    # The client was held (fresh): the one thing tried was the single-use record.
    assert len(attempts) == 1 and ("SAVEPOINT" in attempts[0] or "INSERT" in attempts[0]), attempts
    jti = jwt.decode(assertion, options={"verify_signature": False})["jti"]
    assert not UsedAssertion.objects.filter(jti=jti).exists()
    # Back up (a settings change starts the worker afresh; recovery in place is the live test's):
    # the assertion was never recorded, so it is accepted once, then refused.
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 31}
    assert post_assertion(client, assertion, scope="reports:read").status_code == 200
    replay = post_assertion(client, assertion, scope="reports:read")
    assert replay.status_code == 401
    assert "already been used" in replay.json()["error_description"]


# -- every endpoint: JSON, never a 500 ---------------------------------------------------------


def test_every_endpoint_answers_json_without_a_5xx_other_than_503(client, svc, token_for, database_down):
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    auth = basic_auth(application.client_id, secret)
    calls = {
        "token": lambda: token_response(client, application, secret),
        "token bad secret": lambda: token_response(client, application, "wrong"),
        "token GET": lambda: client.get("/oauth/token/"),
        "token junk body": lambda: client.post(
            "/oauth/token/", "%%%", content_type="application/x-www-form-urlencoded"
        ),
        "introspect": lambda: form_post(
            client, "/oauth/introspect/", {"token": token}, HTTP_AUTHORIZATION=auth
        ),
        "revoke": lambda: form_post(client, "/oauth/revoke/", {"token": token}, HTTP_AUTHORIZATION=auth),
        "jwks": lambda: client.get("/.well-known/jwks.json"),
        "metadata": lambda: client.get("/.well-known/oauth-authorization-server"),
        "protected": lambda: client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}"),
        "protected junk": lambda: client.get("/api/ping/", HTTP_AUTHORIZATION="Bearer junk"),
        "protected none": lambda: client.get("/api/ping/"),
    }
    statuses = {}
    with database_down():
        for name, call in calls.items():
            response = call()
            statuses[name] = response.status_code
            assert response.status_code < 500 or response.status_code == 503, (name, response.content)
            assert response["Content-Type"] == "application/json", (name, response.content)
            response.json()
    # What the worker holds answers; what needs the database is a 503.
    assert statuses["token"] == statuses["protected"] == statuses["jwks"] == statuses["introspect"] == 200
    assert statuses["revoke"] == statuses["metadata"] == statuses["token bad secret"] == 503
    assert statuses["token GET"] == 405 and statuses["protected none"] == 401


@pytest.mark.urls("tests.urls")
def test_run_as_user_read_inside_the_view_during_an_outage_is_a_json_503(
    client, make_client, token_for, fast_refresh, database_down, django_user_model
):
    robot = django_user_model.objects.create_user("robot")
    application, secret = make_client("svc", scopes=["reports:read"])
    application.user = robot
    application.save()
    token = token_for(application, secret, scope="reports:read")["access_token"]
    before = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert before.status_code == 200 and before.json()["user"] == "robot"

    with database_down() as attempts:
        # Token checked from held state; the user is a query the view makes when it reads it.
        during = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert attempts
    assert_check_unavailable(during, retry_after="1")
    # Back: the same token and user, no restart.
    stale(fast_refresh)
    after = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert after.status_code == 200 and after.json()["user"] == "robot"
