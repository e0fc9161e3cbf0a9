"""Signing keys: the first key, rotation (next -> current -> retired), JWKS, pruning, rotation under load."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import jwt
import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from oauth_cc.issuer import keys, state
from oauth_cc.issuer.keys import KeyStore
from oauth_cc.models import SigningKey
from tests.conftest import basic_auth, form_post
from tests.helpers import ISSUER, clear_shared_cache

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def svc(make_client):
    return make_client("svc", scopes=["reports:read"])


def states() -> dict[str, str]:
    return dict(SigningKey.objects.values_list("kid", "state"))


def jwks_kids(client) -> set[str]:
    return {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


# -- the first key ----------------------------------------------------------------------------


def test_site_creates_its_first_key_pair_on_the_first_token_request(client, svc, token_for):
    assert not SigningKey.objects.exists()

    token = token_for(*svc, scope="reports:read")["access_token"]

    current = SigningKey.objects.get(state="current")
    assert kid_of(token) == current.kid
    assert SigningKey.objects.filter(state="next").count() == 1
    assert current.algorithm == "ES256"


def test_site_creates_its_first_key_pair_when_the_jwks_is_fetched(client, db):
    kids = jwks_kids(client)
    assert kids == set(states())
    assert sorted(states().values()) == ["current", "next"]


def test_rotate_on_a_site_without_keys_creates_current_and_next(db):
    result = keys.rotate()
    assert result.retired_kid is None
    assert states() == {result.current_kid: "current", result.next_kid: "next"}


# -- rotation -------------------------------------------------------------------------------


def test_rotate_promotes_next_retires_current_and_publishes_a_new_next(db):
    first = keys.ensure_current_key()
    upcoming = SigningKey.objects.get(state="next")

    result = keys.rotate()

    assert result.retired_kid == first.kid
    assert result.current_kid == upcoming.kid
    assert result.next_kid not in (first.kid, upcoming.kid)
    assert states() == {first.kid: "retired", upcoming.kid: "current", result.next_kid: "next"}
    retired = SigningKey.objects.get(kid=first.kid)
    assert retired.retired_at is not None
    assert SigningKey.objects.get(kid=upcoming.kid).activated_at is not None


def test_retired_key_is_kept_for_the_longest_token_lifetime_plus_leeway(db, make_client):
    make_client("long-lived", lifetime=7200)
    first = keys.ensure_current_key()

    keys.rotate()

    retired = SigningKey.objects.get(kid=first.kid)
    assert retired.remove_after - retired.retired_at == timedelta(seconds=7200 + 30)


def test_jwks_publishes_next_current_and_retired_keys(client, db):
    keys.ensure_current_key()
    keys.rotate()

    assert jwks_kids(client) == set(states())
    assert sorted(states().values()) == ["current", "next", "retired"]


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_jwks_never_contains_private_key_material(client, db, algorithm):
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "SIGNING_ALGORITHM": algorithm}):
        keys.rotate()
        keys.rotate()
        published = client.get("/.well-known/jwks.json").json()["keys"]

    assert len(published) == 3
    for key in published:
        assert not PRIVATE_JWK_MEMBERS & set(key), key
        assert key["use"] == "sig"
        assert key["alg"] in ("ES256", "RS256", "EdDSA")


def test_new_tokens_are_signed_by_the_new_current_key(client, svc, token_for):
    token_for(*svc, scope="reports:read")
    result = keys.rotate()
    assert kid_of(token_for(*svc, scope="reports:read")["access_token"]) == result.current_kid


def test_token_signed_before_rotation_still_verifies_after_it(client, svc, token_for):
    token = token_for(*svc, scope="reports:read")["access_token"]
    keys.rotate()

    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_token_signed_before_rotation_verifies_on_a_freshly_started_worker(client, svc, token_for):
    token = token_for(*svc, scope="reports:read")["access_token"]
    keys.rotate()
    keys.rotate()
    state.reset_all()
    clear_shared_cache()

    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_worker_that_has_not_seen_a_new_key_loads_it_on_first_use(db):
    keys.ensure_current_key()
    worker = KeyStore()
    worker.public_jwks()  # this worker's view is fresh, and will stay so for the refresh interval
    keys.rotate()
    newest = keys.rotate().current_kid

    found = worker.verifier(newest)

    assert found is not None
    assert found[0] == "ES256"


def test_unknown_kid_reloads_the_keys_at_most_once_per_retry_interval(db, django_assert_num_queries):
    keys.ensure_current_key()
    worker = KeyStore()
    worker.public_jwks()

    with django_assert_num_queries(1):
        assert worker.verifier("made-up") is None
        assert worker.verifier("made-up") is None


def test_a_flood_of_ever_new_kids_costs_one_reload_per_min_interval(db, django_assert_num_queries):
    keys.ensure_current_key()
    worker = KeyStore()
    worker.public_jwks()

    # Well inside UNKNOWN_KID_MIN_INTERVAL: only the first made-up kid reaches the database.
    with django_assert_num_queries(1):
        for n in range(200):
            assert worker.verifier(f"made-up-{n}") is None


def test_a_real_new_kid_refused_by_the_flood_limit_is_found_once_the_interval_passes(db):
    keys.ensure_current_key()
    worker = KeyStore()
    worker.public_jwks()
    assert worker.verifier("made-up") is None  # uses up this interval's reload
    newest = keys.rotate().current_kid

    time.sleep(keys.UNKNOWN_KID_MIN_INTERVAL + 0.02)

    assert worker.verifier(newest) is not None


# -- pruning --------------------------------------------------------------------------------


def test_retired_key_past_its_removal_time_is_pruned_on_the_next_rotation(client, db):
    first = keys.ensure_current_key()
    keys.rotate()
    SigningKey.objects.filter(kid=first.kid).update(remove_after=timezone.now() - timedelta(seconds=1))

    result = keys.rotate()

    assert result.removed_kids == (first.kid,)
    assert not SigningKey.objects.filter(kid=first.kid).exists()
    assert first.kid not in jwks_kids(client)


def test_retired_key_before_its_removal_time_is_kept(db):
    first = keys.ensure_current_key()
    keys.rotate()

    assert keys.prune_retired_keys() == ()
    assert SigningKey.objects.filter(kid=first.kid, state="retired").exists()


def test_retired_key_past_its_removal_time_is_no_longer_published(client, db):
    first = keys.ensure_current_key()
    keys.rotate()
    SigningKey.objects.filter(kid=first.kid).update(remove_after=timezone.now() - timedelta(seconds=1))
    state.reset_all()
    clear_shared_cache()

    assert first.kid not in jwks_kids(client)


# -- rotation under load ----------------------------------------------------------------------


class SQLiteSerializer:
    """Serialise database access between threads when the test database is in-memory SQLite.

    Its shared-cache mode answers a concurrent reader with "database table is locked" instead
    of waiting, which a real deployment never sees. Each query of the traffic thread and each
    whole rotation take turns; everything else (the per-worker key store) runs concurrently.
    The traffic thread reads without read locks (``read_uncommitted``), which shared-cache
    SQLite would otherwise hold until a result is fully fetched, after the query returned.
    """

    def __init__(self) -> None:
        self.enabled = connection.vendor == "sqlite"
        self.lock = threading.Lock()

    def rotation(self) -> contextlib.AbstractContextManager:
        return self.lock if self.enabled else contextlib.nullcontext()

    def queries(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")

        def one_at_a_time(execute, sql, params, many, context):
            with self.lock:
                return execute(sql, params, many, context)

        return connection.execute_wrapper(one_at_a_time)


@pytest.mark.django_db(transaction=True)
def test_rotations_during_traffic_never_fail_a_request(make_client):
    application, secret = make_client("svc", scopes=["reports:read"])
    keys.ensure_current_key()
    failures: list[str] = []
    rounds = 0
    stop = threading.Event()

    serializer = SQLiteSerializer()

    def traffic() -> None:
        nonlocal rounds
        http = Client()
        try:
            with serializer.queries():
                while not stop.is_set():
                    response = form_post(
                        http,
                        "/oauth/token/",
                        {"grant_type": "client_credentials", "scope": "reports:read"},
                        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
                    )
                    if response.status_code != 200:
                        failures.append(f"token: {response.status_code} {response.content!r}")
                        continue
                    token = response.json()["access_token"]
                    verified_kids.add(jwt.get_unverified_header(token)["kid"])
                    response = http.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
                    if response.status_code != 200:
                        failures.append(f"ping: {response.status_code} {response.get('WWW-Authenticate')}")
                    rounds += 1
        except Exception as exc:  # a crash is a failure too, not a silent thread death
            failures.append(repr(exc))
        finally:
            connection.close()

    signing_kids: set[str] = set()
    verified_kids: set[str] = set()
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "STATE_REFRESH_SECONDS": 0.05}):
        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            for _ in range(8):
                time.sleep(0.1)
                with serializer.rotation():
                    signing_kids.add(keys.rotate().current_kid)
            time.sleep(0.1)
        finally:
            stop.set()
            worker.join(timeout=30)

    assert not worker.is_alive()
    assert failures == []
    assert rounds > 8
    assert len(signing_kids) == 8
    # The traffic really crossed rotations: tokens signed by several keys were issued and
    # each was accepted by the protected view (a failure above would say otherwise).
    assert len(verified_kids) >= 3, verified_kids


# -- tokens prune, and the race for the first key -----------------------------------------------


def test_tokens_prune_removes_retired_keys_past_their_time_and_unpublishes_them(client, db):
    from io import StringIO

    from django.core.management import call_command

    keys.rotate()
    gone = keys.rotate().retired_kid
    kept = keys.rotate().retired_kid
    SigningKey.objects.filter(kid=gone).update(remove_after=timezone.now() - timedelta(seconds=1))
    out = StringIO()

    call_command("oauth_cc", "tokens", "prune", stdout=out)

    assert "and 1 retired key(s)" in out.getvalue()
    assert not SigningKey.objects.filter(kid=gone).exists()
    assert SigningKey.objects.filter(kid=kept, state="retired").exists()
    published = jwks_kids(client)
    assert gone not in published
    assert kept in published


def test_a_worker_that_loses_the_race_for_the_first_key_uses_the_winners(db, monkeypatch):
    """Two workers see no key and both create one; the one-current-key constraint picks one."""
    from django.db import transaction

    winner: list[SigningKey] = []

    def other_worker_commits_first() -> object:
        # Runs after this worker saw no current key, just before its own INSERT.
        row = keys._new_key_row("current")
        row.save()
        winner.append(row)
        return transaction.atomic()

    monkeypatch.setattr(keys, "transaction", SimpleNamespace(atomic=other_worker_commits_first))

    key = keys.ensure_current_key()

    assert key.kid == winner[0].kid
    assert list(SigningKey.objects.filter(state="current").values_list("kid", flat=True)) == [key.kid]
    # The loser's whole attempt rolled back: no second current key and no stray next key.
    assert not SigningKey.objects.filter(state="next").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_threads_creating_the_first_key_at_once_end_with_one_current_key():
    if connection.vendor != "postgresql":
        pytest.skip("Needs concurrent writers: run with DATABASE_URL=postgres://...")
    barrier = threading.Barrier(2)
    original = keys._new_key_row
    results: list[str] = []
    errors: list[BaseException] = []

    def meet_then_build(state: str, algorithm: str | None = None) -> SigningKey:
        if state == "current":
            barrier.wait(5)  # both have seen "no current key" and now insert together
        return original(state, algorithm)

    def worker() -> None:
        try:
            results.append(keys.ensure_current_key().kid)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "_new_key_row", meet_then_build)
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)

    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert SigningKey.objects.filter(state="current").count() == 1


def test_a_reset_by_another_thread_during_a_refresh_does_not_leave_the_store_without_a_signer(
    db, settings, monkeypatch
):
    """A rotation on another thread resets the store (publish_public_keys) while this thread is
    between reading its signer and reloading the row: the next requests must still sign."""
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 3600}
    keys.key_store.reset()
    first = keys.key_store.signer()
    keys.key_store._signing_loaded_at = float("-inf")  # this request refreshes
    real = keys.ensure_current_key

    def ensure_while_another_thread_resets():
        row = real()
        keys.key_store.reset()  # what the rotating thread does meanwhile
        return row

    monkeypatch.setattr(keys, "ensure_current_key", ensure_while_another_thread_resets)
    assert keys.key_store.signer().kid == first.kid
    monkeypatch.setattr(keys, "ensure_current_key", real)

    # Within the refresh interval: no reload, and a signer is there.
    assert keys.key_store.signer().kid == first.kid
