"""Fixtures for the attack battery: an attacker with an ordinary token, a victim, a gateway.

The attacker holds what an outsider could hold: its own client's credentials and tokens.
Every test checks that the attack is refused for the reason it targets, and that nothing
in the database changed (:func:`unchanged`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from example_project.demo.models import Report
from oauth_cc.models import (
    Application,
    ClientSecret,
    DeletedClient,
    RevokedToken,
    SigningKey,
    UsedAssertion,
)
from tests.conftest import basic_auth, form_post

INTROSPECT = "/oauth/introspect/"
REVOKE = "/oauth/revoke/"
TOKEN = "/oauth/token/"


@dataclass
class Party:
    application: Application
    secret: str
    token: str

    @property
    def client_id(self) -> str:
        return self.application.client_id

    @property
    def basic(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": basic_auth(self.application.client_id, self.secret)}


@pytest.fixture
def attacker(make_client: Any, token_for: Any) -> Party:
    application, secret = make_client("attacker", scopes=["reports:read"])
    return Party(application, secret, token_for(application, secret, scope="reports:read")["access_token"])


@pytest.fixture
def victim(make_client: Any, token_for: Any) -> Party:
    application, secret = make_client("victim", scopes=["reports:read", "reports:write"])
    token = token_for(application, secret, scope="reports:read reports:write")["access_token"]
    return Party(application, secret, token)


@pytest.fixture
def gateway(make_client: Any) -> Party:
    """A client allowed to introspect (it holds no token of its own)."""
    application, secret = make_client("gateway", can_introspect=True)
    return Party(application, secret, "")


def db_state() -> dict[str, Any]:
    """Everything an attack could try to change.

    Not the "last used" times: the gateway and the attacker authenticate for real when they
    call introspection and revocation, and that bookkeeping is expected.
    """
    return {
        "clients": sorted(Application.objects.values_list("client_id", "is_active", "tokens_valid_after")),
        "secrets": sorted(ClientSecret.objects.values_list("pk", "revoked_at", "expires_at")),
        "keys": sorted(SigningKey.objects.values_list("kid", "state")),
        "revoked": sorted(RevokedToken.objects.values_list("jti", "client_id")),
        "used_assertions": sorted(UsedAssertion.objects.values_list("client_id", "jti")),
        "deleted": sorted(DeletedClient.objects.values_list("client_id", flat=True)),
        "reports": Report.objects.count(),
    }


@contextlib.contextmanager
def _unchanged() -> Iterator[None]:
    before = db_state()
    yield
    assert db_state() == before


@pytest.fixture
def unchanged(db: Any) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """``with unchanged(): ...`` fails if the block changed any row an attack could target."""
    return _unchanged


@pytest.fixture
def at_every_door(client: Any, attacker: Party, gateway: Party) -> Callable[[str], dict[str, Any]]:
    """Present a token where access tokens are accepted; return each surface's response.

    ``read``/``write``: the demo API (GET needs reports:read, POST reports:write);
    ``introspect``: the gateway asks about it; ``revoke``: the attacker asks to revoke it.
    """

    def present(token: str) -> dict[str, Any]:
        bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        return {
            "read": client.get("/api/whoami/", **bearer),
            "write": client.post(
                "/api/reports/", {"title": "forged"}, content_type="application/json", **bearer
            ),
            "introspect": form_post(client, INTROSPECT, {"token": token}, **gateway.basic),
            "revoke": form_post(client, REVOKE, {"token": token}, **attacker.basic),
        }

    return present
