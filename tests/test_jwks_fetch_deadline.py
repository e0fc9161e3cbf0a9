"""The fetch of a jwks_uri as a whole (``_refresh``, ``_run_with_deadline``, ``_fetch_document``).

A fetch runs on a small per-process pool (``FETCH_THREADS``) and its caller waits at most
``JWKS_URI_TIMEOUT`` in total, even when the pool is busy with a stalled name resolution; a fetch
that waited too long in the queue is not started; the connection itself is
:func:`oauth_cc.common.hardened_http.fetch` (``test_hardened_http_*``); the body must be a JWK Set; a
failure is remembered for ``FAILURE_RETRY_AFTER`` seconds, by every worker (through the cache;
by the failing worker alone when the cache is down), and logged; a fetched set is kept by the
worker even when the shared cache cannot take it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.core.cache import caches

from oauth_cc.common import hardened_http
from oauth_cc.issuer import client_jwks_fetch
from oauth_cc.issuer.client_jwks_fetch import JWKSFetchError

from .assertion_helpers import generate_key, jwks_of
from .test_jwks_uri import KeyServer, _cold_key_caches, key_server  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def good_key():
    return generate_key("ES256", kid="good")


@pytest.fixture
def server(key_server: KeyServer, good_key: Any) -> KeyServer:  # noqa: F811
    key_server.document = jwks_of(good_key)
    return key_server


@pytest.fixture
def fresh_pool(monkeypatch: Any) -> None:
    """A pool created for this test, with the given number of threads."""
    monkeypatch.setattr(client_jwks_fetch._pool, "_executor", None)


def _fetch_error(call: Any) -> str:
    with pytest.raises(JWKSFetchError) as raised:
        call()
    return str(raised.value)


# -- the pool ---------------------------------------------------------------------------------


def test_fetches_run_on_named_pool_threads(db, server, fresh_pool):
    client_jwks_fetch._refresh(server.url)
    names = [thread.name for thread in threading.enumerate() if thread.name.startswith("oauth_cc-jwks_")]
    assert names


def test_the_pool_has_fetch_threads_threads_and_a_queued_fetch_gives_up_at_its_deadline(
    db, settings, monkeypatch, fresh_pool, server
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_TIMEOUT": 0.3}
    monkeypatch.setattr(client_jwks_fetch, "FETCH_THREADS", 1)
    release = threading.Event()
    real_resolve = hardened_http.resolve

    def resolve(host: str, port: int) -> list[str]:
        if host == "stalled.example":
            release.wait(3)  # name resolution has no timeout of its own
        return real_resolve("127.0.0.1", port)

    monkeypatch.setattr(hardened_http, "resolve", resolve)

    def fetch_stalled() -> None:
        with pytest.raises(JWKSFetchError):
            client_jwks_fetch._run_with_deadline("http://stalled.example/", 0.3)

    stalled = threading.Thread(target=fetch_stalled, daemon=True)
    try:
        stalled.start()
        time.sleep(0.05)  # the stalled fetch holds the only pool thread
        started = time.monotonic()
        message = _fetch_error(lambda: client_jwks_fetch._run_with_deadline(server.url, 0.3))
        elapsed = time.monotonic() - started
    finally:
        release.set()
        stalled.join(5)

    assert message == "timed out"
    assert elapsed < 0.8
    time.sleep(0.1)  # the queued fetch now runs, sees its deadline passed, and does not connect
    assert server.hits == 0


def test_the_pool_is_made_once_per_process(db, server, fresh_pool):
    client_jwks_fetch._run_with_deadline(server.url, 5)
    pool = client_jwks_fetch._pool._executor
    client_jwks_fetch._run_with_deadline(server.url, 5)
    assert client_jwks_fetch._pool._executor is pool


def test_a_pool_inherited_through_fork_is_replaced(db, server, fresh_pool, monkeypatch):
    client_jwks_fetch._run_with_deadline(server.url, 5)
    pool = client_jwks_fetch._pool._executor
    monkeypatch.setattr(client_jwks_fetch._pool, "_pid", -1)  # as if this process were a forked child
    client_jwks_fetch._run_with_deadline(server.url, 5)
    assert client_jwks_fetch._pool._executor is not pool


def test_an_unexpected_error_in_a_fetch_is_logged_and_answered_with_a_sentence(
    db, monkeypatch, caplog, fresh_pool
):
    def explode(url: str, deadline: float) -> dict:
        raise KeyError("boom")

    monkeypatch.setattr(client_jwks_fetch, "_fetch_document", explode)
    with caplog.at_level(logging.ERROR, logger="oauth_cc.client_keys"):
        message = _fetch_error(lambda: client_jwks_fetch._run_with_deadline("http://keys.example/jwks", 1))

    assert message == "the JWKS URI could not be fetched"
    [record] = [r for r in caplog.records if r.name == "oauth_cc.client_keys"]
    assert record.getMessage() == "Unexpected error fetching a client JWKS from http://keys.example/jwks"
    assert record.exc_info and record.exc_info[0] is KeyError


# -- _fetch_document --------------------------------------------------------------------------


class _Clock:
    """A stand-in for the ``time`` module: the wall clock moves with the monotonic one (a failure's
    site-wide pause ends at a wall-clock time)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._wall_offset = time.time() - now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self._wall_offset + self.now


