"""Keep the workers' views of revocation state current when clients change."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import revocation
from .models import Application, ClientSecret
from .state import client_cache


@receiver(post_save, sender=Application)
@receiver(post_delete, sender=Application)
@receiver(post_save, sender=ClientSecret)
@receiver(post_delete, sender=ClientSecret)
def _client_changed(sender: Any, **kwargs: Any) -> None:
    # This worker sees the change at once; other workers within the refresh interval.
    client_cache.clear()
    revocation.publish()
