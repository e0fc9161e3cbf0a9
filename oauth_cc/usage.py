""" "Last used" bookkeeping for clients and secrets, without a write per token request.

A :class:`~oauth_cc.shared.Throttle` lets the write through at most once per client, secret
and ``LAST_USED_WRITE_INTERVAL`` in each worker, and with a shared cache usually once per
interval site-wide.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.utils import timezone

from . import outage
from .conf import oauth_cc_settings
from .errors import TemporarilyUnavailable
from .shared import Throttle

logger = logging.getLogger("oauth_cc.usage")
_throttle = Throttle()


def note_used(client_pk: int, secret_pk: int | None) -> None:
    key = f"oauth_cc:last_used:{client_pk}:{secret_pk}"
    if not _throttle.ready(key, oauth_cc_settings.LAST_USED_WRITE_INTERVAL):
        return
    from .models import Application, ClientSecret

    stamp = timezone.now()

    def write() -> None:
        Application.objects.filter(pk=client_pk).update(last_used_at=stamp)
        if secret_pk is not None:
            ClientSecret.objects.filter(pk=secret_pk).update(last_used_at=stamp)

    try:
        outage.database.run("a last-used time", write)
    except TemporarilyUnavailable:
        return  # the database is down; the outage is logged by oauth_cc.outage, once
    except DatabaseError:
        # Bookkeeping must never fail a token request.
        logger.warning("Could not record last use of client %s", client_pk, exc_info=True)


def reset() -> None:
    """Forget this worker's bookkeeping: last-used throttle clocks and unflushed usage counts."""
    from . import usage_counts

    _throttle.reset()
    usage_counts.reset()
