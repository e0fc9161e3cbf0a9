"""A worker's cost does not grow with the clients it serves (oauth_cc.issuer.generation).

Cached clients, secrets and the revocation snapshot stay until the site's change token
changes; a worker reads the token at most once per STATE_REFRESH_SECONDS. These tests play a
second worker (its own ClientCache / RevocationState) next to the one the test client uses,
with its own clock, and check both halves: nothing is reloaded while nothing changed, and
every kind of change reaches it within one interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from oauth_cc.issuer import clients, generation, revocation, state
from oauth_cc.issuer.secrets import hash_secret
from oauth_cc.models import Application, ClientSecret, RevokedToken, Scope, StateGeneration
from tests.test_admin import change_url, client_form, inline_management

from .conftest import basic_auth, form_post

INTERVAL = 2.0


class Clock:
    """``time`` as state/revocation see it: monotonic time set by the test, wall-clock time real."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


@pytest.fixture
def clock(settings: Any, monkeypatch: Any) -> Clock:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": INTERVAL}
    fake = Clock()
    monkeypatch.setattr(state, "time", fake)
    monkeypatch.setattr(revocation, "time", fake)
    return fake


@pytest.fixture
def token_reads(monkeypatch: Any) -> list[int]:
    """Every read of a change token (shared copy or database), as the row read."""
    reads: list[int] = []
    real = generation.current

    def counting(row: int) -> int:
        value = real(row)
        reads.append(row)
        return value

    monkeypatch.setattr(generation, "current", counting)
    return reads


@pytest.fixture
def svc(make_client: Any) -> tuple[Application, str]:
    return make_client("svc", scopes=["reports:read"])


def token_request(client: Any, application: Application, secret: str, scope: str = "reports:read") -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": scope},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


# -- Unchanged: nothing reloaded ----------------------------------------------------------


def test_unchanged_clients_are_not_reloaded_after_the_interval(
    client, clock, make_client, token_reads, django_assert_num_queries
):
    many = [make_client(f"c{i}", scopes=["reports:read"]) for i in range(20)]
    for application, secret in many:  # warm: each client and secret loaded once
        assert token_request(client, application, secret).status_code == 200
    reads_before = len(token_reads)

    for _ in range(3):
        clock.now += INTERVAL + 0.01
        with django_assert_num_queries(0):
            for application, secret in many:
                assert token_request(client, application, secret).status_code == 200
    # One read of the change token per interval, not one per client or per request.
    assert len(token_reads) - reads_before == 3


def test_no_token_read_within_the_interval(client, clock, svc, token_reads):
    application, secret = svc
    assert token_request(client, application, secret).status_code == 200
    reads = len(token_reads)
    clock.now += INTERVAL  # exactly the interval: not yet
    for _ in range(5):
        assert token_request(client, application, secret).status_code == 200
    assert len(token_reads) == reads


def test_a_lost_shared_copy_costs_one_query_and_no_reload(client, clock, svc, django_assert_num_queries):
    application, secret = svc
    assert token_request(client, application, secret).status_code == 200
    cache.delete(generation.cache_key(generation.CLIENTS))  # evicted, or Redis restarted
    clock.now += INTERVAL + 0.01
    with django_assert_num_queries(1) as ctx:
        assert token_request(client, application, secret).status_code == 200
    assert StateGeneration._meta.db_table in ctx.captured_queries[0]["sql"]


def test_the_protected_view_reads_nothing_while_nothing_changed(
    client, clock, make_client, token_for, django_assert_num_queries
):
    tokens = [
        token_for(*make_client(f"r{i}", scopes=["reports:read"]), scope="reports:read")["access_token"]
        for i in range(10)
    ]
    for token in tokens:
        assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    # The last publish (creating the last client) was followed by more changes (its scopes,
    # its secret): the first check after it sees a new value and fetches the snapshot once.
    clock.now += INTERVAL + 0.01
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {tokens[0]}").status_code == 200
    fetches: list[int] = []
    real = revocation.shared_or_loaded

    def counting(*args: Any) -> Any:
        fetches.append(1)
        return real(*args)

    for _ in range(3):
        clock.now += INTERVAL + 0.01
        with django_assert_num_queries(0), pytest.MonkeyPatch.context() as mp:
            mp.setattr(revocation, "shared_or_loaded", counting)
            for token in tokens:
                assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert fetches == []  # the snapshot (every revoked jti) is not fetched again


# -- Every change reaches another worker within the interval --------------------------------


def _disable(application: Application, secret: str) -> None:
    clients.set_active(application, False)


def _delete(application: Application, secret: str) -> None:
    application.delete()


