"""Issuer side: ``manage.py oauth_cc``: manage scopes, API clients and signing keys from the shell.

Every change goes through :mod:`oauth_cc.issuer.clients` (shared with the admin) or
:func:`oauth_cc.issuer.keys.rotate`. Bad input ends with a ``CommandError`` whose message says what
to fix, and changes nothing. Secrets are printed once, when they are created, and never again.
Every subcommand that changes something records one audit event (:mod:`oauth_cc.issuer.audit`) with
the OS user as the actor, in the transaction of the change; ``oauth_cc audit`` prints them.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from oauth_cc.common import json_input
from oauth_cc.common.algorithms import ACCESS_TOKEN_ALGORITHMS
from oauth_cc.common.mtls import CERTIFICATE_NAMES
from oauth_cc.conf import oauth_cc_settings
from oauth_cc.issuer import audit, clients, generation, key_encryption, keys, revocation, stale, usage_counts
from oauth_cc.models import (
    Application,
    AuditAction,
    AuditEvent,
    Scope,
    SigningKey,
    TokenEndpointAuthMethod,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

TOKEN_LIMIT_HELP = (
    'Token requests allowed, like "100/hour" (second, minute, hour, day); "none": the site default.'
)

#: A JWK Set file of a few public keys is a few KiB.
MAX_JWKS_FILE_BYTES = 1024 * 1024
#: The RFC 8705 §2.1.2 certificate names beyond the subject DN and DNS name (which predate them
#: and have their own help texts): option, metavar, help.
SAN_OPTIONS = (
    ("--tls-san-uri", "URI", 'a URI (SAN) of the certificate, e.g. "spiffe://example.org/billing"'),
    ("--tls-san-ip", "ADDRESS", "an IPv4 or IPv6 address (SAN) of the certificate"),
    ("--tls-san-email", "ADDRESS", "an email address (SAN) of the certificate"),
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value is not None else "-"


def client_summary(application: Application) -> dict[str, Any]:
    """The listing fields of a client (``client list``)."""
    return {
        "client_id": application.client_id,
        "name": application.name,
        "active": application.is_active,
        "auth_method": application.token_endpoint_auth_method,
        "scopes": sorted(scope.name for scope in application.scopes.all()),
        "created": _iso(application.created),
        "last_used": _iso(application.last_used_at),
    }


def client_details(application: Application) -> dict[str, Any]:
    """Everything an operator may see about a client (``client show``); never a secret."""
    details = client_summary(application)
    details.update(
        description=application.description,
        access_token_lifetime=application.access_token_lifetime,
        audiences=list(application.audiences or []),
        can_introspect=application.can_introspect,
        token_limit=application.token_limit or None,
        require_dpop=application.require_dpop,
        # A user_id means a user (the FK is nullable, so it is typed optional).
        run_as_user=cast("AbstractBaseUser", application.user).get_username()
        if application.user_id
        else None,
        jwks_uri=application.client_jwks_uri or None,
        jwks_thumbprints=_thumbprints(application),
        tls_client_auth_subject_dn=application.tls_client_auth_subject_dn or None,
        tls_client_auth_san_dns=application.tls_client_auth_san_dns or None,
        tls_client_auth_san_uri=application.tls_client_auth_san_uri or None,
        tls_client_auth_san_ip=application.tls_client_auth_san_ip or None,
        tls_client_auth_san_email=application.tls_client_auth_san_email or None,
        tls_client_certificate_bound_access_tokens=application.tls_client_certificate_bound_access_tokens,
        secrets=[
            {
                "id": secret.pk,
                "prefix": secret.prefix,
                "created": _iso(secret.created),
                "expires": _iso(secret.expires_at),
                "last_used": _iso(secret.last_used_at),
                "state": secret.state,
            }
            for secret in application.secrets.all()
        ],
    )
    return details


def _thumbprints(application: Application) -> list[dict[str, str]]:
    if not application.client_jwks:
        return []
    from oauth_cc.common.jwks_validation import jwk_thumbprints

    return [
        {"kid": kid, "thumbprint": thumbprint} for kid, thumbprint in jwk_thumbprints(application.client_jwks)
    ]


def event_details(event: AuditEvent) -> dict[str, Any]:
    """An audit event as ``oauth_cc audit --json`` prints it: exactly these five keys."""
    return {
        "time": event.time.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "object": {"type": event.object_type, "id": event.object_id, "name": event.object_repr},
        "changes": event.changes,
    }


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 date or date-time; without an offset, in the site's time zone."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime(day.year, day.month, day.day) if day is not None else None
    except (ValueError, OverflowError):
        moment = None  # well-formed but impossible, e.g. 2024-02-30 or an offset of 99 hours
    if moment is None:
        raise CommandError(
            f"--since {_one_line(text)!s} is not an ISO 8601 date or time; "
            "use e.g. 2024-05-01 or 2024-05-01T12:00:00+00:00."
        )
    if timezone.is_naive(moment):
        try:
            moment = timezone.make_aware(moment)
        except (ValueError, OverflowError):
            raise CommandError(
                f"--since {text} is out of range; give a date between years 1 and 9999."
            ) from None
    return moment


def _one_line(text: str) -> str:
    """``text`` with control characters escaped, so one event stays one line of output."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def key_details(key: SigningKey) -> dict[str, Any]:
    """Public facts about a signing key; the private half is never decrypted here.

    ``storage`` comes from checking the ciphertext's MAC against each configured key.
    """
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "state": key.state,
        "created": _iso(key.created),
        "signing_since": _iso(key.activated_at),
        "retired": _iso(key.retired_at),
        "remove_after": _iso(key.remove_after),
        "storage": key_encryption.storage(key.private_jwk).value,
    }


