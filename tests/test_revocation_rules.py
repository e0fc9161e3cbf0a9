"""oauth_cc.issuer.revocation: why a token is refused, what the snapshot holds, and how long records live."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from oauth_cc.common.shared import Throttle
from oauth_cc.issuer import revocation
from oauth_cc.issuer.revocation import Snapshot
from oauth_cc.models import Application, DeletedClient, RevokedToken, UsedAssertion

# -- Snapshot.reason_refused ------------------------------------------------------------------


def test_a_token_no_record_concerns_is_not_refused():
    snapshot = Snapshot(
        revoked_jtis=frozenset({"other"}),
        disabled_clients=frozenset({"x"}),
        deleted_clients=frozenset({"y"}),
        valid_after={"z": 10.0},
    )
    assert snapshot.reason_refused(jti="j", client_id="c", iat=1.0) is None


def test_each_reason_and_which_comes_first():
    everything = Snapshot(
        revoked_jtis=frozenset({"j"}),
        disabled_clients=frozenset({"c"}),
        deleted_clients=frozenset({"c"}),
        valid_after={"c": 100.0},
    )
    assert everything.reason_refused(jti="j", client_id="c", iat=1.0) == "The access token has been revoked."
    assert (
        everything.reason_refused(jti="k", client_id="c", iat=1.0)
        == "The client of this access token is disabled."
    )
    deleted = Snapshot(deleted_clients=frozenset({"c"}), valid_after={"c": 100.0})
    assert (
        deleted.reason_refused(jti="k", client_id="c", iat=1.0)
        == "The client of this access token has been deleted."
    )
    cut = Snapshot(valid_after={"c": 100.0})
    assert cut.reason_refused(jti="k", client_id="c", iat=99.5) == (
        "The access token was issued before its client's tokens were invalidated."
    )


def test_a_token_issued_at_the_cut_off_is_valid():
    cut = Snapshot(valid_after={"c": 100.0})
    assert cut.reason_refused(jti="k", client_id="c", iat=100.0) is None
    assert cut.reason_refused(jti="k", client_id="c", iat=101.0) is None


# -- load_snapshot / publish ------------------------------------------------------------------


def test_the_snapshot_holds_live_records_only(make_client):
    now = dj_timezone.now()
    RevokedToken.objects.create(jti="live", client_id="c", expires_at=now + timedelta(minutes=5))
    RevokedToken.objects.create(jti="gone", client_id="c", expires_at=now - timedelta(seconds=1))
    DeletedClient.objects.create(
        client_id="deleted-live", deleted_at=now, expires_at=now + timedelta(minutes=5)
    )
    DeletedClient.objects.create(
        client_id="deleted-gone", deleted_at=now, expires_at=now - timedelta(seconds=1)
    )
    disabled, _ = make_client("disabled")
    Application.objects.filter(pk=disabled.pk).update(is_active=False)
    cut, _ = make_client("cut")
    cutoff = datetime(2030, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc)
    Application.objects.filter(pk=cut.pk).update(tokens_valid_after=cutoff)
    both, _ = make_client("both")
    Application.objects.filter(pk=both.pk).update(is_active=False, tokens_valid_after=cutoff)
    make_client("active")

    snapshot = revocation.load_snapshot()

    assert snapshot.revoked_jtis == frozenset({"live"})
    assert snapshot.deleted_clients == frozenset({"deleted-live"})
    assert snapshot.disabled_clients == frozenset({disabled.client_id, both.client_id})
    assert snapshot.valid_after == {cut.client_id: cutoff.timestamp(), both.client_id: cutoff.timestamp()}


def test_publish_shares_the_snapshot_and_sets_it_on_this_worker(db):
    RevokedToken.objects.create(jti="j", client_id="c", expires_at=dj_timezone.now() + timedelta(minutes=5))

    snapshot = revocation.publish()

    assert snapshot.revoked_jtis == frozenset({"j"})
    assert revocation.revocation_state.current() is snapshot
    from django.core.cache import cache

    assert cache.get(revocation.CACHE_KEY) == snapshot


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


def test_the_worker_refreshes_its_snapshot_after_the_refresh_interval(db, settings, monkeypatch):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 2.0}
    clock = _Clock(1000.0)
    monkeypatch.setattr(revocation, "time", clock)
    state = revocation.RevocationState()
    first = state.current()
    RevokedToken.objects.create(jti="new", client_id="c", expires_at=dj_timezone.now() + timedelta(minutes=5))
    from django.core.cache import cache

    cache.clear()

    clock.now += 2.0
    assert state.current() is first  # exactly the interval: not yet
    clock.now += 0.01
    assert state.current().revoked_jtis == frozenset({"new"})


def test_a_fresh_worker_loads_its_snapshot_at_once(db):
    RevokedToken.objects.create(jti="j", client_id="c", expires_at=dj_timezone.now() + timedelta(minutes=5))
    state = revocation.RevocationState()
    assert state.current().revoked_jtis == frozenset({"j"})


# -- revoke_jti -------------------------------------------------------------------------------


def test_revoke_jti_records_the_jti_until_exp_plus_leeway_and_publishes_it(db, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 30}
    exp = time.time() + 600

    assert revocation.revoke_jti(jti="j1", client_id="c", expires_at=exp) is True

    row = RevokedToken.objects.get(jti="j1")
    assert row.client_id == "c"
    assert abs(row.expires_at.timestamp() - (exp + 30)) < 0.001
    assert "j1" in revocation.revocation_state.current().revoked_jtis


def test_revoking_twice_is_true_once(db):
    exp = time.time() + 600
    assert revocation.revoke_jti(jti="j1", client_id="c", expires_at=exp) is True
    assert revocation.revoke_jti(jti="j1", client_id="c", expires_at=exp) is False
    assert RevokedToken.objects.filter(jti="j1").count() == 1


class _WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


def test_a_token_no_verifier_accepts_any_more_is_not_recorded(db, monkeypatch, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 30}
    monkeypatch.setattr(revocation, "time", _WallClock(5030.0))
    assert revocation.revoke_jti(jti="old", client_id="c", expires_at=5000.0) is False
    assert revocation.revoke_jti(jti="old2", client_id="c", expires_at=4999.0) is False
    assert not RevokedToken.objects.exists()
    # Within the leeway a verifier still accepts it, so it is recorded.
    assert revocation.revoke_jti(jti="late", client_id="c", expires_at=5000.5) is True


def test_the_record_of_a_far_future_token_is_capped_at_the_last_numeric_date(db, settings):
    from oauth_cc.common.claims import MAX_NUMERIC_DATE

    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 30}
    assert revocation.revoke_jti(jti="far", client_id="c", expires_at=float(MAX_NUMERIC_DATE)) is True
    assert RevokedToken.objects.get(jti="far").expires_at.timestamp() == MAX_NUMERIC_DATE


# -- deleted clients --------------------------------------------------------------------------


@pytest.mark.parametrize(("lifetime", "kept"), [(None, 3600), (0, 3600), (60, 3600), (7200, 7200)])
def test_a_deletion_is_remembered_for_the_longest_token_lifetime_plus_leeway(db, settings, lifetime, kept):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ACCESS_TOKEN_LIFETIME": 3600, "LEEWAY": 30}
    before = dj_timezone.now()
    revocation.record_deleted_client("gone", lifetime)
    after = dj_timezone.now()

    row = DeletedClient.objects.get(client_id="gone")
    assert before <= row.deleted_at <= after
    assert row.expires_at == row.deleted_at + timedelta(seconds=kept + 30)


def test_a_second_deletion_under_the_same_id_updates_the_record(db):
    revocation.record_deleted_client("gone", 60)
    first = DeletedClient.objects.get(client_id="gone").deleted_at
    revocation.record_deleted_client("gone", 60)
    assert DeletedClient.objects.filter(client_id="gone").count() == 1
    assert DeletedClient.objects.get(client_id="gone").deleted_at >= first


@pytest.mark.parametrize(
    ("cutoff", "adopted"),
    [(None, True), (timedelta(seconds=-10), True), (timedelta(seconds=10), False), (timedelta(0), False)],
)
def test_a_client_saved_under_a_deleted_id_adopts_the_deletion_as_its_cut_off(make_client, cutoff, adopted):
    application, _ = make_client("reborn")
    deleted_at = dj_timezone.now() - timedelta(minutes=1)
    DeletedClient.objects.create(
        client_id=application.client_id, deleted_at=deleted_at, expires_at=deleted_at + timedelta(hours=1)
    )
    own = None if cutoff is None else deleted_at + cutoff
    Application.objects.filter(pk=application.pk).update(tokens_valid_after=own)

    revocation.adopt_deletion(application.client_id)

    application.refresh_from_db()
    assert application.tokens_valid_after == (deleted_at if adopted else own)
    assert not DeletedClient.objects.filter(client_id=application.client_id).exists()


def test_adopting_without_a_deletion_record_changes_nothing(make_client):
    application, _ = make_client("plain")
    revocation.adopt_deletion(application.client_id)
    application.refresh_from_db()
    assert application.tokens_valid_after is None


def test_invalidating_a_clients_tokens_sets_its_cut_off_now_and_publishes(make_client):
    application, _ = make_client("leaky")
    other, _ = make_client("other")
    before = dj_timezone.now()

    revocation.invalidate_client_tokens(application.client_id)

    application.refresh_from_db()
    other.refresh_from_db()
    assert application.tokens_valid_after >= before
    assert other.tokens_valid_after is None
    assert revocation.revocation_state.current().valid_after[application.client_id] == (
        application.tokens_valid_after.timestamp()
    )


# -- pruning ----------------------------------------------------------------------------------


def test_prune_expired_deletes_records_at_or_past_their_expiry_and_counts_them(db, monkeypatch):
    now = dj_timezone.now()
    monkeypatch.setattr(revocation.timezone, "now", lambda: now)
    margin = timedelta(seconds=revocation.USED_ASSERTION_PRUNE_MARGIN)
    for offset in (-1, 0, 1):
        at = now + timedelta(seconds=offset)
        RevokedToken.objects.create(jti=f"r{offset}", client_id="c", expires_at=at)
        # Used-assertion records are kept for a margin past their window (see prune_expired).
        UsedAssertion.objects.create(client_id="c", jti=f"u{offset}", expires_at=at - margin)
        DeletedClient.objects.create(client_id=f"d{offset}", deleted_at=now, expires_at=at)

    assert revocation.prune_expired() == 6

    assert list(RevokedToken.objects.values_list("jti", flat=True)) == ["r1"]
    assert list(UsedAssertion.objects.values_list("jti", flat=True)) == ["u1"]
    assert list(DeletedClient.objects.values_list("client_id", flat=True)) == ["d1"]


def test_prune_now_and_then_prunes_at_most_once_per_interval(db, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(revocation, "prune_expired", lambda: calls.append(1) or 0)
    monkeypatch.setattr(revocation, "prune_throttle", Throttle(max_keys=1))

    revocation.prune_now_and_then()
    revocation.prune_now_and_then()

    assert calls == [1]


def test_the_first_prune_waits_one_interval_after_start_up(db, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(revocation, "prune_expired", lambda: calls.append(1) or 0)
    throttle = Throttle(max_keys=1)
    throttle.mark(revocation.PRUNE_KEY)
    monkeypatch.setattr(revocation, "prune_throttle", throttle)

    revocation.prune_now_and_then()

    assert calls == []
    assert revocation.PRUNE_INTERVAL == 300.0


def test_a_snapshot_published_by_one_worker_reaches_another_at_its_next_refresh(
    db, settings, monkeypatch, django_assert_num_queries
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "STATE_REFRESH_SECONDS": 2.0}
    clock = _Clock(1000.0)
    monkeypatch.setattr(revocation, "time", clock)
    other_worker = revocation.RevocationState()
    assert other_worker.current().revoked_jtis == frozenset()  # loaded, and shared

    RevokedToken.objects.create(jti="j", client_id="c", expires_at=dj_timezone.now() + timedelta(minutes=5))
    revocation.publish()  # this worker revokes
    clock.now += 2.5

    # One query: the change token, whose shared copy the publish deleted; the snapshot
    # itself comes from the shared cache.
    with django_assert_num_queries(1):
        assert other_worker.current().revoked_jtis == frozenset({"j"})