def test_a_fetch_that_starts_at_its_deadline_does_not_start(db, monkeypatch, server):
    resolved: list[str] = []
    monkeypatch.setattr(hardened_http, "time", _Clock(100.0))
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: resolved.append(host) or ["127.0.0.1"])

    assert _fetch_error(lambda: client_jwks_fetch._fetch_document(server.url, 100.0)) == "timed out"
    assert resolved == []  # not even the name is looked up
    assert server.hits == 0


def test_no_address_is_tried_once_the_deadline_is_reached(db, monkeypatch, server):
    clock = _Clock(100.0)
    monkeypatch.setattr(hardened_http, "time", clock)

    def slow_resolve(host: str, port: int) -> list[str]:
        clock.now = 101.0  # resolution took until exactly the deadline
        return ["127.0.0.1"]

    monkeypatch.setattr(hardened_http, "resolve", slow_resolve)
    assert _fetch_error(lambda: client_jwks_fetch._fetch_document(server.url, 101.0)) == "timed out"
    assert server.hits == 0


def test_an_unacceptable_url_is_refused_with_its_sentence_without_the_full_stop(db, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": False}
    message = _fetch_error(
        lambda: client_jwks_fetch._fetch_document("http://keys.example.com/", time.monotonic() + 5)
    )
    assert message == "the JWKS URI must use https://"


def test_the_key_set_is_asked_for_by_its_media_type(db, server):
    client_jwks_fetch._fetch_document(server.url, time.monotonic() + 5)
    assert server.headers["Accept"] == "application/jwk-set+json, application/json"


def test_a_304_is_not_taken_for_a_key_set(db, server):
    """No conditional request is made, so a 304 can only be a broken server."""
    server.mode = "not_modified"
    assert _fetch_error(lambda: client_jwks_fetch._fetch_document(server.url, time.monotonic() + 5)) == (
        "the server answered HTTP 304"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>keys</html>", "the response is not JSON"),
        (b'{"keys": [], "keys": []}', "the response is not JSON"),
        (b"[]", 'the response is not a JWK Set ({"keys": [...]})'),
        (b'"keys"', 'the response is not a JWK Set ({"keys": [...]})'),
        (b'{"keys": {}}', 'the response is not a JWK Set ({"keys": [...]})'),
        (b'{"Keys": []}', 'the response is not a JWK Set ({"keys": [...]})'),
    ],
)
def test_a_response_that_is_not_a_jwk_set_is_refused(db, server, body, message):
    server.mode = "raw"
    server.raw = body
    assert (
        _fetch_error(lambda: client_jwks_fetch._fetch_document(server.url, time.monotonic() + 5)) == message
    )


