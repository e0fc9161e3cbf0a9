"""Per-client hourly token counts: counting without SQL, additive flushes, the not-caching rule, pruning."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oauth_cc.checks import check_settings
from oauth_cc.issuer import outage, revocation, usage_counts
from oauth_cc.issuer.usage_counts import HOUR, UsageCounter, hour_of, not_caching, window_count
from oauth_cc.models import UsageBucket

from .conftest import basic_auth, form_post

NOW_HOUR = 480_000  # some hour in 2024
GRANT = {"grant_type": "client_credentials"}


def stored() -> dict[tuple[str, int], int]:
    return {(b.client_id, b.hour): b.count for b in UsageBucket.objects.all()}


def counter_at(**kwargs: Any) -> UsageCounter:
    """A worker's counter whose flush interval started at ``NOW_HOUR``: counting then does not flush."""
    counter = UsageCounter(**kwargs)
    counter.reset(now=NOW_HOUR * HOUR)
    return counter


def oauth_settings(**values: Any) -> Any:
    return override_settings(
        OAUTH_CC={"ISSUER": "http://testserver", "JWKS_URI_ALLOW_INSECURE": True, **values}
    )


@pytest.fixture
def svc(make_scope, make_client):
    make_scope("reports:read", default=True)
    return make_client("svc", scopes=["reports:read"])


def token(client: Any, application: Any, secret: str) -> Any:
    response = form_post(
        client, "/oauth/token/", GRANT, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret)
    )
    assert response.status_code == 200, response.content
    return response


# -- the sliding-window arithmetic ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds_into_hour", "expected"),
    [
        (0, 5 + 40),  # the whole previous hour is inside the last 60 minutes
        (900, 5 + 30),  # 3/4 of it
        (1800, 5 + 20),
        (3599, 5 + 0),  # 40 * 1 // 3600 rounds down to 0
    ],
)
def test_last_hour_counts_the_current_hour_and_the_overlapping_part_of_the_previous(
    seconds_into_hour, expected
):
    counts = {NOW_HOUR: 5, NOW_HOUR - 1: 40, NOW_HOUR - 2: 1000}
    assert window_count(counts, NOW_HOUR * HOUR + seconds_into_hour, 1) == expected


def test_last_day_counts_24_full_hours_and_the_overlap_of_the_25th():
    counts = {NOW_HOUR - k: 1 for k in range(24)} | {NOW_HOUR - 24: 100, NOW_HOUR - 25: 10_000}
    assert window_count(counts, NOW_HOUR * HOUR + 1800, 24) == 24 + 50


# -- "not caching tokens": both sides of the boundary ------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "lifetime", "flagged"),
    [
        (10, 3600, False),  # 10 tokens per one-hour lifetime: exactly the threshold
        (11, 3600, True),
        (60, 600, False),  # 10-minute tokens: 6 lifetimes per hour, so 60 is the limit
        (61, 600, True),
        (10, 7200, False),  # longer than an hour: the minimum, THRESHOLD per hour, applies
        (11, 7200, True),
        (6, 7200, False),  # 6 tokens in an hour are fewer than 10 per 2-hour lifetime
        (36_000, 1, False),  # 1-second tokens: 10 per second is the limit
        (36_001, 1, True),
    ],
)
def test_not_caching_boundary(tokens, lifetime, flagged):
    assert not_caching(tokens, lifetime) is flagged


@pytest.mark.parametrize(("threshold", "tokens", "flagged"), [(3, 3, False), (3, 4, True), (50, 51, True)])
def test_not_caching_follows_the_setting(threshold, tokens, flagged):
    with oauth_settings(NOT_CACHING_THRESHOLD=threshold):
        assert not_caching(tokens, 3600) is flagged


# -- counting on the token endpoint -------------------------------------------------------------------


