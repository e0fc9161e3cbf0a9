"""Issuer side: the audit trail: one append-only :class:`~oauth_cc.models.AuditEvent` per operator action.

Operator actions are the changes made from the admin or the ``oauth_cc`` management command.
Call :func:`record` inside the transaction of the change, so a change that fails records
nothing and a recorded event means the change happened::

    with transaction.atomic():
        application.save()
        audit.record(actor, AuditAction.CLIENT_CHANGED, application, {"name": {"old": a, "new": b}})

The operations of :mod:`oauth_cc.issuer.clients` and :func:`oauth_cc.issuer.keys.rotate` take ``actor=`` and
do this themselves; ``actor=None`` (tests, demo data, code) records nothing. Nothing here runs
on the token endpoint or the token check: auditing costs those paths no query.

``changes`` never holds a secret, a secret's hash or a private key. Secrets are named by
their database id and prefix; public keys by kid and RFC 7638 thumbprint.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.http import HttpRequest

from ..models import Application, AuditAction, AuditEvent, ClientSecret, Scope, SigningKey

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

#: The client fields an event shows, in this order; "jwks" as kid/thumbprint pairs.
CLIENT_FIELDS = (
    "name",
    "description",
    "is_active",
    "scopes",
    "access_token_lifetime",
    "run_as_user",
    "audiences",
    "can_introspect",
    "auth_method",
    "jwks",
    "jwks_uri",
    "token_limit",
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
    "tls_client_certificate_bound_access_tokens",
    "require_dpop",
)
SCOPE_FIELDS = ("name", "description", "is_default")

_REPR_LENGTH = AuditEvent._meta.get_field("object_repr").max_length


def admin_actor(request: HttpRequest) -> str:
    """The actor of an admin request: ``admin:`` and the user's username."""
    return f"admin:{request.user.get_username()}"


def command_actor() -> str:
    """The actor of a management command: ``cli:`` and the OS user (and who ran sudo).

    ``getpass.getuser()`` reads ``LOGNAME``/``USER`` and then the password database; in a
    container without either it fails, and the numeric uid is what is left to record.
    """
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # OSError since 3.13, KeyError from pwd before
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != user:
        return f"cli:{user} (sudo by {sudo_user})"
    return f"cli:{user}"


def _describe(obj: Any) -> tuple[str, str, str]:
    """``(object_type, object_id, object_repr)`` of what an event is about."""
    if isinstance(obj, Application):
        return "client", obj.client_id, obj.name
    if isinstance(obj, Scope):
        return "scope", obj.name, obj.name
    if isinstance(obj, SigningKey):
        return "signing_key", obj.kid, f"{obj.kid} ({obj.algorithm})"
    if isinstance(obj, tuple) and len(obj) == 2:
        return str(obj[0]), str(obj[1]), ""
    raise TypeError(f"Cannot audit an object of type {type(obj).__name__}.")


def record(
    actor: str, action: AuditAction | str, obj: Any, changes: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event. ``obj`` is a client, scope or signing key, or ``(type, id)``.

    Call it inside the transaction of the change. ``changes`` must be JSON-serialisable after
    :func:`jsonable` (datetimes become ISO 8601 strings) and must hold no secret.
    """
    if action not in AuditAction.values:
        raise ValueError(f"Unknown audit action {action!r}.")
    object_type, object_id, object_repr = _describe(obj)
    return AuditEvent.objects.create(
        actor=actor[:200],
        action=str(action),
        object_type=object_type,
        object_id=object_id,
        object_repr=(object_repr or "")[:_REPR_LENGTH],
        changes=jsonable(changes or {}),
    )


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value


def secret_ref(secret: ClientSecret) -> dict[str, Any]:
    """A secret as events name it: id and prefix, never the secret or its hash."""
    return {"id": secret.pk, "prefix": secret.prefix}


def client_snapshot(application: Application) -> dict[str, Any]:
    """The audited settings of a client, read from the instance (scopes from the database)."""
    from ..common.jwks_validation import jwk_thumbprints

    jwks: list[str] = []
    if application.client_jwks:
        try:
            jwks = [f"{kid} {thumbprint}" for kid, thumbprint in jwk_thumbprints(application.client_jwks)]
        except Exception:  # an event must not fail on a key set the client check would refuse
            jwks = ["(unreadable key set)"]
    # A user_id means a user (the FK is nullable, so it is typed optional).
    user = cast("AbstractBaseUser", application.user).get_username() if application.user_id else None
    scopes = sorted(application.scopes.values_list("name", flat=True)) if application.pk else []
    snapshot = {
        "name": application.name,
        "description": application.description,
        "is_active": application.is_active,
        "scopes": scopes,
        "access_token_lifetime": application.access_token_lifetime,
        "run_as_user": user,
        "audiences": list(application.audiences or []),
        "can_introspect": application.can_introspect,
        "auth_method": application.token_endpoint_auth_method,
        "jwks": jwks,
        "jwks_uri": application.client_jwks_uri,
        "token_limit": application.token_limit,
        "tls_client_auth_subject_dn": application.tls_client_auth_subject_dn,
        "tls_client_auth_san_dns": application.tls_client_auth_san_dns,
        "tls_client_auth_san_uri": application.tls_client_auth_san_uri,
        "tls_client_auth_san_ip": application.tls_client_auth_san_ip,
        "tls_client_auth_san_email": application.tls_client_auth_san_email,
        "tls_client_certificate_bound_access_tokens": application.tls_client_certificate_bound_access_tokens,
        "require_dpop": application.require_dpop,
    }
    return {field: snapshot[field] for field in CLIENT_FIELDS}


def scope_snapshot(scope: Scope) -> dict[str, Any]:
    return {"name": scope.name, "description": scope.description, "is_default": scope.is_default}


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"old": ..., "new": ...}}`` for each field whose value differs."""
    return {
        field: {"old": old.get(field), "new": new.get(field)}
        for field in new
        if old.get(field) != new.get(field)
    }
