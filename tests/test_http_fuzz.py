"""Random HTTP fuzz of every endpoint of the example site: no input may get a 5xx.

Each request starts as a valid request of one surface (see :mod:`tests.fuzzing`: the token,
introspection and revocation endpoints with each client authentication method, the revocation
feed (GET with Basic, POST with ``client_secret_post`` or an assertion, sometimes with
``If-None-Match``), the JWKS and metadata documents, the demo API, the admin login page) and gets
one to three random mutations.

``test_http_fuzz_never_answers_5xx`` sends ``OAUTH_CC_FUZZ_REQUESTS`` (10,000 by default)
through Django's test ``Client`` and fails on any 5xx, or an exception escaping Django's
handler (a WSGI server answers that with a 500). It also checks, per surface:

* the token, introspection and revocation endpoints and the revocation feed answer every
  non-200 with ``application/json`` and an ``error`` member (RFC 6749 §5.2) whose description is
  printable ASCII (but the feed's 304, which carries its ``ETag``); a 200 from the token endpoint
  carries a Bearer ``access_token``, one from the feed the issuer's feed;
* every 401 from a token-checking DRF view carries ``WWW-Authenticate: Bearer realm="api"...``,
  every 403 its ``insufficient_scope`` challenge;
* a token that is not byte for byte one the site issued (or signed itself, with claims that
  keep every rule: see :meth:`tests.fuzzing.Forger.site_valid`) never gets a 2xx at such a
  view, nor ``"active": true`` at introspection.

Responses Django gives before any view runs (a Host header outside ALLOWED_HOSTS) are not the
endpoints' and are only counted. The summary says where requests stopped (content type,
form, client authentication, past it...), so a reader can see the fuzz gets deep.

``test_raw_http_fuzz_never_answers_5xx`` sends ``OAUTH_CC_FUZZ_RAW_REQUESTS`` (2,000) over real
sockets to the live server, with malformed HTTP framing on top (bad Content-Length, no Host,
chunked bodies, header injection, odd request lines).

``test_fuzz_finding_reproducer_answers_below_500`` holds the smallest request behind each 5xx
the fuzz has found, one test each.

Replay: the failure message gives the seed; ``OAUTH_CC_FUZZ_SEED=<seed>`` repeats the run and
``OAUTH_CC_FUZZ_ONLY=<n>[,<n>...]`` sends only those requests (each request's randomness
depends on the seed and its number only). ``OAUTH_CC_FUZZ_REPORT=<file or directory>`` is
where the JSON summary goes (default: the test's ``tmp_path``); a one-line summary is printed
(``pytest -s`` shows it).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import socket
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import got_request_exception
from django.http.request import split_domain_port, validate_host
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from example_project.middleware import RequestGuard
from oauth_cc.issuer import state
from tests.assertion_helpers import generate_key, jwks_of
from tests.conftest import basic_auth, form_post
from tests.fuzzing import (
    ADMIN_LOGIN,
    FEED_PATH,
    INTROSPECT_PATH,
    OAUTH_PATHS,
    SURFACES,
    TOKEN_API_PATHS,
    Forger,
    Party,
    Req,
    SiteClient,
    World,
    make_request,
    parse_raw_responses,
    parsed_form,
    presented_bearer,
    raw_mutate,
    raw_parts,
    send_in_process,
)

DEFAULT_SEED = 20240607
DEFAULT_REQUESTS = 10_000
DEFAULT_RAW_REQUESTS = 2000
#: What oauth_cc lets an error_description hold (oauth_cc.common.errors.client_safe): printable ASCII
#: but the backslash. RFC 6749 §5.2 also leaves out '"', which oauth_cc allows on purpose.
DESCRIPTION_CHARS = re.compile(r"[\x20-\x5b\x5d-\x7e]*")
#: Per-worker caches (clients, keys, verified tokens, revocation) are dropped this often, so
#: the cold paths see hostile input too, without paying for a cold start on every request.
RESET_EVERY = 1000


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


# -- the world --------------------------------------------------------------------------------


def _token(client: Client, party: Party, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = form_post(
        client, "/oauth/token/", data, HTTP_AUTHORIZATION=basic_auth(party.client_id, party.secret)
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def _jwt_token(client: Client, world: World) -> str:
    response = form_post(
        client,
        "/oauth/token/",
        {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": world.assertion("http://testserver/oauth/token/"),
        },
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def jwt_key() -> Any:
    return generate_key("ES256")


@pytest.fixture
def world(make_client: Any, make_scope: Any, jwt_key: Any) -> World:
    """Real clients, secrets, tokens and a CSRF token: what the valid requests are made of."""
    make_scope("reports:read", default=True)
    make_scope("reports:write")
    make_scope("other:scope")
    audiences = ("http://testserver", "https://reports.example.com")
    reader, reader_secret = make_client(
        "fuzz-reader", scopes=["reports:read", "reports:write", "other:scope"], audiences=audiences
    )
    poster, poster_secret = make_client(
        "fuzz-poster", scopes=["reports:read"], auth_method="client_secret_post", can_introspect=True
    )
    jwt_client, _ = make_client(
        "fuzz-jwt",
        scopes=["reports:read"],
        auth_method="private_key_jwt",
        jwks=jwks_of(jwt_key),
        can_introspect=True,
    )
    gateway, gateway_secret = make_client("fuzz-gateway", can_introspect=True)
    revoker, revoker_secret = make_client("fuzz-revoker", scopes=["reports:read"])
    get_user_model().objects.create_user("fuzz-admin", password="fuzz-pass", is_staff=True, is_superuser=True)

    client = SiteClient(enforce_csrf_checks=True)
    login_page = client.get(ADMIN_LOGIN)
    csrf_token = (
        re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.content).group(1).decode()
    )

    reader_party = Party(reader.client_id, reader_secret)
    revoker_party = Party(revoker.client_id, revoker_secret)
    world = World(
        reader=reader_party,
        poster=Party(poster.client_id, poster_secret),
        jwt=Party(jwt_client.client_id, key=jwt_key),
        gateway=Party(gateway.client_id, gateway_secret),
        revoker=revoker_party,
        reader_audiences=audiences,
        api_tokens={
            "read": _token(client, reader_party, "reports:read"),
            "write": _token(client, reader_party, "reports:read reports:write"),
            "other": _token(client, reader_party, "other:scope"),
        },
        revocable=[_token(client, revoker_party) for _ in range(40)],
        jwt_tokens=[],
        csrf_cookie=login_page.cookies["csrftoken"].value,
        csrf_token=csrf_token,
        admin_username="fuzz-admin",
        admin_password="fuzz-pass",
        forger=Forger(),
    )
    world.jwt_tokens = [_jwt_token(client, world) for _ in range(10)]
    world.genuine.update(world.api_tokens.values(), world.revocable, world.jwt_tokens)
    return world


# -- what a response must look like -----------------------------------------------------------


def _host_allowed(req: Req) -> bool:
    host = req.headers.get("HTTP_HOST", "testserver")
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _json_body(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def violations(req: Req, response: Any, world: World) -> list[str]:
    """Broken per-surface rules for one response (5xx are counted apart)."""
    if not _host_allowed(req):
        return []  # answered by Django's host check before any view: not the endpoint's answer
    path = unquote(req.path)
    status = response.status_code
    found = []
    if path == FEED_PATH and status == 304:
        # The feed unchanged (If-None-Match): no body; RFC 9110 §15.4.5 keeps the ETag.
        if not response.get("ETag"):
            found.append("revocation feed 304 without an ETag")
        return found
    if path == FEED_PATH and status == 200 and req.method.upper() != "HEAD":
        body = _json_body(response)
        if not (isinstance(body, dict) and body.get("issuer") == "http://testserver"):
            found.append("revocation feed 200 that is not the issuer's feed")
    if path in OAUTH_PATHS and status != 200 and status < 500:
        content_type = response.get("Content-Type", "")
        body = _json_body(response)
        if content_type != "application/json":
            found.append(f"OAuth endpoint answered {status} with Content-Type {content_type!r}")
        elif req.method.upper() != "HEAD" and not (
            isinstance(body, dict) and isinstance(body.get("error"), str)
        ):
            found.append(f"OAuth endpoint answered {status} without an error member")
        elif isinstance(body, dict) and not DESCRIPTION_CHARS.fullmatch(
            str(body.get("error_description", ""))
        ):
            found.append(f"error_description with unsafe characters: {body['error_description']!r}")
    if path == "/oauth/token/" and status == 200 and req.method.upper() != "HEAD":
        body = _json_body(response)
        if not (
            isinstance(body, dict)
            and isinstance(body.get("access_token"), str)
            and body.get("token_type") == "Bearer"
        ):
            found.append("token endpoint 200 without a Bearer access_token")
    if path in TOKEN_API_PATHS:
        challenge = response.get("WWW-Authenticate", "")
        if status == 401 and not challenge.startswith('Bearer realm="api"'):
            found.append(f"401 without a Bearer challenge: {challenge!r}")
        if status == 403 and 'error="insufficient_scope"' not in challenge:
            found.append(f"403 without an insufficient_scope challenge: {challenge!r}")
        if "error_description=" in challenge:
            detail = (_json_body(response) or {}).get("detail", "")
            if not DESCRIPTION_CHARS.fullmatch(str(detail)):
                found.append(f"challenge error_description with unsafe characters: {detail!r}")
        if 200 <= status < 300 and not world.acceptable(presented_bearer(req.headers)):
            found.append(f"{status} for a token the site did not issue")
    if path == INTROSPECT_PATH and status == 200:
        body = _json_body(response)
        if not isinstance(body, dict) or "active" not in body:
            found.append("introspection 200 without an active member")
        elif body["active"] is not False:
            form = parsed_form(req.body()) or {}
            if not world.acceptable(form.get("token")):
                found.append("introspection says active for a token the site did not issue")
    return found


def outcome(req: Req, response: Any) -> str:
    """Where a request ended: which check refused it, so the summary shows how deep the fuzz got."""
    status = response.status_code
    path = unquote(req.path)
    if status >= 500:
        return "5xx"
    if not _host_allowed(req) and status == 400:
        return "host refused"
    if path in OAUTH_PATHS:
        if status in (200, 304):
            return "ok"
        if status == 405:
            return "method"
        body = _json_body(response) or {}
        description = str(body.get("error_description", ""))
        if "request body must be" in description:
            return "content-type"
        if "Content-Length" in description:
            return "content-length"
        if any(text in description for text in ("not a valid form", "more than once", "too large")):
            return "form"
        if body.get("error") == "invalid_client":
            return "client authentication"
        return "past client authentication"
    if path in TOKEN_API_PATHS:
        challenge = response.get("WWW-Authenticate", "")
        if status == 401:
            return "token refused" if "invalid_token" in challenge else "no token"
        if status == 400 and "invalid_request" in challenge:
            return "malformed Authorization"
        if status == 403:
            return "insufficient scope"
        return "ok" if status < 300 else f"past the token check ({status})"
    return "ok" if status < 400 else str(status)


class _ExceptionLog(logging.Handler):
    """Keeps what oauth_cc logged with a traceback while one request was handled."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.seen.append("".join(traceback.format_exception_only(record.exc_info[1])).strip())


