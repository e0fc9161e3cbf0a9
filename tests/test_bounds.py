"""Every per-worker map is bounded, by one class with one eviction rule; each bound is tested here."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import override_settings

from oauth_cc.common import shared
from oauth_cc.common.bounded import BoundedMap
from oauth_cc.common.verification import MEMO_ENTRY_OVERHEAD, AccessToken, check_access_token, verified_tokens
from oauth_cc.issuer import client_jwks_fetch, keys
from oauth_cc.issuer.state import ClientRecord, client_cache
from tests.helpers import ISSUER, sign_with_site_key, token_claims

from .assertion_helpers import generate_key, jwks_of

# -- the class itself --------------------------------------------------------------------------


def test_oldest_insertion_is_dropped_first():
    cache: BoundedMap[str, int] = BoundedMap(3)
    for name in "abcd":
        cache.put(name, ord(name))
    assert list(cache) == ["b", "c", "d"]
    assert cache.get("a") is None
    assert len(cache) == 3


def test_reading_does_not_refresh_an_entry_but_writing_does():
    cache: BoundedMap[str, int] = BoundedMap(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a read: "a" is still the oldest
    cache.put("c", 3)
    assert list(cache) == ["b", "c"]
    cache.put("b", 20)  # a write: "b" becomes the newest
    cache.put("d", 4)
    assert list(cache) == ["b", "d"]
    assert cache.get("b") == 20


def test_weight_bound_drops_oldest_until_the_new_entry_fits():
    cache: BoundedMap[str, str] = BoundedMap(100, max_weight=10, weigh=lambda key, value: len(value))
    cache.put("a", "xxxx")
    cache.put("b", "xxxx")
    assert cache.weight == 8
    cache.put("c", "xxxxx")  # 13 > 10: "a" goes, 9 remain
    assert list(cache) == ["b", "c"]
    assert cache.weight == 9


def test_an_entry_heavier_than_the_whole_bound_is_not_stored():
    cache: BoundedMap[str, str] = BoundedMap(100, max_weight=10, weigh=lambda key, value: len(value))
    cache.put("a", "xx")
    assert cache.put("huge", "x" * 11) is False
    assert list(cache) == ["a"]
    assert cache.weight == 2


def test_replacing_pop_and_clear_keep_the_weight_exact():
    cache: BoundedMap[str, str] = BoundedMap(100, max_weight=100, weigh=lambda key, value: len(value))
    cache.put("a", "xxx")
    cache.put("a", "x")
    assert cache.weight == 1
    cache.put("b", "xxxx")
    assert cache.pop("a") == "x"
    assert cache.weight == 4
    cache.clear()
    assert cache.weight == 0 and len(cache) == 0


def test_bounds_may_be_read_at_each_insertion():
    limit = {"n": 2}
    cache: BoundedMap[int, int] = BoundedMap(lambda: limit["n"])
    for i in range(5):
        cache.put(i, i)
    assert len(cache) == 2
    limit["n"] = 4
    for i in range(5, 10):
        cache.put(i, i)
    assert list(cache) == [6, 7, 8, 9]


def test_a_zero_bound_stores_nothing():
    cache: BoundedMap[int, int] = BoundedMap(0)
    assert cache.put(1, 1) is False
    assert len(cache) == 0


def test_weight_needs_both_halves():
    with pytest.raises(ValueError):
        BoundedMap(1, max_weight=10)


def test_concurrent_writers_never_exceed_the_bound():
    cache: BoundedMap[tuple[int, int], int] = BoundedMap(50, max_weight=200, weigh=lambda key, value: 3)

    def write(thread: int) -> None:
        for i in range(2_000):
            cache.put((thread, i), i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) <= 50
    assert cache.weight == 3 * len(cache) <= 200


# -- each cache of the app uses its bound --------------------------------------------------------


@override_settings(OAUTH_CC={"ISSUER": ISSUER, "VERIFIED_TOKEN_CACHE_SIZE": 3})
def test_verified_token_memo_holds_at_most_verified_token_cache_size(db):
    tokens = [sign_with_site_key(token_claims(f"client-{n}")) for n in range(5)]
    for token in tokens:
        check_access_token(token)
    assert list(verified_tokens) == tokens[2:]


def test_verified_token_memo_holds_at_most_verified_token_cache_bytes(db):
    tokens = [sign_with_site_key(token_claims(f"client-{n}")) for n in range(5)]
    budget = 2 * (len(tokens[0]) + MEMO_ENTRY_OVERHEAD) + 10
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "VERIFIED_TOKEN_CACHE_BYTES": budget}):
        for token in tokens:
            check_access_token(token)
        assert list(verified_tokens) == tokens[3:]
        assert verified_tokens.weight <= budget


def test_memo_is_used_for_tokens_it_holds(db, monkeypatch):
    token = sign_with_site_key(token_claims())
    first = check_access_token(token)
    monkeypatch.setattr("oauth_cc.common.verification.verify", lambda *a, **k: pytest.fail("verified twice"))
    assert check_access_token(token) is first
    assert isinstance(first, AccessToken)


@override_settings(OAUTH_CC={"ISSUER": ISSUER, "CLIENT_CACHE_SIZE": 2})
def test_client_cache_holds_at_most_client_cache_size(db):
    for name in ("a", "b", "c", "d"):
        client_cache.client(name)  # unknown clients are remembered as None, bounded as well
    assert len(client_cache._clients) == 2
    for secret_hash in ("1", "2", "3"):
        client_cache.secret(secret_hash)
    assert len(client_cache._secrets) == 2


def _record(client_id: str, jwks: dict[str, Any]) -> ClientRecord:
    return ClientRecord(
        pk=1,
        client_id=client_id,
        name=client_id,
        is_active=True,
        grant_type="client-credentials",
        auth_method="private_key_jwt",
        allowed_scopes=frozenset(),
        default_scopes=(),
        access_token_lifetime=None,
        audiences=(),
        can_introspect=False,
        user_id=None,
        jwks=jwks,
        jwks_uri="",
    )


def test_inline_key_sets_are_bounded(monkeypatch):
    monkeypatch.setattr(client_jwks_fetch, "MAX_CACHED_SETS", 2)
    jwks = jwks_of(generate_key("ES256"))
    for name in ("a", "b", "c"):
        assert client_jwks_fetch.keys_for(_record(name, jwks))
    assert list(client_jwks_fetch._inline_cache) == ["b", "c"]


@pytest.mark.parametrize("name", ["_uri_cache", "_failures", "_last_kid_refetch"])
def test_jwks_uri_maps_are_bounded(monkeypatch, name):
    monkeypatch.setattr(client_jwks_fetch, "MAX_CACHED_SETS", 2)
    cache = getattr(client_jwks_fetch, name)
    for url in ("https://a.example", "https://b.example", "https://c.example"):
        cache.put(url, 0.0)
    assert list(cache) == ["https://b.example", "https://c.example"]


def test_unknown_kids_remembered_are_bounded(db, monkeypatch):
    monkeypatch.setattr(keys, "MAX_UNKNOWN_KIDS", 3)
    monkeypatch.setattr(keys, "UNKNOWN_KID_MIN_INTERVAL", 0.0)
    store = keys.KeyStore()
    for number in range(6):
        assert store.verifier(f"made-up-{number}") is None
    assert list(store._unknown_kid_at) == ["made-up-3", "made-up-4", "made-up-5"]


def test_throttle_clocks_are_bounded(db):
    throttle = shared.Throttle(max_keys=2)
    for key in ("a", "b", "c"):
        assert throttle.ready(f"bounds-test:{key}", 60)
    assert list(throttle._last) == ["bounds-test:b", "bounds-test:c"]
    assert not throttle.ready("bounds-test:c", 60)
