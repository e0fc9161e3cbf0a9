"""jwks_uri fetching: a fetch that finished before its callback was added must not deadlock the worker."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest

from oauth_cc.issuer import client_jwks_fetch

DOCUMENT = {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "kid": "k"}]}


class ImmediateExecutor:
    """Runs the fetch on the calling thread: the future is already done when submit() returns.

    That is the situation a real pool produces when the fetch finishes before the submitting
    thread gets to ``add_done_callback``; here it happens every time, so the test is exact.
    """

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Future:
        self.calls += 1
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the waiter, like a pool does
            future.set_exception(exc)
        return future


@pytest.fixture
def immediate(monkeypatch: pytest.MonkeyPatch) -> ImmediateExecutor:
    executor = ImmediateExecutor()
    monkeypatch.setattr(client_jwks_fetch, "_pool", executor)
    monkeypatch.setattr(client_jwks_fetch, "_fetch_document", lambda url, deadline: DOCUMENT)
    return executor


def test_a_fetch_already_finished_when_its_callback_is_added_does_not_deadlock(immediate: ImmediateExecutor):
    """The done-callback takes the module lock; adding it under that lock hung the worker for good."""
    outcome: dict[str, Any] = {}

    def fetch() -> None:
        outcome["document"] = client_jwks_fetch._run_with_deadline("https://keys.example.com/jwks", 2.0)

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    thread.join(5)

    assert not thread.is_alive(), "the fetch deadlocked on client_jwks_fetch._lock"
    assert outcome["document"] == DOCUMENT
    assert immediate.calls == 1
    # The lock is free and the finished fetch is forgotten, so the next lookup works too.
    assert client_jwks_fetch._lock.acquire(timeout=1)
    client_jwks_fetch._lock.release()
    assert client_jwks_fetch._inflight == {}
    assert client_jwks_fetch._run_with_deadline("https://keys.example.com/jwks", 2.0) == DOCUMENT
    assert immediate.calls == 2
