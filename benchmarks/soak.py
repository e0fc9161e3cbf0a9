#!/usr/bin/env python3
"""Soak: signing-key and secret rotation under token and protected-view load, two hosts.

Two gunicorn servers ("hosts" A and B, two sync workers each) share one PostgreSQL database
and one Redis cache, as the hosts of one site do. Load threads ask for tokens and call a
protected view, alternating hosts, and always check a token on the host that did *not* issue
it. Meanwhile an operator thread, in its own processes, as an operator would:

* ``manage.py oauth_cc key rotate`` every ``--key-every`` seconds;
* ``manage.py oauth_cc client rotate-secret CLIENT --grace G`` every ``--secret-every``
  seconds; the load switches to the new secret after a random delay within the first half
  of the grace period, as a client whose deployment picks it up would;
* after each secret rotation's grace period, checks that the old secret is refused
  (401 invalid_client) on both hosts, so a rotation that never took effect is not "zero
  failures".

Every answer that is not the expected one counts as a failure and is printed (the first few
of each kind). Exit status 0 when no request failed, 1 otherwise, 3 when set-up failed.

Usage (from the repo top, with the project's virtualenv active; needs PostgreSQL and Redis):

    python benchmarks/soak.py [--duration 60] [--threads 4] [--refresh 1.0]
                              [--key-every 10] [--secret-every 12] [--grace 6]
                              [--database-url postgres://postgres@127.0.0.1:5432/oauth_cc_soak]
                              [--redis-url redis://127.0.0.1:6379/13] [--json FILE]

The database named in --database-url is dropped and created again; the Redis database is
flushed. Only the standard library, ``requests``, ``psycopg`` and ``redis`` are used.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HOST, REPO_ROOT, Gunicorn, SetupError, base_env, free_port, log, run_checked

SCOPE = "reports:read"
PROTECTED_PATH = "/api/ping/"
TOKEN_PATH = "/oauth/token/"
ISSUER = f"http://{HOST}"
EXIT_OK, EXIT_FAILED, EXIT_SETUP_FAILED = 0, 1, 3


@dataclass
class Tally:
    """Counts shared by the load threads; every change under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ok: collections.Counter = field(default_factory=collections.Counter)
    failed: collections.Counter = field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    kids: set[str] = field(default_factory=set)
    events: list[str] = field(default_factory=list)

    def success(self, kind: str) -> None:
        with self.lock:
            self.ok[kind] += 1

    def failure(self, kind: str, detail: str) -> None:
        with self.lock:
            self.failed[kind] += 1
            if len(self.examples[kind]) < 5:
                self.examples[kind].append(detail[:400])

    def event(self, text: str) -> None:
        log(text)
        with self.lock:
            self.events.append(f"{time.strftime('%H:%M:%S')} {text}")


