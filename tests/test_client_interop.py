"""Interop matrix over real HTTP: stock client libraries, each with its own defaults.

Each client gets a token from the live server and calls the demo API with it. The clients
are created the way the README says (``oauth_cc client create``), so a secret client is
registered for ``client_secret_basic`` and must also accept ``client_secret_post``; a
``private_key_jwt`` client is driven by Authlib's ``PrivateKeyJWT`` with no claims override
(its default assertion lives an hour and carries ``iat``), the same object reused for two
requests (a fresh ``jti`` each time). curl runs as the README shows it. A missing curl fails.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import requests
from authlib.integrations.httpx_client import OAuth2Client as AuthlibHttpxClient
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from django.core.management import call_command
from django.test import override_settings
from joserfc.jwk import ECKey
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as OAuthlibSession

from oauth_cc.conf import oauth_cc_settings
from oauth_cc.models import Application, Scope, UsedAssertion
from tests.assertion_helpers import generate_key, jwks_of
from tests.helpers import clear_shared_cache

SCOPE = "reports:read"
HTTP_TIMEOUT = 10


@pytest.fixture
def site(live_server: Any, transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The live server, issuing tokens under its own URL."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # requests-oauthlib over http://localhost
    clear_shared_cache()
    with override_settings(OAUTH_CC={"ISSUER": live_server.url}):
        yield live_server


def create_client(*args: str) -> dict[str, Any]:
    """``oauth_cc client create NAME --scope reports:read [ARGS] --json``, as the README shows."""
    Scope.objects.get_or_create(name=SCOPE)
    out = io.StringIO()
    call_command("oauth_cc", "client", "create", *args, "--scope", SCOPE, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def secret_client(site: Any) -> dict[str, Any]:
    created = create_client("interop")
    # The command's default: a secret client registered for client_secret_basic.
    application = Application.objects.get(client_id=created["client_id"])
    assert application.token_endpoint_auth_method == "client_secret_basic"
    assert created["client_secret"]
    return created


def whoami(token: str, base: str) -> dict[str, Any]:
    response = requests.get(
        f"{base}/api/whoami/", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- secret clients --------------------------------------------------------------------------


def requests_oauthlib_default(base: str, client_id: str, secret: str) -> dict[str, Any]:
    # Default: with client_secret and no auth, requests-oauthlib sends HTTP Basic.
    with OAuthlibSession(client=BackendApplicationClient(client_id=client_id)) as session:
        return session.fetch_token(
            token_url=f"{base}/oauth/token/", client_id=client_id, client_secret=secret, scope=[SCOPE]
        )


def requests_oauthlib_in_body(base: str, client_id: str, secret: str) -> dict[str, Any]:
    # include_client_id=True: client_id and client_secret in the form body (client_secret_post).
    with OAuthlibSession(client=BackendApplicationClient(client_id=client_id)) as session:
        return session.fetch_token(
            token_url=f"{base}/oauth/token/",
            client_id=client_id,
            client_secret=secret,
            include_client_id=True,
            scope=[SCOPE],
        )


def authlib_requests(method: str | None) -> Callable[[str, str, str], dict[str, Any]]:
    def fetch(base: str, client_id: str, secret: str) -> dict[str, Any]:
        extra = {} if method is None else {"token_endpoint_auth_method": method}
        with AuthlibSession(client_id, secret, scope=SCOPE, **extra) as session:
            return session.fetch_token(f"{base}/oauth/token/", grant_type="client_credentials")

    return fetch


def authlib_httpx(method: str | None) -> Callable[[str, str, str], dict[str, Any]]:
    def fetch(base: str, client_id: str, secret: str) -> dict[str, Any]:
        extra = {} if method is None else {"token_endpoint_auth_method": method}
        with AuthlibHttpxClient(client_id, secret, scope=SCOPE, **extra) as session:
            return dict(session.fetch_token(f"{base}/oauth/token/", grant_type="client_credentials"))

    return fetch


def curl(*args: str) -> dict[str, Any]:
    executable = shutil.which("curl")
    # A missing curl fails the matrix (CI installs it in .ci/run); it is never skipped.
    assert executable, "curl is not installed: apt-get install curl"
    completed = subprocess.run(
        [executable, "-s", "-S", "--max-time", str(HTTP_TIMEOUT), *args],
        capture_output=True,
        text=True,
        timeout=HTTP_TIMEOUT + 5,
        check=True,
    )
    return json.loads(completed.stdout)


def curl_basic(base: str, client_id: str, secret: str) -> dict[str, Any]:
    # The README's walkthrough, verbatim but for the values.
    return curl(
        "-u", f"{client_id}:{secret}", "-d", "grant_type=client_credentials", "-d", f"scope={SCOPE}",
        f"{base}/oauth/token/",
    )  # fmt: skip


def curl_post(base: str, client_id: str, secret: str) -> dict[str, Any]:
    return curl(
        "-d", "grant_type=client_credentials", "-d", f"scope={SCOPE}",
        "-d", f"client_id={client_id}", "-d", f"client_secret={secret}",
        f"{base}/oauth/token/",
    )  # fmt: skip


SECRET_CLIENTS = [
    pytest.param(requests_oauthlib_default, id="requests-oauthlib-default"),
    pytest.param(requests_oauthlib_in_body, id="requests-oauthlib-include_client_id"),
    pytest.param(authlib_requests(None), id="authlib-requests-default"),
    pytest.param(authlib_requests("client_secret_post"), id="authlib-requests-post"),
    pytest.param(authlib_httpx(None), id="authlib-httpx-default"),
    pytest.param(authlib_httpx("client_secret_post"), id="authlib-httpx-post"),
    pytest.param(curl_basic, id="curl-README"),
    pytest.param(curl_post, id="curl-form-fields"),
]


@pytest.mark.parametrize("fetch", SECRET_CLIENTS)
def test_secret_client_gets_a_token_and_calls_the_api(
    site: Any, secret_client: dict[str, Any], fetch: Any, caplog: Any
) -> None:
    client_id, secret = secret_client["client_id"], secret_client["client_secret"]
    caplog.set_level("INFO", logger="oauth_cc.client_auth")

    token = fetch(site.url, client_id, secret)

    assert token["token_type"] == "Bearer", token
    assert token["expires_in"] == 3600
    claims = pyjwt.decode(token["access_token"], options={"verify_signature": False})
    assert (claims["client_id"], claims["scope"]) == (client_id, SCOPE)
    assert whoami(token["access_token"], site.url) == {"client_id": client_id, "scopes": [SCOPE]}
    # No method mismatch was logged: a client_secret_basic client accepted the form body too.
    assert "presented" not in caplog.text


@pytest.mark.parametrize("fetch", SECRET_CLIENTS)
def test_secret_client_with_a_wrong_secret_gets_invalid_client(
    site: Any, secret_client: dict[str, Any], fetch: Any
) -> None:
    client_id = secret_client["client_id"]
    wrong = secret_client["client_secret"][:-1] + ("A" if secret_client["client_secret"][-1] != "A" else "B")
    if fetch in (curl_basic, curl_post):
        body = fetch(site.url, client_id, wrong)
    else:
        with pytest.raises(Exception) as raised:  # each library raises its own OAuth error type
            fetch(site.url, client_id, wrong)
        body = _error_body(raised.value)
    assert body == {"error": "invalid_client", "error_description": "Client authentication failed."}


def _error_body(exc: BaseException) -> dict[str, Any]:
    """The token endpoint's JSON error from whichever exception the library raised."""
    error = getattr(exc, "error", None) or getattr(exc, "error_code", None)
    description = getattr(exc, "description", None)
    if error is None and hasattr(exc, "response"):  # requests / httpx HTTP errors
        return exc.response.json()
    return {"error": error, "error_description": description}


