"""The audit trail: one append-only event per operator action, from the admin and the command.

Each mutating path of the ``oauth_cc`` command and of the admin records exactly one event with
the right actor, action, object and changes, in the transaction of the change; failed actions
and read-only ones record nothing; events cannot be changed or deleted; no secret, secret hash
or private key ever appears in one; and the token endpoint and token check never touch them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import example, given
from hypothesis import strategies as st
from jwcrypto import jwk

from oauth_cc.issuer import audit, clients, key_encryption, keys
from oauth_cc.issuer.secrets import hash_secret
from oauth_cc.management.commands.oauth_cc import parse_since
from oauth_cc.models import (
    AppendOnlyError,
    Application,
    AuditAction,
    AuditEvent,
    DeletedClient,
    RevokedToken,
    Scope,
    SigningKey,
)

from .conftest import basic_auth, form_post
from .test_admin import client_form, inline_management

OS_USER = "deploy"
CLI = f"cli:{OS_USER}"
SECRET_RE = re.compile(r"occs_[A-Za-z0-9_-]{43}")
ADMIN = "admin:admin"  # pytest-django's admin_client logs in as the superuser "admin"


def run(*args: str) -> str:
    out = StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def the_event() -> AuditEvent:
    """The one event recorded so far (fails if there are none or several)."""
    (event,) = AuditEvent.objects.all()
    return event


def all_events_json() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


@pytest.fixture(autouse=True)
def os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit.getpass, "getuser", lambda: OS_USER)
    monkeypatch.delenv("SUDO_USER", raising=False)


@pytest.fixture
def reports_read(make_scope) -> Scope:
    return make_scope("reports:read", default=True)


@pytest.fixture
def svc(make_client, make_scope) -> tuple[Application, str]:
    """A secret-based client made without an actor: it records nothing."""
    make_scope("reports:write")
    return make_client("svc", scopes=["reports:read"], description="Team A")


def changelist_url() -> str:
    return reverse("admin:oauth_cc_application_changelist")


def change_url(application: Application) -> str:
    return reverse("admin:oauth_cc_application_change", args=[application.pk])


def public_jwks(kid: str = "k1") -> dict:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
    return {"keys": [key.export_public(as_dict=True)]}


# -- The command: each subcommand that changes something records one event ------------------


def test_code_without_an_actor_records_nothing(svc):
    application, _ = svc
    clients.rotate_secret(application)
    clients.set_active(application, False)
    keys.rotate()

    assert not AuditEvent.objects.exists()


def test_command_scope_add(db):
    run("scope", "add", "reports:read", "--description", "Read reports", "--default")

    event = the_event()
    assert (event.actor, event.action) == (CLI, "scope_created")
    assert (event.object_type, event.object_id) == ("scope", "reports:read")
    assert event.changes == {"name": "reports:read", "description": "Read reports", "is_default": True}


def test_command_client_create_records_settings_and_secret_prefix_only(reports_read):
    created = run_json("client", "create", "svc", "--scope", "reports:read", "--lifetime", "600")

    event = the_event()
    application = Application.objects.get(client_id=created["client_id"])
    (secret,) = application.secrets.all()
    assert (event.actor, event.action, event.object_type) == (CLI, "client_created", "client")
    assert (event.object_id, event.object_repr) == (application.client_id, "svc")
    assert event.changes == {
        "name": "svc",
        "description": "",
        "is_active": True,
        "scopes": ["reports:read"],
        "access_token_lifetime": 600,
        "run_as_user": None,
        "audiences": [],
        "can_introspect": False,
        "auth_method": "client_secret_basic",
        "jwks": [],
        "jwks_uri": "",
        "token_limit": "",
        "tls_client_auth_subject_dn": "",
        "tls_client_auth_san_dns": "",
        "tls_client_auth_san_uri": "",
        "tls_client_auth_san_ip": "",
        "tls_client_auth_san_email": "",
        "tls_client_certificate_bound_access_tokens": False,

        "require_dpop": False,
        "secret": {"id": secret.pk, "prefix": secret.prefix},
    }
    stored = all_events_json()
    assert created["client_secret"] not in stored
    assert hash_secret(created["client_secret"]) not in stored


def test_command_client_create_with_keys_names_them_by_thumbprint(db, tmp_path):
    jwks = public_jwks("k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))

    run("client", "create", "signer", "--jwks-file", str(path))

    changes = the_event().changes
    thumbprint = jwk.JWK(**jwks["keys"][0]).thumbprint()
    assert changes["jwks"] == [f"k1 {thumbprint}"]
    assert changes["auth_method"] == "private_key_jwt"
    assert "secret" not in changes


def test_command_rotate_secret(svc):
    application, old_secret = svc
    (old,) = application.secrets.all()

    rotated = run_json("client", "rotate-secret", application.client_id, "--grace", "60")

    event = the_event()
    new = application.secrets.exclude(pk=old.pk).get()
    old.refresh_from_db()
    assert (event.actor, event.action, event.object_id) == (CLI, "secret_rotated", application.client_id)
    assert event.changes == {
        "new_secret": {"id": new.pk, "prefix": new.prefix},
        "grace_seconds": 60,
        "expiring": [{"prefix": old.prefix, "expires": old.expires_at.isoformat()}],
    }
    stored = all_events_json()
    for secret in (old_secret, rotated["client_secret"]):
        assert secret not in stored
        assert hash_secret(secret) not in stored


def test_command_revoke_secret(svc):
    application, _ = svc
    (secret,) = application.secrets.all()

    run("client", "revoke-secret", application.client_id, secret.prefix)

    event = the_event()
    secret.refresh_from_db()
    assert (event.actor, event.action, event.object_id) == (CLI, "secret_revoked", application.client_id)
    assert event.changes == {
        "secret": {"id": secret.pk, "prefix": secret.prefix},
        "revoked_at": secret.revoked_at.isoformat(),
    }


def test_revoking_a_revoked_secret_again_says_so(svc):
    application, _ = svc
    (secret,) = application.secrets.all()
    clients.revoke_secret(application, secret.prefix)

    run("client", "revoke-secret", application.client_id, str(secret.pk))

    assert the_event().changes["already_revoked"] is True


def test_command_disable_then_enable(svc):
    application, _ = svc

    run("client", "disable", application.client_id)
    run("client", "enable", application.client_id)

    disabled, enabled = AuditEvent.objects.order_by("id")
    application.refresh_from_db()
    assert (disabled.actor, disabled.action, disabled.object_id) == (
        CLI,
        "client_disabled",
        application.client_id,
    )
    assert disabled.changes == {
        "is_active": {"old": True, "new": False},
        "tokens_valid_after": application.tokens_valid_after.isoformat(),
    }
    assert (enabled.action, enabled.changes) == ("client_enabled", {"is_active": {"old": False, "new": True}})


def test_command_revoke_tokens(svc):
    application, _ = svc

    run("client", "revoke-tokens", application.client_id)

    event = the_event()
    application.refresh_from_db()
    assert (event.actor, event.action, event.object_id) == (CLI, "tokens_revoked", application.client_id)
    assert event.changes == {"tokens_valid_after": application.tokens_valid_after.isoformat()}


def test_command_delete_event_outlives_the_client(svc):
    application, secret = svc
    client_id = application.client_id
    (record,) = application.secrets.all()

    run("client", "delete", client_id)

    assert not Application.objects.filter(client_id=client_id).exists()
    event = the_event()
    assert (event.actor, event.action, event.object_id, event.object_repr) == (
        CLI,
        "client_deleted",
        client_id,
        "svc",
    )
    assert event.changes["scopes"] == ["reports:read"]
    assert event.changes["description"] == "Team A"
    assert event.changes["secrets"] == [{"id": record.pk, "prefix": record.prefix}]
    assert secret not in all_events_json() and hash_secret(secret) not in all_events_json()
    # And the trail can still be read by the gone client's id.
    (shown,) = run_json("audit", "--client", client_id)
    assert shown["action"] == "client_deleted"


def test_command_key_rotate_names_kids_and_never_a_private_key(db):
    first = keys.ensure_current_key()

    run("key", "rotate", "--algorithm", "EdDSA")

    event = the_event()
    current = SigningKey.objects.get(state="current")
    upcoming = SigningKey.objects.get(state="next")
    assert (event.actor, event.action) == (CLI, "key_rotated")
    assert (event.object_type, event.object_id) == ("signing_key", current.kid)
    assert event.changes == {
        "current": current.kid,
        "next": {"kid": upcoming.kid, "algorithm": "EdDSA"},
        "retired": first.kid,
        "removed": [],
    }
    stored = all_events_json()
    for row in SigningKey.objects.all():
        private = json.loads(key_encryption.decrypt(row.private_jwk, row.kid))
        assert private["d"] not in stored
        assert row.private_jwk not in stored


def test_command_prune_records_what_it_removed_and_nothing_when_idle(db):
    run("tokens", "prune")
    assert not AuditEvent.objects.exists()

    past = timezone.now() - timedelta(hours=1)
    RevokedToken.objects.create(jti="j1", client_id="c", expires_at=past)
    DeletedClient.objects.create(client_id="gone", expires_at=past)
    run("tokens", "prune")

    event = the_event()
    assert (event.actor, event.action, event.object_type) == (CLI, "pruned", "tokens")
    assert event.changes == {"expired_records": 2, "removed_keys": []}


def test_read_only_subcommands_record_nothing(svc):
    application, _ = svc
    keys.ensure_current_key()
    for args in (
        ("scope", "list"),
        ("client", "list"),
        ("client", "show", application.client_id),
        ("key", "list"),
        ("audit",),
    ):
        run(*args)

    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("scope", "add", "bad scope"),
        ("client", "create", "svc", "--scope", "no-such-scope"),
        ("client", "create", "svc", "--lifetime", "0"),
        ("client", "create", " "),
        ("client", "rotate-secret", "no-such-client"),
        ("client", "revoke-secret", "no-such-client", "1"),
        ("client", "disable", "no-such-client"),
        ("client", "enable", "no-such-client"),
        ("client", "revoke-tokens", "no-such-client"),
        ("client", "delete", "no-such-client"),
    ],
)
def test_failed_commands_record_nothing(db, args):
    with pytest.raises(CommandError):
        run(*args)

    assert not AuditEvent.objects.exists()


def test_failed_command_on_an_existing_client_records_nothing(svc):
    application, _ = svc
    for args in (
        ("client", "rotate-secret", application.client_id, "--grace", "-1"),
        ("client", "revoke-secret", application.client_id, "occs_nope"),
    ):
        with pytest.raises(CommandError):
            run(*args)

    assert not AuditEvent.objects.exists()


def test_scope_add_twice_records_one_event(db):
    run("scope", "add", "reports:read")
    with pytest.raises(CommandError, match="already exists"):
        run("scope", "add", "reports:read")

    assert AuditEvent.objects.count() == 1


def test_a_change_whose_event_fails_is_rolled_back(svc, monkeypatch):
    """Same transaction: no change without its event."""
    application, _ = svc

    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("audit table unavailable")

    monkeypatch.setattr(audit, "record", broken)
    for args in (
        ("client", "disable", application.client_id),
        ("client", "delete", application.client_id),
        ("client", "rotate-secret", application.client_id),
        ("client", "revoke-tokens", application.client_id),
    ):
        with pytest.raises(DatabaseError):
            run(*args)

    application.refresh_from_db()
    assert application.is_active
    assert application.tokens_valid_after is None
    assert application.secrets.count() == 1
    assert application.secrets.get().expires_at is None


def test_an_event_is_rolled_back_with_its_change(svc):
    application, _ = svc
    with pytest.raises(RuntimeError), transaction.atomic():
        clients.set_active(application, False, actor=CLI)
        raise RuntimeError("the caller's transaction fails after the change")

    assert not AuditEvent.objects.exists()


# -- The actor of the command ---------------------------------------------------------------


def test_command_actor_names_who_ran_sudo(monkeypatch):
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "root")
    monkeypatch.setenv("SUDO_USER", "alice")
    assert audit.command_actor() == "cli:root (sudo by alice)"

    monkeypatch.setenv("SUDO_USER", "root")
    assert audit.command_actor() == "cli:root"


def test_command_actor_falls_back_to_the_uid(monkeypatch):
    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(audit.getpass, "getuser", no_user)
    assert audit.command_actor() == f"cli:uid {audit.os.getuid()}"

    monkeypatch.setattr(audit.getpass, "getuser", lambda: (_ for _ in ()).throw(KeyError(1000)))
    assert audit.command_actor() == f"cli:uid {audit.os.getuid()}"


# -- The admin: each change records one event ---------------------------------------------------


def test_admin_add_client(admin_client, reports_read):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"), client_form(scopes=[reports_read.pk])
    )

    assert response.status_code == 200
    application = Application.objects.get()
    (secret,) = application.secrets.all()
    event = the_event()
    assert (event.actor, event.action, event.object_id) == (ADMIN, "client_created", application.client_id)
    assert event.changes["scopes"] == ["reports:read"]
    assert event.changes["description"] == "Reporting team, reports@example.com"
    assert event.changes["secret"] == {"id": secret.pk, "prefix": secret.prefix}
    shown = set(audit_secrets_in(response.content.decode()))
    assert shown and not any(s in all_events_json() or hash_secret(s) in all_events_json() for s in shown)


def audit_secrets_in(text: str) -> list[str]:
    return SECRET_RE.findall(text)


def test_admin_add_refused_by_validation_records_nothing(admin_client, db):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"),
        client_form(token_endpoint_auth_method="private_key_jwt", client_jwks=""),
    )

    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert not AuditEvent.objects.exists()


def test_admin_change_records_the_changed_fields_only(admin_client, svc, django_user_model):
    application, _ = svc
    runner = django_user_model.objects.create_user("robot")
    write = Scope.objects.get(name="reports:write")
    form = client_form(
        name="svc-renamed",
        description="Team A",
        scopes=[write.pk, Scope.objects.get(name="reports:read").pk],
        user=str(runner.pk),
        access_token_lifetime="300",
    )

    response = admin_client.post(change_url(application), {**form, **inline_management(application)})

    assert response.status_code == 302
    event = the_event()
    assert (event.actor, event.action, event.object_id) == (ADMIN, "client_changed", application.client_id)
    assert event.object_repr == "svc-renamed"
    assert event.changes == {
        "name": {"old": "svc", "new": "svc-renamed"},
        "scopes": {"old": ["reports:read"], "new": ["reports:read", "reports:write"]},
        "access_token_lifetime": {"old": None, "new": 300},
        "run_as_user": {"old": None, "new": "robot"},
    }


def test_admin_change_of_is_active_through_the_form(admin_client, svc):
    application, _ = svc
    form = client_form(name="svc", description="Team A", is_active=None, scopes=[application.scopes.get().pk])

    admin_client.post(change_url(application), {**form, **inline_management(application)})

    assert the_event().changes == {"is_active": {"old": True, "new": False}}


def test_admin_change_whose_event_fails_is_rolled_back(admin_client, svc, monkeypatch):
    application, _ = svc
    form = client_form(name="svc-renamed", description="Team A", scopes=[application.scopes.get().pk])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("audit table unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(DatabaseError):
        admin_client.post(change_url(application), {**form, **inline_management(application)})
    with pytest.raises(DatabaseError):
        admin_client.post(
            changelist_url(), {"action": "disable_action", "_selected_action": [application.pk]}
        )

    application.refresh_from_db()
    assert (application.name, application.is_active) == ("svc", True)


def test_admin_save_without_changes_records_nothing(admin_client, svc):
    application, _ = svc
    form = client_form(name="svc", description="Team A", scopes=[application.scopes.get().pk])

    response = admin_client.post(change_url(application), {**form, **inline_management(application)})

    assert response.status_code == 302
    assert not AuditEvent.objects.exists()


def test_admin_delete_view(admin_client, svc):
    application, _ = svc
    client_id = application.client_id

    response = admin_client.post(
        reverse("admin:oauth_cc_application_delete", args=[application.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Application.objects.exists()
    event = the_event()
    assert (event.actor, event.action, event.object_id) == (ADMIN, "client_deleted", client_id)
    assert event.changes["name"] == "svc"


def test_admin_bulk_delete_records_one_event_per_client(admin_client, svc, make_client):
    first, _ = svc
    second, _ = make_client("other")

    admin_client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )

    assert not Application.objects.exists()
    events = AuditEvent.objects.order_by("object_repr")
    assert [(e.actor, e.action, e.object_id) for e in events] == [
        (ADMIN, "client_deleted", second.client_id),
        (ADMIN, "client_deleted", first.client_id),
    ]


@pytest.mark.parametrize(
    ("action", "recorded"),
    [
        ("rotate_secret_action", "secret_rotated"),
        ("disable_action", "client_disabled"),
        ("revoke_tokens_action", "tokens_revoked"),
    ],
)
def test_admin_actions_record_one_event_per_client(admin_client, svc, make_client, action, recorded):
    first, _ = svc
    second, _ = make_client("other")

    admin_client.post(changelist_url(), {"action": action, "_selected_action": [first.pk, second.pk]})

    events = AuditEvent.objects.all()
    assert sorted((e.actor, e.action, e.object_id) for e in events) == sorted(
        [(ADMIN, recorded, first.client_id), (ADMIN, recorded, second.client_id)]
    )


def test_admin_enable_action(admin_client, svc):
    application, _ = svc
    clients.set_active(application, False)

    admin_client.post(changelist_url(), {"action": "enable_action", "_selected_action": [application.pk]})

    event = the_event()
    assert (event.actor, event.action) == (ADMIN, "client_enabled")
    assert event.changes == {"is_active": {"old": False, "new": True}}


def test_admin_rotate_action_skipping_a_keyless_client_records_only_the_rotation(
    admin_client, svc, make_client
):
    first, _ = svc
    signer, _ = make_client("signer", auth_method="private_key_jwt", jwks=public_jwks())

    admin_client.post(
        changelist_url(), {"action": "rotate_secret_action", "_selected_action": [first.pk, signer.pk]}
    )

    assert the_event().object_id == first.client_id


def test_admin_rotate_secret_view(admin_client, svc):
    application, _ = svc
    url = reverse("admin:oauth_cc_application_rotate_secret", args=[application.pk])

    admin_client.get(url)  # the confirmation page changes nothing
    assert not AuditEvent.objects.exists()
    response = admin_client.post(url)

    new_secret = audit_secrets_in(response.content.decode())[0]
    event = the_event()
    assert (event.actor, event.action, event.object_id) == (ADMIN, "secret_rotated", application.client_id)
    assert event.changes["new_secret"]["prefix"] == new_secret[:13]
    assert new_secret not in all_events_json() and hash_secret(new_secret) not in all_events_json()


def test_admin_revoke_secret_view(admin_client, svc):
    application, _ = svc
    (secret,) = application.secrets.all()
    url = reverse("admin:oauth_cc_application_revoke_secret", args=[application.pk, secret.pk])

    admin_client.get(url)
    assert not AuditEvent.objects.exists()
    admin_client.post(url)

    event = the_event()
    assert (event.actor, event.action, event.object_id) == (ADMIN, "secret_revoked", application.client_id)
    assert event.changes["secret"] == {"id": secret.pk, "prefix": secret.prefix}


def test_admin_key_rotate_view(admin_client, db):
    first = keys.ensure_current_key()
    url = reverse("admin:oauth_cc_signingkey_rotate")

    admin_client.get(url)
    admin_client.post(url, {"algorithm": "HS256"})  # refused: nothing changes, nothing recorded
    assert not AuditEvent.objects.exists()
    admin_client.post(url, {"algorithm": "ES256"})

    event = the_event()
    assert (event.actor, event.action) == (ADMIN, "key_rotated")
    assert event.changes["retired"] == first.kid


def test_admin_scope_add_change_delete(admin_client, svc):
    application, _ = svc
    add = admin_client.post(
        reverse("admin:oauth_cc_scope_add"), {"name": "audit:read", "description": "", "is_default": ""}
    )
    assert add.status_code == 302
    scope = Scope.objects.get(name="audit:read")
    admin_client.post(
        reverse("admin:oauth_cc_scope_change", args=[scope.pk]),
        {"name": "audit:read", "description": "Read the trail", "is_default": "on"},
    )
    read = Scope.objects.get(name="reports:read")
    admin_client.post(reverse("admin:oauth_cc_scope_delete", args=[read.pk]), {"post": "yes"})

    created, changed, deleted = AuditEvent.objects.order_by("id")
    assert (created.actor, created.action, created.object_id) == (ADMIN, "scope_created", "audit:read")
    assert created.changes == {"name": "audit:read", "description": "", "is_default": False}
    assert (changed.action, changed.changes) == (
        "scope_changed",
        {"description": {"old": "", "new": "Read the trail"}, "is_default": {"old": False, "new": True}},
    )
    assert (deleted.action, deleted.object_id) == ("scope_deleted", "reports:read")
    assert deleted.changes["clients"] == [application.client_id]


def test_admin_scope_bulk_delete(admin_client, make_scope):
    one, two = make_scope("a:read"), make_scope("b:read")

    admin_client.post(
        reverse("admin:oauth_cc_scope_changelist"),
        {"action": "delete_selected", "_selected_action": [one.pk, two.pk], "post": "yes"},
    )

    assert not Scope.objects.exists()
    assert sorted(AuditEvent.objects.values_list("action", "object_id")) == [
        ("scope_deleted", "a:read"),
        ("scope_deleted", "b:read"),
    ]


# -- The audit trail in the admin: read-only ----------------------------------------------------


@pytest.fixture
def events(svc) -> list[AuditEvent]:
    application, _ = svc
    clients.set_active(application, False, actor="admin:alice")
    clients.set_active(application, True, actor=CLI)
    return list(AuditEvent.objects.order_by("id"))


def test_admin_lists_filters_and_searches_events(admin_client, events):
    url = reverse("admin:oauth_cc_auditevent_changelist")
    client_id = events[0].object_id

    listed = admin_client.get(url)
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 2
    assert admin_client.get(url, {"action__exact": "client_enabled"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"actor": "admin:alice"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": client_id}).context["cl"].result_count == 2
    assert admin_client.get(url, {"q": "no-such-client"}).context["cl"].result_count == 0
    assert "delete_selected" not in listed.content.decode()


def test_admin_cannot_add_change_or_delete_events(admin_client, events):
    event = events[0]
    before = AuditEvent.objects.values().get(pk=event.pk)

    assert admin_client.get(reverse("admin:oauth_cc_auditevent_add")).status_code == 403
    assert admin_client.post(reverse("admin:oauth_cc_auditevent_add"), {"actor": "x"}).status_code == 403
    assert admin_client.get(reverse("admin:oauth_cc_auditevent_delete", args=[event.pk])).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:oauth_cc_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    page = admin_client.get(reverse("admin:oauth_cc_auditevent_change", args=[event.pk]))
    assert page.status_code == 200  # a view page, without a save button
    assert 'name="_save"' not in page.content.decode()
    admin_client.post(reverse("admin:oauth_cc_auditevent_change", args=[event.pk]), {"actor": "forged"})
    admin_client.post(
        reverse("admin:oauth_cc_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    assert AuditEvent.objects.values().get(pk=event.pk) == before
    assert AuditEvent.objects.count() == 2


def test_no_add_change_or_delete_permission_exists_for_events(db):
    from django.contrib.auth.models import Permission

    codenames = set(
        Permission.objects.filter(content_type__model="auditevent").values_list("codename", flat=True)
    )
    assert codenames == {"view_auditevent"}


# -- Append-only in the ORM and, on PostgreSQL, in the database --------------------------------


def test_orm_refuses_changing_or_deleting_events(events):
    event = events[0]
    event.actor = "forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.save(update_fields=["actor"])
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor="forged")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["actor"])
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update_or_create(pk=event.pk, defaults={"actor": "forged"})
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all()._raw_delete(AuditEvent.objects.db)

    assert list(AuditEvent.objects.order_by("id").values_list("actor", flat=True)) == ["admin:alice", CLI]


def test_a_new_instance_with_an_existing_pk_cannot_overwrite_that_event(events):
    original = events[0]
    forged = AuditEvent(
        pk=original.pk, actor="cli:mallory", action="scope_created", object_type="scope", object_id="x"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()
    kept = AuditEvent.objects.get(pk=original.pk)
    assert (kept.actor, kept.action) == (original.actor, original.action)


@pytest.mark.parametrize("flag", ["update_conflicts", "ignore_conflicts"])
def test_bulk_create_with_conflict_handling_is_refused(events, flag):
    original = events[0]
    forged = AuditEvent(
        pk=original.pk, actor="cli:mallory", action="pruned", object_type="tokens", object_id=""
    )
    options: dict[str, Any] = {flag: True}
    if flag == "update_conflicts":
        options.update(unique_fields=["id"], update_fields=["actor"])
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create([forged], **options)
    assert AuditEvent.objects.get(pk=original.pk).actor == original.actor


def test_loaddata_adds_events_but_cannot_overwrite_one(events, tmp_path):
    original = events[0]
    fixture = tmp_path / "forge.json"
    forged = {
        "actor": "cli:mallory",
        "action": "pruned",
        "object_type": "tokens",
        "object_id": "",
        "object_repr": "",
        "changes": {},
        "time": "2020-01-01T00:00:00Z",
    }
    fixture.write_text(json.dumps([{"model": "oauth_cc.auditevent", "pk": original.pk, "fields": forged}]))
    with pytest.raises(AppendOnlyError):
        call_command("loaddata", str(fixture), verbosity=0)
    assert AuditEvent.objects.get(pk=original.pk).actor == original.actor

    new_pk = max(e.pk for e in events) + 100
    fixture.write_text(json.dumps([{"model": "oauth_cc.auditevent", "pk": new_pk, "fields": forged}]))
    call_command("loaddata", str(fixture), verbosity=0)
    assert AuditEvent.objects.get(pk=new_pk).actor == "cli:mallory"  # restoring an archive still works


def test_a_new_event_object_can_be_saved_once(db):
    event = AuditEvent(actor=CLI, action="pruned", object_type="tokens", object_id="")
    event.save()
    with pytest.raises(AppendOnlyError):
        event.save()
    assert AuditEvent.objects.count() == 1


def test_record_refuses_an_unknown_action_or_object(db):
    with pytest.raises(ValueError, match="Unknown audit action"):
        audit.record(CLI, "client_exploded", ("client", "x"))
    with pytest.raises(TypeError):
        audit.record(CLI, AuditAction.PRUNED, object())
    assert not AuditEvent.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "sql",
    ["UPDATE oauth_cc_auditevent SET actor = 'forged'", "DELETE FROM oauth_cc_auditevent"],
)
def test_postgresql_refuses_update_and_delete_from_any_client(events, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    assert list(AuditEvent.objects.order_by("id").values_list("actor", flat=True)) == ["admin:alice", CLI]


# -- oauth_cc audit -------------------------------------------------------------------------------


def test_audit_json_has_exactly_the_five_keys(events):
    rows = run_json("audit")

    assert [row["action"] for row in rows] == ["client_disabled", "client_enabled"]  # oldest first
    for row, event in zip(rows, events, strict=True):
        assert set(row) == {"time", "actor", "action", "object", "changes"}
        assert datetime.fromisoformat(row["time"]) == event.time
        assert row["actor"] == event.actor
        assert row["object"] == {"type": "client", "id": event.object_id, "name": "svc"}
        assert row["changes"] == event.changes


def test_audit_filters_by_client_and_since(events, make_client):
    other, _ = make_client("other")
    clients.revoke_tokens(other, actor=CLI)
    later = timezone.now() + timedelta(seconds=1)
    AuditEvent.objects.create(
        time=later, actor=CLI, action="pruned", object_type="tokens", object_id="", changes={}
    )

    assert [r["action"] for r in run_json("audit", "--client", events[0].object_id)] == [
        "client_disabled",
        "client_enabled",
    ]
    assert [r["object"]["id"] for r in run_json("audit", "--client", other.client_id)] == [other.client_id]
    assert run_json("audit", "--client", "no-such-client") == []
    assert [r["action"] for r in run_json("audit", "--since", later.isoformat())] == ["pruned"]
    assert len(run_json("audit", "--since", events[1].time.isoformat())) == 3  # at or after
    assert len(run_json("audit", "--since", "2000-01-01")) == 4
    assert run_json("audit", "--since", (later + timedelta(seconds=1)).isoformat()) == []


def test_audit_text_is_one_line_per_event(events):
    lines = run("audit").splitlines()

    assert len(lines) == 2
    first = lines[0]
    assert first.startswith(events[0].time.isoformat())
    assert "admin:alice  client_disabled  client " + events[0].object_id + " (svc)" in first
    assert '"is_active": {"new": false, "old": true}' in first
    assert run("audit", "--client", "nobody").strip() == "No audit events match."


def test_audit_text_escapes_control_characters(db):
    audit.record("cli:x\nforged line", AuditAction.PRUNED, ("client", "id\r\x1b[31m"), {"k": "v\nw"})

    (line,) = run("audit").splitlines()
    assert "\\n" in line and "\\r" in line and "\\x1b" in line


@pytest.mark.parametrize("since", ["yesterday", "2024-13-01", "2024-02-30", "2024-05-01T25:00", "", "0"])
def test_audit_bad_since_is_a_sentence(db, since):
    with pytest.raises(CommandError, match=r"is not an ISO 8601 date or time; use e\.g\. 2024-05-01"):
        run("audit", "--since", since)


def test_since_without_offset_is_in_the_site_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert parse_since("2024-05-01") == datetime.fromisoformat("2024-05-01T00:00:00+02:00")
    assert parse_since("2024-05-01T12:00:00Z") == datetime.fromisoformat("2024-05-01T12:00:00+00:00")


@given(st.text(max_size=40))
@example("9999-12-31T23:59:59")
@example("0001-01-01")
@example("2024-05-01T12:00:00+99:00")
def test_since_parser_returns_an_aware_time_or_a_command_error(text):
    try:
        moment = parse_since(text)
    except CommandError as exc:
        assert str(exc).startswith("--since ")
        assert "\n" not in str(exc)
    else:
        assert timezone.is_aware(moment)


# -- Auditing stays off the hot paths -------------------------------------------------------------


@pytest.mark.urls("tests.urls")
def test_token_endpoint_and_token_check_never_touch_the_audit_trail(
    client, svc, django_assert_num_queries, django_assert_max_num_queries
):
    application, secret = svc

    def token() -> Any:
        return form_post(
            client,
            "/oauth/token/",
            {"grant_type": "client_credentials", "scope": "reports:read"},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )

    with django_assert_max_num_queries(50) as cold:
        access_token = token().json()["access_token"]
        assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 200
    assert not [q for q in cold.captured_queries if "auditevent" in q["sql"].lower()]
    # Steady state: no query at all, as before auditing existed.
    with django_assert_num_queries(0):
        assert token().status_code == 200
        assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 200
    assert not AuditEvent.objects.exists()


def test_command_client_update_token_limit_records_old_and_new_value(svc):
    application, _ = svc
    before = AuditEvent.objects.count()

    call_command(
        "oauth_cc", "client", "update", application.client_id, "--token-limit", "100/hour", stdout=StringIO()
    )
    call_command(
        "oauth_cc", "client", "update", application.client_id, "--token-limit", "100/hour", stdout=StringIO()
    )
    call_command(
        "oauth_cc", "client", "update", application.client_id, "--token-limit", "none", stdout=StringIO()
    )

    events = list(AuditEvent.objects.order_by("id"))[before:]
    assert [(e.action, e.object_id, e.changes) for e in events] == [
        (AuditAction.CLIENT_CHANGED, application.client_id, {"token_limit": {"old": "", "new": "100/hour"}}),
        # setting the same value again changes nothing and records nothing
        (AuditAction.CLIENT_CHANGED, application.client_id, {"token_limit": {"old": "100/hour", "new": ""}}),
    ]
    assert all(e.actor.startswith("cli:") for e in events)


def test_command_client_update_with_a_bad_limit_records_nothing(svc):
    application, _ = svc
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError):
        call_command(
            "oauth_cc", "client", "update", application.client_id, "--token-limit", "lots", stdout=StringIO()
        )
    assert AuditEvent.objects.count() == before
