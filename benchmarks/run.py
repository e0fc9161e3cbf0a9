#!/usr/bin/env python3
"""Load-test oauth_cc's example project against stock django-oauth-toolkit.

Each site runs under the same gunicorn command (2 sync workers, access log
off, DEBUG off, SQLite file DB in a fresh temp dir) and is driven by ``wrk``
on 127.0.0.1 only. The script prints a table of req/s, p50 and p99 per
scenario, the throughput ratios with their targets, and the growth of each
oauth_cc worker's resident memory across the token and protected-view runs.

Usage (from the repo top, with the project's virtualenv active):

    python benchmarks/run.py [--duration 10] [--rounds 3] [--connections 8]
                             [--threads 1] [--soak SECONDS] [--only oauth_cc|dot]
                             [--json FILE]

Each scenario is run --rounds times, interleaved with the site's other
scenarios, and the best round is reported: outside load on the machine can
only slow a run down. The "other CPU" column shows how much CPU processes
outside the benchmark took during the reported run; above 10% it is flagged.

Exit status: 0 all targets met; 1 a target was missed or a scenario saw
errors; 2 ``wrk`` is not installed; 3 a site could not be set up or started.

Only the Python standard library and ``requests`` are used.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import requests

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DOT_SITE_DIR = BENCH_DIR / "dot_site"

# Every request this script makes, and every server it starts, is on loopback.
HOST = "127.0.0.1"

SCOPE = "reports:read"
WORKERS = 2
# Above this share of outside CPU use during a run, its figures are flagged.
NOISY_OTHER_CPU_PCT = 10.0

EXIT_OK = 0
EXIT_TARGET_MISSED = 1
EXIT_NO_WRK = 2
EXIT_SETUP_FAILED = 3


class SetupError(RuntimeError):
    """A site could not be prepared or started; the message says which step."""


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class WrkResult:
    scenario: str
    url: str
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    # Share of the machine's CPU capacity used by processes other than this
    # benchmark's gunicorn and wrk while the run lasted (see CpuMeter).
    other_cpu_pct: float | None = None
    # req/s of every round of this scenario; the row reports the best one.
    rounds_rps: list[float] = field(default_factory=list)
    # wrk's own report, kept for the --json file (latency spread, Req/Sec).
    wrk_output: str = ""

    @property
    def ok(self) -> bool:
        # Throughput only means something if every response was a success:
        # a fast 401 or 500 would otherwise look like a win.
        return (
            self.error is None
            and self.requests > 0
            and self.non_2xx_3xx == 0
            and not any(self.socket_errors.values())
        )

    def problem(self) -> str:
        if self.error:
            return self.error
        parts = []
        if self.requests == 0:
            parts.append("no completed requests")
        if self.non_2xx_3xx:
            parts.append(f"{self.non_2xx_3xx} non-2xx/3xx responses")
        errs = {k: v for k, v in self.socket_errors.items() if v}
        if errs:
            parts.append("socket errors " + ", ".join(f"{k} {v}" for k, v in errs.items()))
        return "; ".join(parts)


@dataclass
class MemoryReport:
    site: str
    before_kib: dict[int, int]
    after_kib: dict[int, int]
    threshold_mib: float | None
    load_seconds: float
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def same_workers(self) -> bool:
        # A worker that died and was replaced starts small again, which would
        # hide a leak; growth is only meaningful for the same processes.
        return bool(self.before_kib) and set(self.before_kib) == set(self.after_kib)

    @property
    def growth_mib(self) -> dict[int, float]:
        return {
            pid: (self.after_kib[pid] - self.before_kib[pid]) / 1024
            for pid in self.before_kib
            if pid in self.after_kib
        }

    @property
    def max_growth_mib(self) -> float | None:
        growth = self.growth_mib
        return max(growth.values()) if growth else None

    @property
    def passed(self) -> bool | None:
        if self.threshold_mib is None:
            return None
        top = self.max_growth_mib
        return self.same_workers and top is not None and top < self.threshold_mib


@dataclass(frozen=True)
class Ratio:
    label: str
    numerator: str
    denominator: str
    target: float | None  # None: reported for information only


# Targets from the project's goals; see benchmarks/README.md for what each means.
RATIOS = [
    Ratio("oauth_cc protected / oauth_cc unauth", "oauth_cc protected", "oauth_cc unauth", 0.95),
    Ratio("oauth_cc token / oauth_cc unauth", "oauth_cc token", "oauth_cc unauth", 0.8),
    Ratio("oauth_cc protected / DOT protected", "oauth_cc protected", "DOT protected", None),
    Ratio("oauth_cc token / DOT token plain", "oauth_cc token", "DOT token plain", 8.0),
    Ratio("oauth_cc token / DOT token hashed", "oauth_cc token", "DOT token hashed", 500.0),
]


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def paired_ratio(num: WrkResult, den: WrkResult) -> float:
    """``num / den`` in req/s, robust to the machine's drift.

    Scenarios of one site run interleaved, so round i of the numerator ran moments after
    round i of the denominator, under the same outside load. The median of those per-round
    ratios is therefore steadier than a ratio of two best rounds, which may come from
    different moments (one lucky denominator round alone can fail a target). Scenarios of
    different sites never share a round; for them it is the ratio of the best rounds.
    """
    same_site = num.scenario.split()[0] == den.scenario.split()[0]
    rounds = len(num.rounds_rps)
    if same_site and rounds and rounds == len(den.rounds_rps) and all(den.rounds_rps):
        return statistics.median(n / d for n, d in zip(num.rounds_rps, den.rounds_rps, strict=True))
    return num.rps / den.rps


def log(msg: str) -> None:
    # Progress goes to stderr so stdout carries only the final report.
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def run_checked(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float, what: str) -> str:
    """Run a setup command; on failure raise SetupError with its output."""
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what}: timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-3000:]
        raise SetupError(f"{what}: exit {proc.returncode}\n{tail}")
    return proc.stdout


def parse_json_object(text: str, required: tuple[str, ...]) -> dict[str, Any]:
    """Find the JSON object with the required keys in a command's stdout.

    Management commands may print other lines (warnings, notices) before the
    JSON, so try the whole text first and then each line.
    """
    candidates = [text.strip(), *reversed(text.splitlines())]
    for chunk in candidates:
        chunk = chunk.strip()
        if not chunk.startswith("{"):
            continue
        try:
            obj = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(obj, dict) and all(k in obj for k in required):
            return obj
    raise SetupError(f"no JSON object with keys {required} in output:\n{text[-2000:]}")


def basic_auth_header(client_id: str, client_secret: str) -> str:
    # RFC 6749 section 2.3.1: form-urlencode id and secret before base64.
    raw = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def lua_string(value: str) -> str:
    # json.dumps yields a double-quoted string whose escapes Lua also accepts
    # for the ASCII values used here.
    return json.dumps(value)


def read_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])  # the kernel reports kB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """PIDs whose parent is pid (gunicorn's workers are the master's children)."""
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return sorted(int(p) for p in children_file.read_text().split())
    except OSError:
        pass
    # Kernels without CONFIG_PROC_CHILDREN: scan /proc for the parent PID.
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def machine_busy_ticks() -> int:
    """CPU ticks spent non-idle on all CPUs, plus ticks stolen by the hypervisor."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq + steal


