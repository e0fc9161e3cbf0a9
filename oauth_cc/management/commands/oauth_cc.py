"""``manage.py oauth_cc``: manage scopes, API clients and signing keys from the shell.

Every change goes through :mod:`oauth_cc.clients` (shared with the admin) or
:func:`oauth_cc.keys.rotate`. Bad input ends with a ``CommandError`` whose message says what
to fix, and changes nothing. Secrets are printed once, when they are created, and never again.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count

from oauth_cc import clients, generation, json_input, keys, revocation
from oauth_cc.algorithms import ACCESS_TOKEN_ALGORITHMS
from oauth_cc.conf import oauth_cc_settings
from oauth_cc.models import Application, Scope, SigningKey, TokenEndpointAuthMethod

#: A JWK Set file of a few public keys is a few KiB.
MAX_JWKS_FILE_BYTES = 1024 * 1024


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
        run_as_user=application.user.get_username() if application.user_id else None,
        jwks_uri=application.jwks_uri or None,
        jwks_thumbprints=_thumbprints(application),
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
    if not application.jwks:
        return []
    from oauth_cc.client_keys import jwk_thumbprints

    return [{"kid": kid, "thumbprint": thumbprint} for kid, thumbprint in jwk_thumbprints(application.jwks)]


def key_details(key: SigningKey) -> dict[str, Any]:
    """Public facts about a signing key; the private half is never read here."""
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "state": key.state,
        "created": _iso(key.created),
        "signing_since": _iso(key.activated_at),
        "retired": _iso(key.retired_at),
        "remove_after": _iso(key.remove_after),
    }


class Command(BaseCommand):
    help = "Manage oauth_cc scopes, API clients (client-credentials) and token signing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        groups = parser.add_subparsers(dest="group", metavar="{scope,client,key,tokens,state}", required=True)

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
            help="Default: private_key_jwt with --jwks-file/--jwks-uri, else client_secret_basic.",
        )
        keys_source = p.add_mutually_exclusive_group()
        keys_source.add_argument("--jwks-file", type=Path, help="File with the client's public JWKS.")
        keys_source.add_argument("--jwks-uri", default="", help="https URL of the client's public JWKS.")
        p.add_argument(
            "--audience", action="append", default=[], dest="audiences", help="Allowed resource; repeat."
        )
        p.add_argument("--introspect", action="store_true", help="Allow calls to the introspection endpoint.")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")
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

        key = groups.add_parser("key", help="Token signing keys.").add_subparsers(
            dest="action", required=True
        )
        p = key.add_parser("rotate", help="Start signing with the next key and publish a new next key.")
        p.add_argument("--algorithm", choices=ACCESS_TOKEN_ALGORITHMS, help="Algorithm of the new next key.")
        p = key.add_parser("list", help="List signing keys.")
        p.add_argument("--json", action="store_true", dest="as_json", help="Print JSON.")

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

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, f"{options['group']}_{options['action'].replace('-', '_')}")
        try:
            handler(**options)
        except clients.ClientError as exc:
            raise CommandError(str(exc)) from None

    # -- output ----------------------------------------------------------------------------
    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2))

    # -- scope -----------------------------------------------------------------------------
    def scope_add(self, *, name: str, description: str, default: bool, **_: Any) -> None:
        scope = clients.create_scope(name, description=description, default=default)
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
        as_json: bool,
        **_: Any,
    ) -> None:
        jwks = _read_jwks(jwks_file) if jwks_file is not None else None
        if auth_method is None:
            has_keys = jwks is not None or jwks_uri
            auth_method = (
                TokenEndpointAuthMethod.PRIVATE_KEY_JWT
                if has_keys
                else TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
            )
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
        )
        secret = issued.secret if issued else None
        if as_json:
            return self._json({"client_id": application.client_id, "client_secret": secret})
        self.stdout.write(f'Created API client "{application.name}".')
        self.stdout.write(f"  client_id:     {application.client_id}")
        if secret is None:
            self.stdout.write(
                "  auth method:   private_key_jwt (no secret; the client signs assertions with its key)"
            )
            return
        self.stdout.write(f"  client_secret: {secret}")
        self.stdout.write(
            self.style.WARNING("Copy the secret now: it is shown only this once and cannot be shown again.")
        )

    def client_rotate_secret(self, *, client_id: str, grace: int | None, as_json: bool, **_: Any) -> None:
        application = clients.get_client(client_id)
        issued = clients.rotate_secret(application, grace=grace)
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

    def client_revoke_secret(self, *, client_id: str, secret_id: str, **_: Any) -> None:
        secret = clients.revoke_secret(clients.get_client(client_id), secret_id)
        self.stdout.write(f"Revoked secret {secret.prefix}… (id {secret.pk}) of {client_id}.")

    def client_disable(self, *, client_id: str, **_: Any) -> None:
        clients.set_active(clients.get_client(client_id), False)
        self.stdout.write(f"Disabled {client_id}: it gets no new tokens and the tokens it holds are refused.")

    def client_enable(self, *, client_id: str, **_: Any) -> None:
        clients.set_active(clients.get_client(client_id), True)
        self.stdout.write(f"Enabled {client_id}.")

    def client_revoke_tokens(self, *, client_id: str, **_: Any) -> None:
        revocation.invalidate_client_tokens(clients.get_client(client_id).client_id)
        self.stdout.write(
            f"Every token issued to {client_id} until now is refused; new token requests still work."
        )

    def client_delete(self, *, client_id: str, **_: Any) -> None:
        application = clients.get_client(client_id)
        name = str(application)
        application.delete()
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
            "run_as_user": "run-as user",
            "jwks_uri": "JWKS URI",
            "created": "created",
            "last_used": "last used",
        }
        for field, label in labels.items():
            value = details[field]
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

    # -- key -------------------------------------------------------------------------------
    def key_rotate(self, *, algorithm: str | None, **_: Any) -> None:
        result = keys.rotate(algorithm)
        self.stdout.write(
            f"Now signing with key {result.current_kid}; next key {result.next_kid} is published."
        )
        if result.retired_kid:
            self.stdout.write(f"Retired key {result.retired_kid} stays published until its tokens expire.")
        if result.removed_kids:
            self.stdout.write("Removed expired keys: " + ", ".join(result.removed_kids) + ".")

    def key_list(self, *, as_json: bool, **_: Any) -> None:
        rows = [key_details(k) for k in SigningKey.objects.defer("private_jwk")]
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
                f"removed after {row['remove_after'] or '-'}"
            )

    # -- tokens ----------------------------------------------------------------------------
    def tokens_prune(self, **_: Any) -> None:
        records = revocation.prune_expired()
        removed_keys = keys.prune_retired_keys()
        if removed_keys:
            keys.publish_public_keys()
        self.stdout.write(f"Deleted {records} expired record(s) and {len(removed_keys)} retired key(s).")

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


def _read_jwks(path: Path) -> dict:
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