def test_tokens_are_counted_in_memory_and_written_only_when_the_interval_elapses(
    client, svc, django_assert_num_queries
):
    application, secret = svc
    token(client, application, secret)  # cold worker: loads client, keys, writes last-used
    with django_assert_num_queries(0):
        for _ in range(4):
            token(client, application, secret)
    assert stored() == {}
    assert usage_counts.counter.pending() == {(application.client_id, hour_of(time.time())): 5}

    # The next request after the interval writes every pending count in one statement.
    usage_counts.counter.reset(now=time.time() - 61)
    usage_counts.counter._pending = {(application.client_id, hour_of(time.time())): 5}
    with django_assert_num_queries(3) as captured:  # SAVEPOINT, the upsert, RELEASE
        token(client, application, secret)
    upserts = [q["sql"] for q in captured.captured_queries if "oauth_cc_usagebucket" in q["sql"]]
    assert len(upserts) == 1 and upserts[0].startswith("INSERT")
    assert stored() == {(application.client_id, hour_of(time.time())): 6}
    assert usage_counts.counter.pending() == {}
    with django_assert_num_queries(0):
        token(client, application, secret)  # a new interval has started


def test_each_issued_token_counts_once_and_refused_requests_do_not(client, svc):
    application, secret = svc
    for _ in range(3):
        token(client, application, secret)
    refused = form_post(
        client, "/oauth/token/", GRANT, HTTP_AUTHORIZATION=basic_auth(application.client_id, "x")
    )
    assert refused.status_code == 401
    assert usage_counts.flush() is True
    assert stored() == {(application.client_id, hour_of(time.time())): 3}


def test_a_failing_flush_does_not_fail_the_token_request_and_keeps_the_counts(
    client, svc, monkeypatch, caplog
):
    application, secret = svc

    def broken(counts: Any) -> None:
        raise DatabaseError("database is down")

    with oauth_settings(USAGE_FLUSH_SECONDS=0):
        monkeypatch.setattr(usage_counts, "add_counts", broken)
        token(client, application, secret)
        response = token(client, application, secret)
        assert response.json()["token_type"] == "Bearer"
        assert "Could not write usage counts of 1 client-hour(s)" in caplog.text
        assert stored() == {}
        monkeypatch.undo()
        token(client, application, secret)  # the database is back: all three arrive
    assert stored() == {(application.client_id, hour_of(time.time())): 3}
    assert usage_counts.counter.pending() == {}


def test_flush_with_a_real_database_error_rolls_back_and_keeps_counts(db, monkeypatch):
    counter = counter_at()
    counter.count("a", now=NOW_HOUR * HOUR)
    monkeypatch.setattr(UsageBucket._meta, "db_table", "oauth_cc_no_such_table")
    assert counter.flush() is False
    monkeypatch.undo()
    assert counter.pending() == {("a", NOW_HOUR): 1}
    assert UsageBucket.objects.count() == 0  # and the connection still works
    # SQLite reports a missing table as an OperationalError, which oauth_cc.issuer.outage takes for an
    # unreachable database and retries only after one refresh interval; skip that wait.
    outage.database.reset()
    assert counter.flush() is True
    assert stored() == {("a", NOW_HOUR): 1}


def test_pending_counts_are_bounded():
    counter = counter_at(max_buckets=3)
    for cid in "abcde":
        counter.count(cid, now=NOW_HOUR * HOUR)
    counter.count("a", now=NOW_HOUR * HOUR)  # an existing bucket still counts
    assert stored_nothing_yet(counter)
    assert counter.pending() == {("a", NOW_HOUR): 2, ("b", NOW_HOUR): 1, ("c", NOW_HOUR): 1}
    assert counter.dropped == 2


def stored_nothing_yet(counter: UsageCounter) -> bool:
    return counter._last_flush == NOW_HOUR * HOUR


