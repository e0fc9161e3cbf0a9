"""Resource side: the per-worker state and the background thread that keeps it fresh.

One daemon thread per worker process (started by the first protected request, and again in a
forked child) polls the revocation feed every ``REVOCATION_FEED_POLL_SECONDS`` and renews the
issuer's keys when their max-age has passed. What it fetches is shared through the cache, and
the site's workers take turns (cache claims), so the issuer sees about one feed request per
interval per site.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from ..common import resets
from ..conf import oauth_cc_settings
from .feed import FeedState
from .issuer_keys import IssuerKeys

logger = logging.getLogger("oauth_cc.resource")

issuer_keys = IssuerKeys()
feed_state = FeedState(advertised=lambda: issuer_keys.feed_endpoint)

_lock = threading.Lock()
_thread_pid: int | None = None


def ensure_running() -> None:
    """Start this process's poller unless it runs (a pid comparison on the request path)."""
    global _thread_pid
    if _thread_pid == os.getpid():
        return
    with _lock:
        if _thread_pid == os.getpid():
            return
        # Set first: the thread runs while it equals its own pid.
        _thread_pid = os.getpid()
        threading.Thread(target=_run, name="oauth_cc-resource-sync", daemon=True).start()


def tick() -> None:
    """One round of the poller: the feed, then the keys if they are due."""
    try:
        feed_state.poll()
    except Exception:
        logger.exception("oauth_cc could not poll the revocation feed")
    try:
        issuer_keys.refresh()
    except Exception:
        logger.exception("oauth_cc could not refresh the issuer's keys")


def _run() -> None:
    pid = os.getpid()
    while _thread_pid == pid:
        time.sleep(max(0.1, float(oauth_cc_settings.REVOCATION_FEED_POLL_SECONDS)))
        tick()


def reset() -> None:
    """Forget the issuer's keys and the revocation state of this worker.

    Registered with :mod:`oauth_cc.common.resets`, as :mod:`oauth_cc.common.verification` registers its memo
    of verified tokens: both are forgotten when the settings change.
    """
    issuer_keys.reset()
    feed_state.reset()


resets.register("oauth_cc.resource.sync", reset)