def test_a_jwk_set_is_returned_as_decoded(db, server):
    server.mode = "raw"
    server.raw = b'{"keys": [{"kty": "EC", "kid": "k"}], "extra": true}'
    document = client_jwks_fetch._fetch_document(server.url, time.monotonic() + 5)
    assert document == {"keys": [{"kty": "EC", "kid": "k"}], "extra": True}


# -- _refresh ---------------------------------------------------------------------------------


def test_a_set_without_a_usable_key_is_a_failure(db, server):
    server.document = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}
    assert (
        _fetch_error(lambda: client_jwks_fetch._refresh(server.url))
        == "the JWK Set has no usable public signing key"
    )


def test_a_failure_is_logged_with_the_url_and_reason(db, server, caplog):
    server.mode = "error"
    with caplog.at_level(logging.WARNING, logger="oauth_cc.client_keys"):
        _fetch_error(lambda: client_jwks_fetch._refresh(server.url))

    [record] = [r for r in caplog.records if r.name == "oauth_cc.client_keys"]
    assert (
        record.getMessage() == f"Could not fetch client JWKS from {server.url}: the server answered HTTP 500"
    )
    assert record.levelno == logging.WARNING


def test_a_failure_is_answered_again_until_the_retry_time_and_then_retried(db, server, monkeypatch):
    # Far from the real monotonic clock, which the fetch's deadline must still be taken from.
    clock = _Clock(0.0)
    monkeypatch.setattr(client_jwks_fetch, "time", clock)
    server.mode = "error"
    assert _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "the server answered HTTP 500"
    server.mode = "ok"

    clock.now = client_jwks_fetch.FAILURE_RETRY_AFTER - 0.01
    assert _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "the server answered HTTP 500"
    assert server.hits == 1

    clock.now = client_jwks_fetch.FAILURE_RETRY_AFTER
    assert client_jwks_fetch._refresh(server.url).kids == frozenset({"good"})
    assert server.hits == 2


