"""Issuer side: operations on API clients shared by the admin and the management command.

Each function validates its input, changes the database in one transaction, and raises
:class:`ClientError` with a sentence a person can act on when the input is wrong.

Each operation that changes something takes ``actor`` (:func:`oauth_cc.issuer.audit.admin_actor` or
:func:`oauth_cc.issuer.audit.command_actor`) and then records one audit event in the same transaction
as the change; ``actor=None`` (tests, demo data, code) records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..common.ratelimit import RateError, parse_rate
from ..conf import oauth_cc_settings
from ..models import (
    Application,
    AuditAction,
    ClientSecret,
    Scope,
    TokenEndpointAuthMethod,
    scope_name_validator,
)
from . import audit, revocation
from .secrets import generate_secret, hash_secret, secret_prefix


class ClientError(Exception):
    """Bad input from an operator; the message says what to fix."""


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly generated secret. ``secret`` exists only here: show it once, then drop it."""

    client_id: str
    secret: str
    record: ClientSecret
    #: The previous secrets that now expire, with their new expiry (rotation only).
    expiring: tuple[tuple[str, datetime], ...] = ()


def get_client(client_id: str) -> Application:
    try:
        return Application.objects.get(client_id=client_id)
    except Application.DoesNotExist:
        raise ClientError(f'No API client has the client_id "{client_id}".') from None


