"""The resource side's poll of the revocation feed (oauth_cc.resource.feed.fetch and FeedState):
conditional reads, the site-wide claim, staleness under "keep" and "refuse", and what a worker
adopts from the shared cache. The issuer is a recorder standing in for hardened_http.get."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from oauth_cc.common import hardened_http
from oauth_cc.common.errors import TemporarilyUnavailable
from oauth_cc.common.revocation_snapshot import Snapshot
from oauth_cc.resource import feed
from tests.helpers import ISSUER, clear_shared_cache

SETTINGS = {
    "ISSUER": ISSUER,
    "RESOURCE_CLIENT_ID": "reader",
    "RESOURCE_CLIENT_SECRET": "s3cret",
    "ISSUER_ALLOW_INSECURE": True,
    "REVOCATION_FEED_STALE_SECONDS": 30,
    "REVOCATION_FEED_POLL_SECONDS": 2.5,
}
DOCUMENT = {
    "issuer": ISSUER,
    "revoked_jtis": ["j1"],
    "disabled_clients": [],
    "deleted_clients": [],
    "tokens_valid_after": {},
}
T0 = 1_000_000.0


class Issuer:
    """Answers each feed request with ``status`` (200 with ``document`` and ETag "1", or a 304),
    or fails it while ``down``; keeps the headers of every request."""

    def __init__(self) -> None:
        self.status = 200
        self.down = False
        self.document: dict[str, Any] = DOCUMENT
        self.requests: list[dict[str, str]] = []

    def get(self, url: str, *, headers: dict[str, str], **kwargs: Any) -> hardened_http.Fetched:
        self.requests.append(dict(headers))
        if self.down:
            raise hardened_http.FetchError("the issuer is down")
        if self.status == 304:
            return hardened_http.Fetched(status=304, headers={"etag": '"1"'}, body=b"")
        body = json.dumps(self.document).encode()
        return hardened_http.Fetched(status=200, headers={"etag": '"1"'}, body=body)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def time(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _settings() -> Any:
    clear_shared_cache()
    with override_settings(OAUTH_CC=SETTINGS):
        yield
    clear_shared_cache()


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> Issuer:
    serving = Issuer()
    monkeypatch.setattr(hardened_http, "get", serving.get)
    return serving


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(feed, "time", fake)
    return fake


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """Every claim is won (each poll fetches); the claims asked for are kept."""
    asked: list[tuple[str, float]] = []

    def claim(key: str, seconds: float) -> bool:
        asked.append((key, seconds))
        return True

    monkeypatch.setattr(feed, "claim", claim)
    return asked


# -- fetch: the conditional read -----------------------------------------------------------------


def test_a_poll_sends_the_etag_it_holds_and_a_304_keeps_the_snapshot_with_a_new_time(
    issuer: Issuer, clock: Clock
) -> None:
    first = feed.fetch(None)
    assert "If-None-Match" not in issuer.requests[0]
    assert (first["etag"], first["checked_at"]) == ('"1"', T0)
    issuer.status = 304
    clock.now = T0 + 5
    second = feed.fetch(first)
    assert issuer.requests[1]["If-None-Match"] == '"1"'
    assert second["snapshot"] is first["snapshot"]
    assert second["checked_at"] == T0 + 5  # unchanged is as fresh as changed


def test_an_entry_without_an_etag_is_read_unconditionally(issuer: Issuer) -> None:
    feed.fetch({"etag": None, "snapshot": Snapshot(), "checked_at": T0})
    assert "If-None-Match" not in issuer.requests[0]


def test_a_feed_larger_than_a_kilobyte_is_read_whole(issuer: Issuer) -> None:
    """The JSON reader's cap is the body's own size (the fetcher already capped it)."""
    jtis = [f"jti-{n:05d}" for n in range(2000)]
    issuer.document = {**DOCUMENT, "revoked_jtis": jtis}
    assert feed.fetch(None)["snapshot"].revoked_jtis == frozenset(jtis)


# -- FeedState.poll: the claim and what is adopted ------------------------------------------------


def test_a_worker_without_a_snapshot_reads_the_feed_even_when_another_holds_the_claim(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "claim", lambda key, seconds: False)
    assert "j1" in feed.FeedState().current().revoked_jtis
    assert len(issuer.requests) == 1


def test_a_worker_with_a_snapshot_polls_only_when_it_wins_the_claim(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = feed.FeedState()
    state.poll()
    monkeypatch.setattr(feed, "claim", lambda key, seconds: False)
    state.poll()
    assert len(issuer.requests) == 1


@pytest.mark.parametrize(("poll_seconds", "claimed_for"), [(2.5, 3), (0.2, 1), (7, 7)])
def test_the_claim_lasts_the_poll_interval_rounded_up_and_at_least_a_second(
    issuer: Issuer, claims: list[tuple[str, float]], poll_seconds: float, claimed_for: int
) -> None:
    state = feed.FeedState()
    state.poll()  # the first poll fetches without asking
    with override_settings(OAUTH_CC={**SETTINGS, "REVOCATION_FEED_POLL_SECONDS": poll_seconds}):
        state.poll()
    assert claims == [(feed._key("poll"), claimed_for)]


def test_an_unusable_shared_entry_is_not_sent_as_the_etag(issuer: Issuer, claims: Any) -> None:
    caches["default"].set(feed._key("state"), {"etag": '"1"', "snapshot": "junk", "checked_at": T0})
    issuer.status = 304  # what the issuer would answer to the ETag: the junk would be adopted
    state = feed.FeedState()
    state.poll()
    assert "If-None-Match" not in issuer.requests[0]


@pytest.mark.parametrize("checked_at", ["x", 10**12, None])
def test_a_shared_entry_whose_time_is_not_a_float_is_not_adopted(
    monkeypatch: pytest.MonkeyPatch, checked_at: Any
) -> None:
    caches["default"].set(
        feed._key("state"), {"snapshot": Snapshot(revoked_jtis=frozenset({"x"})), "checked_at": checked_at}
    )
    monkeypatch.setattr(feed, "claim", lambda key, seconds: False)
    state = feed.FeedState()
    state._snapshot = held = Snapshot()
    state.poll()
    assert state.current() is held


# -- staleness: "keep" and "refuse" -----------------------------------------------------------------


def stale_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "has not read the issuer's revocation feed" in r.getMessage()
    ]


def test_stale_is_strictly_past_revocation_feed_stale_seconds(issuer: Issuer, clock: Clock) -> None:
    state = feed.FeedState()
    state.poll()
    clock.now = T0 + 30
    assert not state.stale()
    clock.now = T0 + 30.5
    assert state.stale()


@override_settings(OAUTH_CC={**SETTINGS, "REVOCATION_FEED_UNREACHABLE": "refuse"})
def test_refuse_answers_503_once_stale_and_serves_again_after_a_read(
    issuer: Issuer, clock: Clock, claims: Any
) -> None:
    state = feed.FeedState()
    held = state.current()
    clock.now = T0 + 30
    assert state.current() is held
    clock.now = T0 + 31
    with pytest.raises(TemporarilyUnavailable) as raised:
        state.current()
    assert raised.value.description == "The issuer's revocation state is out of date; retry shortly."
    assert raised.value.retry_after == 5
    state.poll()
    assert state.current() is not None


def test_keep_serves_the_last_state_when_stale(issuer: Issuer, clock: Clock) -> None:
    state = feed.FeedState()
    held = state.current()
    clock.now = T0 + 3600
    assert state.current() is held


@pytest.mark.parametrize(
    ("choice", "consequence"),
    [("keep", "serving with the last state read"), ("refuse", "refusing tokens (503) until it can")],
)
def test_staleness_is_logged_once_until_the_feed_is_read_again(
    issuer: Issuer, clock: Clock, claims: Any, caplog: pytest.LogCaptureFixture, choice: str, consequence: str
) -> None:
    caplog.set_level(logging.ERROR, logger="oauth_cc.resource")
    expected = f"oauth_cc has not read the issuer's revocation feed for over 30s; {consequence}"
    with override_settings(OAUTH_CC={**SETTINGS, "REVOCATION_FEED_UNREACHABLE": choice}):
        state = feed.FeedState()
        state.poll()
        issuer.down = True
        clock.now = T0 + 31
        state.poll()
        state.poll()
        assert stale_lines(caplog) == [expected]
        issuer.down = False
        state.poll()  # read again: fresh, and the next staleness is news again
        assert stale_lines(caplog) == [expected]
        issuer.down = True
        clock.now = T0 + 31 + 31
        state.poll()
        assert stale_lines(caplog) == [expected, expected]