def test_a_fetched_set_is_kept_by_the_worker_when_the_shared_cache_cannot_take_it(
    db, server, monkeypatch, caplog
):
    class NoSet:
        def get(self, *args: Any, **kwargs: Any) -> Any:
            return None

        def set(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("cache down")

    monkeypatch.setattr(client_jwks_fetch, "_cache", lambda: NoSet())
    with caplog.at_level(logging.WARNING, logger="oauth_cc.client_keys"):
        entry = client_jwks_fetch._refresh(server.url)

    assert client_jwks_fetch._uri_cache.get(server.url) is entry
    assert client_jwks_fetch._uri_keys(server.url, None) is entry
    assert server.hits == 1
    [record] = [r for r in caplog.records if r.name == "oauth_cc.client_keys"]
    assert record.getMessage() == "Could not share a fetched client JWKS through the cache"
    assert record.exc_info and record.exc_info[0] is ConnectionError


def test_a_fetched_set_is_shared_with_its_fetch_time(db, server):
    entry = client_jwks_fetch._refresh(server.url)
    shared = caches["default"].get(client_jwks_fetch._cache_key("set", server.url))
    assert shared == {"fetched_at": entry.fetched_at, "document": server.document}


# -- a failure's pause, site-wide -------------------------------------------------------------


def _other_worker() -> None:
    """What another worker process sees: the shared cache, but none of this worker's memory."""
    client_jwks_fetch.reset()


@pytest.fixture
def clock(monkeypatch: Any) -> _Clock:
    clock = _Clock(1000.0)
    monkeypatch.setattr(client_jwks_fetch, "time", clock)
    return clock


def test_a_failure_pauses_every_worker_until_its_retry_time(db, server, clock):
    server.mode = "error"
    assert _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "the server answered HTTP 500"
    assert caches["default"].get(client_jwks_fetch._cache_key("failure", server.url)) == {
        "until": clock.time() + client_jwks_fetch.FAILURE_RETRY_AFTER,
        "reason": "the server answered HTTP 500",
    }
    server.mode = "ok"

    clock.now += client_jwks_fetch.FAILURE_RETRY_AFTER - 0.01
    _other_worker()
    assert _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "the server answered HTTP 500"
    assert server.hits == 1

    clock.now += 0.01
    _other_worker()
    assert client_jwks_fetch._refresh(server.url).kids == frozenset({"good"})
    assert server.hits == 2


def test_a_worker_keeps_an_adopted_pause_in_memory_for_what_is_left_of_it(db, server, clock, monkeypatch):
    server.mode = "error"
    _fetch_error(lambda: client_jwks_fetch._refresh(server.url))
    clock.now += 2.0
    _other_worker()
    _fetch_error(lambda: client_jwks_fetch._refresh(server.url))  # adopts the site's record
    deadline, reason = client_jwks_fetch._failures.get(server.url)
    assert deadline == pytest.approx(1000.0 + client_jwks_fetch.FAILURE_RETRY_AFTER, abs=1e-3)
    assert reason == "the server answered HTTP 500"

    class Unreadable:
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the pause is answered from memory, not the cache")

    monkeypatch.setattr(client_jwks_fetch, "_cache", lambda: Unreadable())
    assert _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "the server answered HTTP 500"
    assert server.hits == 1


def test_a_site_record_ending_far_ahead_is_held_in_memory_no_longer_than_one_pause(db, server, clock):
    # Another host's clock may be ahead: this worker asks the cache again after one pause.
    caches["default"].set(
        client_jwks_fetch._cache_key("failure", server.url),
        {"until": clock.time() + 100.0, "reason": "timed out"},
    )
    assert _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "timed out"
    deadline, _ = client_jwks_fetch._failures.get(server.url)
    assert deadline == pytest.approx(clock.now + client_jwks_fetch.FAILURE_RETRY_AFTER, abs=1e-3)
    assert server.hits == 0


@pytest.mark.parametrize(
    "record",
    [
        {"until": "soon", "reason": "timed out"},
        {"until": 9e18, "reason": 5},
        {"until": 9e18},
        ["timed out"],
        {"until": 9 * 10**18, "reason": "timed out"},  # an int: no record this version writes
    ],
)
def test_a_site_record_of_another_shape_is_ignored(db, server, clock, record):
    caches["default"].set(client_jwks_fetch._cache_key("failure", server.url), record)
    assert client_jwks_fetch._refresh(server.url).kids == frozenset({"good"})
    assert server.hits == 1


def test_a_site_record_that_has_ended_does_not_pause(db, server, clock):
    caches["default"].set(
        client_jwks_fetch._cache_key("failure", server.url), {"until": clock.time(), "reason": "timed out"}
    )
    assert client_jwks_fetch._refresh(server.url).kids == frozenset({"good"})


class _DownCache:
    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache server unreachable")

    set = get


def test_with_the_cache_down_a_failure_pauses_this_worker_and_it_is_logged_once(
    db, server, clock, monkeypatch, caplog
):
    monkeypatch.setattr(client_jwks_fetch, "_cache", lambda: _DownCache())
    server.mode = "error"
    with caplog.at_level(logging.WARNING, logger="oauth_cc.client_keys"):
        for _ in range(3):
            assert (
                _fetch_error(lambda: client_jwks_fetch._refresh(server.url)) == "the server answered HTTP 500"
            )
        clock.now += client_jwks_fetch.FAILURE_RETRY_AFTER
        _fetch_error(lambda: client_jwks_fetch._refresh(server.url))
    assert server.hits == 2  # one per pause, this worker's own
    down = [r for r in caplog.records if "paused per worker" in r.getMessage()]
    assert [r.getMessage() for r in down] == [
        "Cache unavailable; failed client JWKS fetches are paused per worker only"
    ]
    assert down[0].exc_info and down[0].exc_info[0] is ConnectionError
