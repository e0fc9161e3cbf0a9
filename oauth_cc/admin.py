"""Issuer side: admin screens: API clients with their secrets, scopes, and token signing keys.

The screens stay thin: every change to a client goes through :mod:`oauth_cc.issuer.clients` (shared
with the ``oauth_cc`` management command) and key rotation through :func:`oauth_cc.issuer.keys.rotate`.

Secrets: a new secret is shown once, in the response to the POST that created it (never
through a redirect, the session, messages or a cookie), with ``Cache-Control: no-store``.
Only its hash is stored, so it cannot be shown again. Signing keys are view-only and their
private half is never loaded here.

Audit: every change made here records one :class:`~oauth_cc.models.AuditEvent` per object,
with ``admin:USERNAME`` as the actor, in the transaction of the change (the add/change and
delete pages run in one; the actions wrap each change in one). The audit trail is read-only.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import router, transaction
from django.db.models import Count, DateTimeField, FloatField, OuterRef, QuerySet, Subquery, Value
from django.forms.fields import InvalidJSONInput
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

# DOT's admin registers the swapped Application model with its own ApplicationAdmin, plus
# screens for stored tokens and grants that oauth_cc never uses (its tokens are JWTs, never
# stored). Importing DOT's module here first means its registrations have happened before we
# remove them, whatever the order of the apps in INSTALLED_APPS: the admin's autodiscovery
# imports each module only once.
from oauth2_provider import admin as dot_admin  # noqa: F401
from oauth2_provider import models as dot_models

from .common import json_input
from .common.algorithms import ACCESS_TOKEN_ALGORITHMS
from .common.errors import shown
from .common.jwks_validation import PRIVATE_JWK_MEMBERS
from .conf import oauth_cc_settings
from .issuer import audit, clients, key_encryption, keys, stale, usage_counts
from .issuer.client_auth import endpoint_url
from .issuer.resource_indicators import is_resource_identifier
from .issuer.usage_chart import bar_chart
from .models import (
    Application,
    AuditAction,
    AuditEvent,
    ClientSecret,
    Scope,
    SigningKey,
    TokenEndpointAuthMethod,
    UsageBucket,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

_DOT_MODEL_GETTERS = (
    "get_application_model",
    "get_access_token_model",
    "get_refresh_token_model",
    "get_grant_model",
    "get_id_token_model",
    "get_device_grant_model",
)
for _getter in _DOT_MODEL_GETTERS:
    _model = getattr(dot_models, _getter, None)
    if _model is not None and admin.site.is_registered(_model()):
        admin.site.unregister(_model())

#: A member that only a private (or symmetric) JWK has, found in text that does not parse as JSON.
_PRIVATE_MEMBER_NAME = re.compile('"(?:' + "|".join(sorted(PRIVATE_JWK_MEMBERS)) + r')"\s*:')
#: Attribute on the request that carries a secret from save_model() to response_add().
_NEW_SECRET_ATTR = "_oauth_cc_new_secret"
#: Attribute on the request that carries an object's audited values from before the save.
_BEFORE_ATTR = "_oauth_cc_audit_before"


#: Bound on what an operator pastes into a JSON box (a JWKS of a few keys is ~2 KiB).
MAX_JSON_INPUT_BYTES = 64 * 1024

#: The client form's rows that apply only to some token endpoint auth methods, by method: a row
#: named here is shown only while one of the methods listing it is selected (the page's script,
#: static/oauth_cc/admin/auth_method_fields.js, reads this map). A method not in the map shows
#: none of them; rows named nowhere here always show. ``Application.clean()`` stays the rule:
#: a value in a hidden row is still checked (and refused where it does not apply).
AUTH_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    TokenEndpointAuthMethod.CLIENT_SECRET_BASIC: (),
    TokenEndpointAuthMethod.CLIENT_SECRET_POST: (),
    TokenEndpointAuthMethod.PRIVATE_KEY_JWT: ("client_jwks", "client_jwks_uri", "key_thumbprints"),
    TokenEndpointAuthMethod.TLS_CLIENT_AUTH: (
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ),
    TokenEndpointAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH: (
        "client_jwks",
        "client_jwks_uri",
        "key_thumbprints",
    ),
}

#: The auth method as the client list shows it (its full name is the cell's tooltip).
AUTH_METHOD_SHORT: dict[str, str] = {
    TokenEndpointAuthMethod.CLIENT_SECRET_BASIC: "secret (Basic)",
    TokenEndpointAuthMethod.CLIENT_SECRET_POST: "secret (POST)",
    TokenEndpointAuthMethod.PRIVATE_KEY_JWT: "key (JWT)",
    TokenEndpointAuthMethod.TLS_CLIENT_AUTH: "certificate",
    TokenEndpointAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH: "certificate (self-signed)",
}


class BoundedJSONField(forms.JSONField):
    """Django's JSON form field, decoding through :mod:`oauth_cc.common.json_input`.

    Django's own field calls ``json.loads`` on the posted text, so a deeply nested paste raised
    ``RecursionError`` (a 500) instead of a form error.
    """

    def to_python(self, value: Any) -> Any:
        if self.disabled or not isinstance(value, str) or value.strip() in self.empty_values:
            return super().to_python(value)
        try:
            return json_input.loads(value, max_bytes=MAX_JSON_INPUT_BYTES, what="This")
        except json_input.JSONInputError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled or not isinstance(data, str):
            return super().bound_data(data, initial)
        try:
            return json_input.loads(data, max_bytes=MAX_JSON_INPUT_BYTES)
        except json_input.JSONInputError:
            return InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> Any:
        # No document is an empty box, not the text "null".
        return "" if value is None else super().prepare_value(value)


class AudiencesField(forms.Field):
    """Resource identifiers, one per line in a textarea, cleaned to the model's JSON list.

    Blank lines and surrounding spaces are dropped and repeats kept once; every line must be a
    resource identifier (:func:`~oauth_cc.issuer.resource_indicators.is_resource_identifier`: an
    absolute URI without a fragment), or the field's error names the lines that are not.
    """

    widget = forms.Textarea(attrs={"rows": 3, "cols": 80, "spellcheck": "false", "class": "vLargeTextField"})
    default_error_messages = {
        "invalid_audience": _(
            'Not an absolute URI without a "#" fragment: %(values)s. '
            "Enter one resource identifier per line, like https://api.example.com."
        ),
        "too_long": _("Enter at most %(max)d bytes."),
    }

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return "\n".join(str(item) for item in value)
        return "" if value is None else value

    def to_python(self, value: Any) -> list[str]:
        if value in self.empty_values:
            return []
        if isinstance(value, (list, tuple)):  # the initial value, never posted data
            return [str(item) for item in value]
        text = str(value)
        if len(text.encode("utf-8", "surrogatepass")) > MAX_JSON_INPUT_BYTES:
            raise forms.ValidationError(
                self.error_messages["too_long"], code="too_long", params={"max": MAX_JSON_INPUT_BYTES}
            )
        lines = (line.strip() for line in text.splitlines())
        return list(dict.fromkeys(line for line in lines if line))

    def validate(self, value: Any) -> None:
        super().validate(value)
        refused = [item for item in value if not is_resource_identifier(item)]
        if refused:
            raise forms.ValidationError(
                self.error_messages["invalid_audience"],
                code="invalid_audience",
                # Each shown shortened: a pasted document must not come back as a 40 KB sentence.
                params={"values": ", ".join(repr(shown(item, 80)) for item in refused[:5])},
            )


def _holds_private_key(raw: Any) -> bool:
    try:
        document = json_input.loads(raw, max_bytes=MAX_JSON_INPUT_BYTES) if isinstance(raw, str) else raw
    except ValueError:
        # Not JSON (a stray comma, a cut-off paste), but it may still hold a private key.
        return _PRIVATE_MEMBER_NAME.search(raw) is not None
    entries = document.get("keys") if isinstance(document, dict) else None
    if isinstance(document, dict) and entries is None:
        entries = [document]  # a single JWK pasted instead of a set
    return any(isinstance(e, dict) and PRIVATE_JWK_MEMBERS & e.keys() for e in entries or ())


class ApplicationForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at runtime: generic only in django-stubs
    """The client's settings. JWKS and audiences are checked by ``Application.clean()``."""

    audiences = AudiencesField(
        label=_("Allowed audiences"),
        required=False,
        help_text=_(
            "Resource identifiers (RFC 8707) this client may request tokens for, one per line, "
            "like https://api.example.com. Leave empty for only this site."
        ),
    )

    class Meta:
        model = Application
        fields = [
            "name",
            "description",
            "is_active",
            "scopes",
            "access_token_lifetime",
            "user",
            "audiences",
            "can_introspect",
            "token_limit",
            "token_endpoint_auth_method",
            "require_dpop",
            "client_jwks",
            "client_jwks_uri",
            "tls_client_auth_subject_dn",
            "tls_client_auth_san_dns",
            "tls_client_auth_san_uri",
            "tls_client_auth_san_ip",
            "tls_client_auth_san_email",
            "tls_client_certificate_bound_access_tokens",
        ]
        field_classes = {"client_jwks": BoundedJSONField}
        widgets = {
            "client_jwks": forms.Textarea(
                attrs={"rows": 8, "cols": 80, "class": "vLargeTextField", "spellcheck": "false"}
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True
        if "token_limit" in self.fields:
            site = oauth_cc_settings.TOKEN_RATE_LIMIT or _("no limit")
            self.fields["token_limit"].help_text = (
                _(
                    'Token requests allowed, like "100/hour" (per second, minute, hour or day). '
                    "Leave empty for the site default, now: %s."
                )
                % site
            )

    def clean_token_limit(self) -> str:
        # Stored in its one spelling ("100/min" becomes "100/minute"); "none" or empty: the default.
        try:
            return clients.token_limit_value(self.cleaned_data.get("token_limit") or None)
        except clients.ClientError as exc:
            raise forms.ValidationError(str(exc), code="invalid_rate") from None

    def clean_client_jwks(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("client_jwks")
        return None if value in (None, "", {}) else value

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]  # private to Django, absent from django-stubs
        # A private key pasted by mistake must not be echoed back into the page (and the
        # browser's cache and history) with the error: clear the box.
        field = self.add_prefix("client_jwks")
        if self.has_error("client_jwks") and _holds_private_key(self.data.get(field)):
            # The admin binds its forms to request.POST, a QueryDict.
            data = cast(QueryDict, self.data).copy()
            data[field] = ""
            self.data = data


def _short_time(at: Any) -> str:
    """A time in a list column: "2025-05-01 14:30" (local time), the date and time on two lines
    when the column is narrow."""
    if at is None:
        return "-"
    local = timezone.localtime(at)
    return format_html(
        '<time datetime="{}">{} {}</time>',
        local.isoformat(),
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M"),
    )


class ClientSecretInline(admin.TabularInline):  # type: ignore[type-arg]  # not subscriptable at runtime: generic only in django-stubs
    """The client's secrets, read-only: only a prefix of each is known."""

    model = ClientSecret
    extra = 0
    can_delete = False
    fields = ("prefix_display", "created", "expires_at", "last_used_at", "state_display", "revoke_link")
    readonly_fields = fields
    verbose_name_plural = _("secrets")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("secret"))
    def prefix_display(self, secret: ClientSecret) -> str:
        return f"{secret.prefix}…"

    @admin.display(description=_("state"))
    def state_display(self, secret: ClientSecret) -> str:
        return secret.state

    @admin.display(description="")
    def revoke_link(self, secret: ClientSecret) -> str:
        if secret.revoked_at is not None:
            return ""
        url = reverse(
            f"{self.admin_site.name}:oauth_cc_application_revoke_secret",
            args=[secret.application_id, secret.pk],
        )
        return format_html('<a href="{}" class="button">{}</a>', url, _("Revoke…"))


class NotCachingFilter(admin.SimpleListFilter):
    """Clients that got more tokens in the last hour than their token lifetime explains."""

    title = _("token caching")
    parameter_name = "caching"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [("no", _("not caching tokens"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Application]) -> QuerySet[Application]:
        if self.value() == "no":
            return queryset.filter(client_id__in=usage_counts.not_caching_client_ids())
        return queryset


class UnusedClientFilter(admin.SimpleListFilter):
    """Stale clients: not used for N days (or never, and created more than N days ago)."""

    title = _("unused for")
    parameter_name = "unused"
    DAYS = {"30": 30, "90": 90, "365": 365}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [(key, _("%s days or more") % key) for key in self.DAYS] + [("never", _("never used"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Application]) -> QuerySet[Application]:
        value = self.value()
        if value == "never":
            return queryset.filter(pk__in=stale.never_used_clients().values("pk"))
        if value in self.DAYS:
            return queryset.filter(pk__in=stale.unused_clients(self.DAYS[value]).values("pk"))
        return queryset


class StaleSecretFilter(admin.SimpleListFilter):
    """Clients holding a secret that is valid but unused for N days, or expired but still stored."""

    title = _("secrets")
    parameter_name = "secrets"
    DAYS = {"unused30": 30, "unused90": 90}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [
            ("unused30", _("a valid secret unused for 30 days")),
            ("unused90", _("a valid secret unused for 90 days")),
            ("expired", _("an expired secret still stored")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Application]) -> QuerySet[Application]:
        value = self.value()
        if value == "expired":
            return queryset.filter(pk__in=stale.expired_secrets().values("application_id"))
        if value in self.DAYS:
            return queryset.filter(pk__in=stale.unused_secrets(self.DAYS[value]).values("application_id"))
        return queryset


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # not subscriptable at runtime: generic only in django-stubs
    form = ApplicationForm
    # What an operator scans, narrow enough for a 1280-pixel window beside the filters
    # (static/oauth_cc/admin/admin.css wraps the long cells).
    list_display = (
        "name",
        "client_id",
        "is_active",
        "scope_names",
        "auth_method_short",
        "last_used",
        "secret_expires",
        "tokens_last_hour",
    )
    # An API client has no page on the site (Application.get_absolute_url is absent).
    view_on_site = False
    list_filter = (
        "is_active",
        "token_endpoint_auth_method",
        NotCachingFilter,
        UnusedClientFilter,
        StaleSecretFilter,
    )
    search_fields = ("name", "client_id", "description")
    filter_horizontal = ("scopes",)
    raw_id_fields = ("user",)
    inlines = [ClientSecretInline]
    actions = ["rotate_secret_action", "disable_action", "enable_action", "revoke_tokens_action"]
    fieldsets = (
        (None, {"fields": ("name", "client_id", "description", "is_active")}),
        (
            _("What it may do"),
            {
                "fields": (
                    "scopes",
                    "access_token_lifetime",
                    "user",
                    "audiences",
                    "can_introspect",
                    "token_limit",
                )
            },
        ),
        (
            _("How it authenticates"),
            {
                "fields": (
                    "token_endpoint_auth_method",
                    "client_jwks",
                    "client_jwks_uri",
                    "key_thumbprints",
                    "tls_client_auth_subject_dn",
                    "tls_client_auth_san_dns",
                    "tls_client_auth_san_uri",
                    "tls_client_auth_san_ip",
                    "tls_client_auth_san_email",
                    "tls_client_certificate_bound_access_tokens",
                    "require_dpop",
                ),
                "description": _(
                    "private_key_jwt: the client's public keys. tls_client_auth (RFC 8705): one of "
                    "the certificate's subject DN, DNS name, URI, IP address or email address. "
                    "self_signed_tls_client_auth: the JWKS (inline or by URI) holding the "
                    "certificate's public key. Certificate-bound tokens need a proxy "
                    "that forwards client certificates (OAUTH_CC['CLIENT_CERT_HEADER']). Require "
                    "DPoP: the client gets only DPoP-bound tokens (RFC 9449)."
                ),
            },
        ),
        (_("History"), {"fields": ("created", "updated", "last_used_at")}),
        (_("Token usage"), {"fields": ("token_usage",)}),
    )
    _add_only_readonly = ("client_id", "key_thumbprints", "created", "updated", "last_used_at", "token_usage")

    class Media:
        css = {"all": ("oauth_cc/admin/admin.css",)}
        js = ("oauth_cc/admin/auth_method_fields.js",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Application]:
        # The list's usage column: this hour's and the previous hour's bucket, by subquery, so the
        # page costs no query per row. The time is pinned so every row is judged at one instant.
        now = time.time()
        hour = usage_counts.hour_of(now)
        buckets = UsageBucket.objects.filter(client_id=OuterRef("client_id"))
        expiring = ClientSecret.objects.filter(
            application=OuterRef("pk"), revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).order_by("expires_at")
        return (  # type: ignore[no-any-return]  # super() is ModelAdmin[Any]: see the class line
            super()
            .get_queryset(request)
            .prefetch_related("scopes")
            .annotate(
                usage_this_hour=Subquery(buckets.filter(hour=hour).values("count")[:1]),
                usage_previous_hour=Subquery(buckets.filter(hour=hour - 1).values("count")[:1]),
                usage_at=Value(now, output_field=FloatField()),
                secret_expires_at=Subquery(expiring.values("expires_at")[:1], output_field=DateTimeField()),
            )
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        usage_counts.flush()  # this worker's own counts, so the page is current for them at least
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("auth method"), ordering="token_endpoint_auth_method")
    def auth_method_short(self, application: Application) -> str:
        method = application.token_endpoint_auth_method
        return format_html(
            '<span title="{}">{}</span>',
            application.get_token_endpoint_auth_method_display(),
            AUTH_METHOD_SHORT.get(method, method),
        )

    @admin.display(description=_("last used"), ordering="last_used_at")
    def last_used(self, application: Application) -> str:
        return _short_time(application.last_used_at)

    @admin.display(description=_("secret expires"), ordering="secret_expires_at")
    def secret_expires(self, application: Application) -> str:
        """When the first of its valid secrets with an expiry (a rotated-out one) stops working."""
        at = getattr(application, "secret_expires_at", None)
        if at is None:
            return "-"
        return format_html(
            '<span class="oauth-cc-secret-expires" title="{}">{}</span>',
            _("A secret of this client stops working then; rotation gives the old one a grace period."),
            _short_time(at),
        )

    @admin.display(description=_("tokens last hour"))
    def tokens_last_hour(self, application: Application) -> str:
        at = getattr(application, "usage_at", None)
        if at is None:
            return "-"
        counts = {
            usage_counts.hour_of(at): application.usage_this_hour or 0,  # type: ignore[attr-defined]  # get_queryset() annotates it
            usage_counts.hour_of(at) - 1: application.usage_previous_hour or 0,  # type: ignore[attr-defined]  # as above
        }
        tokens = usage_counts.window_count(counts, at, 1)
        lifetime = usage_counts.effective_lifetime(application.access_token_lifetime)
        if usage_counts.not_caching(tokens, lifetime):
            return format_html(
                '{} <strong class="oauth-cc-not-caching" title="{}">{}</strong>',
                tokens,
                _("More than %(limit)s tokens per hour for a %(lifetime)s s token lifetime.")
                % {"limit": f"{usage_counts.not_caching_limit(lifetime):g}", "lifetime": lifetime},
                _("not caching tokens"),
            )
        return str(tokens)

    @admin.display(description=_("tokens issued"))
    def token_usage(self, application: Application) -> str:
        usage = usage_counts.client_usage(application)
        hour_labels = [
            (index, start.strftime("%a %d"))
            for index, (start, _n) in enumerate(usage.hours)
            if start.hour == 0
        ]
        flag = (
            format_html(
                ' <strong class="oauth-cc-not-caching">{}</strong>',
                _("Not caching tokens: more than %(limit)s tokens per hour for a %(lifetime)s s lifetime.")
                % {"limit": f"{usage.not_caching_limit:g}", "lifetime": usage.token_lifetime},
            )
            if usage.not_caching_tokens
            else ""
        )
        return format_html(
            '<p>{}{}</p><p>{}</p>{}<p>{}</p>{}<p class="help">{}</p>',
            _("Last hour: %(hour)d tokens. Last 24 hours: %(day)d tokens.")
            % {"hour": usage.tokens_last_hour, "day": usage.tokens_last_day},
            flag,
            _("Tokens per hour, last 7 days (UTC):"),
            bar_chart(
                [(start.strftime("%Y-%m-%d %H:00 UTC"), n) for start, n in usage.hours],
                title=str(_("Tokens per hour, last 7 days")),
                axis_labels=hour_labels,
            ),
            _("Tokens per day, last 7 days (UTC):"),
            bar_chart(
                [(day.strftime("%Y-%m-%d"), n) for day, n in usage.days],
                title=str(_("Tokens per day, last 7 days")),
                axis_labels=[(i, day.strftime("%a %d")) for i, (day, _n) in enumerate(usage.days)],
            ),
            _("Counts reach the database once per USAGE_FLUSH_SECONDS from each worker."),
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Application | None = None,
    ) -> HttpResponse:
        # The script that shows each method's rows reads this (change_form.html: json_script).
        context["oauth_cc_auth_method_fields"] = {
            "fields": {str(method): list(names) for method, names in AUTH_METHOD_FIELDS.items()},
            "method": obj.token_endpoint_auth_method if obj is not None else None,
        }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Application | None = None) -> tuple[str, ...]:
        return self._add_only_readonly if obj is not None else ()

    def get_fieldsets(self, request: HttpRequest, obj: Application | None = None) -> Any:
        if obj is not None:
            return self.fieldsets
        # On the add page the client_id does not exist yet and there is no history to show.
        hidden = set(self._add_only_readonly)
        return [
            (title, {**options, "fields": tuple(f for f in options["fields"] if f not in hidden)})
            for title, options in self.fieldsets
            if any(f not in hidden for f in options["fields"])
        ]

    def get_inline_instances(self, request: HttpRequest, obj: Application | None = None) -> list[Any]:
        # A client being added has no secrets yet; its first one is shown after the save.
        return super().get_inline_instances(request, obj) if obj is not None else []

    @admin.display(description=_("scopes"))
    def scope_names(self, application: Application) -> str:
        return " ".join(sorted(scope.name for scope in application.scopes.all())) or "-"

    @admin.display(description=_("public key thumbprints (RFC 7638, SHA-256)"))
    def key_thumbprints(self, application: Application) -> StrOrPromise:
        if application.client_jwks:
            from .common.jwks_validation import jwk_thumbprints

            return format_html_join(
                "", "<div><code>{}</code>: <code>{}</code></div>", jwk_thumbprints(application.client_jwks)
            )
        if application.client_jwks_uri:
            return _("Keys are fetched from the JWKS URI when the client authenticates.")
        return "-"

    # -- create: the first secret, shown once ---------------------------------------------
    def save_model(self, request: HttpRequest, obj: Application, form: forms.Form, change: bool) -> None:
        if change:
            # The form has already written the new values into obj: read the old ones from the
            # database (the scopes too, which save_related() changes).
            before = Application.objects.select_related("user").get(pk=obj.pk)
            setattr(request, _BEFORE_ATTR, audit.client_snapshot(before))
        super().save_model(request, obj, form, change)
        if not change and obj.uses_secret:
            setattr(request, _NEW_SECRET_ATTR, clients.add_secret(obj))

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm[Application], formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        # Still inside the change view's transaction: the event commits with the change.
        application = form.instance
        after = audit.client_snapshot(application)
        actor = audit.admin_actor(request)
        if not change:
            issued = getattr(request, _NEW_SECRET_ATTR, None)
            if issued is not None:
                after["secret"] = audit.secret_ref(issued.record)
            audit.record(actor, AuditAction.CLIENT_CREATED, application, after)
            return
        changes = audit.diff(getattr(request, _BEFORE_ATTR), after)
        if changes:  # Saving an unchanged form changes nothing: no event.
            audit.record(actor, AuditAction.CLIENT_CHANGED, application, changes)

    def delete_model(self, request: HttpRequest, obj: Application) -> None:
        clients.delete_client(obj, actor=audit.admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        # The bulk "delete selected" action: one event per client, all or nothing.
        actor = audit.admin_actor(request)
        with transaction.atomic(using=router.db_for_write(Application)):
            for application in queryset:
                clients.delete_client(application, actor=actor)

    def response_add(
        self, request: HttpRequest, obj: Application, post_url_continue: str | None = None
    ) -> Any:
        issued = getattr(request, _NEW_SECRET_ATTR, None)
        if issued is None:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(request, _('The API client "%s" was added.') % obj.name, messages.SUCCESS)
        return self._render_secrets(request, [(obj, issued)], title=_("API client created"))

    def response_change(self, request: HttpRequest, obj: Application) -> HttpResponse:
        if obj.uses_secret and not any(s.is_usable() for s in obj.secrets.all()):
            self.message_user(
                request,
                _('"%s" has no usable secret, so it cannot get tokens. Use "Rotate secret" to issue one.')
                % obj,
                messages.WARNING,
            )
        return super().response_change(request, obj)

    def _render_secrets(
        self,
        request: HttpRequest,
        issued: list[tuple[Application, clients.IssuedSecret]],
        *,
        title: StrOrPromise,
    ) -> TemplateResponse:
        items = [
            {
                "application": application,
                "client_id": secret.client_id,
                "secret": secret.secret,
                "expiring": secret.expiring,
                "change_url": self._change_url(application),
            }
            for application, secret in issued
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "items": items,
            "token_endpoint": endpoint_url("token"),
            "changelist_url": reverse(f"{self.admin_site.name}:oauth_cc_application_changelist"),
        }
        response = TemplateResponse(request, "admin/oauth_cc/application/secret_issued.html", context)
        # The page holds a live secret: keep it out of every cache.
        response["Cache-Control"] = "no-store, private"
        return response

    # -- actions ---------------------------------------------------------------------------
    @admin.action(description=_("Rotate secret of selected API clients"), permissions=["change"])
    def rotate_secret_action(
        self, request: HttpRequest, queryset: QuerySet[Application]
    ) -> HttpResponse | None:
        issued = []
        # One transaction: an error partway must not leave secrets issued that no page shows.
        # ClientError is raised before rotate_secret() writes anything, so it is safe to catch here.
        with transaction.atomic(using=router.db_for_write(Application)):
            for application in queryset:
                try:
                    rotated = clients.rotate_secret(application, actor=audit.admin_actor(request))
                    issued.append((application, rotated))
                except clients.ClientError as exc:
                    self.message_user(request, f"{application}: {exc} Nothing was changed.", messages.WARNING)
                    continue
                self.log_change(request, application, "Rotated the client secret.")
        if not issued:
            return None
        return self._render_secrets(request, issued, title=_("New client secrets"))

    @admin.action(description=_("Disable selected API clients"), permissions=["change"])
    def disable_action(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description=_("Enable selected API clients"), permissions=["change"])
    def enable_action(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description=_("Revoke all tokens of selected API clients"), permissions=["change"])
    def revoke_tokens_action(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        count = 0
        for application in queryset:
            clients.revoke_tokens(application, actor=audit.admin_actor(request))
            self.log_change(request, application, "Revoked every token issued until now.")
            count += 1
        text = ngettext(
            "Revoked the tokens of %d API client; it can get new ones.",
            "Revoked the tokens of %d API clients; they can get new ones.",
            count,
        )
        self.message_user(request, text % count, messages.SUCCESS)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Application], active: bool) -> None:
        count = 0
        for application in queryset:
            clients.set_active(application, active, actor=audit.admin_actor(request))
            self.log_change(request, application, "Enabled." if active else "Disabled.")
            count += 1
        if active:
            text = ngettext("Enabled %d API client.", "Enabled %d API clients.", count) % count
        else:
            text = (
                ngettext(
                    "Disabled %d API client; its tokens are refused.",
                    "Disabled %d API clients; their tokens are refused.",
                    count,
                )
                % count
            )
        self.message_user(request, text, messages.SUCCESS)

    # -- per-client pages: rotate and revoke, each confirmed by a POST ----------------------
    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/rotate-secret/",
                wrap(self.rotate_secret_view),
                name="oauth_cc_application_rotate_secret",
            ),
            path(
                "<path:object_id>/secrets/<int:secret_id>/revoke/",
                wrap(self.revoke_secret_view),
                name="oauth_cc_application_revoke_secret",
            ),
            *super().get_urls(),
        ]

    def _get_for_change(self, request: HttpRequest, object_id: str) -> Application:
        application: Application | None = self.get_object(request, object_id)
        if application is None:
            raise Http404(_("No API client with this id exists."))
        if not self.has_change_permission(request, application):
            raise PermissionDenied
        return application

    def _change_url(self, application: Application) -> str:
        return reverse(f"{self.admin_site.name}:oauth_cc_application_change", args=[application.pk])

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        application = self._get_for_change(request, object_id)
        if not application.uses_secret:
            self.message_user(
                request,
                _(
                    "%(client)s authenticates with %(method)s and has no secret to rotate. "
                    "Nothing was changed."
                )
                % {"client": application, "method": application.token_endpoint_auth_method},
                messages.WARNING,
            )
            return HttpResponseRedirect(self._change_url(application))
        if request.method == "POST":
            issued = clients.rotate_secret(application, actor=audit.admin_actor(request))
            self.log_change(request, application, "Rotated the client secret.")
            return self._render_secrets(request, [(application, issued)], title=_("New client secret"))
        grace = int(oauth_cc_settings.SECRET_ROTATION_GRACE)
        return self._confirm(
            request,
            application,
            title=_("Rotate secret"),
            question=_(
                'Issue a new secret for "%(client)s"? Its current secrets stay valid '
                "for %(hours)s more hours, then expire."
            )
            % {"client": application, "hours": f"{grace / 3600:g}"},
            confirm_label=_("Yes, issue a new secret"),
        )

    def revoke_secret_view(self, request: HttpRequest, object_id: str, secret_id: int) -> HttpResponse:
        application = self._get_for_change(request, object_id)
        secret = application.secrets.filter(pk=secret_id).first()
        if secret is None:
            raise Http404(_("This API client has no secret with this id."))
        if request.method == "POST":
            clients.revoke_secret(application, str(secret.pk), actor=audit.admin_actor(request))
            self.log_change(request, application, f"Revoked secret {secret.prefix}….")
            self.message_user(
                request,
                _("Revoked secret %(prefix)s…; requests that use it now get invalid_client.")
                % {"prefix": secret.prefix},
                messages.SUCCESS,
            )
            return HttpResponseRedirect(self._change_url(application))
        return self._confirm(
            request,
            application,
            title=_("Revoke secret"),
            question=_(
                'Revoke secret %(prefix)s… of "%(client)s" now? Anything still using it stops working.'
            )
            % {"prefix": secret.prefix, "client": application},
            confirm_label=_("Yes, revoke it"),
        )

    def _confirm(
        self,
        request: HttpRequest,
        application: Application,
        *,
        title: StrOrPromise,
        question: str,
        confirm_label: StrOrPromise,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "object": application,
            "title": title,
            "question": question,
            "confirm_label": confirm_label,
            "cancel_url": self._change_url(application),
        }
        return TemplateResponse(request, "admin/oauth_cc/confirm.html", context)