def test_failed_flush_keeps_the_newest_hours_within_the_bound(monkeypatch):
    counter = counter_at(max_buckets=2)
    for hour in (NOW_HOUR - 2, NOW_HOUR - 2, NOW_HOUR - 1):
        counter.count("a", now=hour * HOUR)
    batch = counter._pending
    counter._pending = {("a", NOW_HOUR): 4}  # counted while the failed flush ran
    counter._restore(batch)
    assert counter.pending() == {("a", NOW_HOUR): 4, ("a", NOW_HOUR - 1): 1}
    assert counter.dropped == 2  # tokens, not buckets: the oldest bucket held two


def test_tokens_counted_while_a_failed_flush_runs_are_added_to_its_counts(monkeypatch):
    counter = counter_at()
    for _ in range(4):
        counter.count("a", now=NOW_HOUR * HOUR)

    def failing(counts: Any) -> None:
        counter.count("a", now=NOW_HOUR * HOUR)  # another thread's token, mid-flush
        raise DatabaseError("database is down")

    monkeypatch.setattr(usage_counts, "add_counts", failing)
    assert counter.flush(now=NOW_HOUR * HOUR) is False
    assert counter.pending() == {("a", NOW_HOUR): 5}


def test_databases_without_upsert_add_with_an_update_then_an_insert(db, monkeypatch):
    """The path for databases other than PostgreSQL and SQLite (MySQL, Oracle): still additive."""
    monkeypatch.setattr(connection, "vendor", "mysql")
    usage_counts.add_counts({("a", NOW_HOUR): 2, ("b", NOW_HOUR): 1})
    usage_counts.add_counts({("a", NOW_HOUR): 3, ("a", NOW_HOUR + 1): 1})
    monkeypatch.undo()
    assert stored() == {("a", NOW_HOUR): 5, ("b", NOW_HOUR): 1, ("a", NOW_HOUR + 1): 1}


def test_counting_flushes_once_exactly_the_interval_has_elapsed(db):
    with oauth_settings(USAGE_FLUSH_SECONDS=60):
        counter = counter_at()
        counter.count("a", now=NOW_HOUR * HOUR + 59)
        assert stored() == {}
        counter.count("a", now=NOW_HOUR * HOUR + 60)
        assert stored() == {("a", NOW_HOUR): 2}


def test_a_clock_set_back_triggers_a_flush(db):
    counter = UsageCounter()
    counter.reset(now=NOW_HOUR * HOUR)
    counter.count("a", now=NOW_HOUR * HOUR + 10)
    assert stored() == {}
    counter.count("a", now=NOW_HOUR * HOUR - 10)
    assert stored() == {("a", NOW_HOUR): 1, ("a", NOW_HOUR - 1): 1}


def test_counts_of_a_deleted_client_still_flush(db, make_client):
    application, _ = make_client("gone")
    counter = counter_at()
    counter.count(application.client_id, now=NOW_HOUR * HOUR)
    counter.count("other", now=NOW_HOUR * HOUR)
    application.delete()
    assert counter.flush() is True
    assert stored() == {(application.client_id, NOW_HOUR): 1, ("other", NOW_HOUR): 1}


# -- several workers -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_flushing_at_once_add_up_exactly():
    """Two counters (two workers) flush overlapping buckets concurrently, many times over."""
    workers = [counter_at(), counter_at()]
    rounds = 20
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def work(counter: UsageCounter, offset: int) -> None:
        try:
            for i in range(rounds):
                for cid in ("a", "b", "c"):
                    for _ in range(i % 3 + 1 + offset):
                        counter.count(cid, now=NOW_HOUR * HOUR)
                counter.count("d", now=NOW_HOUR * HOUR - 1)
                barrier.wait()
                # A flush may lose a race for a lock (SQLite) and keep its counts: retry.
                while not counter.flush():
                    time.sleep(0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(w, n)) for n, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    per_worker = [sum(i % 3 + 1 + offset for i in range(rounds)) for offset in (0, 1)]
    expected = sum(per_worker)
    assert stored() == {
        ("a", NOW_HOUR): expected,
        ("b", NOW_HOUR): expected,
        ("c", NOW_HOUR): expected,
        ("d", NOW_HOUR - 1): 2 * rounds,
    }


