"""``make demo`` as a user runs it: both sites come up, a token for the resource service works
there, and Ctrl-C (SIGINT to make's process group, as a terminal sends it) stops both.

The run uses the virtualenv running the tests (``VENV``, with ``-o`` on its ``.installed``
stamp so make never reinstalls into it), free ports (``ADDR``, ``RESOURCE_ADDR``) and files in
a temporary directory (``DATABASE_URL``, ``RESOURCE_DATABASE_URL``, ``RESOURCE_ENV``), so it
leaves nothing in the repository.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
#: Migrations of two SQLite files and two Django start-ups on a busy two-core machine.
START_DEADLINE = 90.0
STOP_DEADLINE = 30.0
HTTP_TIMEOUT = 10
pytestmark = pytest.mark.timeout(240)
#: Runs make with SIGINT at its default action, as in a terminal's foreground job, even when the
#: tests run with SIGINT ignored (started in the background by a script), which would be inherited.
DEFAULT_SIGINT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_in_session(session: int) -> list[int]:
    """The processes still in make's session: make, its shells, and both servers (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    found.append(int(entry))
            except ProcessLookupError:
                continue
    return found


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    log_path: Path
    issuer: str
    resource: str
    resource_port: int
    issuer_port: int
    env_file: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(what: str, demo: Demo, ready: Callable[[], bool], deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if demo.process.poll() is not None:
            pytest.fail(f"make demo exited ({demo.process.returncode}) before {what}:\n{demo.log()}")
        if ready():
            return
        time.sleep(0.3)
    pytest.fail(f"{what}: not within {deadline} s:\n{demo.log()}")


def answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            requests.get(url, timeout=2)
        except requests.RequestException:
            return False
        return True

    return ready


def demo_env(tmp_path: Path) -> dict[str, str]:
    # Not the test run's settings (tests.settings, DJANGO_DEBUG=0, maybe PostgreSQL or Redis):
    # the demo's own defaults, as on a fresh machine, with its files in tmp_path.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "OAUTH_CC_", "MAKE", "MFLAGS"))
        and name not in ("DATABASE_URL", "RESOURCE_DATABASE_URL", "REDIS_URL")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'example.sqlite3'}"
    env["RESOURCE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'resource.sqlite3'}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    make = shutil.which("make")
    if make is None:
        pytest.fail("This test runs `make demo`: install GNU make.", pytrace=False)
    venv = Path(sys.prefix)
    if not (venv / "bin" / "python").exists():
        pytest.fail(
            f"The tests run outside a virtualenv ({sys.prefix}); make demo needs VENV.", pytrace=False
        )
    leftovers = ("example.sqlite3", "resource.sqlite3", ".demo-resource.env")  # make demo's defaults
    existing = {name for name in leftovers if (ROOT / name).exists()}
    issuer_port, resource_port = free_port(), free_port()
    env_file = tmp_path / "resource.env"
    log_path = tmp_path / "make-demo.log"
    command = [
        make,
        "--no-print-directory",
        # The stamp is older than pyproject.toml in a fresh checkout: make must not reinstall.
        "-o",
        str(venv / "bin" / ".installed"),
        "demo",
        f"VENV={venv}",
        f"ADDR=127.0.0.1:{issuer_port}",
        f"RESOURCE_ADDR=127.0.0.1:{resource_port}",
        f"RESOURCE_ENV={env_file}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", DEFAULT_SIGINT_EXEC, *command],
            cwd=ROOT,
            env=demo_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    site = Demo(
        process=process,
        log_path=log_path,
        issuer=f"http://127.0.0.1:{issuer_port}",
        resource=f"http://127.0.0.1:{resource_port}",
        issuer_port=issuer_port,
        resource_port=resource_port,
        env_file=env_file,
    )
    try:
        yield site
    finally:
        # Whatever the test left running (the test itself checks that SIGINT was enough).
        for pid in processes_in_session(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=STOP_DEADLINE)
    assert {name for name in leftovers if (ROOT / name).exists()} == existing


def walkthrough_value(log: str, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", log, re.MULTILINE)
    assert match, f"{name}= is not in the output of make demo:\n{log}"
    return match.group(1)


def ctrl_c(process: subprocess.Popen[bytes]) -> None:
    """What a terminal sends: SIGINT to every process of the foreground job."""
    os.killpg(process.pid, signal.SIGINT)


def term_to_make(process: subprocess.Popen[bytes]) -> None:
    """What a supervisor (or ``timeout make demo``) sends: SIGTERM to make alone."""
    process.terminate()


@pytest.mark.parametrize("stop", [ctrl_c, term_to_make])
def test_make_demo_serves_both_sites_and_stopping_make_stops_both(
    demo: Demo, stop: Callable[[subprocess.Popen[bytes]], None]
) -> None:
    wait_for(
        "the issuer answers",
        demo,
        answers(demo.issuer + "/.well-known/oauth-authorization-server"),
        START_DEADLINE,
    )
    wait_for("the resource service answers", demo, answers(demo.resource + "/api/ping/"), START_DEADLINE)
    log = demo.log()
    client = (walkthrough_value(log, "CLIENT_ID"), walkthrough_value(log, "CLIENT_SECRET"))
    assert walkthrough_value(log, "ISSUER") == demo.issuer
    assert walkthrough_value(log, "RESOURCE") == demo.resource

    for_resource = requests.post(
        demo.issuer + "/oauth/token/",
        data={"grant_type": "client_credentials", "resource": demo.resource},
        auth=client,
        timeout=HTTP_TIMEOUT,
    )
    assert for_resource.status_code == 200, for_resource.text
    token = for_resource.json()["access_token"]
    whoami = requests.get(
        demo.resource + "/api/whoami/", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
    )
    assert whoami.status_code == 200, whoami.text + "\n" + demo.log()
    assert whoami.json() == {"client_id": client[0], "scopes": ["reports:read"]}
    # The issuer's own audience stays the default, and the resource service refuses it.
    for_issuer = requests.post(
        demo.issuer + "/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=client,
        timeout=HTTP_TIMEOUT,
    ).json()["access_token"]
    refused = requests.get(
        demo.resource + "/api/whoami/",
        headers={"Authorization": f"Bearer {for_issuer}"},
        timeout=HTTP_TIMEOUT,
    )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # The resource service's secret is in its 0600 file, not in make's output.
    assert stat.S_IMODE(demo.env_file.stat().st_mode) == 0o600
    secret = re.search(
        r"^export OAUTH_CC_RESOURCE_CLIENT_SECRET=(\S+)$", demo.env_file.read_text(), re.MULTILINE
    )
    assert secret and secret.group(1).strip("'") not in demo.log()

    stop(demo.process)

    try:
        demo.process.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make demo still runs {STOP_DEADLINE} s after {stop.__name__}:\n{demo.log()}")
    end = time.monotonic() + STOP_DEADLINE
    while processes_in_session(demo.process.pid) and time.monotonic() < end:
        time.sleep(0.2)
    assert processes_in_session(demo.process.pid) == [], demo.log()
    assert not port_open(demo.issuer_port)
    assert not port_open(demo.resource_port)
