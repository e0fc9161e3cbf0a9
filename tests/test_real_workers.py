"""With real server processes: a change made on the site reaches every worker within the refresh delay.

``test_revocation_workers.py`` simulates workers inside one process. Here the workers are real:
two gunicorn servers ("hosts" A and B), one sync worker each so that every request goes to a
known worker, sharing one fresh database and one Redis cache, as hosts of one site would. Each
worker caches client data, signing keys, the revocation snapshot and the tokens it has verified
for ``STATE_REFRESH_SECONDS`` (0.5 s here); changes are made the way they are in production,
over HTTP on one server or with ``manage.py oauth_cc`` in a third process, and each test polls
the servers until the change shows, asserting it showed within a few refresh intervals.

The database is a SQLite file in a temporary directory, or a PostgreSQL database of its own
(created and dropped here) when ``DATABASE_URL`` points at PostgreSQL. Redis is required: the
tests fail, not skip, when it is not reachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import jwt
import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"
SETTINGS_MODULE = "tests.live_settings"
#: The issuer both servers share: tokens from one must carry the iss and aud the other expects.
ISSUER = "http://127.0.0.1"
SCOPE = "reports:read"
#: Redis database of these tests alone; flushed at the start of the module.
REDIS_URL = os.environ.get("OAUTH_CC_WORKERS_REDIS_URL", "redis://127.0.0.1:6379/14")

#: ``OAUTH_CC["STATE_REFRESH_SECONDS"]`` of both servers.
REFRESH = 0.5
#: A change must show on every server within this many seconds of being made.
BOUND = 3 * REFRESH + 1.0
#: How long to keep polling: well past BOUND, so "late" and "never" give different failures.
DEADLINE = 10 * REFRESH + 5.0
POLL_INTERVAL = 0.05
#: Start-up of a server (import Django, boot the worker) on a busy two-core machine.
STARTUP_DEADLINE = 60.0
COMMAND_TIMEOUT = 120
HTTP_TIMEOUT = 15
#: Per test, including the first test's share of the module set-up (migrate, two servers).
TEST_TIMEOUT = 240


# -- set-up ------------------------------------------------------------------------------------


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    if url and dj_database_url.parse(url)["ENGINE"] == "django.db.backends.postgresql":
        return url
    return None


@contextlib.contextmanager
def fresh_database(tmp_dir: Path) -> Iterator[str]:
    """The URL of a new, empty database for the servers; dropped afterwards if it is PostgreSQL."""
    url = _postgres_url()
    if url is None:
        yield f"sqlite:///{tmp_dir / 'site.sqlite3'}"
        return

    import psycopg

    config = dj_database_url.parse(url)
    server = {
        "host": config.get("HOST"),
        "port": config.get("PORT"),
        "user": config.get("USER"),
        "password": config.get("PASSWORD"),
    }
    server = {name: str(value) for name, value in server.items() if value}
    name = f"oauth_cc_workers_{os.getpid()}"

    def drop(*, then_create: bool) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as connection:
            # WITH (FORCE) (PostgreSQL 13+) ends any session a killed server left behind.
            force = "WITH (FORCE)" if connection.info.server_version >= 130000 else ""
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" {force}')
            if then_create:
                connection.execute(f'CREATE DATABASE "{name}"')

    drop(then_create=True)
    try:
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        drop(then_create=False)


def flush_redis() -> None:
    """Empty the tests' Redis database; a Redis that is not there fails the tests (never a skip)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
        client.flushdb()
    except redis.RedisError as exc:
        pytest.fail(
            f"These tests need Redis at {REDIS_URL}, which is not reachable: {type(exc).__name__}: {exc}",
            pytrace=False,
        )
    finally:
        client.close()


def forget_redis_keys(prefix: str, redis_url: str | None = None) -> None:
    """Delete this run's cache entries (the servers' claims live for minutes otherwise)."""
    client = redis.Redis.from_url(redis_url or REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


@dataclass
class Server:
    """One gunicorn server: a master process and its one sync worker, in a session of their own."""

    name: str
    process: subprocess.Popen
    log_path: Path
    url: str = ""

    def log(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return text[-limit:]


def _gunicorn_command() -> list[str]:
    from gunicorn.config import KNOWN_SETTINGS

    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:0",  # a free port, chosen by the kernel; read back from the log
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--chdir",
        str(ROOT),
    ]
    if any("--no-control-socket" in (setting.cli or ()) for setting in KNOWN_SETTINGS):
        # gunicorn 24+ opens a control socket at one fixed path per user: two servers would share it.
        command.append("--no-control-socket")
    return [*command, "example_project.wsgi:application"]


def start_server(name: str, env: dict[str, str], log_dir: Path) -> Server:
    log_path = log_dir / f"server-{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _gunicorn_command(),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the worker can be found and stopped
        )
    return Server(name=name, process=process, log_path=log_path)


