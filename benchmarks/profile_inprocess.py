#!/usr/bin/env python3
"""Where a request's time goes, measured in one process without HTTP or wrk.

Calls the example project's WSGI application directly for the unauthenticated view, a
protected view and the token endpoint (interleaved, so drift hits all three alike), then
times the parts of the token grant one by one. Complements ``run.py``: the difference
between the first three lines is what oauth_cc adds to a request.

    python benchmarks/profile_inprocess.py [--calls 10000]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="requests per scenario (default 10000)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="oauth_cc-profile-")
    os.environ.update(
        DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="profile-only-" + "x" * 40,
        OAUTH_CC_ISSUER="http://127.0.0.1:8000",
        DJANGO_SETTINGS_MODULE="example_project.settings",
    )
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from django.test import RequestFactory

    from oauth_cc.common import tokens, verification
    from oauth_cc.issuer import client_auth, clients, issuance, usage_counts
    from oauth_cc.issuer.state import client_cache
    from oauth_cc.models import Scope

    call_command("migrate", verbosity=0)
    Scope.objects.create(name="reports:read")
    app, issued = clients.create_client("profile", scopes=["reports:read"])
    basic = "Basic " + base64.b64encode(f"{app.client_id}:{issued.secret}".encode()).decode()
    body = b"grant_type=client_credentials&scope=reports:read"
    handler = get_wsgi_application()  # (re)applies settings.LOGGING
    # The log line is part of the cost; keep it, but write it nowhere instead of the terminal.
    devnull = open(os.devnull, "w")
    for log_handler in logging.getLogger("oauth_cc").handlers:
        if isinstance(log_handler, logging.StreamHandler):
            log_handler.setStream(devnull)

    def call(method: str, path: str, data: bytes = b"", **headers: str) -> tuple[str, bytes]:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(data)),
            **headers,
        }
        status: list[str] = []
        result = handler(environ, lambda s, h, exc=None: status.append(s))
        content = b"".join(result)
        result.close()
        return status[0], content

    def token_request() -> tuple[str, bytes]:
        return call(
            "POST",
            "/oauth/token/",
            body,
            CONTENT_TYPE="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=basic,
        )

    access_token = json.loads(token_request()[1])["access_token"]

    # DPoP (RFC 9449): a token bound to a key, and a fresh proof for every request. Proofs are
    # made with PyJWT before each round, outside the timed loop: the client's cost is not ours.
    from oauth_cc.conf import oauth_cc_settings
    from tests import dpop_helpers

    dpop_key = dpop_helpers.new_ec_key()
    dpop_token = json.loads(
        call(
            "POST",
            "/oauth/token/",
            body,
            CONTENT_TYPE="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=basic,
            HTTP_DPOP=dpop_helpers.proof(dpop_key, htu="http://127.0.0.1:8000/oauth/token/"),
        )[1]
    )["access_token"]
    proofs: list[str] = []

    def make_proofs(count: int) -> None:
        proofs[:] = [
            dpop_helpers.proof(dpop_key, htm="GET", htu="http://127.0.0.1:8000/api/ping/", token=dpop_token)
            for _ in range(count)
        ]

    def dpop_request(store: str) -> tuple[str, bytes]:
        oauth_cc_settings.DPOP_REPLAY_STORE = store  # the cached setting, swapped in place
        return call("GET", "/api/ping/", HTTP_AUTHORIZATION=f"DPoP {dpop_token}", HTTP_DPOP=proofs.pop())

    scenarios: dict[str, Callable[[], tuple[str, bytes]]] = {
        "unauthenticated view": lambda: call("GET", "/api/health/"),
        "protected view": lambda: call("GET", "/api/ping/", HTTP_AUTHORIZATION=f"Bearer {access_token}"),
        "protected, DPoP (db)": lambda: dpop_request("database"),
        "protected, DPoP (cache)": lambda: dpop_request("cache"),
        "token endpoint": token_request,
    }
    prepare = {"protected, DPoP (db)": make_proofs, "protected, DPoP (cache)": make_proofs}
    for name, scenario in scenarios.items():
        prepare.get(name, lambda count: None)(1)
        status, content = scenario()
        assert status.startswith("200"), (name, status, content)

    totals = dict.fromkeys(scenarios, 0.0)
    rounds, per_round = 10, max(1, args.calls // 10)
    for _ in range(rounds):
        for name, scenario in scenarios.items():
            prepare.get(name, lambda count: None)(per_round)
            start = time.perf_counter()
            for _ in range(per_round):
                scenario()
            totals[name] += time.perf_counter() - start
    oauth_cc_settings.DPOP_REPLAY_STORE = "database"
    print(f"whole request through Django (WSGI, no HTTP), {rounds * per_round} calls each, interleaved:")
    for name, seconds in totals.items():
        print(f"  {name:<24} {seconds / (rounds * per_round) * 1e6:8.1f} µs")
    bearer = totals["protected view"]
    for name in ("protected, DPoP (db)", "protected, DPoP (cache)"):
        print(f"  {name} / Bearer: {totals[name] / bearer:.2f}x")

    request = RequestFactory().post(
        "/oauth/token/", body, content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=basic
    )
    params = issuance.parse_form(request)
    client = client_cache.client(app.client_id)
    assert client is not None
    claims = tokens.build_claims(
        issuer="http://127.0.0.1:8000",
        client_id=app.client_id,
        audience="http://127.0.0.1:8000",
        scopes=["reports:read"],
        lifetime=3600,
        now=int(time.time()),
    )
    issuance_log = logging.getLogger("oauth_cc.issuance")
    parts: dict[str, Callable[[], object]] = {
        "issue_token (all)": lambda: issuance.issue_token(request),
        "  parse_form": lambda: issuance.parse_form(request),
        "  authenticate_client": lambda: client_auth.authenticate_client(request, params, endpoint="token"),
        "  resolve_scopes": lambda: issuance.resolve_scopes(client, "reports:read"),
        "  build_claims": lambda: tokens.build_claims(
            issuer="i", client_id="c", audience="a", scopes=["s"], lifetime=1, now=1
        ),
        "  sign (ES256)": lambda: tokens.sign(claims),
        "  issuance log line": lambda: issuance_log.info("issued token jti=%s client_id=%s", "j", "c"),
        "  usage count": lambda: usage_counts.count_issued(app.client_id),
    }
    print("\nthe token grant, part by part:")
    number = max(1, args.calls // 2)
    for name, part in parts.items():
        part()
        print(f"  {name:<22} {timeit.timeit(part, number=number) / number * 1e6:8.1f} µs")

    # The protected side: a token's first check (strict parse, signature, claims) and the memo
    # hit every later request with the same token costs.
    checks: dict[str, Callable[[], object]] = {
        "verify (memo miss)": lambda: tokens.verify(
            access_token,
            issuer="http://127.0.0.1:8000",
            audience="http://127.0.0.1:8000",
            leeway=30,
            now=time.time(),
        ),
        "check (memo hit)": lambda: verification.check_access_token(access_token),
    }
    print("\nthe token check, part by part:")
    for name, part in checks.items():
        part()
        best = min(timeit.repeat(part, number=number, repeat=5)) / number
        print(f"  {name:<22} {best * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
