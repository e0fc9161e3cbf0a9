"""Two live servers: the example issuer, and a resource-only service (example_project.resource_settings).

The resource service has no oauth_cc tables and no django-oauth-toolkit: it gets the issuer's keys
by discovery (``/.well-known/oauth-authorization-server`` -> ``jwks_uri``) and polls the issuer's
revocation feed with its own client credentials. Both run under gunicorn (one sync worker each)
on ports chosen here, the issuer on a fresh database (SQLite, or PostgreSQL when ``DATABASE_URL``
names it), the resource service on a SQLite file, each with its own key prefix in Redis (which
is required: the tests fail without it). Changes are made on the issuer over HTTP or with
``manage.py oauth_cc``, and the resource service is polled until it shows them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

from tests import assertion_helpers as ah
from tests import dpop_helpers as dh
from tests import mtls_helpers as mh
from tests.test_real_workers import (
    Server,
    _gunicorn_command,
    bearer_error,
    describe,
    fresh_database,
    stop_server,
    wait_until_ready,
)

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"
REDIS_URL = os.environ.get("OAUTH_CC_RESOURCE_REDIS_URL", "redis://127.0.0.1:6379/13")
SCOPE = "reports:read"
#: The issuer's STATE_REFRESH_SECONDS and the resource service's REVOCATION_FEED_POLL_SECONDS.
REFRESH = 0.5
POLL = 0.5
#: How long to wait for a change to show on the resource service: many poll intervals.
DEADLINE = 20.0
HTTP_TIMEOUT = 15
COMMAND_TIMEOUT = 120
CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
CERT_HEADER_NAME = "X-SSL-Client-Cert"
pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, env: dict[str, str], log_dir: Path, port: int) -> Server:
    command = [f"127.0.0.1:{port}" if arg == "127.0.0.1:0" else arg for arg in _gunicorn_command()]
    log_path = log_dir / f"server-{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name=name, process=process, log_path=log_path)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert done.returncode == 0, (
        f"manage.py {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@dataclass
class Sites:
    issuer: Server
    resource: Server
    issuer_env: dict[str, str]
    resource_identifier: str
    resource_db: Path
    resource_env: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ({s.url}) ---\n{s.log()}" for s in (self.issuer, self.resource))


def forget_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


def _check_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"These tests need Redis at {REDIS_URL}: {type(exc).__name__}: {exc}", pytrace=False)
    finally:
        client.close()


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    tmp_dir = tmp_path_factory.mktemp("resource-service")
    _check_redis()
    run = uuid.uuid4().hex
    issuer_port, resource_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    resource_identifier = f"http://127.0.0.1:{resource_port}"
    common = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "resource-service-tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OAUTH_CC_ISSUER": issuer_url,
        # Both sites read a client certificate from this header, as behind nginx (the tests
        # send it themselves, as the proxy would).
        "OAUTH_CC_CLIENT_CERT_HEADER": CERT_HEADER,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    with contextlib.ExitStack() as stack:
        for prefix in (f"oauth-cc-issuer-{run}", f"oauth-cc-resource-{run}"):
            stack.callback(forget_redis_keys, prefix)
        issuer_env = {
            **common,
            "DJANGO_SETTINGS_MODULE": "tests.live_settings",
            "DATABASE_URL": stack.enter_context(fresh_database(tmp_dir)),
            "OAUTH_CC_CACHE_KEY_PREFIX": f"oauth-cc-issuer-{run}",
            "OAUTH_CC_STATE_REFRESH_SECONDS": str(REFRESH),
        }
        issuer = start("issuer", issuer_env, tmp_dir, issuer_port)
        stack.callback(stop_server, issuer)
        manage(issuer_env, "migrate", "--noinput")
        manage(issuer_env, "oauth_cc", "scope", "add", SCOPE, "--default")
        feed_client = json.loads(
            manage(issuer_env, "oauth_cc", "client", "create", "resource-service", "--introspect", "--json")
        )
        resource_db = tmp_dir / "resource.sqlite3"
        resource_env = {
            **common,
            "DJANGO_SETTINGS_MODULE": "example_project.resource_settings",
            "RESOURCE_DATABASE_URL": f"sqlite:///{resource_db}",
            "OAUTH_CC_CACHE_KEY_PREFIX": f"oauth-cc-resource-{run}",
            "OAUTH_CC_RESOURCE_IDENTIFIER": resource_identifier,
            "OAUTH_CC_RESOURCE_CLIENT_ID": feed_client["client_id"],
            "OAUTH_CC_RESOURCE_CLIENT_SECRET": feed_client["client_secret"],
            "OAUTH_CC_REVOCATION_FEED_POLL_SECONDS": str(POLL),
            "OAUTH_CC_ISSUER_ALLOW_INSECURE": "1",
        }
        manage(resource_env, "migrate", "--noinput")
        resource = start("resource", resource_env, tmp_dir, resource_port)
        stack.callback(stop_server, resource)
        for server in (issuer, resource):
            wait_until_ready(server)
        yield Sites(issuer, resource, issuer_env, resource_identifier, resource_db, resource_env)


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str


def new_client(sites: Sites, *options: str) -> Client:
    """A client that may ask for the issuer's own audience (its default) and the resource service's."""
    data = json.loads(
        manage(
            sites.issuer_env,
            *("oauth_cc", "client", "create", f"api-{uuid.uuid4().hex[:8]}", "--scope", SCOPE),
            *("--audience", sites.issuer_env["OAUTH_CC_ISSUER"], "--audience", sites.resource_identifier),
            *options,
            "--json",
        )
    )
    return Client(data["client_id"], data["client_secret"])


def token(sites: Sites, client: Client, *, resource: str | None) -> str:
    data = {"grant_type": "client_credentials", **({"resource": resource} if resource else {})}
    response = requests.post(
        f"{sites.issuer.url}/oauth/token/",
        data=data,
        auth=(client.client_id, client.secret),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, f"{describe(response)}\n{sites.logs()}"
    return str(response.json()["access_token"])


def kid_of(access_token: str) -> str:
    header = access_token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def whoami(sites: Sites, access_token: str) -> requests.Response:
    return requests.get(
        f"{sites.resource.url}/api/whoami/",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=HTTP_TIMEOUT,
    )


def assert_accepted(sites: Sites, access_token: str, client: Client) -> None:
    response = whoami(sites, access_token)
    assert response.status_code == 200, f"{describe(response)}\n{sites.logs()}"
    assert response.json() == {"client_id": client.client_id, "scopes": [SCOPE]}


def assert_refused_soon(sites: Sites, access_token: str, reason: str) -> None:
    """Poll the resource service until it refuses the token (401 invalid_token for ``reason``)."""
    since = time.monotonic()
    while True:
        response = whoami(sites, access_token)
        if response.status_code != 200 or time.monotonic() - since > DEADLINE:
            break
        time.sleep(0.05)
    explain = f"after {time.monotonic() - since:.2f} s: {describe(response)}\n{sites.logs()}"
    assert response.status_code == 401, explain
    assert bearer_error(response) == ("invalid_token", reason), explain


def test_resource_service_has_no_oauth_cc_tables(sites: Sites) -> None:
    with contextlib.closing(sqlite3.connect(sites.resource_db)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "demo_report" in tables
    assert not {t for t in tables if t.startswith(("oauth_cc", "oauth2_provider"))}, tables


def test_token_for_the_service_works_and_another_audience_is_refused(sites: Sites) -> None:
    client = new_client(sites)
    assert_accepted(sites, token(sites, client, resource=sites.resource_identifier), client)
    response = whoami(sites, token(sites, client, resource=None))  # aud: the issuer itself
    assert response.status_code == 401, describe(response)
    assert bearer_error(response) == (
        "invalid_token",
        "The access token is not meant for this resource (aud).",
    )


def test_key_rotation_on_the_issuer_needs_no_restart(sites: Sites) -> None:
    client = new_client(sites)
    assert_accepted(sites, token(sites, client, resource=sites.resource_identifier), client)
    # Twice: the second current key was created after the service fetched the JWKS, so its kid
    # is unknown there and the service fetches the key set again.
    kids = [kid_of(token(sites, client, resource=sites.resource_identifier))]
    for _ in range(2):
        manage(sites.issuer_env, "oauth_cc", "key", "rotate")
        fresh = token(sites, client, resource=sites.resource_identifier)
        kids.append(kid_of(fresh))
        assert_accepted(sites, fresh, client)
    assert len(set(kids)) == 3, kids  # each token was signed by the key the rotation made current


def test_revoked_token_is_refused(sites: Sites) -> None:
    client = new_client(sites)
    access_token = token(sites, client, resource=sites.resource_identifier)
    assert_accepted(sites, access_token, client)
    response = requests.post(
        f"{sites.issuer.url}/oauth/revoke/",
        data={"token": access_token},
        auth=(client.client_id, client.secret),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, describe(response)
    assert_refused_soon(sites, access_token, "The access token has been revoked.")
    other = token(sites, client, resource=sites.resource_identifier)
    assert_accepted(sites, other, client)  # only that token


def test_disabled_client_is_refused(sites: Sites) -> None:
    client = new_client(sites)
    access_token = token(sites, client, resource=sites.resource_identifier)
    assert_accepted(sites, access_token, client)
    manage(sites.issuer_env, "oauth_cc", "client", "disable", client.client_id)
    assert_refused_soon(sites, access_token, "The client of this access token is disabled.")


def test_deleted_client_is_refused(sites: Sites) -> None:
    client = new_client(sites)
    access_token = token(sites, client, resource=sites.resource_identifier)
    assert_accepted(sites, access_token, client)
    manage(sites.issuer_env, "oauth_cc", "client", "delete", client.client_id)
    assert_refused_soon(sites, access_token, "The client of this access token has been deleted.")


def dpop_token(sites: Sites, client: Client, key: object) -> str:
    """A DPoP-bound token for the resource service, asked for with a proof for the issuer's URL."""
    response = requests.post(
        f"{sites.issuer.url}/oauth/token/",
        data={"grant_type": "client_credentials", "resource": sites.resource_identifier},
        auth=(client.client_id, client.secret),
        headers={"DPoP": dh.proof(key, htm="POST", htu=f"{sites.issuer.url}/oauth/token/")},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, f"{describe(response)}\n{sites.logs()}"
    assert response.json()["token_type"] == "DPoP"
    return str(response.json()["access_token"])


def whoami_dpop(sites: Sites, access_token: str, proof: str) -> requests.Response:
    return requests.get(
        f"{sites.resource.url}/api/whoami/",
        headers={"Authorization": f"DPoP {access_token}", "DPoP": proof},
        timeout=HTTP_TIMEOUT,
    )


def test_dpop_bound_token_needs_a_fresh_proof_at_the_resource_service(sites: Sites) -> None:
    """RFC 9449 §7 on a service without oauth_cc tables: proof ids are recorded in the shared cache."""
    client = new_client(sites)
    key = dh.new_ec_key()
    access_token = dpop_token(sites, client, key)
    whoami_url = f"{sites.resource.url}/api/whoami/"

    proof = dh.proof(key, htm="GET", htu=whoami_url, token=access_token)
    first = whoami_dpop(sites, access_token, proof)
    assert first.status_code == 200, f"{describe(first)}\n{sites.logs()}"
    assert first.json() == {"client_id": client.client_id, "scopes": [SCOPE]}

    replay = whoami_dpop(sites, access_token, proof)
    assert replay.status_code == 401, describe(replay)
    assert replay.headers["WWW-Authenticate"].startswith('DPoP realm="api"')
    assert bearer_error(replay) == (
        "invalid_dpop_proof",
        'The DPoP proof has already been used; make a new one (a fresh \\"jti\\") per request.',
    )

    as_bearer = whoami(sites, access_token)
    assert as_bearer.status_code == 401, describe(as_bearer)
    assert bearer_error(as_bearer) == (
        "invalid_token",
        "This access token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof.",
    )

    # A proof made for the issuer's URL (htu) is not one for the resource service.
    wrong_htu = dh.proof(key, htm="GET", htu=f"{sites.issuer.url}/api/whoami/", token=access_token)
    refused = whoami_dpop(sites, access_token, wrong_htu)
    assert refused.status_code == 401, describe(refused)
    assert bearer_error(refused) == (
        "invalid_dpop_proof",
        "The DPoP proof's \\\"htu\\\" claim is not the request's URL (" + whoami_url + ").",
    )
    # Signed by another key: the token is bound to the first one.
    stranger = dh.proof(dh.new_ec_key(), htm="GET", htu=whoami_url, token=access_token)
    other_key = whoami_dpop(sites, access_token, stranger)
    assert bearer_error(other_key) == (
        "invalid_dpop_proof",
        "The DPoP proof is not signed by the key the access token is bound to.",
    )

    again = whoami_dpop(sites, access_token, dh.proof(key, htm="GET", htu=whoami_url, token=access_token))
    assert again.status_code == 200, describe(again)


def test_certificate_bound_token_needs_the_same_certificate_at_the_resource_service(sites: Sites) -> None:
    """RFC 8705 §3 on a service without oauth_cc tables, the certificate forwarded as by nginx."""
    client = new_client(sites, "--cert-bound-tokens")
    ca = mh.make_ca()
    certificate, other = mh.issue(ca, "billing"), mh.issue(ca, "billing")
    response = requests.post(
        f"{sites.issuer.url}/oauth/token/",
        data={"grant_type": "client_credentials", "resource": sites.resource_identifier},
        auth=(client.client_id, client.secret),
        headers={CERT_HEADER_NAME: certificate.nginx_header},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, f"{describe(response)}\n{sites.logs()}"
    access_token = response.json()["access_token"]
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["cnf"] == {"x5t#S256": certificate.thumbprint}

    def call(cert_header: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        if cert_header is not None:
            headers[CERT_HEADER_NAME] = cert_header
        return requests.get(f"{sites.resource.url}/api/whoami/", headers=headers, timeout=HTTP_TIMEOUT)

    for cert_header, description in [
        (None, "The access token is bound to a client certificate; none was presented."),
        ("", "The access token is bound to a client certificate; none was presented."),
        (other.nginx_header, "The access token is bound to a different client certificate."),
        ("not-a-certificate", "The client certificate could not be read."),
        # One the library refuses with its own exception type (InvalidVersion), once a 500.
        (mh.nginx_escaped(mh.with_version(certificate.der, 7)), "The client certificate could not be read."),
    ]:
        refused = call(cert_header)
        assert refused.status_code == 401, describe(refused)
        assert bearer_error(refused) == ("invalid_token", description)
    accepted = call(certificate.nginx_header)
    assert accepted.status_code == 200, f"{describe(accepted)}\n{sites.logs()}"
    assert accepted.json() == {"client_id": client.client_id, "scopes": [SCOPE]}


@pytest.fixture(scope="module")
def feed_readers(sites: Sites, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Two more resource-only services of the same issuer, reading its revocation feed with
    ``client_secret_post`` and with ``private_key_jwt`` (a POST with a fresh assertion per poll).

    They accept the first service's audience (so one token serves all three) but keep their own
    cache prefix: each reads the feed itself, with its own client, never the others' copy.
    """
    tmp_dir = tmp_path_factory.mktemp("feed-readers")
    key = ah.generate_key("ES256")
    jwks_file = tmp_dir / "reader-jwks.json"
    jwks_file.write_text(json.dumps(ah.jwks_of(key)))
    key_file = tmp_dir / "reader-key.pem"
    key_file.write_bytes(key.private_pem())
    post_client = json.loads(
        manage(
            sites.issuer_env,
            *("oauth_cc", "client", "create", "feed-reader-post", "--introspect"),
            *("--auth-method", "client_secret_post", "--json"),
        )
    )
    jwt_client = json.loads(
        manage(
            sites.issuer_env,
            *("oauth_cc", "client", "create", "feed-reader-jwt", "--introspect"),
            *("--jwks-file", str(jwks_file), "--json"),
        )
    )
    credentials = {
        "client_secret_post": {
            "OAUTH_CC_RESOURCE_CLIENT_ID": post_client["client_id"],
            "OAUTH_CC_RESOURCE_CLIENT_SECRET": post_client["client_secret"],
        },
        "private_key_jwt": {
            "OAUTH_CC_RESOURCE_CLIENT_ID": jwt_client["client_id"],
            "OAUTH_CC_RESOURCE_CLIENT_PRIVATE_KEY_FILE": str(key_file),
            "OAUTH_CC_RESOURCE_CLIENT_KEY_ID": key.kid,
        },
    }
    run = uuid.uuid4().hex
    with contextlib.ExitStack() as stack:
        servers = {}
        for method, extra in credentials.items():
            prefix = f"oauth-cc-reader-{method}-{run}"
            stack.callback(forget_redis_keys, prefix)
            env = {
                key: value
                for key, value in sites.resource_env.items()
                if not key.startswith("OAUTH_CC_RESOURCE_CLIENT_")
            }
            env.update(
                {
                    **extra,
                    "OAUTH_CC_RESOURCE_CLIENT_AUTH_METHOD": method,
                    "OAUTH_CC_CACHE_KEY_PREFIX": prefix,
                    "RESOURCE_DATABASE_URL": f"sqlite:///{tmp_dir / f'{method}.sqlite3'}",
                }
            )
            manage(env, "migrate", "--noinput")
            server = start(f"resource-{method}", env, tmp_dir, free_port())
            stack.callback(stop_server, server)
            servers[method] = server
        for server in servers.values():
            wait_until_ready(server)
        yield servers


@pytest.mark.parametrize("method", ["client_secret_post", "private_key_jwt"])
def test_a_revocation_reaches_services_reading_the_feed_by_post(
    sites: Sites, feed_readers: dict[str, Server], method: str
) -> None:
    reader = feed_readers[method]
    reader_sites = Sites(sites.issuer, reader, sites.issuer_env, sites.resource_identifier, sites.resource_db)
    client = new_client(sites)
    access_token = token(sites, client, resource=sites.resource_identifier)
    # Accepted: the service has read the feed (a worker that never did answers 503).
    assert_accepted(reader_sites, access_token, client)
    response = requests.post(
        f"{sites.issuer.url}/oauth/revoke/",
        data={"token": access_token},
        auth=(client.client_id, client.secret),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, describe(response)
    assert_refused_soon(reader_sites, access_token, "The access token has been revoked.")
    log = reader.log(limit=100_000)
    assert "could not read the issuer's revocation feed" not in log, log


def test_issuer_stopped_the_service_keeps_serving_valid_tokens(sites: Sites) -> None:
    """Last in the module: it stops the issuer."""
    client = new_client(sites)
    seen = token(sites, client, resource=sites.resource_identifier)
    unseen = token(sites, client, resource=sites.resource_identifier)
    assert_accepted(sites, seen, client)
    stop_server(sites.issuer)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sites.issuer.url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
    time.sleep(5 * POLL)  # several polls fail meanwhile
    assert_accepted(sites, seen, client)
    assert_accepted(sites, unseen, client)  # verified now, with the keys held
    assert "could not read the issuer's revocation feed" in sites.resource.log(limit=100_000)
