"""Mutual TLS end to end: a real nginx terminates TLS in front of the live test server.

nginx (Debian's package, ``apt-get install -y nginx``) runs from the test as the current user
(``master_process off``, everything under a temporary directory, a free port) with a server
certificate and a client CA generated here with ``cryptography``. It asks for a client
certificate (``ssl_verify_client optional``: it verifies the chain and dates and refuses a
certificate that fails; no certificate is allowed) and forwards it as nginx's
``$ssl_client_escaped_cert`` in ``X-SSL-Client-Cert``, set with ``proxy_set_header``, which
replaces any such header the client sent. The site trusts that header
(``CLIENT_CERT_HEADER``). The client is ``requests`` with ``cert=(certfile, keyfile)``.

Skipped without nginx, except when ``OAUTH_CC_REQUIRE_NGINX=1`` (``.ci/run`` sets it after
installing nginx): then a missing nginx fails the module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
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

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
if os.environ.get("OAUTH_CC_REQUIRE_NGINX") == "1":
    assert Path(NGINX).exists(), f"{NGINX} is missing (apt-get install -y nginx)"
elif not Path(NGINX).exists():
    pytest.skip("nginx is missing (apt-get install -y nginx)", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True)

NGINX_CONF = """
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_client_certificate {ca_cert};
        ssl_verify_client optional;
        location / {{
            proxy_pass {upstream};
            # Replaces whatever X-SSL-Client-Cert the client sent; empty without a certificate.
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def running_nginx(pki: Pki, upstream: str, tmp: Path) -> Iterator[str]:
    port = free_port()
    server_cert, server_key = pki.server_files
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp,
            port=port,
            server_cert=server_cert,
            server_key=server_key,
            ca_cert=pki.ca_file,
            upstream=upstream,
        )
    )
    command = [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    with running([*command, "-g", "daemon off; master_process off;"], port, "nginx") as url:
        yield url


@pytest.fixture
def site(live_server: Any, pki: Pki, tmp_path: Path) -> Iterator[str]:
    """The live server behind nginx; the site's URL (nginx's) is the issuer."""
    clear_shared_cache()
    with running_nginx(pki, live_server.url, tmp_path) as url:
        from django.conf import settings

        with override_settings(
            OAUTH_CC={**settings.OAUTH_CC, "ISSUER": url, "CLIENT_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT"}
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
    # A header naming the right certificate, sent by the client: nginx replaces it.
    spoofed = whoami(site, pki, token, None, **{"X-SSL-Client-Cert": pki.client.nginx_header})
    assert "none was presented" in bearer_error(spoofed)
    spoofed = whoami(site, pki, token, pki.intruder_files, **{"X-SSL-Client-Cert": pki.client.nginx_header})
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


def test_a_certificate_from_an_untrusted_ca_is_refused_by_nginx(site, pki, tls_client):
    response = get_token(site, pki, tls_client.client_id, pki.rogue_files)

    # nginx checks the chain (ssl_verify_client with the CA) and answers itself: never proxied.
    assert response.status_code == 400
    assert "The SSL certificate error" in response.text
    assert not response.headers.get("Content-Type", "").startswith("application/json")


def test_a_spoofed_header_without_a_certificate_is_not_trusted(site, pki, tls_client):
    response = get_token(
        site, pki, tls_client.client_id, None, headers={"X-SSL-Client-Cert": pki.client.nginx_header}
    )

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
        headers={"X-SSL-Client-Cert": pki.client.nginx_header},
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }
