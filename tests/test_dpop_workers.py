"""DPoP over real HTTP on two gunicorn servers sharing one database: a proof is used once, site-wide.

Proofs are built with PyJWT and sent with requests (Authlib 1.x has no DPoP client). Both
servers are "hosts" of one site behind a load balancer: requests carry ``Host: 127.0.0.1``
(the issuer's host), so the URL each server sees, and a proof's ``htu``, is the same on both.
The servers reuse ``tests/test_real_workers.py``'s set-up (SQLite file, or a PostgreSQL
database of their own when ``DATABASE_URL`` is PostgreSQL); the single-use record of proofs is
the database (``DPOP_REPLAY_STORE`` default), which is what makes replay fail on the other host.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import dpop_helpers as dh
from tests.test_real_workers import ISSUER, Site, two_servers

pytestmark = pytest.mark.timeout(240)

#: Redis database 3: this branch's; entries are kept apart by a per-run key prefix.
REDIS_URL = os.environ.get("OAUTH_CC_DPOP_REDIS_URL", "redis://127.0.0.1:6379/3")
SCOPE = "reports:read"
HOST = "127.0.0.1"
TOKEN_HTU = f"{ISSUER}/oauth/token/"
WHOAMI_HTU = f"{ISSUER}/api/whoami/"
TIMEOUT = 15


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with two_servers(
        tmp_path_factory.mktemp("dpop-workers"),
        redis_url=REDIS_URL,
        secret_key="dpop-workers-tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    ) as site:
        yield site


@pytest.fixture
def credentials(site: Site) -> tuple[str, str]:
    data = json.loads(
        site.manage(
            "oauth_cc",
            "client",
            "create",
            f"dpop-{uuid.uuid4().hex[:6]}",
            "--scope",
            SCOPE,
            "--require-dpop",
            "--json",
        )
    )
    return data["client_id"], data["client_secret"]


def token_request(server: Any, credentials: tuple[str, str], proof: str | None) -> requests.Response:
    headers = {"Host": HOST}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.post(
        f"{server.url}/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=credentials,
        headers=headers,
        timeout=TIMEOUT,
    )


def whoami(server: Any, token: str, proof: str) -> requests.Response:
    headers = {"Host": HOST, "Authorization": f"DPoP {token}", "DPoP": proof}
    return requests.get(f"{server.url}/api/whoami/", headers=headers, timeout=TIMEOUT)


def test_token_proof_replayed_on_the_other_host(site: Site, credentials: tuple[str, str]) -> None:
    key = dh.new_ec_key()
    assert token_request(site.a, credentials, None).json() == {
        "error": "invalid_dpop_proof",
        "error_description": "This client gets only DPoP-bound tokens: send a DPoP proof (RFC 9449).",
    }
    proof = dh.proof(key, htu=TOKEN_HTU)
    first = token_request(site.a, credentials, proof)
    assert first.status_code == 200, f"{first.text}\n{site.logs()}"
    assert first.json()["token_type"] == "DPoP"
    replay = token_request(site.b, credentials, proof)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"
    assert "already been used" in replay.json()["error_description"]


def test_resource_proof_replayed_on_the_other_host(site: Site, credentials: tuple[str, str]) -> None:
    key = dh.new_ec_key()
    token = token_request(site.a, credentials, dh.proof(key, htu=TOKEN_HTU)).json()["access_token"]
    proof = dh.proof(key, htm="GET", htu=WHOAMI_HTU, token=token)
    accepted = whoami(site.b, token, proof)
    assert accepted.status_code == 200, f"{accepted.text}\n{site.logs()}"
    assert accepted.json()["client_id"] == credentials[0]
    replay = whoami(site.a, token, proof)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["WWW-Authenticate"]
    assert "already been used" in replay.json()["detail"]
    # A fresh proof by the same key works on either host; as a Bearer token it works nowhere.
    for server in site.servers:
        assert whoami(server, token, dh.proof(key, htm="GET", htu=WHOAMI_HTU, token=token)).status_code == 200
        bearer = requests.get(
            f"{server.url}/api/whoami/",
            headers={"Host": HOST, "Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
        assert bearer.status_code == 401
        assert bearer.headers["WWW-Authenticate"].startswith('DPoP realm="api"')
        assert 'error="invalid_token"' in bearer.headers["WWW-Authenticate"]


def test_same_proof_racing_on_both_hosts_wins_once(site: Site, credentials: tuple[str, str]) -> None:
    key = dh.new_ec_key()
    token = token_request(site.b, credentials, dh.proof(key, htu=TOKEN_HTU)).json()["access_token"]
    statuses: list[int] = []
    for _ in range(5):
        proof = dh.proof(key, htm="GET", htu=WHOAMI_HTU, token=token)
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}

        def send(server: Any, proof: str = proof, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            results[server.name] = whoami(server, token, proof).status_code

        threads = [threading.Thread(target=send, args=(server,)) for server in site.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [200, 401], f"{results}\n{site.logs()}"
        statuses.extend(results.values())
    assert statuses.count(200) == 5
