"""The database goes down under a real server, and comes back: no 500, no HTML, no restart.

A gunicorn server (one sync worker, ``CONN_MAX_AGE`` 600 as in the example project) reaches
PostgreSQL through a TCP proxy run by this test. Stopping the proxy makes the database really
unreachable for the server: new connections are refused and the open one is reset, exactly as
when PostgreSQL goes away. Nothing is mocked.

What is checked (see ``oauth_cc/issuer/outage.py`` for the rules):

* while the worker's held state is younger than ``STALE_STATE_MAX_SECONDS``: tokens are issued to
  a client it holds, a valid token is accepted, a token revoked before the outage stays refused,
  introspection answers from state, while revocation, a private_key_jwt assertion (its
  single-use record) and the metadata's scope list get a JSON 503 ``temporarily_unavailable``
  with ``Retry-After``; a token with a kid the worker does not hold gets 503, never 200;
* a second, cold worker (started before the outage, never used) holds nothing: 503 everywhere
  state is needed;
* past ``STALE_STATE_MAX_SECONDS``: 503 for the token endpoint and the protected view too;
* at no time a 5xx other than 503, or anything but JSON (RFC 7009's empty 200 aside);
* the outage is logged once, its end once, and no traceback;
* when the proxy is back, the same server issues tokens again within the retry interval, and the
  assertion refused during the outage is accepted once (it was never recorded) and then refused.

The server's database is a PostgreSQL database of its own, created and dropped here, also when
the suite runs on SQLite; PostgreSQL that is not reachable fails the test, never skips it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests.assertion_helpers import assertion_claims, generate_key, jwks_of
from tests.test_real_workers import Server, start_server, stop_server, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"
ISSUER = "http://127.0.0.1"
SCOPE = "reports:read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"

#: The server's STATE_REFRESH_SECONDS: also its retry interval and its Retry-After.
REFRESH = 0.5
#: The server's STALE_STATE_MAX_SECONDS: long enough for the checks made inside it on a busy
#: two-core machine, short enough to wait out.
STALE_MAX = 8.0
#: The database must be in use again this soon after the proxy is back: one retry interval,
#: plus a request's time on a busy machine.
RECOVERY_BOUND = REFRESH + 2.0
HTTP_TIMEOUT = 15
UNAVAILABLE = "The authorization server cannot reach its database right now; retry shortly."
COMMAND_TIMEOUT = 120


# -- a TCP proxy that can be switched off ---------------------------------------------------------


class Proxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`stop` makes the port refuse connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after a stop
        listener.listen(64)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._running.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket (connections refused) and reset every open connection."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    # Linger 0: close with a RST, as a vanished server's host would answer.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            downstream.settimeout(None)
            with self._lock:
                self._open.update((downstream, upstream))
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            while True:
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                self._open.discard(a)
                self._open.discard(b)
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


# -- set-up ------------------------------------------------------------------------------------


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url and dj_database_url.parse(url)["ENGINE"] == "django.db.backends.postgresql":
        return url
    return DEFAULT_POSTGRES


@contextlib.contextmanager
def outage_database() -> Iterator[tuple[str, tuple[str, int]]]:
    """A new PostgreSQL database: ``(url, (host, port))``; dropped afterwards. Fails if unreachable."""
    import psycopg

    url = _postgres_url()
    config = dj_database_url.parse(url)
    host, port = str(config.get("HOST") or "127.0.0.1"), int(config.get("PORT") or 5432)
    server = {"host": host, "port": port, "user": config.get("USER"), "password": config.get("PASSWORD")}
    server = {name: value for name, value in server.items() if value}
    name = f"oauth_cc_outage_{os.getpid()}"

    def drop(*, then_create: bool) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **server) as conn:
            force = "WITH (FORCE)" if conn.info.server_version >= 130000 else ""
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" {force}')
            if then_create:
                conn.execute(f'CREATE DATABASE "{name}"')

    try:
        drop(then_create=True)
    except psycopg.Error as exc:
        pytest.fail(
            f"This test needs PostgreSQL at {host}:{port}: {type(exc).__name__}: {exc}", pytrace=False
        )
    try:
        yield urlsplit(url)._replace(path=f"/{name}", query="").geturl(), (host, port)
    finally:
        drop(then_create=False)


@dataclass
class Site:
    proxy: Proxy
    warm: Server
    cold: Server
    env: dict[str, str]
    tmp_dir: Path

    def logs(self) -> str:
        return "\n".join(f"--- log of server {s.name} ---\n{s.log()}" for s in (self.warm, self.cold))

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.returncode}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp_dir = tmp_path_factory.mktemp("database-outage")
    with contextlib.ExitStack() as stack:
        direct_url, target = stack.enter_context(outage_database())
        proxy = Proxy(target)
        proxy.start()
        stack.callback(proxy.stop)
        base_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.outage_settings",
            "OAUTH_CC_ISSUER": ISSUER,
            "OAUTH_CC_STATE_REFRESH_SECONDS": str(REFRESH),
            "OAUTH_CC_STALE_STATE_MAX_SECONDS": str(STALE_MAX),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "database-outage-tests-only-secret-key-0123456789-abcdefghijklmnop",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
        # The servers go through the proxy, with the connect_timeout the README recommends.
        proxied = urlsplit(direct_url)._replace(
            netloc=f"{urlsplit(direct_url).username or 'postgres'}@127.0.0.1:{proxy.port}",
            query="connect_timeout=2",
        )
        server_env = {**base_env, "DATABASE_URL": proxied.geturl()}
        servers = []
        for name in ("warm", "cold"):
            server = start_server(name, server_env, tmp_dir)
            stack.callback(stop_server, server)
            servers.append(server)
        site = Site(proxy, servers[0], servers[1], {**base_env, "DATABASE_URL": direct_url}, tmp_dir)
        site.manage("migrate", "--noinput")
        site.manage("oauth_cc", "scope", "add", SCOPE, "--default")
        for server in servers:
            wait_until_ready(server)
        yield site


# -- HTTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creds:
    client_id: str
    secret: str


def token_request(server: Server, creds: Creds) -> requests.Response:
    return requests.post(
        f"{server.url}/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.secret),
        timeout=HTTP_TIMEOUT,
    )


def assertion_request(server: Server, assertion: str) -> requests.Response:
    return requests.post(
        f"{server.url}/oauth/token/",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=HTTP_TIMEOUT,
    )


def whoami(server: Server, token: str) -> requests.Response:
    return requests.get(
        f"{server.url}/api/whoami/", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )


def form(server: Server, path: str, creds: Creds, **data: str) -> requests.Response:
    return requests.post(
        f"{server.url}{path}", data=data, auth=(creds.client_id, creds.secret), timeout=HTTP_TIMEOUT
    )


def show(response: requests.Response) -> str:
    return f"{response.status_code} {dict(response.headers)} {response.text[:300]!r}"


def assert_unavailable(site: Site, response: requests.Response, *, oauth: bool = True) -> None:
    """A JSON 503 with Retry-After: ``temporarily_unavailable``, or DRF's ``detail`` on a protected view."""
    assert response.status_code == 503, f"{show(response)}\n{site.logs()}"
    assert response.headers["Content-Type"] == "application/json", show(response)
    assert response.headers.get("Retry-After") == "1", show(response)  # ceil(REFRESH)
    body = response.json()
    if oauth:
        assert body == {"error": "temporarily_unavailable", "error_description": UNAVAILABLE}, body
        assert response.headers["Cache-Control"] == "no-store"
    else:
        assert body == {"detail": "The access token could not be checked right now; try again shortly."}, body