@admin.register(Scope)
class ScopeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # not subscriptable at runtime: generic only in django-stubs
    list_display = ("name", "description", "is_default", "client_count")
    list_filter = ("is_default",)
    search_fields = ("name", "description")
    fields = ("name", "description", "is_default")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Scope]:
        return super().get_queryset(request).annotate(client_count=Count("applications"))  # type: ignore[no-any-return]  # super() is ModelAdmin[Any]: see the class line

    @admin.display(description=_("clients"), ordering="client_count")
    def client_count(self, scope: Scope) -> int:
        return scope.client_count  # type: ignore[attr-defined,no-any-return]  # get_queryset() annotates it

    def save_model(self, request: HttpRequest, obj: Scope, form: forms.Form, change: bool) -> None:
        # Inside the add/change view's transaction, like the save.
        before = audit.scope_snapshot(Scope.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        after = audit.scope_snapshot(obj)
        if before is None:
            audit.record(audit.admin_actor(request), AuditAction.SCOPE_CREATED, obj, after)
        elif changes := audit.diff(before, after):
            audit.record(audit.admin_actor(request), AuditAction.SCOPE_CHANGED, obj, changes)

    def delete_model(self, request: HttpRequest, obj: Scope) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Scope]) -> None:
        self._delete(request, list(queryset))

    def _delete(self, request: HttpRequest, scopes: list[Scope]) -> None:
        actor = audit.admin_actor(request)
        with transaction.atomic(using=router.db_for_write(Scope)):
            for scope in scopes:
                # Deleting a scope takes it from every client that had it: name them.
                holders = sorted(scope.applications.values_list("client_id", flat=True))
                audit.record(
                    actor,
                    AuditAction.SCOPE_DELETED,
                    scope,
                    {**audit.scope_snapshot(scope), "clients": holders},
                )
                scope.delete()


