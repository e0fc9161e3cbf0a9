"""Both sides: state shared between workers through the Django cache (``CACHE_ALIAS``).

The database stays the source of truth; the cache only saves each worker a query per
refresh interval. So a cache that is down (Redis restarting) must not take the hot paths
down with it: reads fall back to the database and writes are skipped, with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.core.cache import caches

from ..conf import oauth_cc_settings
from .bounded import BoundedMap

logger = logging.getLogger("oauth_cc.shared")
T = TypeVar("T")


def share(key: str, value: Any) -> None:
    """Put ``value`` in the shared cache for one refresh interval."""
    try:
        caches[oauth_cc_settings.CACHE_ALIAS].set(key, value, timeout=oauth_cc_settings.shared_state_timeout)
    except Exception:
        logger.warning("oauth_cc could not write %s to the cache; workers will read the database", key)


def shared_or_loaded(key: str, load: Callable[[], T]) -> T:
    """The value in the shared cache, or ``load()`` it from the database and share it."""
    try:
        value = caches[oauth_cc_settings.CACHE_ALIAS].get(key)
    except Exception:
        logger.warning("oauth_cc could not read %s from the cache; reading the database", key)
        return load()
    if value is None:
        value = load()
        share(key, value)
    return cast(T, value)  # what load() returned, here or in the worker that shared it


def claim(key: str, timeout: float) -> bool:
    """Atomically claim ``key`` for ``timeout`` seconds; True if this worker got it.

    With the cache down every worker gets it: the claim only spares duplicate work.
    """
    try:
        return bool(caches[oauth_cc_settings.CACHE_ALIAS].add(key, 1, timeout=timeout))
    except Exception:
        logger.warning("oauth_cc could not claim %s in the cache", key)
        return True


class Throttle:
    """Lets work through at most once per interval and key: per worker first, then per site.

    The per-worker check is a clock read and a dict lookup, cheap enough for the hot paths;
    only past it does the worker ask the shared cache (:func:`claim`), so with a shared cache
    one worker of the site does the work per interval.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._last: BoundedMap[str, float] = BoundedMap(max_keys)

    def ready(self, key: str, interval: float) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < interval:
            return False
        self._last.put(key, now)
        return claim(key, interval)

    def mark(self, key: str) -> None:
        """Count ``key`` as just done by this worker."""
        self._last.put(key, time.monotonic())

    def reset(self) -> None:
        self._last.clear()