def wait_until_ready(server: Server) -> None:
    """Poll until the server has a port and answers its health check; fail with its log if not."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    last: object = "no port in the log yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"server {server.name} exited with {server.process.returncode} while starting:\n"
                f"{server.log()}",
                pytrace=False,
            )
        if not server.url:
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", server.log(limit=100_000))
            server.url = found.group(1) if found else ""
        if server.url:
            try:
                response = requests.get(f"{server.url}/api/health/", timeout=HTTP_TIMEOUT)
            except requests.RequestException as exc:
                last = exc
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:500]}"
        time.sleep(0.1)
    pytest.fail(
        f"server {server.name} was not ready within {STARTUP_DEADLINE} s ({last}):\n{server.log()}",
        pytrace=False,
    )


def stop_server(server: Server) -> None:
    """Stop the master and its worker; whatever does not stop in time is killed."""
    process = server.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)  # gunicorn stops its worker, then itself
        deadline = time.monotonic() + 20
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        # WNOWAIT: the master is not reaped yet, so its pid, which is its process group's id, stays
        # ours and the killpg below cannot reach anyone else's processes.
        while time.monotonic() < deadline and os.waitid(os.P_PID, process.pid, flags) is None:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a worker left behind, or a master that hung
    process.wait(timeout=30)


@dataclass
class Site:
    """The two servers and how to run operator commands against their database and cache."""

    a: Server
    b: Server
    env: dict[str, str]
    servers: tuple[Server, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.servers = (self.a, self.b)

    def logs(self) -> str:
        return "\n".join(f"--- log of server {s.name} ({s.url}) ---\n{s.log()}" for s in self.servers)

    def manage(self, *args: str) -> str:
        """Run ``manage.py ARGS`` as an operator would, in a process of its own; its stdout."""
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, (
            f"manage.py {' '.join(args)} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\n{self.logs()}"
        )
        return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp_dir = tmp_path_factory.mktemp("real-workers")
    flush_redis()
    with two_servers(
        tmp_dir,
        redis_url=REDIS_URL,
        secret_key="real-workers-tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        extra_env={"OAUTH_CC_STATE_REFRESH_SECONDS": str(REFRESH)},
    ) as site:
        yield site


@contextlib.contextmanager
def two_servers(
    tmp_dir: Path, *, redis_url: str, secret_key: str, extra_env: dict[str, str] | None = None
) -> Iterator[Site]:
    """Hosts A and B on a fresh database and ``redis_url``, migrated, with the default scope."""
    # One prefix per run: another run using the same Redis database cannot mix in.
    prefix = f"oauth-cc-workers-{uuid.uuid4().hex}"
    with contextlib.ExitStack() as stack:
        stack.callback(forget_redis_keys, prefix, redis_url)
        database_url = stack.enter_context(fresh_database(tmp_dir))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "OAUTH_CC_CACHE_KEY_PREFIX": prefix,
            "OAUTH_CC_ISSUER": ISSUER,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secret_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        servers = []
        for name in ("A", "B"):
            server = start_server(name, env, tmp_dir)
            stack.callback(stop_server, server)
            servers.append(server)
        site = Site(a=servers[0], b=servers[1], env=env)
        # Migrate while the servers boot (nothing reaches the database before a request does).
        site.manage("migrate", "--noinput")
        site.manage("oauth_cc", "scope", "add", SCOPE, "--default")
        for server in servers:
            wait_until_ready(server)
        yield site


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str


@pytest.fixture
def new_client(site: Site, request: pytest.FixtureRequest) -> Callable[[], Client]:
    """Create an API client with the operator command, named after the test."""

    def create() -> Client:
        name = f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"
        data = json.loads(site.manage("oauth_cc", "client", "create", name, "--scope", SCOPE, "--json"))
        return Client(client_id=data["client_id"], secret=data["client_secret"])

    return create


# -- HTTP --------------------------------------------------------------------------------------


def request_token(server: Server, client: Client) -> requests.Response:
    return requests.post(
        f"{server.url}/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
        timeout=HTTP_TIMEOUT,
    )


def whoami(server: Server, token: str) -> requests.Response:
    return requests.get(
        f"{server.url}/api/whoami/", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )


def describe(response: requests.Response) -> str:
    return (
        f"{response.status_code} WWW-Authenticate={response.headers.get('WWW-Authenticate')!r} "
        f"body={response.text[:500]!r}"
    )


def issue(site: Site, server: Server, client: Client) -> str:
    response = request_token(server, client)
    assert response.status_code == 200, f"token from {server.name}: {describe(response)}\n{site.logs()}"
    return response.json()["access_token"]


def assert_accepted(site: Site, server: Server, token: str, client: Client) -> None:
    response = whoami(server, token)
    assert response.status_code == 200, (
        f"{server.name} refused the token: {describe(response)}\n{site.logs()}"
    )
    assert response.json() == {"client_id": client.client_id, "scopes": [SCOPE]}


def bearer_error(response: requests.Response) -> tuple[str | None, str]:
    """``(error, error_description)`` of an RFC 6750 ``WWW-Authenticate: Bearer`` challenge."""
    header = response.headers.get("WWW-Authenticate", "")
    error = re.search(r'(?<![\w-])error="([^"]*)"', header)
    description = re.search(r'error_description="((?:[^"\\]|\\.)*)"', header)
    return (error.group(1) if error else None), (description.group(1) if description else "")


@dataclass
class Outcome:
    """What a server answered when polling stopped, and how long after the change."""

    response: requests.Response
    elapsed: float


def poll_each(
    servers: tuple[Server, ...],
    probe: Callable[[Server], requests.Response],
    done: Callable[[requests.Response], bool],
    *,
    since: float,
) -> dict[str, Outcome]:
    """Probe every server in turn until each gives a ``done`` answer or DEADLINE has passed."""
    outcomes: dict[str, Outcome] = {}
    pending = list(servers)
    while pending:
        for server in list(pending):
            response = probe(server)
            elapsed = time.monotonic() - since
            outcomes[server.name] = Outcome(response, elapsed)
            if done(response):
                pending.remove(server)
        if pending:
            if time.monotonic() - since > DEADLINE:
                break
            time.sleep(POLL_INTERVAL)
    return outcomes


def refused(response: requests.Response) -> bool:
    return response.status_code != 200


def assert_token_refused(site: Site, outcomes: dict[str, Outcome], reason: str) -> None:
    """Every server refused the token with 401 invalid_token for ``reason``, within BOUND."""
    for name, outcome in outcomes.items():
        response = outcome.response
        explain = (
            f"server {name}, {outcome.elapsed:.2f} s after the change: {describe(response)}\n{site.logs()}"
        )
        assert response.status_code == 401, explain
        error, description = bearer_error(response)
        assert error == "invalid_token", explain
        assert reason in description, explain
        assert outcome.elapsed < BOUND, (
            f"refused only after {outcome.elapsed:.2f} s (bound {BOUND} s); {explain}"
        )


def assert_client_refused(site: Site, outcomes: dict[str, Outcome], reason: str = "") -> None:
    """Every token endpoint answered 401 invalid_client (for ``reason``), within BOUND."""
    for name, outcome in outcomes.items():
        response = outcome.response
        explain = f"token endpoint of {name}, {outcome.elapsed:.2f} s after the change: {describe(response)}"
        explain += f"\n{site.logs()}"
        assert response.status_code == 401, explain
        body = response.json()
        assert body["error"] == "invalid_client", explain
        assert reason in body.get("error_description", ""), explain
        assert outcome.elapsed < BOUND, (
            f"refused only after {outcome.elapsed:.2f} s (bound {BOUND} s); {explain}"
        )


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT)
def test_token_issued_by_one_server_is_accepted_by_the_other(site: Site, new_client):
    client = new_client()
    # Both servers warm: each has issued and checked a token, so keys and state are loaded.
    for server in site.servers:
        assert_accepted(site, server, issue(site, server, client), client)

    token = issue(site, site.a, client)

    assert_accepted(site, site.b, token, client)
    assert_accepted(site, site.a, token, client)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_token_revoked_on_one_server_is_refused_by_the_other_within_the_refresh_delay(site: Site, new_client):
    client = new_client()
    token = issue(site, site.a, client)
    assert_accepted(site, site.b, token, client)  # B has verified and memoised it
    assert_accepted(site, site.b, token, client)  # and accepts it from its memo just before the revocation

    revoked = requests.post(
        f"{site.a.url}/oauth/revoke/",
        data={"token": token},
        auth=(client.client_id, client.secret),
        timeout=HTTP_TIMEOUT,
    )
    since = time.monotonic()
    assert revoked.status_code == 200, f"revoke: {describe(revoked)}\n{site.logs()}"
    # A, which recorded the revocation, refuses the token at once: the revocation did happen.
    assert_token_refused(site, {"A": Outcome(whoami(site.a, token), 0.0)}, "revoked")

    outcomes = poll_each((site.b,), lambda server: whoami(server, token), refused, since=since)

    assert_token_refused(site, outcomes, "revoked")


@pytest.mark.timeout(TEST_TIMEOUT)
def test_disabled_client_is_refused_by_every_server_within_the_refresh_delay(site: Site, new_client):
    client = new_client()
    token = issue(site, site.a, client)
    for server in site.servers:
        assert_accepted(site, server, token, client)  # memoised on both
        issue(site, server, client)  # the client is in both servers' client caches

    site.manage("oauth_cc", "client", "disable", client.client_id)
    since = time.monotonic()

    tokens = poll_each(site.servers, lambda server: whoami(server, token), refused, since=since)
    new_tokens = poll_each(site.servers, lambda server: request_token(server, client), refused, since=since)

    assert_token_refused(site, tokens, "disabled")
    assert_client_refused(site, new_tokens, "disabled")


@pytest.mark.timeout(TEST_TIMEOUT)
def test_deleted_clients_token_is_refused_by_every_server_within_the_refresh_delay(site: Site, new_client):
    client = new_client()
    token = issue(site, site.a, client)
    for server in site.servers:
        assert_accepted(site, server, token, client)
        issue(site, server, client)

    site.manage("oauth_cc", "client", "delete", client.client_id)
    since = time.monotonic()

    tokens = poll_each(site.servers, lambda server: whoami(server, token), refused, since=since)
    new_tokens = poll_each(site.servers, lambda server: request_token(server, client), refused, since=since)

    assert_token_refused(site, tokens, "has been deleted")
    assert_client_refused(site, new_tokens)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_token_signed_with_a_rotated_in_key_is_accepted_by_the_other_server_without_a_restart(
    site: Site, new_client
):
    client = new_client()
    old_token = issue(site, site.a, client)
    for server in site.servers:
        assert_accepted(site, server, old_token, client)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    output = site.manage("oauth_cc", "key", "rotate")
    since = time.monotonic()
    new_kid = re.search(r"Now signing with key (\w+);", output)
    retired_kid = re.search(r"Retired key (\w+) ", output)
    assert new_kid and retired_kid, output
    new_kid, retired_kid = new_kid.group(1), retired_kid.group(1)
    # The old token was signed by the key the rotation retired.
    assert old_kid == retired_kid and new_kid != old_kid, output

    # A signs with the new key once its signer has refreshed.
    signed = poll_each(
        (site.a,),
        lambda server: request_token(server, client),
        lambda response: (
            response.status_code != 200
            or jwt.get_unverified_header(response.json()["access_token"])["kid"] == new_kid
        ),
        since=since,
    )["A"]
    explain = f"{signed.elapsed:.2f} s after the rotation: {describe(signed.response)}\n{site.logs()}"
    assert signed.response.status_code == 200, explain
    new_token = signed.response.json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid, explain
    assert signed.elapsed < BOUND, f"A still signed with the old key after {signed.elapsed:.2f} s; {explain}"

    accepted = poll_each(
        (site.b,), lambda server: whoami(server, new_token), lambda r: r.status_code == 200, since=since
    )["B"]

    explain = f"{accepted.elapsed:.2f} s after the rotation: {describe(accepted.response)}\n{site.logs()}"
    assert accepted.response.status_code == 200, explain
    assert accepted.response.json() == {"client_id": client.client_id, "scopes": [SCOPE]}, explain
    assert accepted.elapsed < BOUND, f"B accepted it only after {accepted.elapsed:.2f} s; {explain}"
    # A token signed before the rotation, with the now retired key, is still good everywhere.
    for server in site.servers:
        assert_accepted(site, server, old_token, client)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_secret_rotated_on_one_host_is_honoured_by_the_other_within_the_refresh_delay(site: Site, new_client):
    client = new_client()
    for server in site.servers:
        issue(site, server, client)  # the old secret is in both servers' secret caches

    rotated = json.loads(
        site.manage("oauth_cc", "client", "rotate-secret", client.client_id, "--grace", "0", "--json")
    )
    since = time.monotonic()
    new = Client(client_id=client.client_id, secret=rotated["client_secret"])
    assert new.secret != client.secret

    old_refused = poll_each(site.servers, lambda server: request_token(server, client), refused, since=since)

    assert_client_refused(site, old_refused)
    for server in site.servers:
        assert_accepted(site, server, issue(site, server, new), new)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_client_assertion_used_on_one_host_is_refused_on_the_other(site: Site, tmp_path: Path):
    from tests.assertion_helpers import assertion_claims, generate_key, jwks_of

    key = generate_key("ES256")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(key)))
    name = f"assertion-replay-{uuid.uuid4().hex[:6]}"
    data = json.loads(
        site.manage(
            "oauth_cc", "client", "create", name, "--scope", SCOPE, "--jwks-file", str(jwks_file), "--json"
        )
    )
    client_id = data["client_id"]

    def post(server: Server, assertion: str) -> requests.Response:
        return requests.post(
            f"{server.url}/oauth/token/",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
            timeout=HTTP_TIMEOUT,
        )

    # Both hosts have the client and its keys loaded, so B has nothing left to fetch.
    for server in site.servers:
        warm = post(server, key.sign(assertion_claims(client_id, ISSUER)))
        assert warm.status_code == 200, f"{server.name}: {describe(warm)}\n{site.logs()}"

    assertion = key.sign(assertion_claims(client_id, ISSUER))
    first = post(site.a, assertion)
    assert first.status_code == 200, f"A: {describe(first)}\n{site.logs()}"

    replayed = post(site.b, assertion)

    explain = f"B: {describe(replayed)}\n{site.logs()}"
    assert replayed.status_code == 401, explain
    assert replayed.json()["error"] == "invalid_client", explain
    assert "already been used" in replayed.json()["error_description"], explain


@pytest.mark.timeout(TEST_TIMEOUT)
def test_token_limit_is_counted_once_for_both_hosts(site: Site):
    name = f"limited-{uuid.uuid4().hex[:6]}"
    data = json.loads(
        site.manage(
            "oauth_cc", "client", "create", name, "--scope", SCOPE, "--token-limit", "4/hour", "--json"
        )
    )
    client = Client(client_id=data["client_id"], secret=data["client_secret"])

    answers = [request_token(server, client) for server in (site.a, site.b) * 4]

    statuses = [response.status_code for response in answers]
    assert statuses == [200, 200, 200, 200, 429, 429, 429, 429], (
        f"{[describe(response) for response in answers]}\n{site.logs()}"
    )
    refused = answers[4].json()
    assert refused["error"] == "too_many_requests", describe(answers[4])
    assert int(answers[4].headers["Retry-After"]) >= 1
    # Both hosts refused from the one count in Redis: each says none of the 4 is left.
    for response in answers[4:]:
        assert response.headers["RateLimit"].startswith('"token";r=0;'), describe(response)


def request_scoped_token(server: Server, client: Client) -> requests.Response:
    return requests.post(
        f"{server.url}/oauth/token/",
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=(client.client_id, client.secret),
        timeout=HTTP_TIMEOUT,
    )


@pytest.mark.timeout(TEST_TIMEOUT)
def test_revoked_secret_is_refused_by_every_server_within_the_refresh_delay(site: Site, new_client):
    from oauth_cc.issuer.secrets import secret_prefix

    client = new_client()
    for server in site.servers:
        issue(site, server, client)  # the client and its secret are in both servers' caches

    site.manage("oauth_cc", "client", "revoke-secret", client.client_id, secret_prefix(client.secret))
    since = time.monotonic()

    outcomes = poll_each(site.servers, lambda server: request_token(server, client), refused, since=since)

    assert_client_refused(site, outcomes, "This client secret has been revoked.")


@pytest.mark.timeout(TEST_TIMEOUT)
def test_scope_removed_in_another_process_is_refused_by_every_server_within_the_refresh_delay(
    site: Site, new_client
):
    client = new_client()
    for server in site.servers:
        assert request_scoped_token(server, client).status_code == 200

    # Through the ORM in a process of its own, as the admin's form does (m2m_changed).
    site.manage(
        "shell",
        "-c",
        "from oauth_cc.models import Application; "
        f"Application.objects.get(client_id={client.client_id!r}).scopes.clear()",
    )
    since = time.monotonic()

    outcomes = poll_each(
        site.servers, lambda server: request_scoped_token(server, client), refused, since=since
    )

    for name, outcome in outcomes.items():
        explain = (
            f"{name}, {outcome.elapsed:.2f} s after the change: {describe(outcome.response)}\n{site.logs()}"
        )
        assert outcome.response.status_code == 400, explain
        assert outcome.response.json()["error"] == "invalid_scope", explain
        assert outcome.elapsed < BOUND, (
            f"refused only after {outcome.elapsed:.2f} s (bound {BOUND} s); {explain}"
        )