def _revoke_secret(application: Application, secret: str) -> None:
    clients.revoke_secret(application, str(application.secrets.get().pk))


def _end_secret_now(application: Application, secret: str) -> None:
    clients.rotate_secret(application, grace=0)


def _secret_expiry_saved(application: Application, secret: str) -> None:
    row = application.secrets.get()
    row.expires_at = timezone.now() - timedelta(seconds=1)
    row.save()


def _secret_deleted(application: Application, secret: str) -> None:
    application.secrets.all().delete()


def _scope_removed(application: Application, secret: str) -> None:
    application.scopes.remove(Scope.objects.get(name="reports:read"))


def _scope_cleared(application: Application, secret: str) -> None:
    application.scopes.clear()


def _scope_unlinked_from_its_side(application: Application, secret: str) -> None:
    Scope.objects.get(name="reports:read").applications.remove(application)


def _scope_renamed(application: Application, secret: str) -> None:
    scope = Scope.objects.get(name="reports:read")
    scope.name = "reports:old"
    scope.save()


def _scope_deleted(application: Application, secret: str) -> None:
    Scope.objects.get(name="reports:read").delete()


REFUSED = [
    (_disable, "This client is disabled."),
    (_delete, None),
    (_revoke_secret, "This client secret has been revoked."),
    (_end_secret_now, "This client secret has expired."),
    (_secret_expiry_saved, "This client secret has expired."),
    (_secret_deleted, None),
    (_scope_removed, "invalid_scope"),
    (_scope_cleared, "invalid_scope"),
    (_scope_unlinked_from_its_side, "invalid_scope"),
    (_scope_renamed, "invalid_scope"),
    (_scope_deleted, "invalid_scope"),
]


def _outcome(other: state.ClientCache, application: Application, secret: str) -> str:
    """What the other worker's cache says about this client and secret, in token-endpoint terms."""
    record = other.client(application.client_id)
    if record is None:
        return "no client"
    stored = other.secret(hash_secret(secret))
    if stored is None:
        return "no secret"
    if not record.is_active:
        return "This client is disabled."
    if stored.revoked:
        return "This client secret has been revoked."
    if stored.expired(time.time()):
        return "This client secret has expired."
    if "reports:read" not in record.allowed_scopes:
        return "invalid_scope"
    return "ok"


@pytest.mark.parametrize("change, expected", REFUSED, ids=[c.__name__.strip("_") for c, _ in REFUSED])
def test_a_change_reaches_another_worker_within_the_interval(
    clock, svc, change: Callable[[Application, str], None], expected: str | None
):
    application, secret = svc
    other = state.ClientCache()
    assert _outcome(other, application, secret) == "ok"

    change(application, secret)

    clock.now += INTERVAL  # within the interval the other worker still has its copy
    assert _outcome(other, application, secret) == "ok"
    clock.now += 0.01
    assert _outcome(other, application, secret) == (
        expected or _outcome(state.ClientCache(), application, secret)
    )
    assert _outcome(other, application, secret) != "ok"


def test_a_scope_granted_through_the_admin_form_reaches_another_worker(clock, svc, admin_client):
    application, _secret = svc
    extra = Scope.objects.create(name="reports:write")
    other = state.ClientCache()
    assert other.client(application.client_id).allowed_scopes == {"reports:read"}

    form = {**client_form(name="svc"), **inline_management(application)}
    form["scopes"] = [s.pk for s in application.scopes.all()] + [extra.pk]
    assert admin_client.post(change_url(application), form, follow=True).status_code == 200

    clock.now += INTERVAL + 0.01
    assert other.client(application.client_id).allowed_scopes == {"reports:read", "reports:write"}


def test_the_token_endpoint_of_another_worker_refuses_a_disabled_client_after_the_interval(
    client, clock, svc
):
    application, secret = svc
    assert token_request(client, application, secret).status_code == 200
    # Another process disables it: here, the row and the change token, and not this
    # worker's cache (which the receiver would clear).
    with transaction.atomic():
        Application.objects.filter(pk=application.pk).update(is_active=False)
        generation.bump(generation.CLIENTS)
    assert token_request(client, application, secret).status_code == 200  # copy kept
    clock.now += INTERVAL + 0.01
    response = token_request(client, application, secret)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "This client is disabled."}


def test_a_change_behind_the_signals_is_seen_after_state_refresh(clock, svc, capsys):
    application, _secret = svc
    other = state.ClientCache()
    assert other.client(application.client_id).is_active is True
    Application.objects.filter(pk=application.pk).update(is_active=False)  # no signal, no bump
    clock.now += INTERVAL + 0.01
    assert other.client(application.client_id).is_active is True

    call_command("oauth_cc", "state", "refresh")

    assert (
        "Every worker reloads client data and revocation state within 2.0 seconds." in capsys.readouterr().out
    )
    clock.now += INTERVAL + 0.01
    assert other.client(application.client_id).is_active is False