class Credentials:
    """The secret the load uses now; switched by the operator thread."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id = client_id
        self._secret = secret
        self._lock = threading.Lock()

    @property
    def secret(self) -> str:
        with self._lock:
            return self._secret

    def switch(self, secret: str) -> None:
        with self._lock:
            self._secret = secret


def _kid(token: str) -> str:
    import base64

    header = token.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def load_thread(
    index: int, hosts: list[str], creds: Credentials, tally: Tally, stop: threading.Event
) -> None:
    """Alternate: a token from one host, then use it (and an older one) on the other host."""
    session = requests.Session()
    older: str | None = None  # a token from a few rounds ago, signed before a rotation perhaps
    round_ = index
    while not stop.is_set():
        issuer_host, checker_host = hosts[round_ % 2], hosts[(round_ + 1) % 2]
        round_ += 1
        secret = creds.secret
        try:
            response = session.post(
                issuer_host + TOKEN_PATH,
                data={"grant_type": "client_credentials", "scope": SCOPE},
                auth=(creds.client_id, secret),
                timeout=30,
            )
        except requests.RequestException as exc:
            tally.failure("token", f"{issuer_host}: {type(exc).__name__}: {exc}")
            continue
        if response.status_code != 200:
            tally.failure("token", f"{issuer_host}: {response.status_code} {response.text[:300]}")
            continue
        tally.success("token")
        token = response.json()["access_token"]
        with tally.lock:
            tally.kids.add(_kid(token))
        for kind, candidate in (("protected", token), ("protected-older", older)):
            if candidate is None:
                continue
            try:
                checked = session.get(
                    checker_host + PROTECTED_PATH,
                    headers={"Authorization": f"Bearer {candidate}"},
                    timeout=30,
                )
            except requests.RequestException as exc:
                tally.failure(kind, f"{checker_host}: {type(exc).__name__}: {exc}")
                continue
            if checked.status_code == 200:
                tally.success(kind)
            else:
                tally.failure(
                    kind,
                    f"{checker_host}: {checked.status_code} kid={_kid(candidate)} "
                    f"{checked.headers.get('WWW-Authenticate')} {checked.text[:200]}",
                )
        if round_ % 20 == 0:
            older = token


def manage(env: dict[str, str], *args: str) -> str:
    return run_checked(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, timeout=120, what=" ".join(args[:3])
    )


def operator_thread(
    env: dict[str, str],
    hosts: list[str],
    creds: Credentials,
    tally: Tally,
    stop: threading.Event,
    args: argparse.Namespace,
) -> None:
    started = time.monotonic()
    next_key = started + args.key_every
    next_secret = started + args.secret_every
    pending_checks: list[tuple[float, str]] = []  # (when, old secret) to check refused
    switches: list[tuple[float, str]] = []
    while not stop.wait(0.1):
        now = time.monotonic()
        for when, new_secret in list(switches):
            if now >= when:
                creds.switch(new_secret)
                switches.remove((when, new_secret))
                tally.event("load switched to the new secret")
        for when, old_secret in list(pending_checks):
            if now < when:
                continue
            pending_checks.remove((when, old_secret))
            for host in hosts:
                response = requests.post(
                    host + TOKEN_PATH,
                    data={"grant_type": "client_credentials", "scope": SCOPE},
                    auth=(creds.client_id, old_secret),
                    timeout=30,
                )
                body = (
                    response.json()
                    if response.headers.get("Content-Type", "").startswith("application/json")
                    else {}
                )
                if response.status_code == 401 and body.get("error") == "invalid_client":
                    tally.success("old-secret-refused")
                else:
                    tally.failure(
                        "old-secret-refused", f"{host}: {response.status_code} {response.text[:200]}"
                    )
        try:
            if now >= next_key:
                next_key = now + args.key_every
                output = manage(env, "oauth_cc", "key", "rotate")
                tally.success("key-rotation")
                tally.event("key rotated: " + output.strip().splitlines()[0][:120])
            if now >= next_secret:
                next_secret = now + args.secret_every
                old_secret = creds.secret
                data = json.loads(
                    manage(
                        env,
                        "oauth_cc",
                        "client",
                        "rotate-secret",
                        creds.client_id,
                        "--grace",
                        str(args.grace),
                        "--json",
                    )
                )
                tally.success("secret-rotation")
                delay = random.uniform(0, args.grace / 2)
                switches.append((time.monotonic() + delay, data["client_secret"]))
                # Checked a refresh interval and a margin after the grace period ends.
                pending_checks.append((time.monotonic() + args.grace + 2 * args.refresh + 1, old_secret))
                tally.event(f"secret rotated (grace {args.grace} s); switching in {delay:.1f} s")
        except SetupError as exc:
            tally.failure("operator", str(exc))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = {
        "host": parts.hostname or HOST,
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
    }
    if parts.password:
        server["password"] = parts.password
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    client.flushdb()
    client.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--threads", type=int, default=4, help="load threads")
    parser.add_argument("--refresh", type=float, default=1.0, help="OAUTH_CC STATE_REFRESH_SECONDS")
    parser.add_argument("--key-every", type=float, default=10.0, help="seconds between key rotations")
    parser.add_argument("--secret-every", type=float, default=12.0, help="seconds between secret rotations")
    parser.add_argument("--grace", type=int, default=6, help="grace period of each secret rotation")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/oauth_cc_soak")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.key_every <= 3 * args.refresh:
        parser.error("--key-every must be well above the refresh interval (each host must see the next key)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    env = base_env()
    env.update(
        DJANGO_SETTINGS_MODULE="tests.live_settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        OAUTH_CC_ISSUER=ISSUER,
        OAUTH_CC_STATE_REFRESH_SECONDS=str(args.refresh),
        OAUTH_CC_LOG_LEVEL="WARNING",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
        PYTHONPATH=str(REPO_ROOT),
    )
    servers: list[Gunicorn] = []
    try:
        log(f"soak: fresh database {args.database_url}, Redis {args.redis_url}")
        recreate_database(args.database_url)
        flush_redis(args.redis_url)
        manage(env, "migrate", "--noinput")
        manage(env, "oauth_cc", "scope", "add", SCOPE)
        created = json.loads(manage(env, "oauth_cc", "client", "create", "soak", "--scope", SCOPE, "--json"))
        for name in ("A", "B"):
            server = Gunicorn(
                "example_project.wsgi:application", REPO_ROOT, env, free_port(), tmp / f"{name}.log"
            )
            server.start()
            servers.append(server)
        for server in servers:
            server.wait_ready("/api/health/")
    except Exception as exc:  # any set-up failure ends the run with its reason
        log(f"soak: set-up failed: {exc}")
        for server in servers:
            server.stop()
        return EXIT_SETUP_FAILED

    hosts = [f"http://{HOST}:{server.port}" for server in servers]
    creds = Credentials(created["client_id"], created["client_secret"])
    tally = Tally()
    stop = threading.Event()
    threads = [
        threading.Thread(target=load_thread, args=(i, hosts, creds, tally, stop), daemon=True)
        for i in range(args.threads)
    ]
    threads.append(
        threading.Thread(target=operator_thread, args=(env, hosts, creds, tally, stop, args), daemon=True)
    )
    log(f"soak: {args.threads} load threads for {args.duration:.0f} s against {', '.join(hosts)}")
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        time.sleep(args.duration)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.monotonic() - started
        for server in servers:
            server.stop()

    total_ok = sum(tally.ok[k] for k in ("token", "protected", "protected-older"))
    total_failed = sum(tally.failed.values())
    result: dict[str, Any] = {
        "duration_s": round(elapsed, 1),
        "requests_ok": dict(tally.ok),
        "requests_failed": dict(tally.failed),
        "failed_total": total_failed,
        "signing_kids_seen": len(tally.kids),
        "load_requests_per_s": round(total_ok / elapsed, 1),
        "events": tally.events,
        "failure_examples": dict(tally.examples),
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("events",)}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    # A soak in which nothing rotated proves nothing.
    if tally.ok["key-rotation"] == 0 or tally.ok["secret-rotation"] == 0 or len(tally.kids) < 2:
        log("soak: no rotation happened during the run; make --duration longer")
        return EXIT_FAILED
    if tally.ok["old-secret-refused"] == 0:
        log("soak: no old secret was checked after its grace period; make --duration longer")
        return EXIT_FAILED
    return EXIT_OK if total_failed == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