keys = st.tuples(st.sampled_from(["a", "b", "ü-client", "x" * 255]), st.integers(NOW_HOUR - 3, NOW_HOUR))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.integers(0, 1), keys, st.booleans()), max_size=40))
def test_property_stored_counts_equal_tokens_counted_whatever_the_flush_points(db, events):
    UsageBucket.objects.all().delete()
    workers = [UsageCounter(), UsageCounter()]
    for worker in workers:
        worker.reset(now=(NOW_HOUR - 3) * HOUR)
    expected: dict[tuple[str, int], int] = {}
    with oauth_settings(USAGE_FLUSH_SECONDS=10**9):  # no automatic flush: only the ones drawn below
        for index, (cid, hour), flush_now in events:
            workers[index].count(cid, now=hour * HOUR + 5)
            expected[(cid, hour)] = expected.get((cid, hour), 0) + 1
            if flush_now:
                assert workers[index].flush()
                assert workers[index].pending() == {}
        # Nothing lost or doubled on the way: every token is either pending or stored.
        pending = sum(sum(w.pending().values()) for w in workers)
        assert pending + sum(stored().values()) == len(events)
        for worker in workers:
            assert worker.flush()
    assert stored() == expected


# -- retention -----------------------------------------------------------------------------------


def test_prune_deletes_buckets_older_than_the_retention_period(db):
    now = NOW_HOUR * HOUR + 100
    oldest_kept = NOW_HOUR - 35 * 24
    for hour in (oldest_kept - 1, oldest_kept, NOW_HOUR):
        UsageBucket.objects.create(client_id="a", hour=hour, count=1)
    assert usage_counts.prune(now=now) == 1
    assert sorted(stored()) == [("a", oldest_kept), ("a", NOW_HOUR)]
    with oauth_settings(USAGE_RETENTION_DAYS=40):
        UsageBucket.objects.create(client_id="a", hour=NOW_HOUR - 40 * 24 - 1, count=1)
        assert usage_counts.prune(now=now) == 1
        assert ("a", oldest_kept) in stored()


def test_tokens_prune_command_and_the_token_endpoint_prune_usage(db, monkeypatch):
    old = hour_of(time.time()) - 36 * 24
    UsageBucket.objects.create(client_id="a", hour=old, count=1)
    from io import StringIO

    out = StringIO()
    call_command("oauth_cc", "tokens", "prune", stdout=out)
    assert "Deleted 1 usage count(s) older than the retention period." in out.getvalue()
    assert UsageBucket.objects.count() == 0

    UsageBucket.objects.create(client_id="a", hour=old, count=1)
    revocation.prune_throttle.reset()
    revocation.prune_now_and_then()
    assert UsageBucket.objects.count() == 0


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USAGE_FLUSH_SECONDS", -1),
        ("USAGE_FLUSH_SECONDS", "60"),
        ("USAGE_RETENTION_DAYS", 29),
        ("USAGE_RETENTION_DAYS", 30.5),
        ("NOT_CACHING_THRESHOLD", 0),
        ("NOT_CACHING_THRESHOLD", True),
    ],
)
def test_bad_usage_settings_fail_check_e007(name, value):
    with oauth_settings(**{name: value}):
        errors = [e for e in check_settings() if e.id == "oauth_cc.E007"]
    assert [e.msg.split(" must ")[0] for e in errors] == [f"OAUTH_CC['{name}']"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("USAGE_FLUSH_SECONDS", 0), ("USAGE_RETENTION_DAYS", 30), ("NOT_CACHING_THRESHOLD", 1)],
)
def test_smallest_usage_settings_pass(name, value):
    with oauth_settings(**{name: value}):
        assert not [e for e in check_settings() if e.id == "oauth_cc.E007"]
