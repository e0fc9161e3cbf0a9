"""Mutual TLS (RFC 8705) in process: the certificate a proxy forwards in ``CLIENT_CERT_HEADER``.

``tls_client_auth`` (subject DN or DNS SAN), ``self_signed_tls_client_auth`` (the key in the
client's JWKS), certificate-bound tokens (``cnf.x5t#S256``) refused by the DRF class without the
same certificate on every request, the metadata, and the admin and command fields. The same over
a real nginx is ``tests/test_mtls_nginx.py``; the header parser alone, ``tests/test_mtls_header.py``.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from oauth_cc.models import Application, AuditEvent, Scope

from .conftest import basic_auth, form_post
from .helpers import sign_with_site_key, token_claims
from .mtls_helpers import HEADER, Cert, issue, make_ca
from .test_admin import client_form

SCOPE = "reports:read"


@pytest.fixture(scope="module")
def ca() -> Cert:
    return make_ca()


@pytest.fixture(scope="module")
def cert(ca: Cert) -> Cert:
    return issue(ca, "billing", dns=["billing.example.com"])


@pytest.fixture(scope="module")
def other_cert(ca: Cert) -> Cert:
    return issue(ca, "intruder", dns=["intruder.example.com"])


@pytest.fixture
def mtls_on(settings: Any) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}


@pytest.fixture
def tls_client(make_client: Any, mtls_on: None) -> Application:
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, secret = make_client(
        "billing",
        scopes=[SCOPE],
        auth_method="tls_client_auth",
        tls_subject_dn="CN=billing,O=Example",
        certificate_bound_tokens=True,
    )
    assert secret == ""
    return application


def token_request(
    client: Any, client_id: str | None, certificate: Cert | None, *, header: str | None = None, **extra: Any
) -> Any:
    data = {"grant_type": "client_credentials"}
    if client_id is not None:
        data["client_id"] = client_id
    if header is None and certificate is not None:
        header = certificate.nginx_header
    if header is not None:
        extra[HEADER] = header
    return form_post(client, "/oauth/token/", data, **extra)


def whoami(client: Any, token: str, certificate: Cert | None, *, header: str | None = None) -> Any:
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if header is None and certificate is not None:
        header = certificate.nginx_header
    if header is not None:
        extra[HEADER] = header
    return client.get("/api/whoami/", **extra)


def assert_error(response: Any, status: int, error: str, description: str) -> None:
    assert response.status_code == status, response.content
    assert response.json() == {"error": error, "error_description": description}


def assert_invalid_token(response: Any, description: str) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == (
        f'Bearer realm="api", error="invalid_token", error_description="{description}"'
    )


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# -- tls_client_auth and certificate-bound tokens ------------------------------------------------


def test_the_registered_certificate_gets_a_bound_token_that_works_only_with_it(
    client, tls_client, cert, other_cert
):
    response = token_request(client, tls_client.client_id, cert)

    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    assert claims_of(token)["cnf"] == {"x5t#S256": cert.thumbprint}
    assert whoami(client, token, cert).json() == {"client_id": tls_client.client_id, "scopes": [SCOPE]}
    # Every request, not only the first: the verified-token memo holds the token by now.
    assert_invalid_token(
        whoami(client, token, None), "The access token is bound to a client certificate; none was presented."
    )
    assert_invalid_token(
        whoami(client, token, other_cert), "The access token is bound to a different client certificate."
    )
    assert_invalid_token(
        whoami(client, token, None, header="%%"), "The client certificate could not be read."
    )
    assert whoami(client, token, cert).status_code == 200


def test_the_same_certificate_forwarded_as_rfc9440_client_cert(client, tls_client, cert, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER_FORMAT": "rfc9440"}
    response = token_request(client, tls_client.client_id, cert, header=cert.rfc9440_header)

    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    assert whoami(client, token, cert, header=cert.rfc9440_header).status_code == 200
    # The nginx spelling is not the configured format: refused, not guessed at.
    assert_invalid_token(whoami(client, token, cert), "The client certificate could not be read.")


def test_another_certificate_from_the_same_ca_is_refused(client, tls_client, other_cert, caplog):
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        response = token_request(client, tls_client.client_id, other_cert)

    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert "WWW-Authenticate" not in response
    assert (
        f"client {tls_client.client_id} presented a TLS client certificate that does not carry the "
        "registered subject DN" in caplog.text
    )


def test_a_certificate_with_the_right_name_but_past_its_dates_is_refused(client, tls_client, ca, caplog):
    now = datetime.now(timezone.utc)
    expired = issue(ca, "billing", not_before=now - timedelta(days=10), not_after=now - timedelta(days=1))

    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        response = token_request(client, tls_client.client_id, expired)

    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert "is outside its validity period" in caplog.text


def test_no_certificate_is_no_authentication(client, tls_client):
    assert_error(
        token_request(client, tls_client.client_id, None),
        401,
        "invalid_client",
        "Client authentication is required.",
    )
    # nginx forwards an empty value when the client presented no certificate.
    assert_error(
        token_request(client, tls_client.client_id, None, header=""),
        401,
        "invalid_client",
        "Client authentication is required.",
    )


def test_a_certificate_without_client_id_is_refused(client, tls_client, cert):
    assert_error(token_request(client, None, cert), 401, "invalid_client", "client_id is missing.")


def test_a_header_is_ignored_when_the_setting_is_off(client, make_client, cert):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client(
        "billing", scopes=[SCOPE], auth_method="tls_client_auth", tls_subject_dn="CN=billing,O=Example"
    )

    response = token_request(client, application.client_id, cert)

    assert_error(response, 401, "invalid_client", "Client authentication is required.")


def test_a_bound_token_is_refused_when_the_site_stops_trusting_the_header(client, tls_client, cert, settings):
    token = token_request(client, tls_client.client_id, cert).json()["access_token"]
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": None}

    assert_invalid_token(
        whoami(client, token, cert), "The access token is bound to a client certificate; none was presented."
    )


@pytest.mark.parametrize(
    "header",
    [
        "not a certificate",
        "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A",
        "%zz",
        "a" * 20_000,
    ],
)
def test_a_malformed_header_is_refused(client, tls_client, header):
    response = token_request(client, tls_client.client_id, None, header=header)

    assert_error(
        response, 400, "invalid_request", "The client certificate forwarded by the proxy could not be read."
    )


def test_tls_client_auth_by_dns_name(client, make_client, mtls_on, cert, other_cert):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client(
        "dns", scopes=[SCOPE], auth_method="tls_client_auth", tls_san_dns="Billing.Example.COM"
    )

    response = token_request(client, application.client_id, cert)

    assert response.status_code == 200, response.content
    assert "cnf" not in claims_of(response.json()["access_token"])  # not a cert-bound client
    assert_error(
        token_request(client, application.client_id, other_cert),
        401,
        "invalid_client",
        "Client authentication failed.",
    )


def test_a_tls_client_cannot_use_a_secret_and_a_secret_client_cannot_use_its_certificate(
    client, tls_client, make_client, cert
):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    secret_client, _ = make_client("secret", scopes=[SCOPE])

    only_cert = token_request(client, secret_client.client_id, cert)
    assert_error(only_cert, 401, "invalid_client", "Client authentication failed.")
    wrong_method = token_request(
        client, None, cert, HTTP_AUTHORIZATION=basic_auth(tls_client.client_id, "any-secret")
    )
    assert_error(wrong_method, 401, "invalid_client", "Client authentication failed.")


def test_a_secret_client_with_bound_tokens_must_connect_with_a_certificate(
    client, make_client, mtls_on, cert
):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, secret = make_client("secret-bound", scopes=[SCOPE], certificate_bound_tokens=True)
    basic = basic_auth(application.client_id, secret)

    without = token_request(client, None, None, HTTP_AUTHORIZATION=basic)
    assert_error(
        without,
        400,
        "invalid_request",
        "This client's tokens are bound to its TLS client certificate; connect with it.",
    )
    bound = token_request(client, None, cert, HTTP_AUTHORIZATION=basic)
    assert bound.status_code == 200, bound.content
    assert claims_of(bound.json()["access_token"])["cnf"] == {"x5t#S256": cert.thumbprint}


def test_a_secret_client_without_binding_gets_an_unbound_token_even_with_a_certificate(
    client, make_client, mtls_on, cert
):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, secret = make_client("secret", scopes=[SCOPE])

    response = token_request(client, None, cert, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))

    assert response.status_code == 200
    token = response.json()["access_token"]
    assert "cnf" not in claims_of(token)
    assert whoami(client, token, None).status_code == 200


# -- self_signed_tls_client_auth ---------------------------------------------------------------


def test_self_signed_certificate_holding_the_registered_key(client, make_client, mtls_on, caplog):
    mine, theirs = issue(None, "my-service"), issue(None, "my-service")
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client(
        "self-signed",
        scopes=[SCOPE],
        auth_method="self_signed_tls_client_auth",
        jwks=mine.jwks(),
        certificate_bound_tokens=True,
    )

    response = token_request(client, application.client_id, mine)
    assert response.status_code == 200, response.content
    assert claims_of(response.json()["access_token"])["cnf"] == {"x5t#S256": mine.thumbprint}
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        refused = token_request(client, application.client_id, theirs)
    assert_error(refused, 401, "invalid_client", "Client authentication failed.")
    assert "does not hold a key of the registered JWKS" in caplog.text


# -- tokens carrying cnf -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cnf", "description"),
    [
        (
            {"x5t": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
            'The access token\'s "cnf" claim must hold exactly one of "jkt" (RFC 9449) or '
            '"x5t#S256" (RFC 8705).',
        ),
        (
            {
                "x5t#S256": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
                "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            },
            'The access token\'s "cnf" claim must hold exactly one of "jkt" (RFC 9449) or '
            '"x5t#S256" (RFC 8705).',
        ),
        (
            "x5t",
            'The access token\'s "cnf" claim must hold exactly one of "jkt" (RFC 9449) or '
            '"x5t#S256" (RFC 8705).',
        ),
        ({"x5t#S256": "short"}, 'The access token\'s "cnf" claim\'s "x5t#S256" is not a SHA-256 thumbprint.'),
        ({"x5t#S256": 5}, 'The access token\'s "cnf" claim\'s "x5t#S256" is not a SHA-256 thumbprint.'),
    ],
)
def test_a_confirmation_this_site_cannot_check_is_refused(client, db, cnf, description):
    token = sign_with_site_key(token_claims(cnf=cnf))

    response = whoami(client, token, None)

    assert response.status_code == 401
    assert description.replace('"', '\\"') in response["WWW-Authenticate"]


def test_the_claims_hook_cannot_set_cnf(client, settings, make_client, caplog):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, secret = make_client("hooked", scopes=[SCOPE])
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLAIMS_HOOK": "tests.test_mtls.cnf_hook"}

    response = token_request(client, None, None, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))

    assert_error(response, 500, "server_error", "The server could not handle the request.")
    assert "OAUTH_CC['CLAIMS_HOOK'] may not set registered claims: cnf." in caplog.text


def cnf_hook(client: Any, claims: Any) -> dict[str, Any]:
    return {"cnf": {"x5t#S256": "A" * 43}}


# -- metadata ----------------------------------------------------------------------------------


def test_metadata_lists_the_mtls_methods_only_when_a_header_is_trusted(client, db, settings):
    off = client.get("/.well-known/oauth-authorization-server").json()
    assert "tls_client_certificate_bound_access_tokens" not in off
    assert "tls_client_auth" not in off["token_endpoint_auth_methods_supported"]

    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    on = client.get("/.well-known/oauth-authorization-server").json()
    assert on["tls_client_certificate_bound_access_tokens"] is True
    expected = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ]
    for endpoint in ("token", "introspection", "revocation"):
        assert on[f"{endpoint}_endpoint_auth_methods_supported"] == expected


# -- registration: model, command, admin -------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({}, "tls_client_auth_subject_dn", "needs exactly one of"),
        (
            {"tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"},
            "tls_client_auth_subject_dn",
            "needs exactly one of",
        ),
        ({"tls_client_auth_subject_dn": "no equals sign"}, "tls_client_auth_subject_dn", "Not an RFC 4514"),
    ],
)
def test_a_tls_client_auth_client_needs_exactly_one_valid_certificate_name(db, fields, field, message):
    application = Application(name="x", token_endpoint_auth_method="tls_client_auth", **fields)
    with pytest.raises(ValidationError) as caught:
        application.clean()
    assert message in " ".join(caught.value.message_dict[field])


def test_certificate_names_belong_to_tls_client_auth_and_keys_to_the_self_signed_method(db):
    with pytest.raises(ValidationError) as caught:
        Application(name="x", tls_client_auth_subject_dn="CN=a").clean()
    assert (
        "only used by tls_client_auth clients" in caught.value.message_dict["tls_client_auth_subject_dn"][0]
    )
    with pytest.raises(ValidationError) as caught:
        Application(name="x", token_endpoint_auth_method="self_signed_tls_client_auth").clean()
    assert caught.value.message_dict["client_jwks"] == [
        "A self_signed_tls_client_auth client needs exactly one of: an inline JWKS holding its "
        "certificate's public key, or a JWKS URI serving it."
    ]


def test_the_command_creates_a_tls_client_auth_client(db):
    Scope.objects.create(name=SCOPE)
    out = io.StringIO()
    call_command(
        "oauth_cc", "client", "create", "billing", "--scope", SCOPE,
        "--tls-subject-dn", "CN=billing,O=Example", "--cert-bound-tokens", stdout=out,
    )  # fmt: skip

    application = Application.objects.get()
    assert application.token_endpoint_auth_method == "tls_client_auth"  # implied by --tls-subject-dn
    assert application.tls_client_auth_subject_dn == "CN=billing,O=Example"
    assert application.tls_client_certificate_bound_access_tokens is True
    assert not application.secrets.exists()
    assert "tls_client_auth (no secret; it connects with a CA-issued certificate)" in out.getvalue()
    shown = io.StringIO()
    call_command("oauth_cc", "client", "show", application.client_id, "--json", stdout=shown)
    details = json.loads(shown.getvalue())
    assert details["tls_client_auth_subject_dn"] == "CN=billing,O=Example"
    assert details["tls_client_auth_san_dns"] is None
    assert details["tls_client_certificate_bound_access_tokens"] is True
    event = AuditEvent.objects.get()
    assert event.changes["tls_client_auth_subject_dn"] == "CN=billing,O=Example"
    assert event.changes["tls_client_certificate_bound_access_tokens"] is True


def test_the_command_creates_a_self_signed_client_and_refuses_a_bad_dn(db, tmp_path):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(issue(None, "svc").jwks()))
    call_command(
        "oauth_cc", "client", "create", "svc", "--auth-method", "self_signed_tls_client_auth",
        "--jwks-file", str(jwks_file), "--tls-san-dns", "", stdout=io.StringIO(),
    )  # fmt: skip
    assert Application.objects.get().token_endpoint_auth_method == "self_signed_tls_client_auth"

    with pytest.raises(CommandError, match="Not an RFC 4514 distinguished name"):
        call_command(
            "oauth_cc", "client", "create", "bad", "--tls-subject-dn", "nonsense", stdout=io.StringIO()
        )
    with pytest.raises(CommandError, match="only used by tls_client_auth clients"):
        call_command(
            "oauth_cc", "client", "create", "bad", "--tls-san-dns", "a.example",
            "--auth-method", "client_secret_basic", stdout=io.StringIO(),
        )  # fmt: skip


def test_the_admin_sets_each_mtls_field(admin_client):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"),
        client_form(
            token_endpoint_auth_method="tls_client_auth",
            tls_client_auth_subject_dn="",
            tls_client_auth_san_dns="billing.example.com",
            tls_client_certificate_bound_access_tokens="on",
        ),
    )

    assert response.status_code == 302, response.content
    application = Application.objects.get()
    assert application.token_endpoint_auth_method == "tls_client_auth"
    assert application.tls_client_auth_san_dns == "billing.example.com"
    assert application.tls_client_certificate_bound_access_tokens is True
    page = admin_client.get(
        reverse("admin:oauth_cc_application_change", args=[application.pk])
    ).content.decode()
    assert (
        'name="tls_client_auth_subject_dn"' in page
        and 'name="tls_client_certificate_bound_access_tokens"' in page
    )


def test_the_admin_refuses_tls_client_auth_without_a_certificate_name(admin_client):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"), client_form(token_endpoint_auth_method="tls_client_auth")
    )

    assert response.status_code == 200
    assert "A tls_client_auth client needs exactly one of" in response.content.decode()
    assert not Application.objects.exists()


# -- settings check ----------------------------------------------------------------------------


def _check_ids(settings: Any, **oauth_cc: Any) -> list[str]:
    from django.core.checks import run_checks

    settings.OAUTH_CC = {**settings.OAUTH_CC, **oauth_cc}
    return [m.id for m in run_checks() if m.id.startswith("oauth_cc.")]


@pytest.mark.parametrize(
    "bad",
    [
        {"CLIENT_CERT_HEADER": "X-SSL-Client-Cert"},
        {"CLIENT_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT\n"},
        {"CLIENT_CERT_HEADER": 1},
        {"CLIENT_CERT_HEADER_FORMAT": "pem"},
        {"CLIENT_CERT_HEADER_FORMAT": None},
    ],
)
def test_bad_client_cert_settings_are_e014(settings, bad):
    assert "oauth_cc.E014" not in _check_ids(
        settings, CLIENT_CERT_HEADER=HEADER, CLIENT_CERT_HEADER_FORMAT="rfc9440"
    )
    assert "oauth_cc.E014" in _check_ids(settings, **bad)


def test_a_certificate_bound_client_sending_a_dpop_proof_gets_one_binding_error(client, tls_client, cert):
    """One binding per token: cnf holds exactly one confirmation, so both cannot be asked for."""
    from .dpop_helpers import new_ec_key, proof

    response = token_request(client, tls_client.client_id, cert, HTTP_DPOP=proof(new_ec_key()))

    assert_error(
        response,
        400,
        "invalid_request",
        "This client's tokens are bound to its TLS client certificate (RFC 8705); send no DPoP header.",
    )