# -- private_key_jwt with Authlib's defaults ---------------------------------------------------


@pytest.fixture
def key() -> Any:
    return generate_key("ES256")


@pytest.fixture
def jwt_client(site: Any, key: Any, tmp_path: Any) -> dict[str, Any]:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(key)))
    created = create_client("signer", "--jwks-file", str(jwks_file))
    assert created["client_secret"] is None
    return created


def _fetch_twice_with_one_auth_object(session: Any, token_endpoint: str) -> list[dict[str, Any]]:
    return [
        dict(session.fetch_token(token_endpoint, grant_type="client_credentials", scope=SCOPE))
        for _ in range(2)
    ]


@pytest.mark.parametrize("library", ["authlib-requests", "authlib-httpx"])
def test_authlib_private_key_jwt_with_its_defaults_gets_a_token_twice(
    site: Any, jwt_client: dict[str, Any], key: Any, library: str
) -> None:
    client_id = jwt_client["client_id"]
    token_endpoint = f"{site.url}/oauth/token/"
    # No claims override: Authlib signs exp = iat + 3600 and a new jti on each request.
    auth = PrivateKeyJWT(token_endpoint, alg="ES256", headers={"kid": key.kid})
    private = ECKey.import_key(key.private_pem())
    before = time.time()
    session_class = AuthlibSession if library == "authlib-requests" else AuthlibHttpxClient
    with session_class(client_id, private, token_endpoint_auth_method=auth) as session:
        tokens = _fetch_twice_with_one_auth_object(session, token_endpoint)
    after = time.time()

    for token in tokens:
        assert token["token_type"] == "Bearer"
        assert whoami(token["access_token"], site.url) == {"client_id": client_id, "scopes": [SCOPE]}
    used = list(UsedAssertion.objects.filter(client_id=client_id))
    assert len({row.jti for row in used}) == 2
    # Each jti is kept only while its assertion could be accepted: iat + ASSERTION_MAX_AGE (+ leeway),
    # not until Authlib's one-hour exp.
    bound = float(oauth_cc_settings.ASSERTION_MAX_AGE) + float(oauth_cc_settings.LEEWAY)
    for row in used:
        assert (
            datetime.fromtimestamp(int(before) + bound, tz=timezone.utc)
            <= row.expires_at
            <= datetime.fromtimestamp(after + bound, tz=timezone.utc)
        )


