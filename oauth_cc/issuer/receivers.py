"""Issuer side: keep the workers' cached views of clients and revocation state current when they change."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from ..models import (
    AppendOnlyError,
    Application,
    AuditEvent,
    ClientSecret,
    DeletedClient,
    RevokedToken,
    Scope,
)
from . import generation, revocation
from .state import client_cache


@receiver(pre_save, sender=Application)
def _disabling_invalidates_tokens(sender: Any, instance: Application, **kwargs: Any) -> None:
    """A client switched off (admin form, code) loses its tokens for good, as with set_active."""
    if instance.is_active or instance.pk is None:
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "tokens_valid_after" not in update_fields:
        return  # A partial save that could not store the cut-off; set_active() passes it.
    if Application.objects.filter(pk=instance.pk, is_active=True).exists():
        instance.tokens_valid_after = timezone.now()


@receiver(post_save, sender=Application)
def _client_changed(sender: Any, instance: Application, **kwargs: Any) -> None:
    # Saved under the id of a deleted client: keep that client's old tokens refused.
    revocation.adopt_deletion(instance.client_id)
    # This worker sees the change at once; other workers within the refresh interval, when
    # they see the change tokens replaced here (client data) and by publish() (revocation).
    generation.bump(generation.CLIENTS)
    client_cache.clear()
    # Active flag and tokens_valid_after are part of the revocation snapshot.
    revocation.publish()


@receiver(post_delete, sender=Application)
def _client_deleted(sender: Any, instance: Application, **kwargs: Any) -> None:
    """A deleted client's tokens are refused like a disabled client's, until they expire.

    post_delete fires for every way a row goes through Django's deletion collector: the
    admin's delete page and bulk action, ``instance.delete()``, ``QuerySet.delete()`` and
    cascades alike.
    """
    revocation.record_deleted_client(instance.client_id, instance.access_token_lifetime)
    generation.bump(generation.CLIENTS)
    client_cache.clear()
    revocation.publish()


@receiver(post_save, sender=ClientSecret)
@receiver(post_delete, sender=ClientSecret)
@receiver(m2m_changed, sender=Application.scopes.through)
@receiver(post_save, sender=Scope)
@receiver(post_delete, sender=Scope)
def _client_data_changed(sender: Any, **kwargs: Any) -> None:
    if sender is Application.scopes.through and not kwargs.get("action", "").startswith("post_"):
        return  # m2m_changed fires before and after; the change exists only after.
    # Secrets and scopes live only in the client cache, not in the revocation snapshot:
    # other workers drop their copies when they see the new change token.
    generation.bump(generation.CLIENTS)
    client_cache.clear()


@receiver(pre_save, sender=AuditEvent)
def refuse_fixture_overwriting_an_audit_event(
    sender: Any, instance: AuditEvent, raw: bool, **kwargs: Any
) -> None:
    """``loaddata`` saves raw, past ``AuditEvent.save``: it may add events, never rewrite one."""
    if raw and instance.pk is not None and AuditEvent.objects.filter(pk=instance.pk).exists():
        raise AppendOnlyError("Audit events are append-only: a fixture cannot overwrite one.")


@receiver(post_save, sender=RevokedToken)
@receiver(post_save, sender=DeletedClient)
def _revocation_record_saved(sender: Any, **kwargs: Any) -> None:
    """A record written without publish() (code, a shell) still reaches every worker.

    Only saves: a deleted record (pruning) has expired and refuses nothing any more, and a
    post_delete receiver would cost the pruning DELETE a SELECT of every row it removes.
    """
    generation.bump(generation.REVOCATION)
