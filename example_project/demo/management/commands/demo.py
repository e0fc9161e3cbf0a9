"""``manage.py demo``: set up the example project's demo clients and print how to call the API.

Safe to run again: scopes and clients are reused, and each run issues a fresh secret for
"demo-client" and for "resource-service" (ending the previous ones at once) so the credentials
can be printed again. "resource-service" is the client of the example's resource-only service
(``example_project/resource_settings.py``), which reads the issuer's revocation feed with it;
``--resource-env FILE`` writes that service's settings and secret to FILE (mode 0600) instead
of printing the secret, for ``make demo`` to start the service with.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse

from oauth_cc.conf import oauth_cc_settings
from oauth_cc.issuer import audit, clients
from oauth_cc.issuer.resource_indicators import is_resource_identifier
from oauth_cc.models import Application, Scope, TokenEndpointAuthMethod

CLIENT_NAME = "demo-client"
RESOURCE_CLIENT_NAME = "resource-service"
#: Where ``make demo`` serves the resource-only service (RESOURCE_ADDR in the Makefile).
DEFAULT_RESOURCE_URL = "http://127.0.0.1:8001"
#: Characters a shell reads specially inside a double-quoted word or an assignment, refused in
#: --resource-url (whitespace and control characters are refused as no URI already).
SHELL_SPECIAL = frozenset("$`'\"\\")
SCOPES = (
    ("reports:read", "Read reports", True),
    ("reports:write", "Submit reports", False),
)


def env_file_text(values: dict[str, str]) -> str:
    """``export NAME=value`` lines that ``sh`` reads back as exactly ``values`` (each one quoted)."""
    lines = ["# The example's resource-only service: its settings and client secret (manage.py demo)."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only from the first byte on.

    mkstemp creates the file with mode 0600 and os.replace swaps it in at once, so the secret is
    never in a file others may read, even when an older ``path`` had a wider mode. os.replace
    renames over ``path`` itself: a symbolic link put there is replaced, never written through.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = (
        "Create the demo scopes, the demo client, the resource service's client and (if none exists) "
        "an admin user; print a curl walkthrough."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the credentials as JSON."
        )
        parser.add_argument(
            "--resource-url",
            default=DEFAULT_RESOURCE_URL,
            help="URL of the example's resource-only service: the demo client may ask for tokens "
            f"for it (RFC 8707 resource=...). Default: {DEFAULT_RESOURCE_URL}.",
        )
        parser.add_argument(
            "--resource-env",
            metavar="FILE",
            help="Write the resource service's settings and client secret to FILE (mode 0600, "
            "export lines for sh) instead of printing the secret.",
        )

    def handle(
        self,
        *args: Any,
        as_json: bool = False,
        resource_url: str = DEFAULT_RESOURCE_URL,
        resource_env: str | None = None,
        **options: Any,
    ) -> None:
        if not is_resource_identifier(resource_url):
            raise CommandError(
                f'--resource-url "{resource_url}" is not an absolute URI without a fragment; '
                f"give the resource service's URL, such as {DEFAULT_RESOURCE_URL}."
            )
        if SHELL_SPECIAL & set(resource_url):
            # Every value printed into a shell line is quoted; a URL like these is still no
            # sensible demo URL, and refusing it keeps the walkthrough easy to read and paste.
            raise CommandError(
                f'--resource-url "{resource_url}" contains $, a backquote, a quote or a '
                f"backslash; give the resource service's plain URL, such as {DEFAULT_RESOURCE_URL}."
            )
        env_path = None
        if resource_env:
            given = Path(resource_env)
            # The directory is resolved, the file's own name never: a link there would make the
            # secret-bearing file replace (and chmod 0600) whatever the link points to.
            env_path = given.parent.resolve() / given.name
            if not env_path.parent.is_dir():
                raise CommandError(
                    f"--resource-env: the directory {env_path.parent} does not exist; create it or "
                    "give a file in an existing directory."
                )
            if env_path.is_symlink():
                raise CommandError(
                    f"--resource-env: {env_path} is a symbolic link; give the path of the file itself "
                    "(the secret is never written through a link)."
                )
        issuer = oauth_cc_settings.issuer
        # The issuer's own audience first: it stays the default when a token request names none.
        audiences = list(dict.fromkeys([oauth_cc_settings.resource_identifier, resource_url]))
        with transaction.atomic():
            for name, description, default in SCOPES:
                Scope.objects.update_or_create(
                    name=name, defaults={"description": description, "is_default": default}
                )
            application, issued = self._client(
                CLIENT_NAME, scopes=[name for name, _, _ in SCOPES], audiences=audiences
            )
            resource_client, resource_issued = self._client(
                RESOURCE_CLIENT_NAME, scopes=[], audiences=[], can_introspect=True
            )
            admin_password = self._admin_user()
            service_env = {
                "OAUTH_CC_ISSUER": issuer,
                "OAUTH_CC_RESOURCE_IDENTIFIER": resource_url,
                "OAUTH_CC_RESOURCE_CLIENT_ID": resource_client.client_id,
                "OAUTH_CC_RESOURCE_CLIENT_SECRET": resource_issued.secret,
            }
            if env_path is not None:
                # Inside the transaction: if the file cannot be written, the new secrets are
                # rolled back and the running service keeps the one its old file holds.
                try:
                    write_private_file(env_path, env_file_text(service_env))
                except OSError as exc:
                    raise CommandError(
                        f"Could not write {env_path}: {exc.strerror or exc}. Give a file in a "
                        "directory you may write to."
                    ) from exc
        credentials = {
            "client_id": application.client_id,
            "client_secret": issued.secret,
            "issuer": issuer,
            "token_endpoint": issuer + reverse("oauth_cc:token"),
            "scopes": [name for name, _, _ in SCOPES],
            "audiences": audiences,
            "admin_url": issuer + reverse("admin:index"),
            "admin_username": "admin" if admin_password else None,
            "admin_password": admin_password,
            "resource_service": {
                "url": resource_url,
                "client_id": resource_client.client_id,
                # Written to the file only, so it is not in make's output (or a log of it) too.
                "client_secret": None if env_path else resource_issued.secret,
                "env_file": str(env_path) if env_path else None,
            },
        }
        if as_json:
            self.stdout.write(json.dumps(credentials, indent=2))
            return
        self._walkthrough(credentials, service_env)

    def _client(
        self, name: str, *, scopes: list[str], audiences: list[str], can_introspect: bool = False
    ) -> tuple[Application, clients.IssuedSecret]:
        """The client ``name`` as the walkthrough needs it, with a secret issued now."""
        application = Application.objects.filter(name=name).order_by("pk").first()
        if application is None:
            application, issued = clients.create_client(
                name,
                scopes=scopes,
                audiences=audiences,
                can_introspect=can_introspect,
                description="Created by manage.py demo.",
                actor=audit.command_actor(),
            )
            assert issued is not None  # a client_secret_basic client always gets one
            return application, issued
        # Put back what the walkthrough relies on, in case someone changed it in the admin.
        application.is_active = True
        application.token_endpoint_auth_method = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
        application.client_jwks, application.client_jwks_uri = None, ""
        application.audiences = audiences
        application.can_introspect = application.can_introspect or can_introspect
        application.save()
        application.scopes.add(*Scope.objects.filter(name__in=scopes))
        # Grace 0: only the secret printed now works, so the demo never collects live secrets.
        return application, clients.rotate_secret(application, grace=0, actor=audit.command_actor())

    def _admin_user(self) -> str | None:
        """Create superuser "admin" with a random password if the site has no superuser yet."""
        users = get_user_model()
        if (
            users.objects.filter(is_superuser=True).exists()
            or users.objects.filter(username="admin").exists()
        ):
            return None
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username="admin", email="", password=password)
        return password

    def _walkthrough(self, c: dict[str, Any], service_env: dict[str, str]) -> None:
        w = self.stdout.write
        service = c["resource_service"]
        w(
            self.style.SUCCESS(
                'Demo client "demo-client" is ready, with scopes reports:read (default) and reports:write, '
                f"for the audiences {' and '.join(c['audiences'])}."
            )
        )
        w(
            self.style.SUCCESS(
                f'Client "{RESOURCE_CLIENT_NAME}" is ready: the resource service at {service["url"]} '
                "reads the revocation feed with it (may introspect tokens)."
            )
        )
        w(
            self.style.WARNING(
                "Secrets are shown only now. Run this command again for new ones; the old ones then stop."
            )
        )
        if c["admin_password"]:
            w(f"\nAdmin: {c['admin_url']}  user: admin  password: {c['admin_password']}")
        else:
            w(f"\nAdmin: {c['admin_url']}  (log in as a superuser, or run: manage.py createsuperuser)")
        start_resource = (
            "DJANGO_SETTINGS_MODULE=example_project.resource_settings python manage.py migrate && "
            "DJANGO_SETTINGS_MODULE=example_project.resource_settings python manage.py runserver "
            + shlex.quote(urlsplit(service["url"]).netloc or "8001")
        )
        if service["env_file"]:
            w(
                f"\nResource service: its settings and secret are in {service['env_file']} (mode 0600). "
                f"make demo starts it; by hand:\n(. {shlex.quote(service['env_file'])} && {start_resource})"
            )
        else:
            w("\nResource service: start it in a second shell (the secret is shown only now):\n")
            w(env_file_text(service_env) + start_resource)
        token, whoami, reports = reverse("oauth_cc:token"), reverse("whoami"), reverse("reports")
        jwks, metadata = reverse("oauth_cc:jwks"), reverse("oauth_cc:metadata")
        get_token = """curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials"""
        read_token = """python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'"""
        w(
            f"""
Paste into a shell (make demo serves both sites; by hand: python manage.py runserver, and the
resource service as above):

ISSUER={shlex.quote(c["issuer"])}
RESOURCE={shlex.quote(service["url"])}
CLIENT_ID={shlex.quote(c["client_id"])}
CLIENT_SECRET={shlex.quote(c["client_secret"])}

# 1. Get a token (client_secret_basic). No scope asked for: the default scope, reports:read.
{get_token} -w '\\n' "$ISSUER{token}"
TOKEN=$({get_token} "$ISSUER{token}" | {read_token})

# 2. Who am I, and list reports (needs reports:read)
curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" "$ISSUER{whoami}"
curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" "$ISSUER{reports}"

# 3. Submitting a report needs reports:write, so ask for both scopes
TOKEN=$({get_token} --data-urlencode "scope=reports:read reports:write" "$ISSUER{token}" | {read_token})
curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
  -d '{{"title": "First report", "body": "Hello"}}' "$ISSUER{reports}"

# 4. The keys that verify tokens, and the server metadata (RFC 8414)
curl -s -w '\\n' "$ISSUER{jwks}"
curl -s -w '\\n' "$ISSUER{metadata}"

# 5. The resource-only service accepts only tokens issued for it: ask for one with
#    resource=$RESOURCE (RFC 8707). A token for $ISSUER gets 401 invalid_token there.
RTOKEN=$({get_token} --data-urlencode "resource=$RESOURCE" "$ISSUER{token}" | {read_token})
curl -s -w '\\n' -H "Authorization: Bearer $RTOKEN" "$RESOURCE{whoami}"
curl -s -w '\\n' -H "Authorization: Bearer $RTOKEN" "$RESOURCE{reports}"
curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" "$RESOURCE{whoami}"
"""
        )
