"""Issuer side: database models: API clients, scopes, client secrets, signing keys and revocation records."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import AbstractApplication

from .common.ratelimit import RateError, parse_rate
from .issuer.resource_indicators import is_resource_identifier

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN_RE = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")

scope_name_validator = RegexValidator(
    SCOPE_TOKEN_RE,
    message=_(
        "A scope name may only contain printable ASCII characters other than space, "
        'double quote (") and backslash (\\).'
    ),
    code="invalid_scope_name",
)


def validate_rate(value: str) -> None:
    try:
        parse_rate(value)
    except RateError as exc:
        raise ValidationError(str(exc), code="invalid_rate") from None


class Scope(models.Model):
    """A permission a client may be granted, named per RFC 6749 §3.3."""

    name = models.CharField(
        _("name"),
        max_length=100,
        unique=True,
        validators=[scope_name_validator],
        help_text=_('For example "reports:read". No spaces, quotes or backslashes.'),
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    is_default = models.BooleanField(
        _("granted by default"),
        default=False,
        help_text=_("Granted to a client that is allowed this scope when its token request names no scope."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("scope")
        verbose_name_plural = _("scopes")

    def __str__(self) -> str:
        return self.name


class TokenEndpointAuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", _("client_secret_basic (HTTP Basic)")
    CLIENT_SECRET_POST = "client_secret_post", _("client_secret_post (form fields)")
    PRIVATE_KEY_JWT = "private_key_jwt", _("private_key_jwt (signed JWT assertion, RFC 7523)")
    TLS_CLIENT_AUTH = "tls_client_auth", _("tls_client_auth (CA-issued TLS client certificate, RFC 8705)")
    SELF_SIGNED_TLS_CLIENT_AUTH = (
        "self_signed_tls_client_auth",
        _("self_signed_tls_client_auth (self-signed TLS client certificate, RFC 8705)"),
    )


SECRET_AUTH_METHODS = (
    TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
    TokenEndpointAuthMethod.CLIENT_SECRET_POST,
)

#: RFC 8705 §2: the client authenticates with the TLS client certificate the proxy forwarded.
MTLS_AUTH_METHODS = (
    TokenEndpointAuthMethod.TLS_CLIENT_AUTH,
    TokenEndpointAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
)


def _no_secret() -> str:
    return ""


class Application(AbstractApplication):
    """An API client that uses the client-credentials grant.

    Swapped in for DOT's Application (``OAUTH2_PROVIDER_APPLICATION_MODEL``). The DOT
    fields for interactive flows stay but are fixed: every client is confidential and
    uses ``client-credentials``. Secrets do not live in DOT's ``client_secret`` column
    (which DOT hashes with the slow password hasher); they are :class:`ClientSecret` rows.
    """

    # DOT's owner FK doubles as the run-as user: DOT's own client-credentials flow already
    # sets ``request.user`` to it. PROTECT, because deleting a user must not silently delete
    # the API clients that run as that user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        related_name="oauth_cc_clients",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        verbose_name=_("run-as user"),
        help_text=_(
            "The Django user that request.user becomes on protected views, so Django permissions "
            "apply. Leave empty for an anonymous client."
        ),
    )
    # Not used: see the class docstring. Kept empty so no secret is ever stored here.
    client_secret = models.CharField(max_length=255, blank=True, default=_no_secret, editable=False)
    hash_client_secret = models.BooleanField(default=False, editable=False)
    client_type = models.CharField(
        max_length=32,
        choices=AbstractApplication.CLIENT_TYPES,
        default=AbstractApplication.CLIENT_CONFIDENTIAL,
        editable=False,
    )
    authorization_grant_type = models.CharField(
        max_length=44,
        choices=AbstractApplication.GRANT_TYPES,
        default=AbstractApplication.GRANT_CLIENT_CREDENTIALS,
        editable=False,
    )

    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("A disabled client cannot get tokens, and the tokens it holds are refused."),
    )
    scopes = models.ManyToManyField(
        Scope, blank=True, related_name="applications", verbose_name=_("allowed scopes")
    )
    access_token_lifetime = models.PositiveIntegerField(
        _("access-token lifetime (seconds)"),
        null=True,
        blank=True,
        help_text=_("Leave empty for the site default."),
    )
    audiences = models.JSONField(
        _("allowed audiences"),
        default=list,
        blank=True,
        help_text=_(
            "Resource identifiers (RFC 8707) this client may request tokens for. "
            "Empty means only this site's own identifier."
        ),
    )
    description = models.TextField(
        _("description / owner contact"),
        blank=True,
        help_text=_("Who owns this client and how to reach them."),
    )
    can_introspect = models.BooleanField(
        _("may introspect tokens"),
        default=False,
        help_text=_("Allow this client to call the RFC 7662 introspection endpoint."),
    )
    tokens_valid_after = models.DateTimeField(
        _("tokens issued before this are invalid"),
        null=True,
        blank=True,
    )
    token_endpoint_auth_method = models.CharField(
        _("token endpoint auth method"),
        max_length=32,
        choices=TokenEndpointAuthMethod.choices,
        default=TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
    )
    # client_jwks / client_jwks_uri / token_endpoint_auth_method: the names and meanings of
    # django-oauth-toolkit's own fields for RFC 7523 (DOT PR #1762), so that when DOT's
    # AbstractApplication gains them, these definitions override its ones and no second set
    # of columns appears. The JSON document is a JSONField here (DOT: a TextField of JSON).
    client_jwks = models.JSONField(
        _("public keys (JWKS)"),
        null=True,
        blank=True,
        help_text=_(
            'For private_key_jwt: a JWKS document {"keys": [...]} of public keys, each with a "kid".'
        ),
    )
    # A CharField with a URL validator rather than URLField: URLField's form field guesses a
    # scheme for bare hosts (and warns about that guess changing across Django versions).
    client_jwks_uri = models.CharField(
        _("JWKS URI"),
        blank=True,
        max_length=500,
        validators=[URLValidator(schemes=["https", "http"])],
        help_text=_(
            "For private_key_jwt and self_signed_tls_client_auth: an https URL serving the client's "
            "public keys."
        ),
    )
    # Empty (not NULL, as for every text column here) means the site default.
    token_limit = models.CharField(
        _("token rate limit"),
        max_length=20,
        blank=True,
        default="",
        validators=[validate_rate],
        help_text=_(
            'Token requests allowed, like "100/hour" (per second, minute, hour or day). '
            "Leave empty for the site default (OAUTH_CC['TOKEN_RATE_LIMIT'])."
        ),
    )
    require_dpop = models.BooleanField(
        _("require DPoP"),
        default=False,
        help_text=_(
            "Issue only DPoP-bound tokens (RFC 9449): a token request without a valid DPoP proof "
            "is refused, so this client never gets a plain Bearer token."
        ),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    # RFC 8705 §2.1.2 client metadata: how a tls_client_auth client's certificate is recognised
    # (exactly one of these), and §3.4: whether its tokens are bound to its certificate.
    tls_client_auth_subject_dn = models.CharField(
        _("TLS client certificate subject DN"),
        max_length=500,
        blank=True,
        default="",
        help_text=_('For tls_client_auth: the certificate\'s subject, e.g. "CN=billing,O=Example".'),
    )
    tls_client_auth_san_dns = models.CharField(
        _("TLS client certificate DNS name (SAN)"),
        max_length=253,
        blank=True,
        default="",
        help_text=_("For tls_client_auth, instead of the subject DN: a dNSName in the certificate."),
    )
    tls_client_auth_san_uri = models.CharField(
        _("TLS client certificate URI (SAN)"),
        max_length=500,
        blank=True,
        default="",
        help_text=_(
            "For tls_client_auth, instead of the subject DN: a URI in the certificate, e.g. "
            '"spiffe://example.org/billing" (compared exactly).'
        ),
    )
    tls_client_auth_san_ip = models.CharField(
        _("TLS client certificate IP address (SAN)"),
        max_length=45,  # the longest IPv6 text form, with an IPv4 tail
        blank=True,
        default="",
        help_text=_(
            "For tls_client_auth, instead of the subject DN: an IPv4 or IPv6 address in the certificate."
        ),
    )
    tls_client_auth_san_email = models.CharField(
        _("TLS client certificate email address (SAN)"),
        max_length=254,
        blank=True,
        default="",
        help_text=_(
            "For tls_client_auth, instead of the subject DN: an email address (rfc822Name) in the "
            "certificate."
        ),
    )
    tls_client_certificate_bound_access_tokens = models.BooleanField(
        _("certificate-bound tokens"),
        default=False,
        help_text=_(
            "Bind this client's tokens to its TLS client certificate (RFC 8705): a token is then "
            "refused unless the request presents the same certificate. Token requests must present one."
        ),
    )

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")

    def __str__(self) -> str:
        return f"{self.name or self.client_id}"

    @property
    def get_absolute_url(self) -> Any:  # DOT's model has a method of this name: see below
        """Absent: an API client has no page on the site.

        DOT's method reverses ``oauth2_provider:detail``, a page of DOT's interactive-flow views
        that this site does not include, so the admin's "View on site" answered 500. Raising
        AttributeError makes ``hasattr(client, "get_absolute_url")`` false: the admin shows no
        such button, and its ``/admin/r/<content type>/<id>/`` redirect answers 404.
        """
        raise AttributeError("An API client has no page on the site.")

    @property
    def uses_secret(self) -> bool:
        return self.token_endpoint_auth_method in SECRET_AUTH_METHODS

    def clean(self) -> None:
        # DOT's clean() validates redirect URIs and grant types of interactive flows, none
        # of which apply here.
        errors: dict[str, StrOrPromise] = {}
        if self.token_endpoint_auth_method == TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
            if bool(self.client_jwks) == bool(self.client_jwks_uri):
                errors["client_jwks"] = _(
                    "A private_key_jwt client needs exactly one of: inline JWKS, or a JWKS URI."
                )
            elif self.client_jwks:
                from .common.jwks_validation import validate_public_jwks

                try:
                    validate_public_jwks(self.client_jwks)
                except ValueError as exc:
                    errors["client_jwks"] = str(exc)
            elif self.client_jwks_uri:
                from .common.jwks_validation import validate_jwks_uri

                try:
                    validate_jwks_uri(self.client_jwks_uri)
                except ValueError as exc:
                    errors["client_jwks_uri"] = str(exc)
        elif self.token_endpoint_auth_method == TokenEndpointAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
            # RFC 8705 §2.2: the keys are registered like private_key_jwt's, inline or by URL.
            if bool(self.client_jwks) == bool(self.client_jwks_uri):
                errors["client_jwks"] = _(
                    "A self_signed_tls_client_auth client needs exactly one of: an inline JWKS holding "
                    "its certificate's public key, or a JWKS URI serving it."
                )
            elif self.client_jwks:
                from .common.jwks_validation import validate_public_jwks

                try:
                    validate_public_jwks(self.client_jwks)
                except ValueError as exc:
                    errors["client_jwks"] = str(exc)
            else:
                from .common.jwks_validation import validate_jwks_uri

                try:
                    validate_jwks_uri(self.client_jwks_uri)
                except ValueError as exc:
                    errors["client_jwks_uri"] = str(exc)
        elif self.client_jwks or self.client_jwks_uri:
            errors["client_jwks"] = _(
                "Public keys are only used by private_key_jwt and self_signed_tls_client_auth clients; "
                "clear them or change the method."
            )
        errors.update(self._certificate_name_errors())
        if not isinstance(self.audiences, list) or not all(is_resource_identifier(a) for a in self.audiences):
            errors["audiences"] = _(
                'Enter a JSON list of resource identifiers (absolute URIs without a "#" fragment), '
                'e.g. ["https://api.example.com"].'
            )
        if errors:
            raise ValidationError(errors)

    def _certificate_name_errors(self) -> dict[str, StrOrPromise]:
        """RFC 8705 §2.1.2: a tls_client_auth client registers exactly one certificate name."""
        from .common.mtls import CERTIFICATE_NAMES

        given = [name for name in CERTIFICATE_NAMES if getattr(self, name.metadata)]
        # The message goes on the row the operator filled in (or the first row).
        field = given[0].metadata if given else CERTIFICATE_NAMES[0].metadata
        if self.token_endpoint_auth_method != TokenEndpointAuthMethod.TLS_CLIENT_AUTH:
            if not given:
                return {}
            return {
                field: _(
                    "The certificate's subject DN, DNS name, URI, IP address or email address is only "
                    "used by tls_client_auth clients; clear it or change the method."
                )
            }
        if len(given) != 1:
            return {
                field: _(
                    "A tls_client_auth client needs exactly one of: the certificate's subject DN, DNS "
                    "name, URI, IP address or email address (RFC 8705, section 2.1.2)."
                )
            }
        try:
            given[0].check(getattr(self, field))
        except ValueError as exc:
            return {field: str(exc)}
        return {}


class ClientSecret(models.Model):
    """One secret of a client. Only a SHA-256 hash is stored; see :mod:`oauth_cc.issuer.secrets`."""

    application = models.ForeignKey(
        "oauth_cc.Application",
        on_delete=models.CASCADE,
        related_name="secrets",
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        _("prefix"),
        max_length=16,
        editable=False,
        help_text=_("The first characters of the secret, to recognise it by."),
    )
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created"]
        verbose_name = _("client secret")
        verbose_name_plural = _("client secrets")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.state})"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        if self.expires_at is not None:
            return "expiring"
        return "active"

    def is_usable(self) -> bool:
        return self.state in ("active", "expiring")


class KeyState(models.TextChoices):
    NEXT = "next", _("next (published, not yet signing)")
    CURRENT = "current", _("current (signing)")
    RETIRED = "retired", _("retired (published until its tokens expire)")


class SigningKey(models.Model):
    """A key that signs access tokens. The private half never leaves this row."""

    kid = models.CharField(_("key id"), max_length=64, unique=True, editable=False)
    algorithm = models.CharField(_("algorithm"), max_length=8, editable=False)
    state = models.CharField(_("state"), max_length=8, choices=KeyState.choices, editable=False)
    private_jwk = models.TextField(editable=False)
    public_jwk = models.JSONField(editable=False)
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    activated_at = models.DateTimeField(_("signing since"), null=True, blank=True, editable=False)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True, editable=False)
    # When a retired key may be deleted: every token it signed has expired by then.
    remove_after = models.DateTimeField(_("removed after"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created"]
        constraints = [
            # Exactly one key signs at a time; two workers creating the first key race on this.
            models.UniqueConstraint(
                fields=["state"], condition=models.Q(state="current"), name="oauth_cc_one_current_key"
            )
        ]
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")

    def __str__(self) -> str:
        return f"{self.kid} ({self.algorithm}, {self.state})"


class RevokedToken(models.Model):
    """A revoked access token, kept only until the token would have expired anyway."""

    jti = models.CharField(max_length=64, unique=True)
    client_id = models.CharField(max_length=255, db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("revoked token")
        verbose_name_plural = _("revoked tokens")

    def __str__(self) -> str:
        return self.jti


class DeletedClient(models.Model):
    """A deleted client's id, kept until every token issued to it has expired.

    Tokens are not stored, so without this record a deleted client's tokens would stay valid
    until they expire: nothing would be left to refuse them by. While it exists the
    revocation snapshot refuses the client's tokens (see :mod:`oauth_cc.issuer.revocation`).
    """

    client_id = models.CharField(max_length=255, unique=True)
    deleted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("deleted client")
        verbose_name_plural = _("deleted clients")

    def __str__(self) -> str:
        return self.client_id


class UsedAssertion(models.Model):
    """The single-use record of a client assertion's ``jti`` (RFC 7523 §3, item 7)."""

    client_id = models.CharField(max_length=255)
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "jti"], name="oauth_cc_assertion_once")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.jti}"


