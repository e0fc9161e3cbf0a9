"""Which copy of a jwks_uri key set a worker uses (``_uri_keys``, ``_shared_get``), and when it fetches.

A worker uses its own copy while it is younger than ``JWKS_URI_CACHE_SECONDS`` (even if the shared
cache lost it), else the shared cache's when another worker fetched a newer one, else it fetches.
A kid missing from a fresh set first looks at the shared cache (another worker may have the
rolled-over set), then re-fetches, rate-limited per URL. The key server counts the fetches.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.core.cache import caches

from oauth_cc.issuer import client_jwks_fetch
from oauth_cc.issuer.client_jwks_fetch import KeySet

from .assertion_helpers import generate_key, jwks_of
from .test_jwks_uri import KeyServer, _cold_key_caches, key_server  # noqa: F401 - fixtures

TTL = 300


@pytest.fixture(scope="module")
def key_1():
    return generate_key("ES256", kid="kid-1")


@pytest.fixture(scope="module")
def key_2():
    return generate_key("ES256", kid="kid-2")


@pytest.fixture
def server(key_server: KeyServer, key_1: Any, settings: Any) -> KeyServer:  # noqa: F811
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_CACHE_SECONDS": TTL}
    key_server.document = jwks_of(key_1)
    return key_server


class Clock:
    """``time`` as client_jwks_fetch sees it: wall-clock time is set by the test, monotonic time is real."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch: Any) -> Clock:
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(client_jwks_fetch, "time", clock)
    return clock


def kids(entry: KeySet) -> set[str]:
    return set(entry.kids)


def _shared_entry(url: str) -> Any:
    return caches["default"].get(client_jwks_fetch._cache_key("set", url))


def test_the_workers_own_copy_is_used_even_when_the_shared_cache_lost_it(db, server):
    assert kids(client_jwks_fetch._uri_keys(server.url, None)) == {"kid-1"}
    caches["default"].clear()  # evicted from the shared cache

    assert kids(client_jwks_fetch._uri_keys(server.url, "kid-1")) == {"kid-1"}
    assert server.hits == 1


def test_a_copy_read_from_the_shared_cache_is_kept_by_the_worker(db, server):
    client_jwks_fetch._uri_keys(server.url, None)
    client_jwks_fetch.reset()  # another worker: only the shared cache has the set
    assert kids(client_jwks_fetch._uri_keys(server.url, None)) == {"kid-1"}
    caches["default"].clear()

    assert kids(client_jwks_fetch._uri_keys(server.url, None)) == {"kid-1"}
    assert server.hits == 1


def test_the_set_is_fetched_again_exactly_when_it_is_ttl_seconds_old(db, server, clock):
    client_jwks_fetch._uri_keys(server.url, None)
    clock.now += TTL - 0.5
    client_jwks_fetch._uri_keys(server.url, None)
    assert server.hits == 1

    clock.now += 0.5  # exactly TTL seconds after the fetch
    client_jwks_fetch._uri_keys(server.url, None)
    assert server.hits == 2


def test_another_workers_rolled_over_set_is_used_without_a_fetch(db, server, key_1, key_2):
    assert kids(client_jwks_fetch._uri_keys(server.url, None)) == {"kid-1"}
    # Another worker fetched the rolled-over set into the shared cache.
    caches["default"].set(
        client_jwks_fetch._cache_key("set", server.url),
        {"fetched_at": time.time() + 1, "document": jwks_of(key_1, key_2)},
    )

    assert kids(client_jwks_fetch._uri_keys(server.url, "kid-2")) == {"kid-1", "kid-2"}
    assert server.hits == 1


def test_a_kid_missing_everywhere_is_fetched_once(db, server, key_1, key_2):
    client_jwks_fetch._uri_keys(server.url, None)
    server.document = jwks_of(key_1, key_2)

    assert kids(client_jwks_fetch._uri_keys(server.url, "kid-2")) == {"kid-1", "kid-2"}
    assert server.hits == 2
    assert kids(client_jwks_fetch._uri_keys(server.url, "kid-3")) == {"kid-1", "kid-2"}
    assert server.hits == 2  # rate-limited


