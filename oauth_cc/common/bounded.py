"""Both sides: the one bounded map behind every per-worker cache of oauth_cc.

Each worker keeps small maps of things it has already done (verified tokens, clients, key
sets, fetch failures, throttle clocks). Any of them can be filled from outside, so every one
is bounded, and all of them use this class, so the eviction rule and its tests are shared.

Eviction is **oldest insertion first** (FIFO), not LRU: a read stays a plain dict lookup with
no lock and no reordering, which matters on the per-request token check. Re-inserting a key
moves it to the newest end. An optional weight bound (``max_weight`` with ``weigh``) caps
memory as well as the count, for maps whose values vary in size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A dict holding at most ``max_entries`` items (and ``max_weight``), dropping the oldest first.

    ``max_entries`` (and ``max_weight``) may be callables, read at each insertion, so a bound
    that comes from a setting follows ``override_settings`` without rebuilding the map.
    Reads take no lock; writes do, so concurrent threads of one worker cannot corrupt it.
    """

    def __init__(
        self,
        max_entries: int | Callable[[], int],
        *,
        max_weight: int | Callable[[], int] | None = None,
        weigh: Callable[[K, V], int] | None = None,
    ) -> None:
        if (max_weight is None) != (weigh is None):
            raise ValueError("max_weight and weigh go together.")
        self._data: dict[K, V] = {}
        self._weights: dict[K, int] = {}
        self._weight = 0
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._weigh = weigh
        self._lock = threading.Lock()

    @staticmethod
    def _bound(value: int | Callable[[], int]) -> int:
        return int(value() if callable(value) else value)

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))

    @property
    def weight(self) -> int:
        """Sum of the weights of the entries (0 without a weight bound)."""
        return self._weight

    def put(self, key: K, value: V) -> bool:
        """Store ``key``; drop the oldest entries to stay within the bounds.

        Returns False (and stores nothing) for an entry heavier than ``max_weight`` on its own.
        """
        max_entries = self._bound(self._max_entries)
        weight = 0
        max_weight = 0
        if self._weigh is not None and self._max_weight is not None:
            weight = self._weigh(key, value)
            max_weight = self._bound(self._max_weight)
            if weight > max_weight:
                return False
        with self._lock:
            self._discard(key)
            data = self._data
            while data and (
                len(data) >= max_entries or (self._weigh is not None and self._weight + weight > max_weight)
            ):
                self._discard(next(iter(data)))
            if max_entries <= 0:
                return False
            data[key] = value
            if self._weigh is not None:
                self._weights[key] = weight
                self._weight += weight
        return True

    def pop(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            value = self._data.get(key, default)
            self._discard(key)
        return value

    def _discard(self, key: K) -> None:
        if key in self._data:
            del self._data[key]
            self._weight -= self._weights.pop(key, 0)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weights.clear()
            self._weight = 0