def get_scopes(names: Iterable[str]) -> list[Scope]:
    names = list(dict.fromkeys(names))
    found = {scope.name: scope for scope in Scope.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        raise ClientError(
            "Unknown scope(s): "
            + ", ".join(missing)
            + ". Create them first (oauth_cc scope add NAME) or check the spelling."
        )
    return [found[name] for name in names]


def create_scope(
    name: str, *, description: str = "", default: bool = False, actor: str | None = None
) -> Scope:
    """Create a scope; its name must be an RFC 6749 §3.3 scope-token and not taken."""
    try:
        scope_name_validator(name)
    except ValidationError as exc:
        raise ClientError(f'"{name}" is not a valid scope name. ' + " ".join(exc.messages)) from None
    taken = ClientError(f'A scope named "{name}" already exists.')
    if Scope.objects.filter(name=name).exists():
        raise taken
    try:
        with transaction.atomic():
            scope = Scope.objects.create(name=name, description=description, is_default=default)
            if actor is not None:
                audit.record(actor, AuditAction.SCOPE_CREATED, scope, audit.scope_snapshot(scope))
            return scope
    except IntegrityError:
        raise taken from None  # created by a concurrent call since the check above


def add_secret(application: Application, *, expires_at: datetime | None = None) -> IssuedSecret:
    """Generate a new secret for ``application`` and store only its hash."""
    secret = generate_secret()
    record = ClientSecret.objects.create(
        application=application,
        secret_hash=hash_secret(secret),
        prefix=secret_prefix(secret),
        expires_at=expires_at,
    )
    return IssuedSecret(client_id=application.client_id, secret=secret, record=record)


def create_client(
    name: str,
    *,
    scopes: Iterable[str] = (),
    lifetime: int | None = None,
    description: str = "",
    auth_method: str = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str = "",
    audiences: Iterable[str] = (),
    can_introspect: bool = False,
    token_limit: str | None = None,
    tls_subject_dn: str = "",
    tls_san_dns: str = "",
    tls_san_uri: str = "",
    tls_san_ip: str = "",
    tls_san_email: str = "",
    certificate_bound_tokens: bool = False,
    require_dpop: bool = False,
    actor: str | None = None,
) -> tuple[Application, IssuedSecret | None]:
    """Create a client; for secret-based methods also its first secret (returned once)."""
    if not name.strip():
        raise ClientError("Give the client a name.")
    if lifetime is not None and lifetime <= 0:
        raise ClientError("The token lifetime must be a positive number of seconds.")
    if auth_method not in TokenEndpointAuthMethod.values:
        raise ClientError(
            f'Unknown auth method "{auth_method}"; use one of: '
            + ", ".join(TokenEndpointAuthMethod.values)
            + "."
        )
    scope_objects = get_scopes(scopes)
    application = Application(
        name=name.strip(),
        access_token_lifetime=lifetime,
        description=description,
        token_endpoint_auth_method=auth_method,
        client_jwks=jwks,
        client_jwks_uri=jwks_uri,
        audiences=list(audiences),
        can_introspect=can_introspect,
        token_limit=token_limit_value(token_limit),
        tls_client_auth_subject_dn=tls_subject_dn.strip(),
        tls_client_auth_san_dns=tls_san_dns.strip(),
        tls_client_auth_san_uri=tls_san_uri.strip(),
        tls_client_auth_san_ip=tls_san_ip.strip(),
        tls_client_auth_san_email=tls_san_email.strip(),
        tls_client_certificate_bound_access_tokens=certificate_bound_tokens,
        require_dpop=require_dpop,
    )
    try:
        application.full_clean(exclude=["user"])
    except ValidationError as exc:
        raise ClientError(" ".join(_messages(exc))) from exc
    with transaction.atomic():
        application.save()
        application.scopes.set(scope_objects)
        issued = add_secret(application) if application.uses_secret else None
        if actor is not None:
            changes = audit.client_snapshot(application)
            if issued is not None:
                changes["secret"] = audit.secret_ref(issued.record)
            audit.record(actor, AuditAction.CLIENT_CREATED, application, changes)
    return application, issued


def token_limit_value(text: str | None) -> str:
    """What to store for a token limit typed by an operator: a rate, or "" for "none"."""
    if text is None or text.strip().lower() == "none":
        return ""
    try:
        return str(parse_rate(text.strip()))
    except RateError as exc:
        raise ClientError(f'{exc} Or "none" for the site default.') from None


def set_token_limit(application: Application, text: str, *, actor: str | None = None) -> Application:
    """Set a client's token rate limit ("100/hour"), or clear it ("none": the site default).

    Workers see the new limit within ``STATE_REFRESH_SECONDS``, like any client change.
    """
    old = application.token_limit
    application.token_limit = token_limit_value(text)
    with transaction.atomic():
        application.save(update_fields=["token_limit", "updated"])
        if actor is not None and old != application.token_limit:
            audit.record(
                actor,
                AuditAction.CLIENT_CHANGED,
                application,
                {"token_limit": {"old": old, "new": application.token_limit}},
            )
    return application


def set_require_dpop(application: Application, required: bool, *, actor: str | None = None) -> Application:
    """Require DPoP-bound tokens for a client (RFC 9449), or allow Bearer tokens again.

    Applies to token requests within ``STATE_REFRESH_SECONDS`` on every worker; tokens already
    issued keep the binding they were issued with.
    """
    if required and application.tls_client_certificate_bound_access_tokens:
        # The token endpoint would refuse every request: a token has one binding (RFC 9449 or 8705).
        raise ClientError(
            "This client's tokens are bound to its certificate, so it cannot also require DPoP-bound "
            "tokens; turn one off (--no-cert-bound-tokens or --no-require-dpop)."
        )
    old = application.require_dpop
    application.require_dpop = required
    with transaction.atomic():
        application.save(update_fields=["require_dpop", "updated"])
        if actor is not None and old != required:
            changes = {"require_dpop": {"old": old, "new": required}}
            audit.record(actor, AuditAction.CLIENT_CHANGED, application, changes)
    return application


#: The fields :func:`set_certificate_options` changes, with the command options that set them.
CERTIFICATE_FIELDS = {
    "tls_client_auth_subject_dn": "--tls-subject-dn",
    "tls_client_auth_san_dns": "--tls-san-dns",
    "tls_client_auth_san_uri": "--tls-san-uri",
    "tls_client_auth_san_ip": "--tls-san-ip",
    "tls_client_auth_san_email": "--tls-san-email",
    "tls_client_certificate_bound_access_tokens": "--cert-bound-tokens",
}


def set_certificate_options(
    application: Application,
    *,
    subject_dn: str | None = None,
    san_dns: str | None = None,
    san_uri: str | None = None,
    san_ip: str | None = None,
    san_email: str | None = None,
    bound_tokens: bool | None = None,
    actor: str | None = None,
) -> Application:
    """Change a client's registered certificate name (RFC 8705 §2.1.2) or certificate binding (§3).

    ``None`` leaves a value as it is; ``""`` clears a name. A ``tls_client_auth`` client has
    exactly one name, so setting one name clears the others not given. Checked like the admin
    form (raises :class:`ClientError` with sentences, and nothing changes); audited as one
    ``client_changed`` event; workers see it within ``STATE_REFRESH_SECONDS``.
    """
    before = {field: getattr(application, field) for field in CERTIFICATE_FIELDS}
    names = {
        "tls_client_auth_subject_dn": subject_dn,
        "tls_client_auth_san_dns": san_dns,
        "tls_client_auth_san_uri": san_uri,
        "tls_client_auth_san_ip": san_ip,
        "tls_client_auth_san_email": san_email,
    }
    if any(value is not None and value.strip() for value in names.values()):
        for field, value in names.items():
            if value is None:
                setattr(application, field, "")
    for field, value in names.items():
        if value is not None:
            setattr(application, field, value.strip())
    if bound_tokens is not None:
        application.tls_client_certificate_bound_access_tokens = bound_tokens
    problems: list[str] = []
    if application.tls_client_certificate_bound_access_tokens and application.require_dpop:
        # The token endpoint would refuse every request: a token has one binding (RFC 9449 or 8705).
        problems.append(
            "This client requires DPoP-bound tokens, so its tokens cannot also be bound to its "
            "certificate; turn one off (--no-require-dpop or --no-cert-bound-tokens)."
        )
    others = [f.name for f in Application._meta.concrete_fields if f.name not in CERTIFICATE_FIELDS]
    try:
        application.full_clean(exclude=others, validate_unique=False)
    except ValidationError as exc:
        problems.extend(_sentences(exc))
    if problems:
        for field, value in before.items():
            setattr(application, field, value)
        raise ClientError(" ".join(problems))
    changes = {
        field: {"old": old, "new": getattr(application, field)}
        for field, old in before.items()
        if old != getattr(application, field)
    }
    with transaction.atomic():
        application.save(update_fields=[*CERTIFICATE_FIELDS, "updated"])
        if actor is not None and changes:
            audit.record(actor, AuditAction.CLIENT_CHANGED, application, changes)
    return application


def rotate_secret(
    application: Application, *, grace: int | None = None, actor: str | None = None
) -> IssuedSecret:
    """Issue a new secret; the client's other usable secrets expire after ``grace`` seconds.

    ``grace`` defaults to ``SECRET_ROTATION_GRACE`` (24 hours); 0 ends them now. An old
    secret that already expires sooner keeps its earlier expiry.
    """
    if not application.uses_secret:
        raise ClientError(
            f"This client authenticates with {application.token_endpoint_auth_method} "
            "and has no secret to rotate."
        )
    if grace is None:
        grace = int(oauth_cc_settings.SECRET_ROTATION_GRACE)
    if grace < 0:
        raise ClientError("The grace period cannot be negative.")
    now = timezone.now()
    deadline = now + timedelta(seconds=grace)
    expiring: list[tuple[str, datetime]] = []
    with transaction.atomic():
        for old in application.secrets.select_for_update().filter(revoked_at__isnull=True):
            if old.expires_at is not None and old.expires_at <= deadline:
                if old.expires_at > now:
                    expiring.append((old.prefix, old.expires_at))
                continue
            old.expires_at = deadline
            old.save(update_fields=["expires_at"])
            expiring.append((old.prefix, deadline))
        issued = add_secret(application)
        if actor is not None:
            audit.record(
                actor,
                AuditAction.SECRET_ROTATED,
                application,
                {
                    "new_secret": audit.secret_ref(issued.record),
                    "grace_seconds": grace,
                    "expiring": [{"prefix": prefix, "expires": when} for prefix, when in expiring],
                },
            )
    return IssuedSecret(
        client_id=issued.client_id, secret=issued.secret, record=issued.record, expiring=tuple(expiring)
    )


def revoke_secret(application: Application, secret_ref: str, *, actor: str | None = None) -> ClientSecret:
    """Revoke one secret, named by its id or its prefix."""
    secrets = application.secrets.all()
    matches = [s for s in secrets if secret_ref in (str(s.pk), s.prefix)]
    if not matches:
        raise ClientError(
            f'Client "{application.client_id}" has no secret "{secret_ref}". '
            "Use the id or prefix shown by: oauth_cc client show CLIENT_ID."
        )
    if len(matches) > 1:
        raise ClientError(f'More than one secret matches "{secret_ref}"; use the numeric id instead.')
    secret = matches[0]
    with transaction.atomic():
        already = secret.revoked_at is not None
        if not already:
            secret.revoked_at = timezone.now()
            secret.save(update_fields=["revoked_at"])
        if actor is not None:
            changes: dict[str, Any] = {"secret": audit.secret_ref(secret), "revoked_at": secret.revoked_at}
            if already:
                changes["already_revoked"] = True
            audit.record(actor, AuditAction.SECRET_REVOKED, application, changes)
    return secret


def set_active(application: Application, active: bool, *, actor: str | None = None) -> Application:
    """Enable or disable a client.

    Disabling refuses the tokens it holds at once, and for good: it also sets
    ``tokens_valid_after``, so enabling the client again does not bring those tokens back.
    The save's ``post_save`` receiver (:mod:`oauth_cc.issuer.receivers`) publishes the new
    revocation snapshot, so it is not published again here.
    """
    was_active = application.is_active
    application.is_active = active
    fields = ["is_active", "updated"]
    if not active:
        application.tokens_valid_after = timezone.now()
        fields.append("tokens_valid_after")
    with transaction.atomic():
        application.save(update_fields=fields)
        if actor is not None:
            changes: dict[str, Any] = {"is_active": {"old": was_active, "new": active}}
            if not active:
                changes["tokens_valid_after"] = application.tokens_valid_after
            action = AuditAction.CLIENT_ENABLED if active else AuditAction.CLIENT_DISABLED
            audit.record(actor, action, application, changes)
    return application


def revoke_tokens(application: Application, *, actor: str | None = None) -> None:
    """Refuse every token issued to ``application`` until now; it can get new ones."""
    with transaction.atomic():
        revocation.invalidate_client_tokens(application.client_id)
        if actor is not None:
            application.refresh_from_db(fields=["tokens_valid_after"])
            audit.record(
                actor,
                AuditAction.TOKENS_REVOKED,
                application,
                {"tokens_valid_after": application.tokens_valid_after},
            )


def delete_client(application: Application, *, actor: str | None = None) -> None:
    """Delete a client and its secrets; the ``post_delete`` receiver refuses its tokens.

    The event keeps the client's settings as they were, since the client itself is gone.
    """
    with transaction.atomic():
        if actor is not None:
            changes = audit.client_snapshot(application)
            changes["secrets"] = [audit.secret_ref(s) for s in application.secrets.order_by("pk")]
            audit.record(actor, AuditAction.CLIENT_DELETED, application, changes)
        application.delete()


def _sentences(exc: ValidationError) -> list[str]:
    """A validation error's messages, each a sentence of its own (no field names)."""
    return [message if message.endswith(".") else message + "." for message in exc.messages]


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [
            f"{field}: {msg}" if field != "__all__" else msg
            for field, msgs in exc.message_dict.items()
            for msg in msgs
        ]
    return list(exc.messages)