class AuditAction(models.TextChoices):
    CLIENT_CREATED = "client_created", _("client created")
    CLIENT_CHANGED = "client_changed", _("client changed")
    CLIENT_DISABLED = "client_disabled", _("client disabled")
    CLIENT_ENABLED = "client_enabled", _("client enabled")
    CLIENT_DELETED = "client_deleted", _("client deleted")
    SECRET_ROTATED = "secret_rotated", _("secret rotated")
    SECRET_REVOKED = "secret_revoked", _("secret revoked")
    TOKENS_REVOKED = "tokens_revoked", _("tokens revoked")
    SCOPE_CREATED = "scope_created", _("scope created")
    SCOPE_CHANGED = "scope_changed", _("scope changed")
    SCOPE_DELETED = "scope_deleted", _("scope deleted")
    KEY_ROTATED = "key_rotated", _("signing key rotated")
    KEYS_REENCRYPTED = "keys_reencrypted", _("signing keys re-encrypted")
    PRUNED = "pruned", _("expired records pruned")


class AppendOnlyError(Exception):
    """An audit event was about to be changed or deleted through the ORM."""


_APPEND_ONLY = "Audit events are append-only: they cannot be changed or deleted."


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Refuses the bulk ways of changing or deleting rows; ``create`` and reads stay."""

    def update(self, **kwargs: object) -> int:
        raise AppendOnlyError(_APPEND_ONLY)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(_APPEND_ONLY)

    def bulk_update(self, *args: object, **kwargs: object) -> int:
        raise AppendOnlyError(_APPEND_ONLY)

    def update_or_create(self, *args: object, **kwargs: object) -> tuple[AuditEvent, bool]:
        raise AppendOnlyError(_APPEND_ONLY)

    def _raw_delete(self, *args: object, **kwargs: object) -> int:
        raise AppendOnlyError(_APPEND_ONLY)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        # Conflict handling would rewrite (or silently keep) a row that exists already.
        if kwargs.get("update_conflicts") or kwargs.get("ignore_conflicts"):
            raise AppendOnlyError(_APPEND_ONLY)
        return super().bulk_create(objs, *args, **kwargs)

    delete.queryset_only = True  # type: ignore[attr-defined]
    _raw_delete.queryset_only = True  # type: ignore[attr-defined]


class AuditEvent(models.Model):
    """One operator action (admin or ``oauth_cc`` command), recorded append-only.

    Written by :func:`oauth_cc.issuer.audit.record` in the transaction of the change it describes.
    The object is kept as text (type and id), not a foreign key, so the event outlives a
    deleted client. The ORM refuses to change or delete a row (``save`` of an existing row,
    ``delete``, queryset ``update``/``delete``); on PostgreSQL a trigger refuses ``UPDATE``
    and ``DELETE`` from any client too (migration ``0003_audit``). ``changes`` never holds a
    secret, a secret's hash or a private key: secrets appear by id and prefix only.
    """

    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True, editable=False)
    actor = models.CharField(
        _("actor"),
        max_length=200,
        editable=False,
        help_text=_('"admin:USERNAME" for the admin, "cli:OS_USER" for the management command.'),
    )
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices, editable=False)
    object_type = models.CharField(_("object type"), max_length=32, editable=False)
    # A client's client_id, a scope's name or a key's kid: text, so it survives deletion.
    object_id = models.CharField(_("object id"), max_length=255, db_index=True, editable=False)
    object_repr = models.CharField(_("object"), max_length=200, blank=True, editable=False)
    changes = models.JSONField(_("changes"), default=dict, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        # No add/change/delete permissions exist to grant: events are written by code only.
        default_permissions = ("view",)
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AppendOnlyError(_APPEND_ONLY)
        # An INSERT, always: a new instance given an existing pk would otherwise be saved as an
        # UPDATE of that row; forced, it fails on the primary key instead.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(_APPEND_ONLY)


class UsageBucket(models.Model):
    """How many tokens one client got in one clock hour (UTC). See :mod:`oauth_cc.issuer.usage_counts`.

    The client is named by its ``client_id`` as text, not a foreign key: counts keep arriving
    from workers' memory after a client is deleted (a flush must not fail, or lose the other
    clients' counts in the same statement, because one client is gone), and the history of a
    deleted client stays readable until the retention period removes it.
    """

    client_id = models.CharField(max_length=255)
    #: Start of the hour, as whole hours since the Unix epoch (UTC): cheap to compute on the
    #: hot path and to compare, with no time-zone ambiguity.
    hour = models.IntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "hour"], name="oauth_cc_usage_bucket")]
        indexes = [models.Index(fields=["hour"], name="oauth_cc_usage_hour")]
        verbose_name = _("usage bucket")
        verbose_name_plural = _("usage buckets")

    def __str__(self) -> str:
        return f"{self.client_id}@{self.hour}: {self.count}"


class StateGeneration(models.Model):
    """A random token replaced by every change to what workers cache (:mod:`oauth_cc.issuer.generation`).

    One row per kind of cached state: client data (pk 1) and the revocation snapshot (pk 2).

    Workers compare it once per refresh interval instead of reloading every client they hold,
    so their cost does not grow with the number of clients. Random rather than a counter: a
    value written by a transaction that rolled back is never written again by a later one.
    """

    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("state generation")
        verbose_name_plural = _("state generation")

    def __str__(self) -> str:
        return str(self.value)
