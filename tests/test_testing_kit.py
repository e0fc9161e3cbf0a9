"""oauth_cc.testing, the pytest kit for sites using oauth_cc: in process, then as a user's project runs it.

The pytester runs are subprocesses of a small user project (a conftest and a test module) on the
example project's settings. They find the plugin the way an installed oauth-cc offers it: a
distribution whose ``pytest11`` entry points are the ones pyproject.toml declares (no ``-p``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
import pytest
from django.test import override_settings

import oauth_cc
from oauth_cc.common import tokens
from oauth_cc.conf import oauth_cc_settings
from oauth_cc.issuer import clients
from oauth_cc.issuer.keys import key_store
from oauth_cc.testing import KitError
from tests.conftest import basic_auth, form_post
from tests.helpers import ISSUER

ROOT = Path(oauth_cc.__file__).resolve().parent.parent


def tenant_hook(client: Any, claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"tenant": "acme", "client_name": client.name}


def refusing_hook(client: Any, claims: Mapping[str, Any]) -> dict[str, Any]:
    from oauth_cc.issuer.hooks import DenyIssuance

    raise DenyIssuance("Legacy clients must migrate first.")


def header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


# -- in process ----------------------------------------------------------------------------


def test_token_is_the_sites_own_and_verifies(oauth_cc_token):
    token = oauth_cc_token("reports:read")

    assert header(token) == {"alg": "ES256", "typ": "at+jwt", "kid": key_store.signer().kid}
    claims = tokens.verify(token, issuer=ISSUER, audience=ISSUER, leeway=0, now=token.claims["iat"])
    client_id = token.application.client_id
    assert claims == token.claims
    assert {key: claims[key] for key in ("iss", "aud", "sub", "client_id", "scope")} == {
        "iss": ISSUER,
        "aud": ISSUER,
        "sub": client_id,
        "client_id": client_id,
        "scope": "reports:read",
    }
    assert claims["exp"] - claims["iat"] == oauth_cc_settings.ACCESS_TOKEN_LIFETIME == 3600


def test_token_uses_the_clients_lifetime_audience_and_default_scopes(oauth_cc_client, oauth_cc_token):
    clients.create_scope("reports:read", default=True)
    application, _ = oauth_cc_client(
        scopes=["reports:read", "reports:write"], lifetime=60, audiences=["https://api.example"]
    )

    token = oauth_cc_token(client=application.client_id)

    assert token.claims["scope"] == "reports:read"
    assert token.claims["aud"] == "https://api.example"
    assert token.claims["exp"] - token.claims["iat"] == 60


def test_claims_hook_runs_and_extra_claims_are_added(oauth_cc_client, oauth_cc_token):
    application, _ = oauth_cc_client(scopes=["reports:read"], name="billing")
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "CLAIMS_HOOK": f"{__name__}.tenant_hook"}):
        token = oauth_cc_token("reports:read", client=application, region="eu")

    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["tenant"], claims["client_name"], claims["region"]) == ("acme", "billing", "eu")


def test_claims_hook_refusal_is_an_error(oauth_cc_token):
    with override_settings(OAUTH_CC={"ISSUER": ISSUER, "CLAIMS_HOOK": f"{__name__}.refusing_hook"}):
        with pytest.raises(KitError, match=r"^The claims hook refuses a token for .+: Legacy clients must"):
            oauth_cc_token("reports:read")


def test_scope_the_client_lacks_is_an_error_not_a_token(oauth_cc_client, oauth_cc_token):
    application, _ = oauth_cc_client(scopes=["reports:read"])
    clients.create_scope("reports:write")

    with pytest.raises(KitError) as raised:
        oauth_cc_token("reports:read reports:write", client=application)
    assert str(raised.value) == (
        "The token endpoint would refuse this (invalid_scope): "
        "Scope not allowed for this client: reports:write."
    )


def test_no_scope_and_no_default_is_an_error(oauth_cc_token):
    with pytest.raises(KitError) as raised:
        oauth_cc_token()
    assert str(raised.value) == (
        "The token endpoint would refuse this (invalid_scope): "
        "No scope was requested and this client has no default scope."
    )


def test_resource_the_client_may_not_ask_for_is_an_error(oauth_cc_token):
    with pytest.raises(KitError, match=r"\(invalid_target\): This client may not request tokens"):
        oauth_cc_token("reports:read", resource="https://other.example")


def test_disabled_or_unknown_client_is_an_error(oauth_cc_client, oauth_cc_token):
    application, _ = oauth_cc_client(scopes=["reports:read"])
    clients.set_active(application, False)

    with pytest.raises(KitError, match=rf"^The client {application.client_id} is disabled"):
        oauth_cc_token("reports:read", client=application)
    with pytest.raises(KitError, match=r'^No API client has the client_id "nope"\.$'):
        oauth_cc_token("reports:read", client="nope")


@pytest.mark.parametrize("claim", ["client_id", "sub", "scope"])
def test_client_and_scope_claims_cannot_be_replaced(oauth_cc_token, claim):
    with pytest.raises(KitError) as raised:
        oauth_cc_token("reports:read", **{claim: "admin"})
    assert str(raised.value) == f"The kit does not replace {claim}: pass client= and the scopes instead."


@pytest.mark.parametrize(
    ("claims", "reason"),
    [({"iss": "https://evil.example"}, "issued by another issuer"), ({"aud": "https://x.example"}, "(aud)")],
)
def test_replaced_registered_claims_give_a_token_the_site_refuses(oauth_cc_api_client, claims, reason):
    response = oauth_cc_api_client("reports:read").get("/api/ping/")
    assert response.status_code == 200

    response = oauth_cc_api_client("reports:read", **claims).get("/api/ping/")
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def test_claims_the_site_could_not_read_are_an_error(oauth_cc_token):
    with pytest.raises(KitError, match=r"^These claims cannot go in a token: Out of range float values"):
        oauth_cc_token("reports:read", score=math.nan)
    with pytest.raises(KitError, match=r"^The token would be longer than the 8192 bytes the site accepts\.$"):
        oauth_cc_token("reports:read", padding="x" * 9000)


def test_client_fixture_creates_scopes_and_a_working_secret(oauth_cc_client, client, django_user_model):
    user = django_user_model.objects.create(username="robot")
    application, secret = oauth_cc_client(scopes=["a:b", "c:d"], user=user, description="batch")

    application.refresh_from_db()
    assert sorted(application.scopes.values_list("name", flat=True)) == ["a:b", "c:d"]
    assert (application.user, application.description) == (user, "batch")
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "c:d"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "c:d"


def test_client_fixture_refuses_unknown_fields_and_bad_scope_names(oauth_cc_client):
    with pytest.raises(KitError, match=r"^Not a field of an API client: colour\.$"):
        oauth_cc_client(scopes=["a:b"], colour="red")
    with pytest.raises(clients.ClientError, match=re.escape('"bad\\scope" is not a valid scope name.')):
        oauth_cc_client(scopes=["bad\\scope"])


def test_api_client_carries_its_token(oauth_cc_api_client):
    api = oauth_cc_api_client("reports:read")

    response = api.get("/api/whoami/")
    client_id = api.oauth_cc_token.application.client_id
    assert response.json() == {"client_id": client_id, "scopes": ["reports:read"]}


def test_the_entry_point_is_declared():
    assert pytest11_entry_points() == {"oauth_cc.testing": "oauth_cc.testing"}


# -- as a user's project runs it -----------------------------------------------------------


def pytest11_entry_points() -> dict[str, str]:
    """``[project.entry-points.pytest11]`` of pyproject.toml (simple ``"name" = "module"`` lines)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.entry-points.pytest11]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^"?([\w.]+)"?\s*=\s*"([\w.:]+)"', section, flags=re.MULTILINE))


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with oauth-cc "installed": its dist-info (entry points from pyproject) on the path."""
    site = pytester.mkdir("site-packages")
    dist = site / "oauth_cc-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: oauth-cc\nVersion: 0.1.0\n")
    lines = [f"{name} = {module}" for name, module in pytest11_entry_points().items()]
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    url = os.environ.get("DATABASE_URL")
    if url:  # its own test database, not the one this session is using
        parts = urlsplit(url)
        monkeypatch.setenv("DATABASE_URL", urlunsplit(parts._replace(path=parts.path + "_kituser")))
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=100)


USER_CONFTEST = '''
import pytest

@pytest.fixture
def reader(oauth_cc_client):
    application, _ = oauth_cc_client(scopes=["reports:read"], name="reader")
    return application
'''

USER_TESTS = '''
import time

from example_project.demo.models import Report


def test_reader_lists_reports(oauth_cc_api_client, reader):
    Report.objects.create(title="Q3", submitted_by="x")
    response = oauth_cc_api_client("reports:read", client=reader).get("/api/reports/")
    assert response.status_code == 200
    assert [r["title"] for r in response.json()] == ["Q3"]


def test_state_of_the_previous_test_is_gone(oauth_cc_token, client):
    assert not Report.objects.exists()
    token = oauth_cc_token("reports:write")
    response = client.post("/api/reports/", {"title": "t"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201


def test_wrong_scope_is_forbidden(oauth_cc_api_client):
    response = oauth_cc_api_client("reports:read").post("/api/reports/", {"title": "t"}, format="json")
    assert response.status_code == 403
    expected = 'Bearer realm="api", error="insufficient_scope", scope="reports:write"'
    assert response["WWW-Authenticate"] == expected


def test_expired_token_is_unauthorized(oauth_cc_api_client):
    now = int(time.time())
    response = oauth_cc_api_client("reports:read", iat=now - 600, exp=now - 300).get("/api/ping/")
    assert response.status_code == 401
    assert response.json() == {"detail": "The access token has expired."}


def test_a_test_that_trusts_a_refused_token_fails(oauth_cc_api_client):
    response = oauth_cc_api_client("reports:read", iss="https://elsewhere.example").get("/api/ping/")
    assert response.status_code == 200
'''


def test_user_project_on_the_example_settings(user_project):
    user_project.makeini("[pytest]\nDJANGO_SETTINGS_MODULE = example_project.settings\n")
    user_project.makeconftest(USER_CONFTEST)
    user_project.makepyfile(test_api=USER_TESTS)

    result = run(user_project, "-v")

    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_reader_lists_reports PASSED*",
            "*test_state_of_the_previous_test_is_gone PASSED*",
            "*test_wrong_scope_is_forbidden PASSED*",
            "*test_expired_token_is_unauthorized PASSED*",
            "*test_a_test_that_trusts_a_refused_token_fails FAILED*",
            "*assert 401 == 200*",
        ]
    )


def test_project_without_django_settings_loads_the_plugin_silently(user_project):
    user_project.makepyfile(
        test_plain="""
        def test_plain():
            assert 1 + 1 == 2

        def test_uses_kit(oauth_cc_token):
            oauth_cc_token("reports:read")
        """
    )

    result = run(user_project, "-v")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_plain PASSED*",
            "*ERROR at setup of test_uses_kit*",
            "oauth_cc's pytest fixtures need Django settings: set DJANGO_SETTINGS_MODULE*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_project_without_oauth_cc_in_installed_apps(user_project):
    user_project.makepyfile(
        other_settings="""
        SECRET_KEY = "x"
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        USE_TZ = True
        """,
        test_other="""
        def test_db(db):
            pass

        def test_uses_kit(oauth_cc_client):
            pass
        """,
    )

    result = run(user_project, "-v", "--ds=other_settings")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_db PASSED*", "*ERROR at setup of test_uses_kit*", "*need \"oauth_cc\" in INSTALLED_APPS.*"]
    )


def test_plugin_can_be_turned_off(user_project):
    user_project.makepyfile(test_off="def test_uses_kit(oauth_cc_token):\n    pass\n")

    result = run(user_project, "-p", "no:oauth_cc.testing")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'oauth_cc_token' not found*"])
