"""A deleted client's tokens are refused, however it was deleted, until they would have expired.

Tokens are not stored, so deleting the client row used to leave nothing to refuse its tokens
by: they kept working at every protected view until they expired.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from oauth_cc.issuer import revocation, state
from oauth_cc.models import Application, ClientSecret, DeletedClient
from tests.conftest import form_post
from tests.helpers import clear_shared_cache

from .attacks import expect

DELETED = "The client of this access token has been deleted."


@pytest.fixture
def holder(make_client: Any, token_for: Any, client: Any) -> tuple[Application, str, str]:
    """A client, its secret, and a token it holds that works until the client is deleted."""
    application, secret = make_client("doomed", scopes=["reports:read"])
    token = token_for(application, secret, scope="reports:read")["access_token"]
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    return application, secret, token


def delete_in_admin(admin_client: Any, application: Application) -> None:
    url = reverse("admin:oauth_cc_application_delete", args=[application.pk])
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content


def delete_with_bulk_action(admin_client: Any, application: Application) -> None:
    response = admin_client.post(
        reverse("admin:oauth_cc_application_changelist"),
        {"action": "delete_selected", "_selected_action": [application.pk], "post": "yes"},
    )
    assert response.status_code == 302, response.content


WAYS = {
    "admin-delete-page": delete_in_admin,
    "admin-bulk-action": delete_with_bulk_action,
    "model-delete": lambda admin_client, application: application.delete(),
    "queryset-delete": lambda admin_client, application: Application.objects.filter(
        pk=application.pk
    ).delete(),
    "command": lambda admin_client, application: call_command(
        "oauth_cc", "client", "delete", application.client_id, stdout=io.StringIO()
    ),
}


@pytest.mark.parametrize("way", WAYS)
def test_deleted_clients_token_is_refused(client, admin_client, holder, way):
    application, _, token = holder

    WAYS[way](admin_client, application)

    assert not Application.objects.filter(client_id=application.client_id).exists()
    assert not ClientSecret.objects.filter(application_id=application.pk).exists()
    expect.invalid_token(client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}"), DELETED)


def test_deleted_clients_token_is_refused_by_another_worker_after_the_refresh_delay(
    client, holder, settings, monkeypatch
):
    """Another worker: its own memo and snapshot, reading the shared cache or the database."""
    application, _, token = holder
    application.delete()
    # A worker that started before the deletion holds the old snapshot until it goes stale.
    state.reset_all()
    clear_shared_cache()
    expect.invalid_token(client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}"), DELETED)


def test_deleted_clients_token_is_inactive_at_introspection(client, make_client, holder):
    application, _, token = holder
    gateway, secret = make_client("gateway", can_introspect=True)
    application.delete()
    response = form_post(
        client, "/oauth/introspect/", {"token": token}, HTTP_AUTHORIZATION=_basic(gateway, secret)
    )
    expect.inactive(response)


def test_deleted_clients_secret_gets_invalid_client(client, holder):
    application, secret, _ = holder
    application.delete()
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=_basic(application, secret),
    )
    expect.invalid_client(response, "Client authentication failed.")


def test_a_client_created_again_under_the_same_id_gets_working_tokens_but_the_old_ones_stay_dead(
    client, make_client, token_for, holder
):
    application, _, old_token = holder
    client_id = application.client_id
    application.delete()

    again, secret = make_client("reborn", scopes=["reports:read"])
    again.client_id = client_id
    again.save()

    assert not DeletedClient.objects.filter(client_id=client_id).exists()
    again.refresh_from_db()
    assert again.tokens_valid_after is not None
    new_token = token_for(again, secret, scope="reports:read")["access_token"]

    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {new_token}").status_code == 200
    expect.invalid_token(
        client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {old_token}"),
        "issued before its client's tokens",
    )


def test_the_deletion_record_lasts_as_long_as_the_clients_longest_token(holder, settings):
    application, _, _ = holder
    Application.objects.filter(pk=application.pk).update(access_token_lifetime=7200)
    application.refresh_from_db()
    before = timezone.now()
    application.delete()

    record = DeletedClient.objects.get(client_id=application.client_id)
    assert record.deleted_at >= before
    assert record.expires_at - record.deleted_at == timedelta(
        seconds=7200 + settings.OAUTH_CC.get("LEEWAY", 30)
    )


def test_the_deletion_record_uses_the_site_lifetime_when_it_is_longer(holder, settings):
    application, _, _ = holder
    application.delete()
    record = DeletedClient.objects.get(client_id=application.client_id)
    assert record.expires_at - record.deleted_at == timedelta(seconds=3600 + 30)


def test_expired_deletion_records_are_pruned_and_no_longer_refuse(holder):
    application, _, _ = holder
    application.delete()
    DeletedClient.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    kept = DeletedClient.objects.create(
        client_id="still-relevant", expires_at=timezone.now() + timedelta(hours=1)
    )

    assert revocation.prune_expired() == 1
    assert list(DeletedClient.objects.all()) == [kept]
    assert application.client_id not in revocation.publish().deleted_clients


def test_deleting_twice_under_one_id_keeps_one_record_with_the_later_time(make_client):
    first, _ = make_client("one")
    client_id = first.client_id
    first.delete()
    earlier = DeletedClient.objects.get(client_id=client_id).deleted_at
    second, _ = make_client("two")
    Application.objects.filter(pk=second.pk).update(client_id=client_id)  # no signal: record stays
    Application.objects.get(pk=second.pk).delete()

    records = DeletedClient.objects.filter(client_id=client_id)
    assert records.count() == 1
    assert records.get().deleted_at > earlier


def test_command_delete_of_an_unknown_client_is_a_sentence(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match='No API client has the client_id "nope"'):
        call_command("oauth_cc", "client", "delete", "nope", stdout=io.StringIO())
    assert not DeletedClient.objects.exists()


def _basic(application: Application, secret: str) -> str:
    from tests.conftest import basic_auth

    return basic_auth(application.client_id, secret)
