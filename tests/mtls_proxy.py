"""What the end-to-end mutual TLS tests share, whichever proxy terminates TLS in front of the live
server (``tests/test_mtls_nginx.py``, ``tests/test_mtls_haproxy.py``): the PKI, starting and
stopping the proxy, and the client's requests (``requests`` with ``cert=(certfile, keyfile)``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .mtls_helpers import Cert, issue, make_ca

SCOPE = "reports:read"
STARTUP_DEADLINE = 30.0
HTTP_TIMEOUT = 15


@dataclass(frozen=True)
class Pki:
    ca_file: str
    client: Cert
    client_files: tuple[str, str]
    intruder: Cert
    intruder_files: tuple[str, str]
    rogue_files: tuple[str, str]
    #: The proxy's server certificate and key, and both in one PEM (HAProxy's ``crt``).
    server_files: tuple[str, str]
    server_bundle: str


def make_pki(directory: Path) -> Pki:
    """A client CA, two clients it issues, a client of another CA, and a server certificate."""
    ca = make_ca("oauth_cc test client CA")
    client = issue(ca, "billing")
    intruder = issue(ca, "intruder")
    rogue = issue(make_ca("another CA"), "billing")  # the right name, from a CA the proxy does not trust
    server = issue(ca, "127.0.0.1", ip=["127.0.0.1"], dns=["localhost"], server=True)
    server_files = server.write(directory, "server")
    bundle = directory / "server.pem"
    bundle.write_text(server.pem + server.key_pem)
    (directory / "ca.crt").write_text(ca.pem)
    return Pki(
        ca_file=str(directory / "ca.crt"),
        client=client,
        client_files=client.write(directory, "client"),
        intruder=intruder,
        intruder_files=intruder.write(directory, "intruder"),
        rogue_files=rogue.write(directory, "rogue"),
        server_files=server_files,
        server_bundle=str(bundle),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(command: list[str], port: int, name: str) -> Iterator[str]:
    """Run a proxy in the foreground until it listens on ``port``; stop it afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, f"{name} did not start listening"
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def billing_client() -> Any:
    """The tls_client_auth client "billing" (subject ``CN=billing,O=Example``), tokens bound."""
    from oauth_cc.issuer import clients
    from oauth_cc.models import Scope

    Scope.objects.create(name=SCOPE, is_default=True)
    application, _ = clients.create_client(
        "billing",
        scopes=[SCOPE],
        auth_method="tls_client_auth",
        tls_subject_dn="CN=billing,O=Example",
        certificate_bound_tokens=True,
    )
    return application


def get_token(
    site: str, pki: Pki, client_id: str, cert: tuple[str, str] | None, **kwargs: Any
) -> requests.Response:
    return requests.post(
        f"{site}/oauth/token/",
        data={"grant_type": "client_credentials", "client_id": client_id},
        cert=cert,
        verify=pki.ca_file,
        timeout=HTTP_TIMEOUT,
        **kwargs,
    )


def whoami(
    site: str, pki: Pki, token: str, cert: tuple[str, str] | None, **headers: str
) -> requests.Response:
    return requests.get(
        f"{site}/api/whoami/",
        headers={"Authorization": f"Bearer {token}", **headers},
        cert=cert,
        verify=pki.ca_file,
        timeout=HTTP_TIMEOUT,
    )


def bearer_error(response: requests.Response) -> str:
    assert response.status_code == 401, response.text
    return response.headers["WWW-Authenticate"]