# -- The change token itself ----------------------------------------------------------------


def test_a_lost_shared_copy_is_read_from_the_database_never_taken_as_unchanged(clock, svc):
    application, _secret = svc
    other = state.ClientCache()
    assert other.client(application.client_id).is_active is True
    # Another host changed the client; its change token is in the database but this
    # site's shared copy still holds the old one (the delete has not reached it).
    old_copy = cache.get(generation.cache_key(generation.CLIENTS))
    assert old_copy is not None
    with transaction.atomic():
        Application.objects.filter(pk=application.pk).update(is_active=False)
        generation.bump(generation.CLIENTS)
    cache.set(generation.cache_key(generation.CLIENTS), old_copy)
    clock.now += INTERVAL + 0.01
    assert other.client(application.client_id).is_active is True  # the copy is trusted...

    cache.delete(generation.cache_key(generation.CLIENTS))  # ...until it is evicted
    clock.now += INTERVAL + 0.01
    assert other.client(application.client_id).is_active is False


def test_bump_creates_the_row_and_replaces_its_value_each_time(db):
    assert generation.read_database(generation.CLIENTS) == 0
    generation.bump(generation.CLIENTS)
    first = generation.read_database(generation.CLIENTS)
    generation.bump(generation.CLIENTS)
    second = generation.read_database(generation.CLIENTS)
    assert first not in (0, second)
    assert second != 0
    assert StateGeneration.objects.count() == 1


def test_bump_deletes_the_shared_copy(db):
    generation.bump(generation.CLIENTS)
    assert generation.current(generation.CLIENTS) == generation.read_database(generation.CLIENTS)
    assert cache.get(generation.cache_key(generation.CLIENTS)) == generation.read_database(generation.CLIENTS)
    generation.bump(generation.CLIENTS)
    assert cache.get(generation.cache_key(generation.CLIENTS)) is None
    assert generation.current(generation.CLIENTS) == generation.read_database(generation.CLIENTS)


def test_a_value_from_a_rolled_back_transaction_is_not_the_current_one(db):
    generation.bump(generation.CLIENTS)
    committed = generation.read_database(generation.CLIENTS)
    with pytest.raises(RuntimeError), transaction.atomic():
        generation.bump(generation.CLIENTS)
        assert generation.read_database(generation.CLIENTS) != committed
        raise RuntimeError
    assert generation.read_database(generation.CLIENTS) == committed


def test_with_the_cache_down_the_token_is_read_from_the_database(db, settings):
    generation.bump(generation.CLIENTS)
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CACHE_ALIAS": "broken"}
    assert generation.current(generation.CLIENTS) == generation.read_database(generation.CLIENTS)
    generation.bump(generation.CLIENTS)  # and a change still goes through
    assert generation.current(generation.CLIENTS) == generation.read_database(generation.CLIENTS)


