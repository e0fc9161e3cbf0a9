"""Mutual TLS end to end with RFC 9440 ``Client-Cert``: a real HAProxy in front of the live server.

nginx cannot write RFC 9440's ``:base64-DER:`` form; HAProxy (Debian's package,
``apt-get install -y haproxy``) can, with ``ssl_c_der,base64``. It runs from the test in the
foreground as the current user, on a free port, with a server certificate and a client CA
generated here (``tests/mtls_proxy.py``, shared with ``tests/test_mtls_nginx.py``). It asks for a
client certificate (``verify optional``: a certificate that fails the chain or dates ends the
handshake; none is allowed), deletes any ``Client-Cert`` the client sent and sets it from the
certificate it verified. The site trusts that header (``CLIENT_CERT_HEADER`` =
``"HTTP_CLIENT_CERT"``, ``CLIENT_CERT_HEADER_FORMAT`` = ``"rfc9440"``).

Skipped without HAProxy, except when ``OAUTH_CC_REQUIRE_HAPROXY=1`` (``.ci/run`` sets it after
installing HAProxy): then a missing HAProxy fails the module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from django.test import override_settings

from oauth_cc.common.mtls import thumbprint
from oauth_cc.models import Application
from tests.helpers import clear_shared_cache

from .mtls_proxy import (
    SCOPE,
    Pki,
    bearer_error,
    billing_client,
    free_port,
    get_token,
    make_pki,
    running,
    whoami,
)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if os.environ.get("OAUTH_CC_REQUIRE_HAPROXY") == "1":
    assert Path(HAPROXY).exists(), f"{HAPROXY} is missing (apt-get install -y haproxy)"
elif not Path(HAPROXY).exists():
    pytest.skip("HAProxy is missing (apt-get install -y haproxy)", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True)

# The lines the README's "Mutual TLS" section shows, in a configuration of their own.
HAPROXY_CONF = """
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend mtls
    bind 127.0.0.1:{port} ssl crt {server_pem} ca-file {ca_cert} verify optional
    # Whatever Client-Cert the client sent is dropped (Client_Cert too: some servers read an
    # underscore as a dash); then it is set only when the client presented a certificate.
    http-request del-header Client-Cert
    http-request del-header Client_Cert
    http-request set-header Client-Cert :%[ssl_c_der,base64]: if {{ ssl_c_used }}
    default_backend site

backend site
    server site {upstream}
"""


@contextlib.contextmanager
def running_haproxy(pki: Pki, upstream: str, tmp: Path) -> Iterator[str]:
    port = free_port()
    target = urlsplit(upstream)
    conf = tmp / "haproxy.cfg"
    conf.write_text(
        HAPROXY_CONF.format(
            port=port,
            server_pem=pki.server_bundle,
            ca_cert=pki.ca_file,
            upstream=f"{target.hostname}:{target.port}",
        )
    )
    # -db: stay in the foreground (no daemon, no master process); -f: this configuration only.
    with running([HAPROXY, "-db", "-f", str(conf)], port, "HAProxy") as url:
        yield url


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def site(live_server: Any, pki: Pki, tmp_path: Path) -> Iterator[str]:
    """The live server behind HAProxy; the site's URL (HAProxy's) is the issuer."""
    clear_shared_cache()
    with running_haproxy(pki, live_server.url, tmp_path) as url:
        from django.conf import settings

        with override_settings(
            OAUTH_CC={
                **settings.OAUTH_CC,
                "ISSUER": url,
                "CLIENT_CERT_HEADER": "HTTP_CLIENT_CERT",
                "CLIENT_CERT_HEADER_FORMAT": "rfc9440",
            }
        ):
            yield url


@pytest.fixture
def tls_client(site: str) -> Application:
    return billing_client()


def test_the_right_certificate_gets_a_bound_token_and_uses_it(site, pki, tls_client):
    response = get_token(site, pki, tls_client.client_id, pki.client_files)

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"] == {"x5t#S256": thumbprint(pki.client.certificate)}
    assert claims["iss"] == site
    api = whoami(site, pki, token, pki.client_files)
    assert api.status_code == 200, api.text
    assert api.json() == {"client_id": tls_client.client_id, "scopes": [SCOPE]}


def test_the_bound_token_is_refused_without_its_certificate(site, pki, tls_client):
    token = get_token(site, pki, tls_client.client_id, pki.client_files).json()["access_token"]

    assert bearer_error(whoami(site, pki, token, None)) == (
        'Bearer realm="api", error="invalid_token", '
        'error_description="The access token is bound to a client certificate; none was presented."'
    )
    assert bearer_error(whoami(site, pki, token, pki.intruder_files)) == (
        'Bearer realm="api", error="invalid_token", '
        'error_description="The access token is bound to a different client certificate."'
    )
    # The right certificate's header, sent by the client: HAProxy drops it.
    for name in ("Client-Cert", "client-cert", "Client_Cert"):
        spoofed = whoami(site, pki, token, None, **{name: pki.client.rfc9440_header})
        assert "none was presented" in bearer_error(spoofed), name
    spoofed = whoami(site, pki, token, pki.intruder_files, **{"Client-Cert": pki.client.rfc9440_header})
    assert "a different client certificate" in bearer_error(spoofed)
    assert whoami(site, pki, token, pki.client_files).status_code == 200


def test_a_wrong_certificate_or_none_gets_no_token(site, pki, tls_client):
    wrong = get_token(site, pki, tls_client.client_id, pki.intruder_files)
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}

    none = get_token(site, pki, tls_client.client_id, None)
    assert none.status_code == 401
    assert none.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication is required.",
    }


def test_a_certificate_from_an_untrusted_ca_ends_the_handshake(site, pki, tls_client):
    # HAProxy checks the chain (verify optional with ca-file) and refuses the connection: the
    # request never reaches the site, so no token and no OAuth answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        get_token(site, pki, tls_client.client_id, pki.rogue_files)


@pytest.mark.parametrize("name", ["Client-Cert", "client-cert", "Client_Cert"])
def test_a_spoofed_header_without_a_certificate_is_not_trusted(site, pki, tls_client, name):
    response = get_token(site, pki, tls_client.client_id, None, headers={name: pki.client.rfc9440_header})

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication is required.",
    }


def test_a_spoofed_header_does_not_replace_the_presented_certificate(site, pki, tls_client):
    response = get_token(
        site,
        pki,
        tls_client.client_id,
        pki.intruder_files,
        headers={"Client-Cert": pki.client.rfc9440_header},
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }
