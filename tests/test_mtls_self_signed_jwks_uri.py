"""``self_signed_tls_client_auth`` with the keys at a ``jwks_uri`` (RFC 8705 §2.2).

The certificate's public key must be a key of the set the client serves. The set is fetched by
the same fetcher as private_key_jwt's (``oauth_cc.issuer.client_jwks_fetch``): cached, and fetched again
once when a certificate holds a key the cached set lacks (a rollover), at most once per
``KID_MISS_REFETCH_INTERVAL`` per URL. A real HTTP server on 127.0.0.1 plays the key server
(``JWKS_URI_ALLOW_INSECURE`` is on in the test settings).
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from oauth_cc.models import Application, Scope

from .conftest import refused_unproven
from .mtls_helpers import HEADER, Cert, issue
from .test_admin import client_form
from .test_jwks_uri import KeyServer, _cold_key_caches, key_server  # noqa: F401 - fixtures
from .test_mtls import SCOPE, assert_error, claims_of, token_request


@pytest.fixture(scope="module")
def mine() -> Cert:
    return issue(None, "my-service")


@pytest.fixture(scope="module")
def theirs() -> Cert:
    return issue(None, "my-service")


@pytest.fixture
def keys(key_server: KeyServer, mine: Cert) -> KeyServer:  # noqa: F811
    """The client's key server, serving the key of ``mine``."""
    key_server.document = mine.jwks()
    return key_server


@pytest.fixture
def uri_client(make_client: Any, settings: Any, keys: KeyServer) -> Application:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, secret = make_client(
        "self-signed",
        scopes=[SCOPE],
        auth_method="self_signed_tls_client_auth",
        jwks_uri=keys.url,
        certificate_bound_tokens=True,
    )
    assert secret == ""
    return application


def test_the_certificate_holding_a_served_key_gets_a_bound_token_and_the_set_is_fetched_once(
    client, uri_client, keys, mine
):
    for _ in range(2):
        response = token_request(client, uri_client.client_id, mine)
        assert response.status_code == 200, response.content
        assert claims_of(response.json()["access_token"])["cnf"] == {"x5t#S256": mine.thumbprint}
    assert keys.hits == 1


def test_a_certificate_with_another_key_is_refused_after_one_rate_limited_refetch(
    client, uri_client, keys, mine, theirs, caplog
):
    assert token_request(client, uri_client.client_id, mine).status_code == 200
    assert keys.hits == 1

    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        refused = token_request(client, uri_client.client_id, theirs)

    assert_error(refused, 401, "invalid_client", "Client authentication failed.")
    assert "does not hold a key of the registered JWKS" in caplog.text
    assert keys.hits == 2  # the unknown key: the set may have rolled over
    for _ in range(3):
        again = token_request(client, uri_client.client_id, theirs)
        assert_error(again, 401, "invalid_client", "Client authentication failed.")
    assert keys.hits == 2  # not again within KID_MISS_REFETCH_INTERVAL


def test_a_rolled_over_key_is_picked_up_by_one_refetch(client, uri_client, keys, mine):
    assert token_request(client, uri_client.client_id, mine).status_code == 200
    successor = issue(None, "my-service")
    keys.document = {"keys": [*mine.jwks("old")["keys"], *successor.jwks("new")["keys"]]}

    response = token_request(client, uri_client.client_id, successor)

    assert response.status_code == 200, response.content
    assert claims_of(response.json()["access_token"])["cnf"] == {"x5t#S256": successor.thumbprint}
    assert keys.hits == 2
    assert token_request(client, uri_client.client_id, mine).status_code == 200  # the old key, cached
    assert keys.hits == 2


def test_a_key_server_that_fails_gets_the_generic_answer_and_is_named_in_the_log(
    client, uri_client, keys, mine, auth_log
):
    # Any self-signed certificate would do here: the caller has proved nothing, so it must not
    # learn that this client_id exists and has a failing jwks_uri. The operator's log says it.
    keys.mode = "error"

    response = token_request(client, uri_client.client_id, mine)

    refused_unproven(
        response,
        auth_log,
        f"client {uri_client.client_id} presented a TLS client certificate that could not be checked: "
        "could not fetch the client's JWKS: the server answered HTTP 500",
    )


def test_a_served_key_the_site_cannot_use_matches_nothing(client, uri_client, keys, mine, auth_log):
    private = mine.jwks()
    private["keys"][0]["d"] = "AAAA"  # a private key: skipped, as for private_key_jwt

    keys.document = private
    response = token_request(client, uri_client.client_id, mine)

    refused_unproven(
        response, auth_log, "could not fetch the client's JWKS: the JWK Set has no usable public signing key"
    )


# -- registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {},
            "client_jwks",
            "A self_signed_tls_client_auth client needs exactly one of: an inline JWKS holding its "
            "certificate's public key, or a JWKS URI serving it.",
        ),
        (
            {"client_jwks": {"keys": []}, "client_jwks_uri": "https://keys.example.com/jwks.json"},
            "client_jwks",
            "A self_signed_tls_client_auth client needs exactly one of:",
        ),
        (
            {"client_jwks_uri": "http://keys.example.com/jwks.json"},
            "client_jwks_uri",
            "The JWKS URI must use https://.",
        ),
        (
            {"client_jwks_uri": "https://10.0.0.1/jwks.json"},
            "client_jwks_uri",
            "The JWKS URI points at 10.0.0.1",
        ),
    ],
)
def test_a_self_signed_client_needs_exactly_one_key_source(db, settings, fields, field, message):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": False}
    application = Application(name="x", token_endpoint_auth_method="self_signed_tls_client_auth", **fields)

    with pytest.raises(ValidationError) as caught:
        application.clean()

    (got,) = caught.value.message_dict[field]
    assert got.startswith(message), got


def test_a_self_signed_client_with_a_public_https_jwks_uri_is_valid(db, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": False}
    Application(
        name="x",
        token_endpoint_auth_method="self_signed_tls_client_auth",
        client_jwks_uri="https://keys.example.com/jwks.json",
    ).clean()


def test_the_command_creates_a_self_signed_client_with_a_jwks_uri(db):
    out = io.StringIO()
    call_command(
        "oauth_cc", "client", "create", "svc", "--auth-method", "self_signed_tls_client_auth",
        "--jwks-uri", "https://keys.example.com/jwks.json", "--json", stdout=out,
    )  # fmt: skip

    client_id = json.loads(out.getvalue())["client_id"]
    application = Application.objects.get(client_id=client_id)
    assert application.token_endpoint_auth_method == "self_signed_tls_client_auth"
    assert application.client_jwks_uri == "https://keys.example.com/jwks.json"
    assert application.client_jwks is None


def test_the_admin_saves_a_self_signed_client_with_a_jwks_uri(admin_client):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"),
        client_form(
            token_endpoint_auth_method="self_signed_tls_client_auth",
            client_jwks_uri="https://keys.example.com/jwks.json",
        ),
    )

    assert response.status_code == 302, response.content
    application = Application.objects.get()
    assert application.client_jwks_uri == "https://keys.example.com/jwks.json"
    page = admin_client.get(reverse("admin:oauth_cc_application_change", args=[application.pk])).content
    assert b"Keys are fetched from the JWKS URI when the client authenticates." in page