def test_authlib_private_key_jwt_assertion_replayed_is_refused(
    site: Any, jwt_client: dict[str, Any], key: Any
) -> None:
    """The control for the two-request test: one assertion sent twice is refused the second time."""
    client_id = jwt_client["client_id"]
    token_endpoint = f"{site.url}/oauth/token/"
    auth = PrivateKeyJWT(token_endpoint, alg="ES256", headers={"kid": key.kid})
    seen: list[bytes] = []

    def capture(request: httpx.Request) -> None:
        seen.append(request.content)

    with AuthlibHttpxClient(
        client_id,
        ECKey.import_key(key.private_pem()),
        token_endpoint_auth_method=auth,
        event_hooks={"request": [capture]},
    ) as session:
        session.fetch_token(token_endpoint, grant_type="client_credentials", scope=SCOPE)
    response = httpx.post(
        token_endpoint,
        content=seen[0],
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": (
            'This client_assertion has already been used; sign a new one with a fresh "jti".'
        ),
    }


def test_private_key_jwt_client_gets_no_token_with_a_secret_from_any_library(
    site: Any, jwt_client: dict[str, Any], secret_client: dict[str, Any]
) -> None:
    """A private_key_jwt client never accepts a secret, even another client's real one."""
    for fetch in (curl_basic, curl_post):
        body = fetch(site.url, jwt_client["client_id"], secret_client["client_secret"])
        assert body == {"error": "invalid_client", "error_description": "Client authentication failed."}