class ViewOnlyAdmin:
    """An admin page to look at: nobody adds, changes or deletes there, superusers included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SigningKey)
class SigningKeyAdmin(ViewOnlyAdmin, admin.ModelAdmin):  # type: ignore[type-arg]  # not subscriptable at runtime: generic only in django-stubs
    """View-only: keys are made and retired by rotation, never edited by hand."""

    list_display = (
        "kid",
        "algorithm",
        "state",
        "created",
        "activated_at",
        "retired_at",
        "remove_after",
        "private_key_storage",
    )
    list_filter = ("state", "algorithm")
    search_fields = ("kid",)
    # The private half is deliberately absent from every list here.
    fields = (
        "kid",
        "algorithm",
        "state",
        "created",
        "activated_at",
        "retired_at",
        "remove_after",
        "private_key_storage",
        "public_key",
    )
    readonly_fields = fields

    @admin.display(description=_("private key"))
    def private_key_storage(self, key: SigningKey) -> str:
        # The ciphertext's MAC is checked against each key; the private key is never decrypted
        # in an admin request.
        try:
            return key_encryption.storage(key.private_jwk).value
        except ImproperlyConfigured as exc:
            return str(exc)

    @admin.display(description=_("public key (JWK)"))
    def public_key(self, key: SigningKey) -> str:
        return format_html("<pre>{}</pre>", json.dumps(key.public_jwk, indent=2, sort_keys=True))

    def get_urls(self) -> list[URLPattern]:
        return [
            path("rotate/", self.admin_site.admin_view(self.rotate_view), name="oauth_cc_signingkey_rotate"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_rotate": self._can_rotate(request)}
        return super().changelist_view(request, extra_context)

    def _can_rotate(self, request: HttpRequest) -> bool:
        # has_change_permission() is off to keep the rows read-only; rotating is its own right.
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        if not self._can_rotate(request):
            raise PermissionDenied
        changelist_url = reverse(f"{self.admin_site.name}:oauth_cc_signingkey_changelist")
        default_algorithm = oauth_cc_settings.SIGNING_ALGORITHM
        if request.method == "POST":
            algorithm = request.POST.get("algorithm") or default_algorithm
            if algorithm not in ACCESS_TOKEN_ALGORITHMS:
                self.message_user(
                    request,
                    _("Unknown algorithm %(alg)s; choose one of %(choices)s. Nothing was changed.")
                    % {"alg": algorithm, "choices": ", ".join(ACCESS_TOKEN_ALGORITHMS)},
                    messages.ERROR,
                )
                return HttpResponseRedirect(changelist_url)
            result = keys.rotate(algorithm, actor=audit.admin_actor(request))
            text = _("Now signing with key %(current)s. The next key, %(next)s, is published.") % {
                "current": result.current_kid,
                "next": result.next_kid,
            }
            if result.retired_kid:
                text += " " + _("Retired key %(kid)s stays published until its tokens expire.") % {
                    "kid": result.retired_kid
                }
            self.message_user(request, text, messages.SUCCESS)
            return HttpResponseRedirect(changelist_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Rotate signing keys"),
            "question": _(
                "Start signing new tokens with the published next key, retire the current key (it stays "
                "published until the tokens it signed expire) and publish a new next key?"
            ),
            "algorithms": ACCESS_TOKEN_ALGORITHMS,
            "default_algorithm": default_algorithm,
            "confirm_label": _("Yes, rotate the keys"),
            "cancel_url": changelist_url,
        }
        return TemplateResponse(request, "admin/oauth_cc/confirm.html", context)


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin, admin.ModelAdmin):  # type: ignore[type-arg]  # not subscriptable at runtime: generic only in django-stubs
    """The audit trail, read-only: nobody adds, changes or deletes events here, superusers included."""

    list_display = ("time", "actor", "action", "object_type", "object_id", "object_repr")
    list_filter = ("action", "object_type", "time", "actor")
    search_fields = ("object_id", "object_repr", "actor")
    date_hierarchy = "time"
    fields = ("time", "actor", "action", "object_type", "object_id", "object_repr", "changes_display")
    readonly_fields = fields

    @admin.display(description=_("changes"))
    def changes_display(self, event: AuditEvent) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(event.changes, indent=2, sort_keys=True, ensure_ascii=False)
        )
