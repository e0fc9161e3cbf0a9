"""The rate limit on re-fetching a jwks_uri for an unknown ``kid`` (``client_jwks_fetch._claim_kid_refetch``).

An assertion naming a kid the cached key set lacks may trigger one re-fetch of that URL per
``KID_MISS_REFETCH_INTERVAL`` seconds: per worker (a local clock) and site-wide (an atomic
``cache.add`` that expires after the interval, at least one second). When the cache is down, the
per-worker limit still holds and the failure is logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from oauth_cc.issuer import client_jwks_fetch

URL = "https://keys.example.com/jwks.json"
OTHER_URL = "https://keys.example.org/jwks.json"


def _other_worker() -> None:
    """What another worker process sees: the shared cache, but none of this worker's memory."""
    client_jwks_fetch.reset()


class _BrokenCache:
    def add(self, *args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("cache server unreachable")


class _Clock:
    """A stand-in for the ``time`` module as client_jwks_fetch sees it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


def test_first_claim_wins_and_a_second_one_in_the_interval_is_refused(db):
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    assert client_jwks_fetch._claim_kid_refetch(URL) is False


def test_claims_for_different_urls_do_not_limit_each_other(db):
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    assert client_jwks_fetch._claim_kid_refetch(OTHER_URL) is True


def test_one_worker_site_wide_wins_the_refetch_of_a_url(db):
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    _other_worker()
    assert client_jwks_fetch._claim_kid_refetch(URL) is False
    # ...but only for that URL.
    assert client_jwks_fetch._claim_kid_refetch(OTHER_URL) is True


def test_site_wide_claim_expires_after_the_interval(db, monkeypatch):
    monkeypatch.setattr(client_jwks_fetch, "KID_MISS_REFETCH_INTERVAL", 1.0)
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    time.sleep(1.2)
    _other_worker()
    assert client_jwks_fetch._claim_kid_refetch(URL) is True


def test_site_wide_claim_lasts_the_whole_interval(db, monkeypatch):
    monkeypatch.setattr(client_jwks_fetch, "KID_MISS_REFETCH_INTERVAL", 2.0)
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    time.sleep(1.2)
    _other_worker()
    assert client_jwks_fetch._claim_kid_refetch(URL) is False


def test_site_wide_claim_of_a_sub_second_interval_lasts_one_second(db, monkeypatch):
    monkeypatch.setattr(client_jwks_fetch, "KID_MISS_REFETCH_INTERVAL", 0.5)
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    _other_worker()
    assert client_jwks_fetch._claim_kid_refetch(URL) is False
    time.sleep(1.2)
    _other_worker()
    assert client_jwks_fetch._claim_kid_refetch(URL) is True


@pytest.fixture
def broken_cache(monkeypatch: Any) -> None:
    monkeypatch.setattr(client_jwks_fetch, "_cache", lambda: _BrokenCache())


def test_with_the_cache_down_the_worker_still_refetches_once_per_interval(db, broken_cache, caplog):
    with caplog.at_level(logging.WARNING, logger="oauth_cc.client_keys"):
        assert client_jwks_fetch._claim_kid_refetch(URL) is True
        assert client_jwks_fetch._claim_kid_refetch(URL) is False
        assert client_jwks_fetch._claim_kid_refetch(OTHER_URL) is True

    warnings = [r for r in caplog.records if r.name == "oauth_cc.client_keys"]
    assert [r.getMessage() for r in warnings] == [
        "Cache unavailable; rate-limiting JWKS re-fetches per worker only"
    ] * 2
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert all(r.exc_info and r.exc_info[0] is ConnectionError for r in warnings)


def test_with_the_cache_down_the_per_worker_interval_is_exact(db, broken_cache, monkeypatch):
    clock = _Clock(1000.0)
    monkeypatch.setattr(client_jwks_fetch, "time", clock)
    interval = client_jwks_fetch.KID_MISS_REFETCH_INTERVAL

    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    clock.now += interval - 0.001
    assert client_jwks_fetch._claim_kid_refetch(URL) is False
    clock.now = 1000.0 + interval
    assert client_jwks_fetch._claim_kid_refetch(URL) is True
    # The interval starts again from the last granted claim.
    clock.now += interval / 2
    assert client_jwks_fetch._claim_kid_refetch(URL) is False