SITE_KEY_NOTE = "  [needs a token signed with the site's own key]"


def _group(failures: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """5xx grouped by cause: the exception with its numbers and quoted values blanked, and the path."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for failure in failures:
        cause = re.sub(r"'[^']*'|\d+", "_", failure["exception"] or failure["body"][:60])
        path = failure["request"].split(" ", 2)[1].split("?")[0]
        groups[f"{cause} at {path}"].append(failure)
    return dict(sorted(groups.items(), key=lambda item: -len(item[1])))


def _normalized(description: str) -> str:
    """An error description with the parts that vary (quoted values, numbers) blanked."""
    return re.sub(r'"[^"]*"|\d+', "_", description)[:100]


class Escaped:
    """An exception that escaped Django's request handler: a WSGI server answers it with a 500."""

    status_code = 500

    def __init__(self, exc: Exception) -> None:
        self.summary = "".join(traceback.format_exception_only(exc)).strip()
        self.content = f"(exception escaped the handler) {self.summary}".encode()

    def get(self, name: str, default: str = "") -> str:
        return default


def _head(content: bytes, limit: int = 160) -> str:
    return content[:limit].decode("utf-8", "replace").replace("\n", " ")


def _report_path(tmp_path: Any, name: str, *, raw: bool = False) -> str:
    """``OAUTH_CC_FUZZ_REPORT`` (a file or a directory), else ``name`` in ``tmp_path``.

    The raw-socket test, given a file, writes next to it (``report.json`` -> ``report-raw.json``).
    """
    path = os.environ.get("OAUTH_CC_FUZZ_REPORT") or str(tmp_path / name)
    if os.path.isdir(path):
        return os.path.join(path, name)
    if raw and os.environ.get("OAUTH_CC_FUZZ_REPORT"):
        root, extension = os.path.splitext(path)
        return f"{root}-raw{extension or '.json'}"
    return path


def _write_summary(summary: dict[str, Any], tmp_path: Any, name: str, *, raw: bool = False) -> str:
    path = _report_path(tmp_path, name, raw=raw)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    return path


# -- the in-process fuzz ----------------------------------------------------------------------


def _preflight(client: Client, world: World) -> None:
    """Every surface's unmutated request works: the fuzz starts from valid requests."""
    expected = {"admin/post": {302}, "reports/post": {201}}
    for base, _ in SURFACES:
        req = base(random.Random(0), world)
        response = send_in_process(client, req)
        # The feed answers 304 when the request's If-None-Match matches (always for "*").
        want = expected.get(req.surface, {200, 304} if req.path == FEED_PATH else {200})
        assert response.status_code in want, (req.surface, response.status_code, response.content[:300])


@pytest.mark.timeout(900)
def test_http_fuzz_never_answers_5xx(transactional_db: Any, world: World, tmp_path: Any) -> None:
    # transactional_db: each request commits on its own, as in production, so a database error
    # in one request (a 5xx to report) cannot poison the transaction the next ones run in.
    seed = _env_int("OAUTH_CC_FUZZ_SEED", DEFAULT_SEED)
    count = _env_int("OAUTH_CC_FUZZ_REQUESTS", DEFAULT_REQUESTS)
    only = os.environ.get("OAUTH_CC_FUZZ_ONLY")
    numbers = [int(n) for n in only.split(",")] if only else range(count)
    client = SiteClient(enforce_csrf_checks=True, raise_request_exception=False)
    _preflight(client, world)

    exceptions: list[str] = []

    def on_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
        exceptions.append("".join(traceback.format_exception_only(*sys.exc_info()[:2])).strip())

    log = _ExceptionLog()
    oauth_logger = logging.getLogger("oauth_cc")
    oauth_logger.addHandler(log)
    got_request_exception.connect(on_exception)
    # Thousands of "Bad Request" lines would bury a failure report; the 5xx are recorded below.
    quiet = {name: logging.getLogger(name) for name in ("django.request", "django.security", "oauth_cc")}
    saved = {name: (logger.level, logger.propagate) for name, logger in quiet.items()}
    for name, logger in quiet.items():
        logger.propagate = False
        if name != "oauth_cc":
            logger.setLevel(logging.CRITICAL)

    statuses: Counter[int] = Counter()
    per_surface: dict[str, Counter[int]] = defaultdict(Counter)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    failures: list[dict[str, Any]] = []
    broken: list[dict[str, Any]] = []
    site_valid_accepted: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    # Every response, one JSON line each, next to the summary.
    log_path = os.path.splitext(_report_path(tmp_path, "http_fuzz.json"))[0] + "-responses.jsonl"
    responses_log = open(log_path, "w", encoding="utf-8")  # closed in the finally below
    started = time.monotonic()
    try:
        for sent, number in enumerate(numbers):
            if sent and sent % RESET_EVERY == 0:
                state.reset_all()
            rng = random.Random(f"{seed}:{number}")
            req = make_request(rng, world)
            exceptions.clear()
            log.seen.clear()
            try:
                response = send_in_process(client, req)
            except Exception as exc:  # raised before Django's handler could turn it into a response
                response = Escaped(exc)
            status = response.status_code
            statuses[status] += 1
            per_surface[req.surface][status] += 1
            outcomes[req.surface][outcome(req, response)] += 1
            entry = {
                "number": number,
                "request": req.describe(),
                "status": status,
                "body": _head(response.content),
                "exception": getattr(response, "summary", "") or (exceptions or log.seen or [""])[-1],
                "needs_site_key": req.needs_site_key,
            }
            responses_log.write(json.dumps(entry) + "\n")
            if status >= 500:
                failures.append(entry)
            for problem in violations(req, response, world):
                broken.append({**entry, "problem": problem})
            bearer = presented_bearer(req.headers)
            if unquote(req.path) in TOKEN_API_PATHS and status < 300 and bearer in world.site_valid:
                site_valid_accepted[world.site_valid[bearer]] += 1
            if unquote(req.path) in OAUTH_PATHS and 400 <= status < 500:
                body = _json_body(response)
                if isinstance(body, dict):
                    errors[
                        f"{status} {body.get('error')}: {_normalized(body.get('error_description', ''))}"
                    ] += 1
            if unquote(req.path) == "/oauth/token/" and status == 200:
                issued = _json_body(response)
                if isinstance(issued, dict) and isinstance(issued.get("access_token"), str):
                    world.genuine.add(issued["access_token"])
            if req.surface.endswith("/jwt") and status == 200:
                assertion = (parsed_form(req.body()) or {}).get("client_assertion")
                if assertion and len(world.accepted_assertions) < 50:
                    world.accepted_assertions.append(assertion)
    finally:
        responses_log.close()
        got_request_exception.disconnect(on_exception)
        oauth_logger.removeHandler(log)
        for name, (level, propagate) in saved.items():
            quiet[name].setLevel(level)
            quiet[name].propagate = propagate
    seconds = time.monotonic() - started

    # The fuzz revoked none of the tokens the API requests start from, and the site still works.
    state.reset_all()
    for token in world.api_tokens.values():
        assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    oauth = Counter()
    for surface, counter in outcomes.items():
        if surface.split("/")[0] in ("token", "introspect", "revoke", "feed"):
            oauth.update(counter)
    summary = {
        "seed": seed,
        "requests": len(numbers),
        "seconds": round(seconds, 2),
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "5xx": len(failures),
        "invariant_violations": len(broken),
        "site_valid_tokens_accepted": dict(site_valid_accepted.most_common()),
        "oauth_errors": dict(errors.most_common(40)),
        "oauth_outcomes": dict(oauth.most_common()),
        "per_surface_status": {
            s: {str(k): v for k, v in sorted(c.items())} for s, c in sorted(per_surface.items())
        },
        "per_surface_outcome": {s: dict(c.most_common()) for s, c in sorted(outcomes.items())},
        "5xx_causes": {cause: len(group) for cause, group in _group(failures).items()},
        "first_5xx": failures[:20],
        "first_violations": broken[:20],
    }
    report = _write_summary(summary, tmp_path, "http_fuzz.json")
    print(
        f"\nhttp fuzz: {len(numbers)} requests, status {summary['status']}, 5xx={len(failures)}, "
        f"violations={len(broken)}, seed={seed}, {seconds:.1f}s, report {report}"
    )

    replay = f"replay: OAUTH_CC_FUZZ_SEED={seed} OAUTH_CC_FUZZ_ONLY=<number>"
    problems = []
    if failures:
        causes = _group(failures)
        problems.append(
            f"{len(failures)} responses were 5xx, {len(causes)} distinct causes (seed {seed}; {replay}); "
            "for each cause, its count and its first request:\n"
            + "\n".join(
                f"[{len(group)}x] {cause}\n  #{f['number']} {f['request']}\n"
                f"    -> {f['status']} {f['body']!r}{SITE_KEY_NOTE if f['needs_site_key'] else ''}"
                for cause, group in causes.items()
                for f in group[:1]
            )
        )
    if broken:
        problems.append(
            f"{len(broken)} responses broke a rule (seed {seed}; {replay}):\n"
            + "\n".join(
                f"#{b['number']} {b['problem']}: {b['request']} -> {b['status']} {b['body']!r}"
                for b in broken[:10]
            )
        )
    if not only and len(numbers) >= 2000:  # enough requests for proportions to mean something
        # The fuzz is not just bouncing off the first check: few OAuth requests stop at the
        # content type, many get past client authentication, and every surface saw mutated
        # requests succeed as well as fail.
        oauth_total = sum(oauth.values())
        if oauth["content-type"] >= 0.15 * oauth_total:
            problems.append(f"too many requests stopped at the content type: {summary['oauth_outcomes']}")
        if oauth["past client authentication"] + oauth["ok"] <= 0.3 * oauth_total:
            problems.append(f"too few requests got past client authentication: {summary['oauth_outcomes']}")
        for surface, counter in sorted(per_surface.items()):
            if not any(status < 400 for status in counter) or not any(status >= 400 for status in counter):
                problems.append(f"{surface} saw only successes or only failures: {dict(counter)}")
    assert not problems, "\n\n".join(problems)


# -- the raw-socket fuzz against the live server ----------------------------------------------


def _exchange(host: str, port: int, data: bytes, timeout: float = 15.0) -> tuple[bytes, str]:
    """Send ``data``, half-close, read until the server closes. Returns (bytes, note)."""
    received = b""
    note = ""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server answered and closed before reading everything
            note = f"send: {exc.__class__.__name__}"
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            note += f" recv: {exc.__class__.__name__}"
    return received, note.strip()


_SERVER_ERROR_BODIES = [
    (re.compile(rb"Error code: (\d{3})"), None),  # http.server's own error page
    (re.compile(rb"Server Error \(500\)"), 500),  # Django's
    (re.compile(rb'"error": "server_error"'), 500),  # oauth_cc's
    (re.compile(rb"A server error occurred"), 500),  # wsgiref's
    (re.compile(rb"could not be checked right now"), 503),  # the DRF authentication's
]


def _status_without_status_line(data: bytes) -> int | None:
    for pattern, status in _SERVER_ERROR_BODIES:
        match = pattern.search(data)
        if match:
            return status or int(match.group(1))
    return None


@pytest.fixture
def site_server(transactional_db: Any) -> Iterator[LiveServer]:
    """pytest-django's live server, serving the app the way example_project/wsgi.py wires it:
    behind example_project.middleware.RequestGuard."""
    server = LiveServer("localhost", start=False)
    serve = server.thread.static_handler
    server.thread.static_handler = lambda application: RequestGuard(serve(application))
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(600)
def test_raw_http_fuzz_never_answers_5xx(site_server: Any, world: World, tmp_path: Any) -> None:
    live_server = site_server
    seed = _env_int("OAUTH_CC_FUZZ_SEED", DEFAULT_SEED)
    count = _env_int("OAUTH_CC_FUZZ_RAW_REQUESTS", DEFAULT_RAW_REQUESTS)
    url = urlsplit(live_server.url)
    host_header = url.netloc
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    silent: list[str] = []
    started = time.monotonic()
    for number in range(count):
        rng = random.Random(f"{seed}:raw:{number}")
        req = make_request(rng, world)
        parts = raw_parts(req, host_header)
        framing = [raw_mutate(rng, parts) for _ in range(rng.choices([0, 1, 2], weights=[25, 55, 20])[0])]
        data = parts.encode()
        received, note = _exchange(url.hostname, url.port, data)
        responses = parse_raw_responses(received)
        if not responses:
            # http.server answers a request line it cannot parse the HTTP/0.9 way: a body, no
            # status line. The body still tells a server error from the others.
            status = _status_without_status_line(received)
            if received:
                label = f"no status line ({status or 'not a server error'})"
            else:
                label = "timed out" if "Timeout" in note else "closed without an answer"
            statuses[label] += 1
            silent.append(f"#{number} {' + '.join(framing)} {note} got {received[:80]!r}")
            responses = [(status, b"", received[:300])] if status else []
        for status, _, body in responses:
            statuses[str(status)] += 1
            # 505 is http.server's (correct) answer to an "HTTP/2.0" request line it does not speak.
            version_refused = status == 505 and parts.version.startswith(b"HTTP/2")
            if status >= 500 and not version_refused:
                failures.append(
                    f"#{number} {req.describe()} + {' + '.join(framing) or '(no framing change)'}\n"
                    f"    -> {status} {_head(body)!r} {note}\n    sent: {data[:300]!r}"
                )
    seconds = time.monotonic() - started
    summary = {
        "seed": seed,
        "requests": count,
        "seconds": round(seconds, 2),
        "status": dict(statuses.most_common()),
        "5xx": len(failures),
        "first_5xx": failures[:20],
        "no_response": silent[:50],
    }
    report = _write_summary(summary, tmp_path, "http_fuzz_raw.json", raw=True)
    print(
        f"\nraw http fuzz: {count} requests, status {summary['status']}, 5xx={len(failures)}, "
        f"seed={seed}, {seconds:.1f}s, report {report}"
    )
    assert not failures, f"{len(failures)} 5xx over real HTTP (seed {seed}):\n" + "\n".join(failures[:10])


# -- the smallest request behind each 5xx the fuzz found --------------------------------------
# Each is one request; each must not get a 5xx. "site key" ones carry a token genuinely signed
# by the site's own key (tests.attacks.forge), so only the key's holder can send them.

FORM_TYPE = "application/x-www-form-urlencoded"


def _revoke_site_signed(**claims: Any) -> Any:
    def build(world: World) -> tuple[str, str, bytes, dict[str, str]]:
        token = world.forger.sign(world.forger.claims(world.revoker.client_id, **claims))
        body = urlencode({"token": token}).encode()
        return (
            "POST",
            "/oauth/revoke/",
            body,
            {"CONTENT_TYPE": FORM_TYPE, "HTTP_AUTHORIZATION": world.revoker.basic()},
        )

    return build


def _report_with_client_id(client_id: str) -> Any:
    def build(world: World) -> tuple[str, str, bytes, dict[str, str]]:
        token = world.forger.sign(world.forger.claims(client_id))
        return (
            "POST",
            "/api/reports/",
            b'{"title": "t"}',
            {"CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {token}"},
        )

    return build


def _csrf_post(content_type: str, content_length: str) -> Any:
    def build(world: World) -> tuple[str, str, bytes, dict[str, str]]:
        meta = {
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": content_length,
            "HTTP_COOKIE": f"csrftoken={world.csrf_cookie}",
        }
        return "POST", ADMIN_LOGIN, b"", meta

    return build


REPRODUCERS: dict[str, Any] = {
    # oauth_cc.issuer.issuance._content_length: str.isdigit() passes, int() refuses > 4300 digits.
    "oauth_cc-content-length-4301-digits": lambda w: (
        "POST",
        "/oauth/token/",
        b"",
        {"CONTENT_TYPE": FORM_TYPE, "CONTENT_LENGTH": "9" * 4301},
    ),
    # oauth_cc.issuer.revocation.revoke_jti: datetime.fromtimestamp(exp) for exp past 9999-12-31 (site key).
    "oauth_cc-revoke-exp-after-year-9999": _revoke_site_signed(exp=253402300800),
    # RevokedToken.jti is a varchar(64) (site key; PostgreSQL only).
    "oauth_cc-revoke-jti-65-chars": _revoke_site_signed(jti="j" * 65),
    # PostgreSQL refuses NUL in text (site key; PostgreSQL only).
    "oauth_cc-revoke-jti-with-nul": _revoke_site_signed(jti="a\x00"),
    # DRF's JSONParser catches ValueError, not RecursionError (any client with reports:write).
    "demo-json-nested-1000-deep": lambda w: (
        "POST",
        "/api/reports/",
        b"[" * 1000 + b"]" * 1000,
        {"CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {w.api_tokens['write']}"},
    ),
    # Report.submitted_by is a varchar(255) filled from the token's client_id (site key; PostgreSQL).
    "demo-report-client-id-256-chars": _report_with_client_id("c" * 256),
    "demo-report-client-id-with-nul": _report_with_client_id("c\x00"),
    # Django: HttpRequest.encoding accepts any codec name, then decodes the query string with it;
    # raised while the request object is built, outside the handler's exception handling.
    "django-charset-non-text-codec": lambda w: (
        "GET",
        "/api/health/",
        b"",
        {"CONTENT_TYPE": "text/plain; charset=base64", "QUERY_STRING": "a"},
    ),
    # Django: HttpRequest.body int()s CONTENT_LENGTH unguarded (ticket #37103); the CSRF check
    # reads request.POST, and the error views (requires_csrf_token) read it again and re-raise.
    "django-admin-login-content-length-x": _csrf_post(FORM_TYPE, "x"),
    # Django: LimitedStream.readline() hands a size above sys.maxsize to the stream (OverflowError)
    # when the multipart parser drains a body whose Content-Length is far beyond 2**63.
    "django-admin-login-multipart-content-length-19-nines": lambda w: (
        "POST",
        ADMIN_LOGIN,
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--b--\r\n',
        {
            "CONTENT_TYPE": "multipart/form-data; boundary=b",
            "CONTENT_LENGTH": "9" * 19,
            "HTTP_COOKIE": f"csrftoken={w.csrf_cookie}",
        },
    ),
    # Django: the same re-raise for the BadRequest of a non-UTF-8 form charset.
    "django-admin-login-form-charset-utf16": _csrf_post(FORM_TYPE + "; charset=UTF-16", "0"),
}


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_fuzz_finding_reproducer_answers_below_500(name: str, world: World) -> None:
    method, path, body, meta = REPRODUCERS[name](world)
    client = SiteClient(enforce_csrf_checks=True, raise_request_exception=False)
    try:
        response = client.generic(
            method, path, b"", **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), **meta}
        )
    except Exception as exc:  # escaped Django's handler: the WSGI server answers 500
        response = Escaped(exc)
    assert response.status_code < 500, (name, response.status_code, response.content[:200])