class CpuMeter:
    """Measure how much CPU other processes took while a wrk run lasted.

    The machine is small (2 CPUs here) and may be shared: a test suite running
    next to the benchmark lowers every figure it overlaps. Machine-wide busy
    time minus what our gunicorn processes and wrk used is "other" load; it is
    reported so a disturbed run is visible instead of silently skewing ratios.
    """

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pids: Callable[[], list[int]]) -> None:
        self.server_pids = server_pids

    def _ours(self) -> tuple[int, float]:
        # wrk is our child and has been reaped by the time we read "after",
        # so its CPU shows up in RUSAGE_CHILDREN.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return sum(proc_cpu_ticks(p) for p in self.server_pids()), children.ru_utime + children.ru_stime

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_ticks()
        self.server0, self.children0 = self._ours()

    def other_pct(self) -> float:
        elapsed = time.monotonic() - self.t0
        busy = machine_busy_ticks() - self.busy0
        server1, children1 = self._ours()
        ours = (server1 - self.server0) + (children1 - self.children0) * self.HZ
        capacity = elapsed * self.HZ * (os.cpu_count() or 1)
        return max(0.0, 100.0 * (busy - ours) / capacity) if capacity > 0 else 0.0


# --------------------------------------------------------------------------
# gunicorn
# --------------------------------------------------------------------------