def test_the_watcher_counts_a_first_read_and_each_change_once(db, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": INTERVAL}
    watcher = generation.Watcher(generation.CLIENTS)
    assert watcher.changed(0.0) is True
    assert watcher.changed(INTERVAL + 0.01) is False
    generation.bump(generation.CLIENTS)
    assert watcher.changed(INTERVAL + 0.02) is False  # read less than an interval ago
    assert watcher.changed(2 * INTERVAL + 0.02) is True
    assert watcher.changed(3 * INTERVAL + 0.03) is False


# -- The revocation snapshot ----------------------------------------------------------------


def test_a_shared_snapshot_older_than_the_change_is_rebuilt_from_the_database(clock, db):
    other = revocation.RevocationState()
    assert other.current().revoked_jtis == frozenset()
    stale = cache.get(revocation.CACHE_KEY)
    assert stale is not None
    # Written by code, not publish(): the shared snapshot still has the old tag.
    RevokedToken.objects.create(jti="j", client_id="c", expires_at=timezone.now() + timedelta(minutes=5))
    assert cache.get(revocation.CACHE_KEY) == stale

    clock.now += INTERVAL + 0.01
    assert other.current().revoked_jtis == frozenset({"j"})
    assert cache.get(revocation.CACHE_KEY).revoked_jtis == frozenset({"j"})  # and shared


def test_a_snapshot_from_a_rolled_back_publish_is_never_used(clock, db, svc):
    application, _ = svc
    other = revocation.RevocationState()
    assert other.current().disabled_clients == frozenset()
    with pytest.raises(RuntimeError), transaction.atomic():
        clients.set_active(application, False)  # publishes a snapshot with the client disabled
        raise RuntimeError
    assert application.client_id in cache.get(revocation.CACHE_KEY).disabled_clients
    generation.bump(generation.REVOCATION)  # a later, unrelated change

    clock.now += INTERVAL + 0.01
    assert other.current().disabled_clients == frozenset()


def test_a_revoked_token_reaches_another_worker_within_the_interval(clock, svc, token_for, client):
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    other = revocation.RevocationState()
    other.current()
    response = form_post(
        client,
        "/oauth/revoke/",
        {"token": token},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200
    jti = RevokedToken.objects.get().jti

    clock.now += INTERVAL
    assert jti not in other.current().revoked_jtis
    clock.now += 0.01
    assert jti in other.current().revoked_jtis


def test_client_secret_rows_still_hash_only(db, svc):
    # The cache holds hashes, never secrets: what the change token saves must not change that.
    _application, secret = svc
    other = state.ClientCache()
    record = other.secret(hash_secret(secret))
    assert record is not None and secret not in repr(record)
    assert ClientSecret.objects.get().secret_hash == record.secret_hash


def test_the_shared_copy_is_deleted_again_when_the_change_commits(db, django_capture_on_commit_callbacks):
    generation.bump(generation.CLIENTS)
    old = generation.current(generation.CLIENTS)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        generation.bump(generation.CLIENTS)
        # A worker read the database before this commit and put the old value back.
        cache.set(generation.cache_key(generation.CLIENTS), old)
    assert cache.get(generation.cache_key(generation.CLIENTS)) is None
    assert generation.current(generation.CLIENTS) == generation.read_database(generation.CLIENTS) != old


def test_revoking_a_token_does_not_make_workers_reload_their_clients(
    clock, svc, token_for, client, django_assert_num_queries
):
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    other = state.ClientCache()
    other.client(application.client_id)
    clock.now += INTERVAL + 0.01
    other.client(application.client_id)  # settled after the client's creation
    response = form_post(
        client,
        "/oauth/revoke/",
        {"token": token},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200

    clock.now += INTERVAL + 0.01
    with django_assert_num_queries(0):
        assert other.client(application.client_id) is not None


def test_disabling_a_client_reaches_another_workers_revocation_snapshot(clock, svc):
    application, _secret = svc
    other = revocation.RevocationState()
    assert application.client_id not in other.current().disabled_clients
    clients.set_active(application, False)
    clock.now += INTERVAL
    assert application.client_id not in other.current().disabled_clients
    clock.now += 0.01
    assert application.client_id in other.current().disabled_clients


def test_bump_replaces_only_the_rows_it_names(db):
    generation.bump(generation.CLIENTS, generation.REVOCATION)
    clients_value = generation.current(generation.CLIENTS)
    revocation_value = generation.current(generation.REVOCATION)
    generation.bump(generation.REVOCATION)
    assert cache.get(generation.cache_key(generation.CLIENTS)) == clients_value
    assert cache.get(generation.cache_key(generation.REVOCATION)) is None
    assert generation.read_database(generation.CLIENTS) == clients_value
    assert generation.read_database(generation.REVOCATION) != revocation_value


@pytest.mark.parametrize("kind", ["client", "secret"])
def test_a_row_loaded_across_a_change_seen_by_another_thread_is_not_kept(clock, svc, monkeypatch, kind):
    """gthread workers: thread 1 reads the row, the change commits, thread 2 sees the change
    and clears the cache, then thread 1 stores what it read. That copy must not stay."""
    application, secret = svc
    cache_ = state.ClientCache()
    cache_.client(application.client_id)  # first read of the change token
    loader = "load_client" if kind == "client" else "load_secret"
    real = getattr(state, loader)

    def load_then_change(key: str) -> Any:
        record = real(key)  # the row as it was
        if key == "someone-else":
            return record
        clients.set_active(application, False) if kind == "client" else clients.revoke_secret(
            application, str(application.secrets.get().pk)
        )
        clock.now += INTERVAL + 0.01
        cache_.client("someone-else")  # thread 2: sees the change, clears
        return record

    lookup = (
        (lambda: cache_.client(application.client_id))
        if kind == "client"
        else (lambda: cache_.secret(hash_secret(secret)))
    )
    cache_.clear()
    monkeypatch.setattr(state, loader, load_then_change)
    stale = lookup()
    assert (stale.is_active if kind == "client" else not stale.revoked) is True  # read before the change
    monkeypatch.setattr(state, loader, real)
    fresh = lookup()
    assert (fresh.is_active if kind == "client" else not fresh.revoked) is False
