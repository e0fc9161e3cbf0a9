"""Create the two client_credentials applications the benchmark uses.

Prints one JSON object on stdout:
    {"hashed": {"client_id": ..., "client_secret": ...},
     "plain":  {"client_id": ..., "client_secret": ...}}

"hashed" uses DOT's default (hash_client_secret=True: the secret is stored as
a Django password hash, so every token request runs the password hasher);
"plain" stores the secret as is (hash_client_secret=False).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection
from oauth2_provider.models import get_application_model


class Command(BaseCommand):
    help = "Create the benchmark's OAuth2 applications and print their credentials as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        # WAL lets readers (bearer-token lookups) proceed while a worker
        # writes a new token. The journal mode is stored in the database file,
        # so setting it once here covers every later connection.
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")

        Application = get_application_model()
        out: dict[str, dict[str, str]] = {}
        for label, hashed in (("hashed", True), ("plain", False)):
            # Keep the plaintext: once saved with hashing on, it cannot be read back.
            client_id = f"bench-{label}-{secrets.token_hex(8)}"
            client_secret = secrets.token_urlsafe(32)
            Application.objects.create(
                name=f"bench {label}",
                client_id=client_id,
                client_secret=client_secret,
                hash_client_secret=hashed,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            )
            out[label] = {"client_id": client_id, "client_secret": client_secret}
        self.stdout.write(json.dumps(out))
