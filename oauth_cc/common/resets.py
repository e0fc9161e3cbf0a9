"""Both sides: the registry of per-worker caches to forget when the settings change.

Each module that keeps per-worker state registers how to forget it when it is imported
(:func:`register`); :func:`reset_all` runs them all. ``oauth_cc.conf`` calls it when
``OAUTH_CC`` or ``CACHES`` change (``override_settings`` in tests), and tests call it for a cold
start. A registry rather than a list of imports here: this module imports nothing from
oauth_cc, so the low-level modules (``conf``) can reach the high-level caches (the issuer's
client cache, the resource side's issuer keys) without an import cycle, and a side's caches
are reset only where that side's modules are loaded.
"""

from __future__ import annotations

from collections.abc import Callable

_resets: dict[str, Callable[[], None]] = {}


def register(name: str, reset: Callable[[], None]) -> None:
    """Have :func:`reset_all` call ``reset``; ``name`` (module and object) makes it idempotent."""
    _resets[name] = reset


def reset_all() -> None:
    """Forget every registered per-worker cache (settings changed, or a test wants a cold start)."""
    for reset in list(_resets.values()):
        reset()
