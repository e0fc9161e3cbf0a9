"""``manage.py demo``: set up the example project's demo client and print how to call the API.

Safe to run again: scopes and the client are reused, and each run issues a fresh secret for
"demo-client" (ending the previous one at once) so the credentials can be printed again.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.urls import reverse

from oauth_cc import audit, clients
from oauth_cc.conf import oauth_cc_settings
from oauth_cc.models import Application, Scope, TokenEndpointAuthMethod

CLIENT_NAME = "demo-client"
SCOPES = (
    ("reports:read", "Read reports", True),
    ("reports:write", "Submit reports", False),
)


class Command(BaseCommand):
    help = "Create the demo scopes, client and (if none exists) an admin user; print a curl walkthrough."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the credentials as JSON."
        )

    def handle(self, *args: Any, as_json: bool = False, **options: Any) -> None:
        with transaction.atomic():
            for name, description, default in SCOPES:
                Scope.objects.update_or_create(
                    name=name, defaults={"description": description, "is_default": default}
                )
            application, issued = self._demo_client()
            admin_password = self._admin_user()
        issuer = oauth_cc_settings.issuer
        credentials = {
            "client_id": application.client_id,
            "client_secret": issued.secret,
            "issuer": issuer,
            "token_endpoint": issuer + reverse("oauth_cc:token"),
            "scopes": [name for name, _, _ in SCOPES],
            "admin_url": issuer + reverse("admin:index"),
            "admin_username": "admin" if admin_password else None,
            "admin_password": admin_password,
        }
        if as_json:
            self.stdout.write(json.dumps(credentials, indent=2))
            return
        self._walkthrough(credentials)

    def _demo_client(self) -> tuple[Application, clients.IssuedSecret]:
        application = Application.objects.filter(name=CLIENT_NAME).order_by("pk").first()
        if application is None:
            application, issued = clients.create_client(
                CLIENT_NAME,
                scopes=[name for name, _, _ in SCOPES],
                description="Created by manage.py demo.",
                actor=audit.command_actor(),
            )
            assert issued is not None  # a client_secret_basic client always gets one
            return application, issued
        # Put back what the walkthrough relies on, in case someone changed it in the admin.
        application.is_active = True
        application.token_endpoint_auth_method = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
        application.client_jwks, application.client_jwks_uri = None, ""
        application.save()
        application.scopes.add(*Scope.objects.filter(name__in=[name for name, _, _ in SCOPES]))
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

    def _walkthrough(self, c: dict[str, Any]) -> None:
        w = self.stdout.write
        w(
            self.style.SUCCESS(
                'Demo client "demo-client" is ready, with scopes reports:read (default) and reports:write.'
            )
        )
        w(
            self.style.WARNING(
                "The secret is shown only now. Run this command again for a new one; the old one then stops."
            )
        )
        if c["admin_password"]:
            w(f"\nAdmin: {c['admin_url']}  user: admin  password: {c['admin_password']}")
        else:
            w(f"\nAdmin: {c['admin_url']}  (log in as a superuser, or run: manage.py createsuperuser)")
        token, whoami, reports = reverse("oauth_cc:token"), reverse("whoami"), reverse("reports")
        jwks, metadata = reverse("oauth_cc:jwks"), reverse("oauth_cc:metadata")
        get_token = """curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials"""
        read_token = """python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'"""
        w(
            f"""
Paste into a shell (start the site first: python manage.py runserver):

ISSUER={c["issuer"]}
CLIENT_ID={c["client_id"]}
CLIENT_SECRET={c["client_secret"]}

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
"""
        )