def made_up_kid_token() -> str:
    """A well-formed access token signed by a key nobody published."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "x",
        "client_id": "x",
        "aud": ISSUER,
        "exp": now + 600,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "scope": SCOPE,
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "at+jwt", "kid": "made-up-kid"})


def sweep(site: Site, server: Server, creds: Creds, token: str) -> list[str]:
    """Every endpoint, with good and bad input: what answered other than JSON 2xx/4xx/503."""
    url = server.url
    calls = [
        ("token", lambda: token_request(server, creds)),
        ("token bad secret", lambda: token_request(server, Creds(creds.client_id, "wrong"))),
        ("token unknown client", lambda: token_request(server, Creds("nobody", "wrong"))),
        ("token no auth", lambda: requests.post(f"{url}/oauth/token/", data={}, timeout=HTTP_TIMEOUT)),
        ("token GET", lambda: requests.get(f"{url}/oauth/token/", timeout=HTTP_TIMEOUT)),
        ("introspect", lambda: form(server, "/oauth/introspect/", creds, token=token)),
        ("introspect junk", lambda: form(server, "/oauth/introspect/", creds, token="junk")),
        ("revoke", lambda: form(server, "/oauth/revoke/", creds, token=token)),
        ("revoke junk", lambda: form(server, "/oauth/revoke/", creds, token="junk")),
        ("jwks", lambda: requests.get(f"{url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)),
        (
            "metadata",
            lambda: requests.get(f"{url}/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT),
        ),
        ("protected", lambda: whoami(server, token)),
        ("protected unknown kid", lambda: whoami(server, made_up_kid_token())),
        ("protected junk", lambda: whoami(server, "junk")),
        ("protected no token", lambda: requests.get(f"{url}/api/whoami/", timeout=HTTP_TIMEOUT)),
        ("reports", lambda: requests.get(f"{url}/api/reports/", timeout=HTTP_TIMEOUT)),
    ]
    wrong = []
    for name, call in calls:
        response = call()
        status = response.status_code
        if not (200 <= status < 500 or status == 503):
            wrong.append(f"{name}: {show(response)}")
        elif response.content:  # RFC 7009: a revocation's 200 has an empty body
            if response.headers.get("Content-Type") != "application/json":
                wrong.append(f"{name}: not JSON: {show(response)}")
            else:
                json.loads(response.content)
    return wrong


def wait_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


@pytest.mark.timeout(300)
def test_database_outage_and_recovery(site: Site) -> None:
    server, cold = site.warm, site.cold
    created = json.loads(
        site.manage("oauth_cc", "client", "create", "outage", "--scope", SCOPE, "--introspect", "--json")
    )
    creds = Creds(created["client_id"], created["client_secret"])
    client_key = generate_key("ES256")
    jwks_file = site.tmp_dir / "client-jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(client_key)))
    pk_client = json.loads(
        site.manage(
            "oauth_cc",
            "client",
            "create",
            "outage-pkjwt",
            "--scope",
            SCOPE,
            "--jwks-file",
            str(jwks_file),
            "--json",
        )
    )["client_id"]
    audience = f"{ISSUER}/oauth/token/"

    # -- before: warm the worker (client, secret, keys, revocation state), revoke one token.
    first = token_request(server, creds)
    assert first.status_code == 200, f"{show(first)}\n{site.logs()}"
    revoked = token_request(server, creds).json()["access_token"]
    assert form(server, "/oauth/revoke/", creds, token=revoked).status_code == 200
    assert whoami(server, revoked).status_code == 401
    warm_up = assertion_request(server, client_key.sign(assertion_claims(pk_client, audience)))
    assert warm_up.status_code == 200, show(warm_up)
    token = token_request(server, creds).json()["access_token"]
    assert whoami(server, token).status_code == 200
    assert requests.get(f"{server.url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT).status_code == 200

    # -- the database goes away.
    site.proxy.stop()
    stopped = time.monotonic()

    # Served from what the worker holds.
    issued = token_request(server, creds)
    assert issued.status_code == 200, f"token from held state: {show(issued)}\n{site.logs()}"
    new_token = issued.json()["access_token"]
    for held_token in (token, new_token):
        accepted = whoami(server, held_token)
        assert accepted.status_code == 200, f"{show(accepted)}\n{site.logs()}"
        assert accepted.json() == {"client_id": creds.client_id, "scopes": [SCOPE]}
    refused = whoami(server, revoked)
    assert refused.status_code == 401, show(refused)
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "revoked" in refused.json()["detail"]
    active = form(server, "/oauth/introspect/", creds, token=token)
    assert active.status_code == 200 and active.json()["active"] is True, show(active)
    inactive = form(server, "/oauth/introspect/", creds, token=revoked)
    assert inactive.status_code == 200 and inactive.json() == {"active": False}, show(inactive)
    # A secret the worker has not seen may be a valid one it never loaded: it cannot tell.
    assert_unavailable(site, token_request(server, Creds(creds.client_id, "not-the-secret")))
    assert_unavailable(site, token_request(server, Creds("nobody", "no-secret")))
    jwks = requests.get(f"{server.url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
    assert jwks.status_code == 200 and jwks.json()["keys"], show(jwks)

    # Writes and what the worker does not hold: 503, never accepted.
    assert_unavailable(site, form(server, "/oauth/revoke/", creds, token=token))
    assert whoami(server, token).status_code == 200  # the refused revocation changed nothing
    assertion = client_key.sign(assertion_claims(pk_client, audience))
    assert_unavailable(site, assertion_request(server, assertion))
    assert_unavailable(site, requests.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=15))
    assert_unavailable(site, whoami(server, made_up_kid_token()), oauth=False)

    # A cold worker holds nothing: it cannot issue or check anything.
    assert_unavailable(site, token_request(cold, creds))
    assert_unavailable(site, whoami(cold, token), oauth=False)
    assert_unavailable(site, requests.get(f"{cold.url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT))

    problems = sweep(site, server, creds, token) + sweep(site, cold, creds, token)
    within = time.monotonic() - stopped
    assert within < STALE_MAX, (
        f"the held-state checks took {within:.1f}s, longer than STALE_STATE_MAX_SECONDS"
    )
    assert not problems, "\n".join(problems)

    # -- past STALE_STATE_MAX_SECONDS nothing held is served any more.
    wait_until(stopped + STALE_MAX + 1.0)
    assert_unavailable(site, token_request(server, creds))
    assert_unavailable(site, whoami(server, token), oauth=False)
    assert_unavailable(site, requests.get(f"{server.url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT))
    problems = sweep(site, server, creds, token)
    assert not problems, "\n".join(problems)

    # -- the database comes back: no restart.
    site.proxy.start()
    restored = time.monotonic()
    while True:
        response = token_request(server, creds)
        if response.status_code == 200 or time.monotonic() - restored > 10 * RECOVERY_BOUND:
            break
        time.sleep(0.05)
    recovered_after = time.monotonic() - restored
    assert response.status_code == 200, f"not recovered: {show(response)}\n{site.logs()}"
    assert recovered_after <= RECOVERY_BOUND, f"recovered only after {recovered_after:.2f}s"
    assert whoami(server, token).status_code == 200
    assert whoami(server, revoked).status_code == 401
    # Refused during the outage, so never recorded: accepted now, once.
    assert assertion_request(server, assertion).status_code == 200, site.logs()
    replayed = assertion_request(server, assertion)
    assert replayed.status_code == 401 and "already been used" in replayed.json()["error_description"]
    assert form(server, "/oauth/revoke/", creds, token=token).status_code == 200
    assert whoami(server, token).status_code == 401
    assert token_request(cold, creds).status_code == 200

    # -- the log: the outage once, its end once, no traceback, nothing secret.
    log = server.log(limit=1_000_000)
    assert log.count("oauth_cc cannot reach the database") == 1, log
    assert log.count("oauth_cc reaches the database again") == 1, log
    assert "Traceback" not in log and "Unexpected error" not in log, log
    for secret in (creds.secret, token, assertion):
        assert secret not in log