class Gunicorn:
    """One gunicorn master plus its workers, in a process group of their own."""

    def __init__(self, wsgi_app: str, cwd: Path, env: dict[str, str], port: int, log_path: Path) -> None:
        self.wsgi_app = wsgi_app
        self.cwd = cwd
        self.env = env
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        # Identical flags for both sites. No --access-logfile: gunicorn's access
        # log is off by default and writing it would tax every request.
        # --no-control-socket keeps gunicorn from creating ~/.gunicorn/gunicorn.ctl,
        # which another gunicorn on the machine may be using.
        return [
            sys.executable, "-m", "gunicorn", self.wsgi_app,
            "--bind", f"{HOST}:{self.port}",
            "--workers", str(WORKERS),
            "--worker-class", "sync",
            "--chdir", str(self.cwd),
            "--log-level", "warning",
            "--error-logfile", str(self.log_path),
            "--no-control-socket",
        ]  # fmt: skip

    def start(self) -> None:
        log_fh = self.log_path.open("ab")
        try:
            # start_new_session puts gunicorn and its workers in their own process
            # group, so stop() can signal exactly those processes and nothing else.
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log_fh.close()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        """Wait until both workers exist and the unauthenticated URL answers 200."""
        assert self.proc is not None
        url = f"http://{HOST}:{self.port}{path}"
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"gunicorn exited with {self.proc.returncode}\n{self.log_tail()}")
            if len(self.worker_pids()) >= WORKERS:
                try:
                    resp = requests.get(url, timeout=2, allow_redirects=False)
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                except requests.RequestException as exc:
                    last = str(exc)
            time.sleep(0.2)
        raise SetupError(f"gunicorn not ready after {timeout:.0f}s ({last})\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return child_pids(self.proc.pid) if self.proc is not None else []

    def all_pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids()] if self.proc is not None else []

    def worker_rss_kib(self) -> dict[int, int]:
        out = {}
        for pid in self.worker_pids():
            rss = read_rss_kib(pid)
            if rss is not None:
                out[pid] = rss
        return out

    def wait_idle(self, quiet: float = 0.3, timeout: float = 60.0) -> float:
        """Wait until the workers have used no CPU for `quiet` seconds; return the wait.

        When wrk stops, requests it had sent are still queued in the server
        and get processed anyway: after the hashed-secret scenario that is
        seconds of PBKDF2 work. The next scenario's first requests would wait
        behind it, and wrk's latency correction turns a few such stalls into
        a p99 of most of a second. So each run starts on an idle server.
        """
        start = time.monotonic()
        ticks = sum(proc_cpu_ticks(p) for p in self.worker_pids())
        quiet_since = start
        while time.monotonic() - start < timeout:
            time.sleep(0.05)
            now_ticks = sum(proc_cpu_ticks(p) for p in self.worker_pids())
            now = time.monotonic()
            if now_ticks != ticks:
                ticks, quiet_since = now_ticks, now
            elif now - quiet_since >= quiet:
                break
        return time.monotonic() - start

    def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        pgid = self.proc.pid  # the session leader's PID is the group ID
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers may outlive the master briefly; make sure the group is gone.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def parse_wrk(output: str, scenario: str, url: str) -> WrkResult:
    res = WrkResult(scenario=scenario, url=url, wrk_output=output)
    if m := re.search(r"^\s*(\d+) requests in " + _TIME, output, re.M):
        res.requests = int(m.group(1))
        res.seconds = float(m.group(2)) * _UNIT_MS[m.group(3)] / 1000
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M):
        res.rps = float(m.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s*{pct}%\s+" + _TIME + r"\s*$", output, re.M):
            setattr(res, attr, float(m.group(1)) * _UNIT_MS[m.group(2)])
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        res.non_2xx_3xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        res.socket_errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    if "Requests/sec" not in output:
        res.error = "could not parse wrk output:\n" + output[-1500:]
    return res


@dataclass(frozen=True)
class Target:
    """What one wrk run requests: a URL plus a Lua script or extra headers."""

    url: str
    lua_script: Path | None = None
    headers: tuple[str, ...] = ()


class Wrk:
    def __init__(self, args: argparse.Namespace) -> None:
        self.threads: int = args.threads
        self.connections: int = args.connections
        self.timeout: float = args.wrk_timeout

    def command(self, target: Target, seconds: float) -> list[str]:
        cmd = [
            "wrk",
            "--threads", str(self.threads),
            "--connections", str(self.connections),
            "--duration", f"{max(1, round(seconds))}s",
            "--timeout", f"{self.timeout:g}s",
            "--latency",
        ]  # fmt: skip
        if target.lua_script is not None:
            cmd += ["--script", str(target.lua_script)]
        for header in target.headers:
            cmd += ["--header", header]
        return [*cmd, target.url]

    def start(self, target: Target, seconds: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(target, seconds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def finish(self, proc: subprocess.Popen[str], scenario: str, target: Target, seconds: float) -> WrkResult:
        # wrk stops itself after --duration; the margin only covers a hang.
        try:
            out, _ = proc.communicate(timeout=seconds + self.timeout + 30)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            return WrkResult(scenario=scenario, url=target.url, error="wrk did not finish in time")
        except BaseException:
            # Ctrl-C or SIGTERM: do not leave wrk hammering a server being stopped.
            self.kill(proc)
            raise
        res = parse_wrk(out, scenario, target.url)
        if proc.returncode != 0 and res.error is None:
            res.error = f"wrk exited with {proc.returncode}:\n{out[-1500:]}"
        return res

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def run(self, scenario: str, target: Target, seconds: float) -> WrkResult:
        return self.finish(self.start(target, seconds), scenario, target, seconds)


def write_token_lua(path: Path, auth_header: str) -> Path:
    """A wrk script that POSTs a client_credentials token request."""
    body = f"grant_type=client_credentials&scope={quote_plus(SCOPE)}"
    path.write_text(
        "-- generated by benchmarks/run.py: client_credentials token request\n"
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(body)}\n"
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = {lua_string(auth_header)}\n'
    )
    return path


def write_mixed_lua(path: Path, token_path: str, auth_header: str, api_path: str, bearer: str) -> Path:
    """A wrk script alternating token requests and protected-view requests (for --soak)."""
    body = f"grant_type=client_credentials&scope={quote_plus(SCOPE)}"
    path.write_text(
        "-- generated by benchmarks/run.py: alternate token and protected-view requests\n"
        "local n = 0\n"
        "local token_req = wrk.format('POST', "
        f"{lua_string(token_path)}, "
        "{['Content-Type'] = 'application/x-www-form-urlencoded', "
        f"['Authorization'] = {lua_string(auth_header)}}}, {lua_string(body)})\n"
        f"local api_req = wrk.format('GET', {lua_string(api_path)}, "
        f"{{['Authorization'] = {lua_string('Bearer ' + bearer)}}})\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  if n % 2 == 0 then return token_req end\n"
        "  return api_req\n"
        "end\n"
    )
    return path


# --------------------------------------------------------------------------
# Sites
# --------------------------------------------------------------------------


@dataclass
class Client:
    client_id: str
    client_secret: str


@dataclass
class SiteSpec:
    """How to prepare and serve one Django project."""

    name: str  # label used in scenario names: "oauth_cc" or "DOT"
    cwd: Path
    wsgi_app: str
    token_path: str
    protected_path: str
    unauth_path: str
    env: Callable[[Path, int], dict[str, str]]
    setup: Callable[[Path, dict[str, str]], dict[str, Client]]


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # A settings module or database from the caller's shell must not leak in.
    for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def oauth_cc_env(tmp: Path, port: int) -> dict[str, str]:
    env = base_env()
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        OAUTH_CC_ISSUER=f"http://{HOST}:{port}",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
    )
    return env


def oauth_cc_setup(cwd: Path, env: dict[str, str]) -> dict[str, Client]:
    manage = [sys.executable, "manage.py"]
    if not (cwd / "manage.py").is_file():
        raise SetupError(f"{cwd / 'manage.py'} not found (oauth_cc example project missing)")
    run_checked([*manage, "migrate", "--noinput"], cwd=cwd, env=env, timeout=300, what="oauth_cc migrate")
    run_checked(
        [*manage, "oauth_cc", "scope", "add", SCOPE], cwd=cwd, env=env, timeout=120,
        what="oauth_cc scope add",
    )  # fmt: skip
    out = run_checked(
        [*manage, "oauth_cc", "client", "create", "bench", "--scope", SCOPE, "--json"],
        cwd=cwd, env=env, timeout=120, what="oauth_cc client create",
    )  # fmt: skip
    obj = parse_json_object(out, ("client_id", "client_secret"))
    return {"client": Client(str(obj["client_id"]), str(obj["client_secret"]))}


def dot_env(tmp: Path, port: int) -> dict[str, str]:
    env = base_env()
    env.update(
        DJANGO_SETTINGS_MODULE="dot_bench.settings",
        DOT_BENCH_DB_DIR=str(tmp),
        DOT_BENCH_SECRET_KEY=secrets.token_urlsafe(50),
    )
    return env


def dot_setup(cwd: Path, env: dict[str, str]) -> dict[str, Client]:
    manage = [sys.executable, "manage.py"]
    run_checked([*manage, "migrate", "--noinput"], cwd=cwd, env=env, timeout=300, what="DOT migrate")
    out = run_checked([*manage, "seed_bench_clients"], cwd=cwd, env=env, timeout=120, what="DOT seed")
    obj = parse_json_object(out, ("hashed", "plain"))
    return {k: Client(str(obj[k]["client_id"]), str(obj[k]["client_secret"])) for k in ("hashed", "plain")}


OAUTH_CC = SiteSpec(
    name="oauth_cc",
    cwd=REPO_ROOT,
    wsgi_app="example_project.wsgi:application",
    token_path="/oauth/token/",
    protected_path="/api/ping/",
    unauth_path="/api/health/",
    env=oauth_cc_env,
    setup=oauth_cc_setup,
)

DOT = SiteSpec(
    name="DOT",
    cwd=DOT_SITE_DIR,
    wsgi_app="dot_bench.wsgi:application",
    token_path="/o/token/",
    protected_path="/api/ping/",
    unauth_path="/api/health/",
    env=dot_env,
    setup=dot_setup,
)


@contextmanager
def serving(spec: SiteSpec, keep_tmp: bool) -> Iterator[tuple[Gunicorn, dict[str, Client], Path]]:
    """Fresh temp dir + DB, migrate, seed, start gunicorn; always tear down."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name.lower()}-"))
    port = free_port()
    env = spec.env(tmp, port)
    server = Gunicorn(spec.wsgi_app, spec.cwd, env, port, tmp / "gunicorn.log")
    try:
        log(f"{spec.name}: migrating and seeding in {tmp}")
        clients = spec.setup(spec.cwd, env)
        log(f"{spec.name}: starting gunicorn on {HOST}:{port}")
        server.start()
        server.wait_ready(spec.unauth_path)
        yield server, clients, tmp
    finally:
        server.stop()
        if keep_tmp:
            log(f"{spec.name}: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_token(base: str, spec: SiteSpec, client: Client) -> str:
    resp = requests.post(
        base + spec.token_path,
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=(client.client_id, client.client_secret),
        timeout=30,
        # wrk counts only non-2xx/3xx as errors; refusing redirects here makes
        # a redirecting endpoint (e.g. a missing slash) fail before the load.
        allow_redirects=False,
    )
    if resp.status_code != 200:
        raise SetupError(f"{spec.name}: token request gave HTTP {resp.status_code}: {resp.text[:500]}")
    token = resp.json().get("access_token")
    if not token:
        raise SetupError(f"{spec.name}: token response has no access_token: {resp.text[:500]}")
    # The protected view must really be protected, or its figure is the
    # unauthenticated one under another name.
    anon = requests.get(base + spec.protected_path, timeout=30, allow_redirects=False)
    if anon.status_code not in (401, 403):
        raise SetupError(f"{spec.name}: protected view without a token gave HTTP {anon.status_code}")
    # Check the token works before spending time on load.
    check = requests.get(
        base + spec.protected_path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        allow_redirects=False,
    )
    if check.status_code != 200:
        raise SetupError(
            f"{spec.name}: protected view with a fresh token gave HTTP {check.status_code}: "
            f"{check.text[:500]}"
        )
    return str(token)


# --------------------------------------------------------------------------
# Benchmark driver
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.wrk = Wrk(args)
        self.results: dict[str, WrkResult] = {}
        self.memory: dict[str, MemoryReport] = {}
        self.setup_errors: dict[str, str] = {}

    def warm_up(self, targets: list[tuple[str, Target]]) -> None:
        # gunicorn loads the app lazily in each worker, and the first requests
        # pay for imports, URL resolver, key and cache set-up: keep that out of
        # the figures and out of the memory baseline.
        if self.args.warmup > 0:
            for name, target in targets:
                log(f"{name}: warm-up {self.args.warmup:g}s")
                self.wrk.run(name + " (warm-up)", target, self.args.warmup)

    def measure_rounds(self, server: Gunicorn, targets: list[tuple[str, Target]]) -> None:
        """Run every scenario once per round, interleaved, and keep each one's best round.

        Interleaving spreads any outside disturbance over all scenarios of a
        site instead of hitting one of them; the best round is the one least
        disturbed, since other load can only slow a run down.
        """
        runs: dict[str, list[WrkResult]] = {name: [] for name, _ in targets}
        for rnd in range(1, self.args.rounds + 1):
            for name, target in targets:
                runs[name].append(self.measure_once(server, name, target, rnd))
        for name, results in runs.items():
            failed = [r for r in results if not r.ok]
            chosen = failed[0] if failed else max(results, key=lambda r: r.rps)
            chosen.rounds_rps = [r.rps for r in results]
            self.results[name] = chosen

    def measure_once(self, server: Gunicorn, scenario: str, target: Target, rnd: int) -> WrkResult:
        tag = f" (round {rnd}/{self.args.rounds})" if self.args.rounds > 1 else ""
        log(f"{scenario}{tag}: {self.args.duration:g}s, {self.args.connections} connections")
        server.wait_idle()
        meter = CpuMeter(server.all_pids)
        meter.start()
        res = self.wrk.run(scenario, target, self.args.duration)
        res.other_cpu_pct = meter.other_pct()
        status = "ok" if res.ok else "FAILED: " + res.problem()
        latency = f"p50 {fmt_ms(res.p50_ms)}, p99 {fmt_ms(res.p99_ms)} ms"
        log(f"{scenario}: {res.rps:.1f} req/s, {latency}, other CPU {res.other_cpu_pct:.0f}%, {status}")
        return res

    def soak(self, server: Gunicorn, target: Target, seconds: float, report: MemoryReport, name: str) -> None:
        """Drive the mixed script for `seconds`, sampling worker RSS along the way."""
        log(f"{name}: soak for {seconds:g}s (alternating token and protected requests)")
        server.wait_idle()
        meter = CpuMeter(server.all_pids)
        meter.start()
        proc = self.wrk.start(target, seconds)
        start = time.monotonic()
        interval = max(1.0, seconds / 20)
        try:
            while proc.poll() is None and time.monotonic() - start < seconds + self.args.wrk_timeout + 30:
                elapsed = round(time.monotonic() - start, 1)
                report.samples.append({"t": elapsed, "rss_kib": server.worker_rss_kib()})
                time.sleep(interval)
        except BaseException:
            Wrk.kill(proc)
            raise
        res = self.wrk.finish(proc, name, target, seconds)
        res.other_cpu_pct = meter.other_pct()
        self.results[name] = res
        log(f"{name}: {res.rps:.1f} req/s, {'ok' if res.ok else 'FAILED: ' + res.problem()}")

    def run_site(self, spec: SiteSpec) -> None:
        try:
            with serving(spec, self.args.keep_tmp) as (server, clients, tmp):
                base = f"http://{HOST}:{server.port}"
                if spec is OAUTH_CC:
                    self.run_oauth_cc(server, clients, tmp, base)
                else:
                    self.run_dot(server, clients, tmp, base)
        except (SetupError, requests.RequestException, ValueError) as exc:
            # Record and go on with the other site; gunicorn was already stopped.
            log(f"{spec.name}: setup failed: {exc}")
            self.setup_errors[spec.name] = str(exc)

    def run_oauth_cc(self, server: Gunicorn, clients: dict[str, Client], tmp: Path, base: str) -> None:
        spec = OAUTH_CC
        client = clients["client"]
        auth = basic_auth_header(client.client_id, client.client_secret)
        # One token, reused by every connection, as a real client caches it.
        token = fetch_token(base, spec, client)
        unauth = Target(base + spec.unauth_path)
        token_t = Target(base + spec.token_path, lua_script=write_token_lua(tmp / "token.lua", auth))
        protected = Target(base + spec.protected_path, headers=(f"Authorization: Bearer {token}",))

        targets = [
            ("oauth_cc unauth", unauth),
            ("oauth_cc token", token_t),
            ("oauth_cc protected", protected),
        ]
        # Memory window: the baseline is read after the warm-up, so it already
        # includes one-off allocations and the growth is the steady-state one.
        self.warm_up(targets)
        before = server.worker_rss_kib()
        t0 = time.monotonic()
        self.measure_rounds(server, targets)
        report = MemoryReport(
            site="oauth_cc", before_kib=before, after_kib={},
            threshold_mib=self.args.mem_threshold_mib, load_seconds=0.0,
        )  # fmt: skip
        if self.args.soak > 0:
            script = write_mixed_lua(tmp / "mixed.lua", spec.token_path, auth, spec.protected_path, token)
            mixed = Target(base + spec.protected_path, lua_script=script)
            self.soak(server, mixed, self.args.soak, report, "oauth_cc soak (token+protected)")
        report.after_kib = server.worker_rss_kib()
        report.load_seconds = round(time.monotonic() - t0, 1)
        self.memory["oauth_cc"] = report

    def run_dot(self, server: Gunicorn, clients: dict[str, Client], tmp: Path, base: str) -> None:
        spec = DOT
        token = fetch_token(base, spec, clients["plain"])
        fetch_token(base, spec, clients["hashed"])  # the hashed client must work too
        unauth = Target(base + spec.unauth_path)
        protected = Target(base + spec.protected_path, headers=(f"Authorization: Bearer {token}",))
        lua = {
            kind: write_token_lua(tmp / f"token-{kind}.lua", basic_auth_header(c.client_id, c.client_secret))
            for kind, c in clients.items()
        }
        targets = [
            ("DOT unauth", unauth),
            ("DOT protected", protected),
            ("DOT token plain", Target(base + spec.token_path, lua_script=lua["plain"])),
            # Each request here runs the password hasher (PBKDF2 with Django's
            # default iteration count): by far the slowest scenario.
            ("DOT token hashed", Target(base + spec.token_path, lua_script=lua["hashed"])),
        ]
        self.warm_up(targets)
        self.measure_rounds(server, targets)

    # ---- reporting ----

    def ratio_rows(self) -> list[dict[str, Any]]:
        rows = []
        for r in RATIOS:
            num, den = self.results.get(r.numerator), self.results.get(r.denominator)
            if num is None and den is None:
                continue
            if num is None or den is None:
                # Partial run (--only): cross-site ratios are skipped, not failed.
                if self.args.only:
                    continue
                value = None
            elif not (num.ok and den.ok) or den.rps <= 0:
                value = None
            else:
                value = paired_ratio(num, den)
            passed = None if r.target is None else (value is not None and value >= r.target)
            rows.append({"ratio": r.label, "value": value, "target": r.target, "passed": passed})
        return rows

    def report(self) -> tuple[str, bool]:
        lines: list[str] = []
        ok = not self.setup_errors
        lines.append(
            f"{'scenario':<34} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
            f"{'requests':>9} {'non-2xx':>8} {'other CPU':>9}  status"
        )
        lines.append("-" * 102)
        noisy = False
        for name, res in self.results.items():
            status = "ok" if res.ok else "FAIL " + res.problem().splitlines()[0]
            ok = ok and res.ok
            other = "n/a" if res.other_cpu_pct is None else f"{res.other_cpu_pct:.0f}%"
            if res.other_cpu_pct is not None and res.other_cpu_pct > NOISY_OTHER_CPU_PCT:
                other += "!"
                noisy = True
            lines.append(
                f"{name:<34} {res.rps:>10.1f} {fmt_ms(res.p50_ms):>9} {fmt_ms(res.p99_ms):>9} "
                f"{res.requests:>9} {res.non_2xx_3xx:>8} {other:>9}  {status}"
            )
        for site, err in self.setup_errors.items():
            lines.append(f"{site:<34} setup failed: {err.splitlines()[0]}")
        if self.args.rounds > 1:
            lines.append(
                f"(best of {self.args.rounds} interleaved rounds of {self.args.duration:g}s each; "
                "same-site ratios are the median of per-round ratios)"
            )
        if noisy:
            lines.append(
                f"! other processes used more than {NOISY_OTHER_CPU_PCT:g}% of the machine's CPU during "
                "that run: its figures are disturbed; rerun on a quiet machine or with --rounds"
            )

        rows = self.ratio_rows()
        if rows:
            lines += ["", f"{'ratio (req/s)':<40} {'value':>9} {'target':>9}  result", "-" * 68]
            for row in rows:
                value = "n/a" if row["value"] is None else f"{row['value']:.2f}"
                target = "-" if row["target"] is None else f">= {row['target']:g}"
                result = "info" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
                if row["passed"] is False:
                    ok = False
                lines.append(f"{row['ratio']:<40} {value:>9} {target:>9}  {result}")

        for site, mem in self.memory.items():
            lines += ["", f"{site} worker RSS over {mem.load_seconds:g}s of token + protected load:"]
            for pid, before in sorted(mem.before_kib.items()):
                after = mem.after_kib.get(pid)
                after_s = "gone" if after is None else f"{after / 1024:.1f} MiB"
                grow = "" if after is None else f" ({(after - before) / 1024:+.1f} MiB)"
                lines.append(f"  worker {pid}: {before / 1024:.1f} MiB -> {after_s}{grow}")
            for pid in sorted(set(mem.after_kib) - set(mem.before_kib)):
                lines.append(f"  worker {pid}: new worker (a worker was restarted)")
            top = mem.max_growth_mib
            verdict = "info" if mem.passed is None else ("PASS" if mem.passed else "FAIL")
            if mem.passed is False:
                ok = False
            top_s = "n/a" if top is None or not mem.same_workers else f"{top:+.1f} MiB"
            target = "" if mem.threshold_mib is None else f" (target < {mem.threshold_mib:g} MiB)"
            lines.append(f"  max growth per worker: {top_s}{target}  {verdict}")

        lines += ["", "overall: " + ("PASS" if ok else "FAIL")]
        return "\n".join(lines), ok

    def to_json(self, ok: bool) -> dict[str, Any]:
        return {
            "config": {
                "duration_s": self.args.duration,
                "warmup_s": self.args.warmup,
                "connections": self.args.connections,
                "threads": self.args.threads,
                "rounds": self.args.rounds,
                "wrk_timeout_s": self.args.wrk_timeout,
                "soak_s": self.args.soak,
                "gunicorn_workers": WORKERS,
                "worker_class": "sync",
                "only": self.args.only,
            },
            "environment": environment_info(),
            "scenarios": {name: {**asdict(res), "ok": res.ok} for name, res in self.results.items()},
            "ratios": self.ratio_rows(),
            "memory": {
                site: {
                    "before_kib": mem.before_kib,
                    "after_kib": mem.after_kib,
                    "growth_mib": mem.growth_mib,
                    "max_growth_mib": mem.max_growth_mib,
                    "same_workers": mem.same_workers,
                    "threshold_mib": mem.threshold_mib,
                    "passed": mem.passed,
                    "load_seconds": mem.load_seconds,
                    "samples": mem.samples,
                }
                for site, mem in self.memory.items()
            },
            "setup_errors": self.setup_errors,
            "passed": ok,
        }


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def environment_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    for dist in ("django", "django-oauth-toolkit", "djangorestframework", "gunicorn", "jwcrypto"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = None
    try:
        info["wrk"] = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        info["wrk"] = None
    try:
        git = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        info["git_commit"] = git.stdout.strip() if git.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        info["git_commit"] = None
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=10, help="seconds per measured scenario (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load first (default 2)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument(
        "--rounds", type=int, default=3,
        help="measure each scenario this many times, interleaved, and report the best (default 3)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1; it shares the CPUs)")
    p.add_argument(
        "--wrk-timeout", type=float, default=10,
        help="wrk per-request timeout in seconds (default 10; the hashed-secret scenario is slow)",
    )  # fmt: skip
    p.add_argument(
        "--soak", type=float, default=0, metavar="SECONDS",
        help="after the oauth_cc token and protected runs, add SECONDS of mixed load before "
        "the second RSS reading (default 0)",
    )  # fmt: skip
    p.add_argument(
        "--mem-threshold-mib", type=float, default=20,
        help="maximum RSS growth per oauth_cc worker in MiB (default 20)",
    )  # fmt: skip
    p.add_argument("--only", choices=("oauth_cc", "dot"), help="run one site only (skips cross-site ratios)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write all figures to FILE as JSON")
    p.add_argument("--keep-tmp", action="store_true", help="keep each site's temp dir (DB, gunicorn log)")
    args = p.parse_args(argv)
    if args.connections < args.threads:
        p.error("--connections must be at least --threads")
    if args.duration < 1:
        p.error("--duration must be at least 1 second")
    if not 1 <= args.rounds <= 20:
        p.error("--rounds must be between 1 and 20")
    # Everything is bounded: refuse absurd durations rather than run for hours.
    if args.duration > 600 or args.soak > 3600 or args.warmup > 60:
        p.error("--duration <= 600, --warmup <= 60 and --soak <= 3600 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed. Install it with:\n\n    apt-get install -y wrk\n", file=sys.stderr)
        return EXIT_NO_WRK
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        print(f"gunicorn is not importable by {sys.executable}; activate the venv.", file=sys.stderr)
        return EXIT_SETUP_FAILED

    # Turn SIGTERM into SystemExit so the finally blocks stop gunicorn.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    bench = Bench(args)
    sites = {"oauth_cc": [OAUTH_CC], "dot": [DOT], None: [OAUTH_CC, DOT]}[args.only]
    for spec in sites:
        bench.run_site(spec)

    text, ok = bench.report()
    print(text)
    if args.json:
        args.json.write_text(json.dumps(bench.to_json(ok), indent=2, sort_keys=False) + "\n")
        log(f"wrote {args.json}")
    if bench.setup_errors and not bench.results:
        return EXIT_SETUP_FAILED
    return EXIT_OK if ok else EXIT_TARGET_MISSED


if __name__ == "__main__":
    sys.exit(main())
