"""Hypothesis settings and shared fixtures for the property tests.

Profiles (``HYPOTHESIS_PROFILE=oauth_cc-thorough`` for a long run):

* ``oauth_cc`` (default): no deadline, since the machine is shared and a slow example is not a
  failure; few enough examples that the whole package runs in about a minute; ``print_blob``
  so a failure prints the line that replays it.
* ``oauth_cc-thorough``: the same with twenty times as many examples.

Database-backed properties: pytest-django's ``db`` fixture (and the fixtures built on it) is set
up once per *test*, not once per Hypothesis *example*, and so is the autouse fixture of
``tests/conftest.py`` that resets the per-worker state. Such tests suppress the
``function_scoped_fixture`` health check, each with a comment saying why that is safe: what
the fixtures provide (a signing key, a client, a genuine token) is only read by the examples,
and whatever an example writes or caches is either reset at the start of the example or does
not change what the next example observes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from oauth_cc.issuer.keys import ensure_current_key
from tests.attacks import forge
from tests.conftest import basic_auth, form_post

settings.register_profile(
    "oauth_cc",
    deadline=None,
    max_examples=100,
    print_blob=True,
    # Generation time depends on what else the shared machine is doing: not a failure either.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("oauth_cc-thorough", parent=settings.get_profile("oauth_cc"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "oauth_cc"))

#: For properties that take pytest-django's function-scoped ``db`` (directly or through other
#: fixtures). Each module using it says why sharing those fixtures between examples is safe.
db_examples = settings(
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture]
)

ISSUER = "http://testserver"
TOKEN_PATH = "/oauth/token/"


@dataclass(frozen=True)
class SiteKey:
    """The site's current signing key, as PyJWT sees it (independent of oauth_cc's JOSE code)."""

    kid: str
    alg: str
    private_key: Any

    def sign(self, header: bytes | dict | str, payload: bytes | dict | str) -> str:
        """A JWS with a genuine signature by the site's key over exactly these bytes."""
        return forge.sign_with(self.private_key, self.alg, header, payload)

    def header(self, **overrides: Any) -> dict[str, Any]:
        header = {"alg": self.alg, "typ": "at+jwt", "kid": self.kid, **overrides}
        return {name: value for name, value in header.items() if value is not None}


@pytest.fixture
def site_key(db: Any) -> SiteKey:
    """Created once per test; the examples only read it (no rotation happens in this package)."""
    ensure_current_key()
    kid, alg, key = forge.site_key()
    return SiteKey(kid, alg, key)


@pytest.fixture
def genuine_token(client: Any, make_client: Any, site_key: SiteKey) -> Callable[[], str]:
    """``genuine_token()`` -> a fresh access token from the token endpoint (200 asserted)."""
    application, secret = make_client("props", scopes=["reports:read"])

    def issue() -> str:
        response = form_post(
            client,
            TOKEN_PATH,
            {"grant_type": "client_credentials", "scope": "reports:read"},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        )
        assert response.status_code == 200, response.content
        return response.json()["access_token"]

    return issue


@pytest.fixture
def access_token(genuine_token: Callable[[], str]) -> str:
    """One genuine access token, checked to pass ``check_access_token`` before any test edits it."""
    from oauth_cc.common.verification import check_access_token, verified_tokens

    token = genuine_token()
    assert check_access_token(token).client_id
    verified_tokens.clear()  # tests start with an empty memo
    return token
