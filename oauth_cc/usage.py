""" "Last used" bookkeeping for clients and secrets, without a write per token request.

Each worker remembers when it last wrote for a client; past ``LAST_USED_WRITE_INTERVAL`` it
claims the write in the shared cache with an atomic ``add`` (so with a shared cache only one
worker writes per interval) and then updates the rows. At most one write per client and
interval per worker, usually one per interval site-wide.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError
from django.utils import timezone

from .conf import oauth_cc_settings
from .shared import claim

logger = logging.getLogger("oauth_cc.usage")
_last_written: dict[tuple[int, int | None], float] = {}


def note_used(client_pk: int, secret_pk: int | None) -> None:
    key = (client_pk, secret_pk)
    now = time.monotonic()
    interval = oauth_cc_settings.LAST_USED_WRITE_INTERVAL
    if now - _last_written.get(key, float("-inf")) < interval:
        return
    if len(_last_written) > 10_000:
        _last_written.clear()
    _last_written[key] = now
    cache_key = f"oauth_cc:last_used:{client_pk}:{secret_pk}"
    if not claim(cache_key, interval):
        return
    from .models import Application, ClientSecret

    stamp = timezone.now()
    try:
        Application.objects.filter(pk=client_pk).update(last_used_at=stamp)
        if secret_pk is not None:
            ClientSecret.objects.filter(pk=secret_pk).update(last_used_at=stamp)
    except DatabaseError:
        # Bookkeeping must never fail a token request.
        logger.warning("Could not record last use of client %s", client_pk, exc_info=True)


def reset() -> None:
    _last_written.clear()
