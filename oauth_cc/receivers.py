"""Keep the workers' cached views of clients and revocation state current when they change."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from . import revocation
from .models import Application, ClientSecret, Scope
from .state import client_cache


@receiver(post_save, sender=Application)
@receiver(post_delete, sender=Application)
@receiver(post_save, sender=ClientSecret)
@receiver(post_delete, sender=ClientSecret)
def _client_changed(sender: Any, **kwargs: Any) -> None:
    # This worker sees the change at once; other workers within the refresh interval.
    client_cache.clear()
    revocation.publish()


@receiver(m2m_changed, sender=Application.scopes.through)
@receiver(post_save, sender=Scope)
@receiver(post_delete, sender=Scope)
def _scopes_changed(sender: Any, **kwargs: Any) -> None:
    client_cache.clear()