def test_unknown_kids_of_two_urls_each_get_their_refetch(db, server, key_server_2):
    client_jwks_fetch._uri_keys(server.url, None)
    client_jwks_fetch._uri_keys(key_server_2.url, None)

    client_jwks_fetch._uri_keys(server.url, "unknown")
    client_jwks_fetch._uri_keys(key_server_2.url, "unknown")

    assert (server.hits, key_server_2.hits) == (2, 2)


@pytest.fixture
def key_server_2(key_1: Any) -> Any:
    import threading
    from http.server import ThreadingHTTPServer

    from .test_jwks_uri import _Handler

    state = KeyServer()
    state.document = jwks_of(key_1)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/other-jwks.json"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


# -- _shared_get ------------------------------------------------------------------------------

URL = "https://keys.example.com/jwks.json"


def _share(document: dict, fetched_at: float | None) -> None:
    value: dict[str, Any] = {"document": document}
    if fetched_at is not None:
        value["fetched_at"] = fetched_at
    caches["default"].set(client_jwks_fetch._cache_key("set", URL), value)


def _local(document: dict, fetched_at: float) -> KeySet:
    entry = KeySet(keys=client_jwks_fetch.usable_keys(document), fetched_at=fetched_at)
    client_jwks_fetch._uri_cache.put(URL, entry)
    return entry


def test_shared_get_without_a_shared_entry_is_none(db):
    assert client_jwks_fetch._shared_get(URL) is None


def test_shared_get_prefers_a_newer_shared_copy_and_keeps_it(db, key_1, key_2):
    _local(jwks_of(key_1), fetched_at=100.0)
    _share(jwks_of(key_2), fetched_at=200.0)

    entry = client_jwks_fetch._shared_get(URL)

    assert kids(entry) == {"kid-2"}
    assert entry.fetched_at == 200.0
    assert client_jwks_fetch._uri_cache.get(URL) is entry


def test_shared_get_keeps_the_local_copy_when_it_is_as_new_or_newer(db, key_1, key_2):
    newer = _local(jwks_of(key_2), fetched_at=300.0)
    _share(jwks_of(key_1), fetched_at=200.0)
    assert client_jwks_fetch._shared_get(URL) is newer

    same = _local(jwks_of(key_2), fetched_at=200.0)
    assert client_jwks_fetch._shared_get(URL) is same  # not parsed again


def test_a_shared_entry_of_unknown_age_counts_as_fetched_at_the_epoch(db, key_1, key_2):
    _share(jwks_of(key_2), fetched_at=None)
    entry = client_jwks_fetch._shared_get(URL)
    assert kids(entry) == {"kid-2"}
    assert entry.fetched_at == 0.0

    local = _local(jwks_of(key_1), fetched_at=0.0)
    assert client_jwks_fetch._shared_get(URL) is local


@pytest.mark.parametrize("value", ["a string", ["list"], 42])
def test_a_shared_entry_that_is_not_a_dict_is_ignored(db, value):
    caches["default"].set(client_jwks_fetch._cache_key("set", URL), value)
    assert client_jwks_fetch._shared_get(URL) is None


def test_a_cache_that_cannot_be_read_is_logged_and_ignored(db, monkeypatch, caplog):
    class Broken:
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("cache down")

    monkeypatch.setattr(client_jwks_fetch, "_cache", lambda: Broken())
    with caplog.at_level(logging.WARNING, logger="oauth_cc.client_keys"):
        assert client_jwks_fetch._shared_get(URL) is None

    [record] = [r for r in caplog.records if r.name == "oauth_cc.client_keys"]
    assert record.getMessage() == "Could not read a shared client JWKS from the cache"
    assert record.levelno == logging.WARNING
    assert record.exc_info and record.exc_info[0] is ConnectionError


def test_cache_keys_differ_by_kind_and_url():
    keys = {
        client_jwks_fetch._cache_key("set", URL),
        client_jwks_fetch._cache_key("refetch", URL),
        client_jwks_fetch._cache_key("set", URL + "?v=2"),
    }
    assert len(keys) == 3
    assert all(key.startswith("oauth_cc:client_jwks:") for key in keys)