class Command(BaseCommand):
    help = "Manage oauth_cc scopes, API clients (client-credentials) and token signing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        groups = parser.add_subparsers(
            dest="group", metavar="{scope,client,key,tokens,state,report,audit,export}", required=True
        )

        scope = groups.add_parser("scope", help="Scopes clients may be granted.").add_subparsers(
            dest="action", required=True
        )
        p = scope.add_parser("add", help="Create a scope.")
        p.add_argument("name", help='Scope name, e.g. "reports:read" (RFC 6749 §3.3: no spaces, " or \\).')
        p.add_argument("--description", default="")
        p.add_argument("--default", action="store_true", help="Grant it when a token request names no scope.")
        p = scope.add_parser("list", help="List scopes.")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")

        client = groups.add_parser("client", help="API clients.").add_subparsers(dest="action", required=True)
        p = client.add_parser("create", help="Create a client and print its first secret (once).")
        p.add_argument("name")
        p.add_argument("--scope", action="append", default=[], dest="scopes", help="Allowed scope; repeat.")
        p.add_argument(
            "--lifetime", type=int, help="Access-token lifetime in seconds (default: site setting)."
        )
        p.add_argument("--description", default="", help="Owner and contact.")
        p.add_argument(
            "--auth-method",
            choices=TokenEndpointAuthMethod.values,
            help=(
                "Default: tls_client_auth with --tls-subject-dn/--tls-san-*, private_key_jwt with "
                "--jwks-file/--jwks-uri, else client_secret_basic."
            ),
        )
        keys_source = p.add_mutually_exclusive_group()
        keys_source.add_argument("--jwks-file", type=Path, help="File with the client's public JWKS.")
        keys_source.add_argument("--jwks-uri", default="", help="https URL of the client's public JWKS.")
        p.add_argument(
            "--audience", action="append", default=[], dest="audiences", help="Allowed resource; repeat."
        )
        p.add_argument("--introspect", action="store_true", help="Allow calls to the introspection endpoint.")
        p.add_argument("--token-limit", metavar="RATE", help=TOKEN_LIMIT_HELP)
        certificate = p.add_mutually_exclusive_group()
        certificate.add_argument(
            "--tls-subject-dn",
            default="",
            metavar="DN",
            help='tls_client_auth: the certificate\'s subject (RFC 4514), e.g. "CN=billing,O=Example".',
        )
        certificate.add_argument(
            "--tls-san-dns",
            default="",
            metavar="NAME",
            help="tls_client_auth: a DNS name (SAN) of the certificate.",
        )
        for option, metavar, text in SAN_OPTIONS:
            certificate.add_argument(option, default="", metavar=metavar, help=f"tls_client_auth: {text}.")
        p.add_argument(
            "--cert-bound-tokens",
            action="store_true",
            help="Bind the client's tokens to its TLS client certificate (RFC 8705).",
        )

        p.add_argument("--require-dpop", action="store_true", help="Issue only DPoP-bound tokens (RFC 9449).")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")
        p = client.add_parser("update", help="Change a client's settings.")
        p.add_argument("client_id")
        p.add_argument("--token-limit", metavar="RATE", help=TOKEN_LIMIT_HELP)
        p.add_argument(
            "--require-dpop",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Issue only DPoP-bound tokens (RFC 9449), or (--no-require-dpop) Bearer tokens too.",
        )
        p.add_argument(
            "--tls-subject-dn",
            metavar="DN",
            help='tls_client_auth: the certificate\'s subject (RFC 4514), e.g. "CN=billing,O=Example"; '
            '"" clears it.',
        )
        p.add_argument(
            "--tls-san-dns",
            metavar="NAME",
            help='tls_client_auth: a DNS name (SAN) of the certificate; "" clears it.',
        )
        for option, metavar, text in SAN_OPTIONS:
            p.add_argument(option, metavar=metavar, help=f'tls_client_auth: {text}; "" clears it.')
        p.add_argument(
            "--cert-bound-tokens",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Bind the client's tokens to its TLS client certificate (RFC 8705), or no longer.",
        )
        p = client.add_parser(
            "rotate-secret", help="Issue a new secret; the old ones expire after a grace period."
        )
        p.add_argument("client_id")
        p.add_argument(
            "--grace", type=int, help="Seconds the old secrets stay valid (default: site setting)."
        )
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")
        p = client.add_parser("revoke-secret", help="Revoke one secret now.")
        p.add_argument("client_id")
        p.add_argument("secret_id", help="The secret's id or prefix, as shown by: client show.")
        for action, text in (
            ("disable", "Disable a client and refuse its tokens."),
            ("enable", "Enable a client."),
            ("revoke-tokens", "Refuse every token issued to a client until now (it can get new ones)."),
            ("delete", "Delete a client, its secrets, and refuse the tokens it holds."),
        ):
            client.add_parser(action, help=text).add_argument("client_id")
        p = client.add_parser("list", help="List clients.")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")
        p = client.add_parser("show", help="Show a client's settings and secrets (never the secret itself).")
        p.add_argument("client_id")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")
        p = client.add_parser(
            "usage",
            help="Tokens issued to a client (last hour, last day, 7 days) and whether it caches them.",
        )
        p.add_argument("client_id")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")

        key = groups.add_parser("key", help="Token signing keys.").add_subparsers(
            dest="action", required=True
        )
        p = key.add_parser("rotate", help="Start signing with the next key and publish a new next key.")
        p.add_argument("--algorithm", choices=ACCESS_TOKEN_ALGORITHMS, help="Algorithm of the new next key.")
        p = key.add_parser("list", help="List signing keys and how each is stored.")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")
        key.add_parser(
            "reencrypt",
            help="Encrypt every signing key under the first OAUTH_CC['KEY_ENCRYPTION_KEYS'] key "
            "(after a key-list or SECRET_KEY rotation, or to encrypt plaintext keys).",
        )
        key.add_parser("generate-encryption-key", help="Print a new key for OAUTH_CC['KEY_ENCRYPTION_KEYS'].")

        tokens = groups.add_parser("tokens", help="Token bookkeeping.").add_subparsers(
            dest="action", required=True
        )
        tokens.add_parser(
            "prune",
            help="Delete expired revocation records, used assertion ids and retired keys no token needs "
            "(the token endpoint also does this every few minutes).",
        )

        state = groups.add_parser("state", help="Workers' cached view of the database.").add_subparsers(
            dest="action", required=True
        )
        state.add_parser(
            "refresh",
            help="Make every worker reload client data and revocation state within STATE_REFRESH_SECONDS "
            "(needed only after changing oauth_cc tables with QuerySet.update() or SQL).",
        )

        report = groups.add_parser("report", help="Reports for operators.").add_subparsers(
            dest="action", required=True
        )
        p = report.add_parser(
            "stale",
            help="Clients and secrets unused for N days, and expired secrets still stored.",
        )
        p.add_argument("--days", default="90", help="Unused for at least this many days (default 90).")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")

        export = groups.add_parser("export", help="Files for API users.").add_subparsers(
            dest="action", required=True
        )
        p = export.add_parser(
            "postman",
            help="Print a Postman v2.1 collection: client-credentials auth, a token-fetching pre-request "
            "script and one request per API operation (the secret is always a placeholder).",
        )
        p.add_argument("--client", dest="client_id", help="Fill in this client's client_id and scopes.")
        p.add_argument("--base-url", help="The site's URL in the requests (default: the ISSUER setting).")

        p = groups.add_parser("audit", help="Print the audit trail of operator actions, oldest first.")
        p.add_argument("--since", help="Only events at or after this ISO 8601 date or time.")
        p.add_argument("--client", dest="client_id", help="Only events about this client_id.")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["group"]
        if options.get("action"):
            name += "_" + options["action"].replace("-", "_")
        handler = getattr(self, name)
        try:
            handler(**options, actor=audit.command_actor())
        except (clients.ClientError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None

    # -- output ----------------------------------------------------------------------------
    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2))

    # -- scope -----------------------------------------------------------------------------
    def scope_add(self, *, name: str, description: str, default: bool, actor: str, **_: Any) -> None:
        scope = clients.create_scope(name, description=description, default=default, actor=actor)
        self.stdout.write(
            f'Created scope "{scope.name}"' + (" (granted by default)." if scope.is_default else ".")
        )

    def scope_list(self, *, as_json: bool, **_: Any) -> None:
        # Meta.ordering does not apply to GROUP BY queries: order explicitly.
        scopes = Scope.objects.annotate(client_count=Count("applications")).order_by("name")
        rows = [
            {"name": s.name, "description": s.description, "default": s.is_default, "clients": s.client_count}
            for s in scopes
        ]
        if as_json:
            return self._json(rows)
        if not rows:
            return self.stdout.write("No scopes yet. Create one with: manage.py oauth_cc scope add NAME")
        for row in rows:
            flag = " [default]" if row["default"] else ""
            self.stdout.write(
                f"{row['name']}{flag}  clients: {row['clients']}  {row['description']}".rstrip()
            )

    # -- client ----------------------------------------------------------------------------
    def client_create(
        self,
        *,
        name: str,
        scopes: list[str],
        lifetime: int | None,
        description: str,
        auth_method: str | None,
        jwks_file: Path | None,
        jwks_uri: str,
        audiences: list[str],
        introspect: bool,
        token_limit: str | None,
        tls_subject_dn: str,
        tls_san_dns: str,
        tls_san_uri: str,
        tls_san_ip: str,
        tls_san_email: str,
        cert_bound_tokens: bool,
        require_dpop: bool,
        as_json: bool,
        actor: str,
        **_: Any,
    ) -> None:
        jwks = _read_jwks(jwks_file) if jwks_file is not None else None
        if auth_method is None:
            has_keys = jwks is not None or jwks_uri
            if tls_subject_dn or tls_san_dns or tls_san_uri or tls_san_ip or tls_san_email:
                auth_method = TokenEndpointAuthMethod.TLS_CLIENT_AUTH
            elif has_keys:
                auth_method = TokenEndpointAuthMethod.PRIVATE_KEY_JWT
            else:
                auth_method = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
        application, issued = clients.create_client(
            name,
            scopes=scopes,
            lifetime=lifetime,
            description=description,
            auth_method=auth_method,
            jwks=jwks,
            jwks_uri=jwks_uri,
            audiences=audiences,
            can_introspect=introspect,
            token_limit=token_limit,
            tls_subject_dn=tls_subject_dn,
            tls_san_dns=tls_san_dns,
            tls_san_uri=tls_san_uri,
            tls_san_ip=tls_san_ip,
            tls_san_email=tls_san_email,
            certificate_bound_tokens=cert_bound_tokens,
            require_dpop=require_dpop,
            actor=actor,
        )
        secret = issued.secret if issued else None
        if as_json:
            return self._json({"client_id": application.client_id, "client_secret": secret})
        self.stdout.write(f'Created API client "{application.name}".')
        self.stdout.write(f"  client_id:     {application.client_id}")
        if secret is None:
            how = {
                TokenEndpointAuthMethod.PRIVATE_KEY_JWT: "the client signs assertions with its key",
                TokenEndpointAuthMethod.TLS_CLIENT_AUTH: "it connects with a CA-issued certificate",
                TokenEndpointAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH: "it connects with its own certificate",
            }[TokenEndpointAuthMethod(application.token_endpoint_auth_method)]
            self.stdout.write(f"  auth method:   {application.token_endpoint_auth_method} (no secret; {how})")
            return
        self.stdout.write(f"  client_secret: {secret}")
        self.stdout.write(
            self.style.WARNING("Copy the secret now: it is shown only this once and cannot be shown again.")
        )

    def client_update(
        self,
        *,
        client_id: str,
        token_limit: str | None,
        require_dpop: bool | None,
        tls_subject_dn: str | None,
        tls_san_dns: str | None,
        tls_san_uri: str | None,
        tls_san_ip: str | None,
        tls_san_email: str | None,
        cert_bound_tokens: bool | None,
        actor: str,
        **_: Any,
    ) -> None:
        application = clients.get_client(client_id)
        certificate = (tls_subject_dn, tls_san_dns, tls_san_uri, tls_san_ip, tls_san_email, cert_bound_tokens)
        if token_limit is None and require_dpop is None and all(value is None for value in certificate):
            raise CommandError(
                "Nothing to change: give --token-limit RATE (or --token-limit none), "
                "--require-dpop / --no-require-dpop, --tls-subject-dn DN, --tls-san-dns NAME, "
                "--tls-san-uri URI, --tls-san-ip ADDRESS, --tls-san-email ADDRESS, "
                "or --cert-bound-tokens / --no-cert-bound-tokens."
            )
        done: list[str] = []
        # One transaction: a refused option changes nothing, even one given before it.
        with transaction.atomic():
            if require_dpop is False:  # first, so --cert-bound-tokens may come with it
                clients.set_require_dpop(application, False, actor=actor)
                done.append(f"{client_id} gets Bearer or DPoP-bound tokens.")
            if any(value is not None for value in certificate):
                clients.set_certificate_options(
                    application,
                    subject_dn=tls_subject_dn,
                    san_dns=tls_san_dns,
                    san_uri=tls_san_uri,
                    san_ip=tls_san_ip,
                    san_email=tls_san_email,
                    bound_tokens=cert_bound_tokens,
                    actor=actor,
                )
                names = [
                    f"{name.label} {getattr(application, name.metadata)}"
                    for name in CERTIFICATE_NAMES
                    if getattr(application, name.metadata)
                ]
                bound = "yes" if application.tls_client_certificate_bound_access_tokens else "no"
                done.append(
                    f"Certificate of {client_id}: {', '.join(names) or 'no name'}; "
                    f"certificate-bound tokens: {bound}."
                )
            if token_limit is not None:
                clients.set_token_limit(application, token_limit, actor=actor)
                done.append(f"Token limit of {client_id}: {application.token_limit or 'the site default'}.")
            if require_dpop:
                clients.set_require_dpop(application, True, actor=actor)
                done.append(f"{client_id} gets DPoP-bound tokens only.")
        for line in done:
            self.stdout.write(line)

    def client_rotate_secret(
        self, *, client_id: str, grace: int | None, as_json: bool, actor: str, **_: Any
    ) -> None:
        application = clients.get_client(client_id)
        issued = clients.rotate_secret(application, grace=grace, actor=actor)
        old = [{"prefix": prefix, "expires": _iso(expires)} for prefix, expires in issued.expiring]
        if as_json:
            return self._json(
                {"client_id": issued.client_id, "client_secret": issued.secret, "old_secrets": old}
            )
        self.stdout.write(f"New secret for {issued.client_id}:")
        self.stdout.write(f"  client_secret: {issued.secret}")
        self.stdout.write(
            self.style.WARNING("Copy the secret now: it is shown only this once and cannot be shown again.")
        )
        for prefix, expires in issued.expiring:
            self.stdout.write(f"  old secret {prefix}… stays valid until {_text(expires)}")
        if not issued.expiring:
            self.stdout.write("  No older secret is still valid.")

    def client_revoke_secret(self, *, client_id: str, secret_id: str, actor: str, **_: Any) -> None:
        secret = clients.revoke_secret(clients.get_client(client_id), secret_id, actor=actor)
        self.stdout.write(f"Revoked secret {secret.prefix}… (id {secret.pk}) of {client_id}.")

    def client_disable(self, *, client_id: str, actor: str, **_: Any) -> None:
        clients.set_active(clients.get_client(client_id), False, actor=actor)
        self.stdout.write(f"Disabled {client_id}: it gets no new tokens and the tokens it holds are refused.")

    def client_enable(self, *, client_id: str, actor: str, **_: Any) -> None:
        clients.set_active(clients.get_client(client_id), True, actor=actor)
        self.stdout.write(f"Enabled {client_id}.")

    def client_revoke_tokens(self, *, client_id: str, actor: str, **_: Any) -> None:
        clients.revoke_tokens(clients.get_client(client_id), actor=actor)
        self.stdout.write(
            f"Every token issued to {client_id} until now is refused; new token requests still work."
        )

    def client_delete(self, *, client_id: str, actor: str, **_: Any) -> None:
        application = clients.get_client(client_id)
        name = str(application)
        clients.delete_client(application, actor=actor)
        self.stdout.write(f"Deleted {name} ({client_id}); the tokens it holds are refused.")

    def client_list(self, *, as_json: bool, **_: Any) -> None:
        rows = [client_summary(a) for a in Application.objects.order_by("name").prefetch_related("scopes")]
        if as_json:
            return self._json(rows)
        if not rows:
            return self.stdout.write(
                "No API clients yet. Create one with: manage.py oauth_cc client create NAME"
            )
        for row in rows:
            state = "active" if row["active"] else "DISABLED"
            self.stdout.write(
                f"{row['client_id']}  {row['name']}  [{state}, {row['auth_method']}]  "
                f"scopes: {' '.join(row['scopes']) or '-'}  last used: {row['last_used'] or 'never'}"
            )

    def client_show(self, *, client_id: str, as_json: bool, **_: Any) -> None:
        details = client_details(clients.get_client(client_id))
        if as_json:
            return self._json(details)
        labels = {
            "client_id": "client_id",
            "name": "name",
            "active": "active",
            "auth_method": "auth method",
            "description": "description",
            "access_token_lifetime": "token lifetime (s)",
            "audiences": "audiences",
            "can_introspect": "may introspect",
            "token_limit": "token limit",
            "require_dpop": "require DPoP",
            "run_as_user": "run-as user",
            "jwks_uri": "JWKS URI",
            "tls_client_auth_subject_dn": "certificate subject",
            "tls_client_auth_san_dns": "certificate SAN DNS",
            "tls_client_auth_san_uri": "certificate SAN URI",
            "tls_client_auth_san_ip": "certificate SAN IP",
            "tls_client_auth_san_email": "cert SAN email",
            "tls_client_certificate_bound_access_tokens": "cert-bound tokens",
            "created": "created",
            "last_used": "last used",
        }
        for field, label in labels.items():
            value = details[field]
            if field == "token_limit" and value is None:
                site = oauth_cc_settings.TOKEN_RATE_LIMIT
                value = f"site default ({site or 'none'})"
            if isinstance(value, list):
                value = " ".join(value) or "-"
            self.stdout.write(f"{label + ':':21}{'-' if value in (None, '') else value}")
        self.stdout.write(f"{'scopes:':21}{' '.join(details['scopes']) or '-'}")
        for key in details["jwks_thumbprints"]:
            self.stdout.write(f"{'key:':21}kid {key['kid']}  SHA-256 thumbprint {key['thumbprint']}")
        if not details["secrets"]:
            self.stdout.write(f"{'secrets:':21}none")
        for s in details["secrets"]:
            self.stdout.write(
                f"secret id {s['id']}: {s['prefix']}…  {s['state']}  created {s['created']}  "
                f"expires {s['expires'] or 'never'}  last used {s['last_used'] or 'never'}"
            )

    def client_usage(self, *, client_id: str, as_json: bool, **_: Any) -> None:
        application = clients.get_client(client_id)
        usage = usage_counts.client_usage(application)
        data = {
            "client_id": usage.client_id,
            "tokens_last_hour": usage.tokens_last_hour,
            "tokens_last_day": usage.tokens_last_day,
            "not_caching_tokens": usage.not_caching_tokens,
            "not_caching_limit_per_hour": usage.not_caching_limit,
            "token_lifetime": usage.token_lifetime,
            "last_used_at": _iso(usage.last_used_at),
            "tokens_per_day": [{"day": day.date().isoformat(), "tokens": n} for day, n in usage.days],
        }
        if as_json:
            return self._json(data)
        self.stdout.write(f"{'client_id:':21}{usage.client_id}")
        self.stdout.write(f"{'tokens last hour:':21}{usage.tokens_last_hour}")
        self.stdout.write(f"{'tokens last day:':21}{usage.tokens_last_day}")
        flag = (
            f"YES: more than {usage.not_caching_limit:g} tokens per hour for a {usage.token_lifetime} s "
            "token lifetime; the client should reuse its token until it expires"
            if usage.not_caching_tokens
            else "no"
        )
        self.stdout.write(f"{'not caching tokens:':21}{flag}")
        self.stdout.write(f"{'last used:':21}{_text(usage.last_used_at) if usage.last_used_at else 'never'}")
        for day, n in usage.days:
            self.stdout.write(f"{'tokens ' + day.date().isoformat() + ':':21}{n}")

    # -- report ----------------------------------------------------------------------------
    def report_stale(self, *, days: str, as_json: bool, **_: Any) -> None:
        text = str(days).strip()
        # ASCII digits only: int() would also take "٣" and "1_0".
        if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
            raise CommandError(
                f'--days must be a whole number of days from 1 to 999999, like --days 90 (got "{days}").'
            )
        data = stale.report(int(text))
        if as_json:
            return self._json(data)
        n = data["days"]
        self.stdout.write(
            f"Clients unused for {n} days or more (or never used): {len(data['unused_clients'])}"
        )
        for c in data["unused_clients"]:
            state = "active" if c["active"] else "disabled"
            self.stdout.write(
                f"  {c['client_id']}  {c['name']}  [{state}]  last used {c['last_used'] or 'never'}"
            )
        self.stdout.write(
            f"Secrets still valid but unused for {n} days or more: {len(data['unused_secrets'])}"
        )
        for s in data["unused_secrets"]:
            self.stdout.write(
                f"  {s['client_id']}  secret id {s['id']}: {s['prefix']}…  "
                f"last used {s['last_used'] or 'never'}"
            )
        self.stdout.write(f"Expired secrets still stored: {len(data['expired_secrets'])}")
        for s in data["expired_secrets"]:
            self.stdout.write(
                f"  {s['client_id']}  secret id {s['id']}: {s['prefix']}…  expired {s['expires']}"
            )

    # -- key -------------------------------------------------------------------------------
    def key_rotate(self, *, algorithm: str | None, actor: str, **_: Any) -> None:
        result = keys.rotate(algorithm, actor=actor)
        self.stdout.write(
            f"Now signing with key {result.current_kid}; next key {result.next_kid} is published."
        )
        if result.retired_kid:
            self.stdout.write(f"Retired key {result.retired_kid} stays published until its tokens expire.")
        if result.removed_kids:
            self.stdout.write("Removed expired keys: " + ", ".join(result.removed_kids) + ".")

    def key_list(self, *, as_json: bool, **_: Any) -> None:
        rows = [key_details(k) for k in SigningKey.objects.all()]
        if as_json:
            return self._json(rows)
        if not rows:
            return self.stdout.write(
                "No signing keys yet; the first is created on the first token request or key rotate."
            )
        for row in rows:
            self.stdout.write(
                f"{row['kid']}  {row['algorithm']}  {row['state']}  created {row['created']}  "
                f"signing since {row['signing_since'] or '-'}  retired {row['retired'] or '-'}  "
                f"removed after {row['remove_after'] or '-'}  private key: {row['storage']}"
            )
        storages = {row["storage"] for row in rows}
        if key_encryption.Storage.UNREADABLE.value in storages:
            self.stdout.write(
                self.style.ERROR(
                    "No configured key decrypts the undecryptable keys: add the key they were encrypted "
                    "with to OAUTH_CC['KEY_ENCRYPTION_KEYS'] (or the old SECRET_KEY to SECRET_KEY_FALLBACKS)."
                )
            )
        if storages & {key_encryption.Storage.PLAINTEXT.value, key_encryption.Storage.OLDER_KEY.value}:
            self.stdout.write(self.style.WARNING("Run: manage.py oauth_cc key reencrypt"))

    def key_reencrypt(self, *, actor: str, **_: Any) -> None:
        # All or nothing: rows are locked and every one is decrypted before any is written, so
        # one unreadable key leaves the table as it was.
        with transaction.atomic():
            rows = list(SigningKey.objects.select_for_update().order_by("created", "kid"))
            updates: list[tuple[SigningKey, str]] = []
            unreadable: list[str] = []
            for row in rows:
                try:
                    new = key_encryption.reencrypt(row.private_jwk, row.kid)
                except key_encryption.KeyDecryptionError:
                    unreadable.append(row.kid)
                    continue
                if new is not None:
                    updates.append((row, new))
            if unreadable:
                raise CommandError(
                    f"No configured key decrypts signing key(s) {', '.join(unreadable)}; nothing was "
                    "changed. Add the key they were encrypted with to OAUTH_CC['KEY_ENCRYPTION_KEYS'] "
                    "(or the old SECRET_KEY to SECRET_KEY_FALLBACKS) and run this again."
                )
            for row, new in updates:
                row.private_jwk = new
                row.save(update_fields=["private_jwk"])
            if updates:
                audit.record(
                    actor,
                    AuditAction.KEYS_REENCRYPTED,
                    ("signing_key", ""),
                    {"reencrypted": [row.kid for row, _ in updates]},
                )
        self.stdout.write(
            f"Re-encrypted {len(updates)} of {len(rows)} signing key(s) under the first key; "
            f"{len(rows) - len(updates)} already were."
        )

    def key_generate_encryption_key(self, **_: Any) -> None:
        self.stdout.write(key_encryption.generate_key())

    # -- tokens ----------------------------------------------------------------------------
    def tokens_prune(self, *, actor: str, **_: Any) -> None:
        with transaction.atomic():
            records = revocation.prune_expired()
            removed_keys = keys.prune_retired_keys()
            # Only a prune that removed something changed anything; a cron job's empty runs stay out.
            if records or removed_keys:
                audit.record(
                    actor,
                    AuditAction.PRUNED,
                    ("tokens", ""),
                    {"expired_records": records, "removed_keys": list(removed_keys)},
                )
        if removed_keys:
            keys.publish_public_keys()
        self.stdout.write(f"Deleted {records} expired record(s) and {len(removed_keys)} retired key(s).")
        buckets = usage_counts.prune()
        self.stdout.write(f"Deleted {buckets} usage count(s) older than the retention period.")

    # -- export ----------------------------------------------------------------------------
    def export_postman(self, *, client_id: str | None, base_url: str | None, **_: Any) -> None:
        from oauth_cc.issuer import postman

        application = clients.get_client(client_id) if client_id is not None else None
        if base_url is not None:
            base_url = base_url.strip()
            if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base_url):
                raise CommandError(
                    f"--base-url {_one_line(base_url)} is not an http(s) URL without query or fragment; "
                    "use e.g. https://api.example.com."
                )
        try:
            collection = postman.build_collection(application, base_url=base_url)
        except postman.ExportError as exc:
            raise CommandError(str(exc)) from None
        self._json(collection)

    # -- audit -----------------------------------------------------------------------------
    def audit(self, *, since: str | None, client_id: str | None, as_json: bool, **_: Any) -> None:
        events = AuditEvent.objects.order_by("time", "id")
        if since is not None:
            events = events.filter(time__gte=parse_since(since))
        if client_id is not None:
            events = events.filter(object_type="client", object_id=client_id)
        rows = [event_details(event) for event in events.iterator()]
        if as_json:
            return self._json(rows)
        if not rows:
            return self.stdout.write("No audit events match.")
        for row in rows:
            target = row["object"]
            name = f" ({target['name']})" if target["name"] and target["name"] != target["id"] else ""
            changes = json.dumps(row["changes"], sort_keys=True, ensure_ascii=False)
            self.stdout.write(
                _one_line(
                    f"{row['time']}  {row['actor']}  {row['action']}  "
                    f"{target['type']} {target['id']}{name}  {changes}"
                )
            )

    # -- state -----------------------------------------------------------------------------
    def state_refresh(self, **_: Any) -> None:
        # Every worker drops its client data; publish() shares a fresh revocation snapshot.
        with transaction.atomic():
            generation.bump(generation.CLIENTS)
            revocation.publish()
        self.stdout.write(
            "Every worker reloads client data and revocation state within "
            f"{oauth_cc_settings.STATE_REFRESH_SECONDS} seconds."
        )


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read the JWKS file {path}: {exc.strerror or exc}.") from None
    try:
        data = json_input.loads(raw, max_bytes=MAX_JWKS_FILE_BYTES, what=f"The JWKS file {path}")
    except json_input.JSONInputError as exc:
        raise CommandError(str(exc)) from None
    if not isinstance(data, dict):
        raise CommandError(f'The JWKS file {path} must hold a JSON object of the form {{"keys": [...]}}.')
    return data
