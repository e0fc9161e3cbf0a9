"""The five names a ``tls_client_auth`` client may register its certificate by (RFC 8705 §2.1.2):
subject DN, and a SAN of type dNSName, uniformResourceIdentifier, iPAddress or rfc822Name.

Each matches only a SAN of its own type (a dNSName spelled like the registered URI is not that
URI). Case rules: a DNS name compares case-insensitively; a URI exactly; an IP address as an
address (``::1`` is ``0:0:0:0:0:0:0:1``, IPv4 never equals IPv6); an email address with its local
part exact and its domain case-insensitive (RFC 5280 §7.5). The subject DN is covered in
``tests/test_mtls_header.py`` and ``tests/test_mtls.py``.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest
from cryptography import x509
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from oauth_cc.common import mtls
from oauth_cc.issuer.state import load_client
from oauth_cc.models import Application, AuditEvent, Scope

from .mtls_helpers import Cert, issue, make_ca
from .test_admin import client_form
from .test_mtls import SCOPE, assert_error, claims_of, token_request

URI = "spiffe://example.org/ns/billing"
EMAIL = "Billing.Team@Example.com"


@pytest.fixture(scope="module")
def ca() -> Cert:
    return make_ca()


@pytest.fixture(scope="module")
def cert(ca: Cert) -> Cert:
    """A certificate carrying one SAN of each type."""
    return issue(
        ca, "billing", dns=["billing.example.com"], uri=[URI], ip=["192.0.2.7", "2001:db8::7"], email=[EMAIL]
    )


@pytest.fixture(scope="module")
def impostor(ca: Cert) -> Cert:
    """The same texts, each in a SAN of another type (DNS names, mostly: they take any text)."""
    return issue(
        ca, "billing", dns=[URI, EMAIL, "192.0.2.7", "2001:db8::7"], uri=["billing.example.com", EMAIL]
    )


# -- matching, per name ------------------------------------------------------------------------


def test_dns_name_matches_case_insensitively_and_only_a_dns_san(cert, impostor):
    assert mtls.san_dns_matches(cert.certificate, "Billing.EXAMPLE.com")
    assert not mtls.san_dns_matches(cert.certificate, "other.example.com")
    assert not mtls.san_dns_matches(impostor.certificate, "billing.example.com")  # a URI SAN of that text


def test_uri_matches_exactly_and_only_a_uri_san(cert, impostor):
    assert mtls.san_uri_matches(cert.certificate, URI)
    assert not mtls.san_uri_matches(cert.certificate, URI.upper())  # compared as spelled
    assert not mtls.san_uri_matches(cert.certificate, URI + "/")
    assert not mtls.san_uri_matches(cert.certificate, "")
    assert not mtls.san_uri_matches(impostor.certificate, URI)  # a dNSName of that text


@pytest.mark.parametrize(
    ("registered", "matches"),
    [
        ("192.0.2.7", True),
        ("2001:db8::7", True),
        ("2001:0db8:0000:0000:0000:0000:0000:0007", True),  # another spelling, the same address
        ("2001:DB8::7", True),
        ("192.0.2.8", False),
        ("::ffff:192.0.2.7", False),  # IPv4-mapped: 16 octets, not the certificate's 4
        ("192.0.2.0/24", False),
        ("2001:db8::7%eth0", False),
        ("billing.example.com", False),
        ("", False),
    ],
)
def test_ip_address_matches_as_an_address(cert, registered, matches):
    assert mtls.san_ip_matches(cert.certificate, registered) is matches


def test_loopback_spellings_match_each_other():
    loopback = issue(None, "local", ip=["::1"]).certificate
    assert mtls.san_ip_matches(loopback, "0:0:0:0:0:0:0:1")
    assert mtls.san_ip_matches(loopback, "::1")
    assert not mtls.san_ip_matches(loopback, "127.0.0.1")


def test_ip_address_matches_only_an_ip_san(impostor):
    assert not mtls.san_ip_matches(impostor.certificate, "192.0.2.7")  # a dNSName of that text
    assert not mtls.san_ip_matches(impostor.certificate, "2001:db8::7")


@pytest.mark.parametrize(
    ("registered", "matches"),
    [
        (EMAIL, True),
        ("Billing.Team@example.COM", True),  # the domain is case-insensitive
        ("billing.team@Example.com", False),  # the local part is not
        ("Team@Example.com", False),
        ("Billing.Team", False),
        ("@Example.com", False),
        ("", False),
    ],
)
def test_email_address_matches_local_part_exactly_and_domain_in_any_case(cert, registered, matches):
    assert mtls.san_email_matches(cert.certificate, registered) is matches


def test_email_address_matches_only_an_email_san(impostor):
    assert not mtls.san_email_matches(impostor.certificate, EMAIL)  # dNSName and URI SANs of that text


def test_a_certificate_without_sans_matches_no_san_name():
    bare = issue(None, "bare").certificate
    assert not mtls.san_dns_matches(bare, "bare.example.com")
    assert not mtls.san_uri_matches(bare, URI)
    assert not mtls.san_ip_matches(bare, "192.0.2.7")
    assert not mtls.san_email_matches(bare, EMAIL)


# -- validation: a sentence saying what to fix -------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "tls_client_auth_san_ip",
            "192.0.2.256",
            'Not an IP address; write an IPv4 address like "192.0.2.7" or an IPv6 address like '
            '"2001:db8::7" (without brackets, port, prefix length or zone).',
        ),
        ("tls_client_auth_san_ip", "[2001:db8::7]", "Not an IP address;"),
        ("tls_client_auth_san_ip", "192.0.2.7:443", "Not an IP address;"),
        ("tls_client_auth_san_ip", "192.0.2.0/24", "Not an IP address;"),
        ("tls_client_auth_san_ip", "fe80::1%eth0", "Not an IP address;"),
        ("tls_client_auth_san_ip", "billing.example.com", "Not an IP address;"),
        (
            "tls_client_auth_san_uri",
            "example.org/billing",
            'Not an absolute URI: it needs a scheme, like "spiffe://example.org/billing" or '
            '"https://billing.example.com/".',
        ),
        ("tls_client_auth_san_uri", "//example.org/billing", "Not an absolute URI"),
        ("tls_client_auth_san_uri", "spiffe:", "Not an absolute URI"),
        (
            "tls_client_auth_san_uri",
            "https://example.org/a b",
            "The URI contains spaces, control or non-ASCII characters; percent-encode them, "
            "as the certificate does.",
        ),
        ("tls_client_auth_san_uri", "https://exämple.org/", "The URI contains spaces, control or non-ASCII"),
        (
            "tls_client_auth_san_email",
            "billing.example.com",
            'Not an email address; write it like "billing@example.com".',
        ),
        ("tls_client_auth_san_email", "@example.com", "Not an email address;"),
        ("tls_client_auth_san_email", "bill ing@example.com", "Not an email address;"),
        (
            "tls_client_auth_san_email",
            "billing@",
            'The email address\'s domain is not a DNS name; write it like "billing@example.com".',
        ),
        ("tls_client_auth_san_email", "billing@exa mple.com", "The email address's domain is not a DNS name"),
        (
            "tls_client_auth_san_dns",
            "*.example.com",
            'Not a DNS name; write it like "billing.example.com": letters, digits, hyphens and dots '
            "(an internationalized name in its xn-- form), without a wildcard, scheme, port or trailing dot.",
        ),
        ("tls_client_auth_san_dns", "https://billing.example.com", "Not a DNS name;"),
        ("tls_client_auth_san_dns", "billing.example.com:443", "Not a DNS name;"),
        ("tls_client_auth_san_dns", "billing.example.com.", "Not a DNS name;"),
        ("tls_client_auth_san_dns", "-billing.example.com", "Not a DNS name;"),
        ("tls_client_auth_san_dns", "bïlling.example.com", "Not a DNS name;"),
        ("tls_client_auth_san_dns", "a" * 64 + ".example.com", "Not a DNS name;"),
    ],
)
def test_an_invalid_name_is_refused_with_what_to_fix(db, field, value, message):
    application = Application(name="x", token_endpoint_auth_method="tls_client_auth", **{field: value})
    with pytest.raises(ValidationError) as caught:
        application.clean()
    (got,) = caught.value.message_dict[field]
    assert got.startswith(message), got


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tls_client_auth_san_ip", "192.0.2.7"),
        ("tls_client_auth_san_ip", "0:0:0:0:0:0:0:1"),
        ("tls_client_auth_san_uri", URI),
        ("tls_client_auth_san_uri", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
        ("tls_client_auth_san_email", EMAIL),
        ("tls_client_auth_san_dns", "xn--bcher-kva.example"),
        ("tls_client_auth_san_dns", "_svc.billing-1.example.com"),
    ],
)
def test_a_valid_name_is_accepted(db, field, value):
    Application(name="x", token_endpoint_auth_method="tls_client_auth", **{field: value}).clean()


@pytest.mark.parametrize(
    "fields",
    [
        {"tls_client_auth_san_uri": URI, "tls_client_auth_san_ip": "192.0.2.7"},
        {"tls_client_auth_subject_dn": "CN=billing,O=Example", "tls_client_auth_san_email": EMAIL},
    ],
)
def test_two_names_are_refused(db, fields):
    application = Application(name="x", token_endpoint_auth_method="tls_client_auth", **fields)
    with pytest.raises(ValidationError) as caught:
        application.clean()
    assert caught.value.message_dict[next(iter(fields))] == [
        "A tls_client_auth client needs exactly one of: the certificate's subject DN, DNS name, URI, "
        "IP address or email address (RFC 8705, section 2.1.2)."
    ]


@pytest.mark.parametrize(
    "field", ["tls_client_auth_san_uri", "tls_client_auth_san_ip", "tls_client_auth_san_email"]
)
def test_a_name_belongs_to_tls_client_auth_only(db, field):
    with pytest.raises(ValidationError) as caught:
        Application(name="x", **{field: "192.0.2.7"}).clean()
    assert caught.value.message_dict[field] == [
        "The certificate's subject DN, DNS name, URI, IP address or email address is only used by "
        "tls_client_auth clients; clear it or change the method."
    ]


# -- the token endpoint --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("tls_san_uri", URI),
        ("tls_san_ip", "2001:0db8:0:0:0:0:0:7"),
        ("tls_san_ip", "192.0.2.7"),
        ("tls_san_email", "Billing.Team@example.com"),
        ("tls_san_dns", "BILLING.example.com"),
    ],
)
def test_each_name_authenticates_its_certificate_and_not_the_same_text_in_another_san(
    client, make_client, settings, cert, impostor, option, value, caplog
):
    from .mtls_helpers import HEADER

    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client(
        "named",
        scopes=[SCOPE],
        auth_method="tls_client_auth",
        certificate_bound_tokens=True,
        **{option: value},
    )

    response = token_request(client, application.client_id, cert)
    assert response.status_code == 200, response.content
    assert claims_of(response.json()["access_token"])["cnf"] == {"x5t#S256": cert.thumbprint}
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        refused = token_request(client, application.client_id, impostor)
    assert_error(refused, 401, "invalid_client", "Client authentication failed.")
    label = mtls.CERTIFICATE_NAMES_BY_METADATA["tls_client_auth_" + option.removeprefix("tls_")].label
    assert f"does not carry the registered {label}" in caplog.text


def test_a_row_with_two_names_written_past_validation_matches_nothing(db, caplog):
    application = Application.objects.create(
        name="two",
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_san_uri=URI,
        tls_client_auth_san_ip="192.0.2.7",
    )
    with caplog.at_level(logging.ERROR, logger="oauth_cc.state"):
        record = load_client(application.client_id)

    assert record is not None and (record.tls_name_kind, record.tls_name) == ("", "")
    assert f"client {application.client_id} has more than one TLS client certificate name" in caplog.text
    one = Application.objects.create(
        name="one", token_endpoint_auth_method="tls_client_auth", tls_client_auth_san_ip="192.0.2.7"
    )
    record = load_client(one.client_id)
    assert record is not None and (record.tls_name_kind, record.tls_name) == (
        "tls_client_auth_san_ip",
        "192.0.2.7",
    )


def test_a_client_without_a_single_name_is_refused_at_the_token_endpoint(client, db, settings, cert, caplog):
    from .mtls_helpers import HEADER

    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application = Application.objects.create(
        name="two",
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_san_uri=URI,
        tls_client_auth_san_ip="192.0.2.7",  # both match the certificate
    )
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        response = token_request(client, application.client_id, cert)

    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert "cannot match: the client has no single registered certificate name" in caplog.text


# -- the command and the admin -------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--tls-san-uri", URI, "tls_client_auth_san_uri"),
        ("--tls-san-ip", "::1", "tls_client_auth_san_ip"),
        ("--tls-san-email", EMAIL, "tls_client_auth_san_email"),
    ],
)
def test_the_command_creates_a_client_by_each_san_and_shows_it(db, option, value, field):
    client_id = json.loads(run("client", "create", "svc", option, value, "--json"))["client_id"]

    application = Application.objects.get(client_id=client_id)
    assert application.token_endpoint_auth_method == "tls_client_auth"  # implied by the option
    assert getattr(application, field) == value
    assert json.loads(run("client", "show", client_id, "--json"))[field] == value
    assert AuditEvent.objects.get().changes[field] == value


def test_the_command_refuses_two_names_at_create(db, capsys):
    with pytest.raises(CommandError):  # argparse: the options are mutually exclusive
        call_command("oauth_cc", "client", "create", "svc", "--tls-san-uri", URI, "--tls-san-ip", "::1")
    assert not Application.objects.exists()


def test_update_switches_from_subject_dn_to_an_ip_address_and_audits_it(db):
    client_id = json.loads(
        run("client", "create", "svc", "--tls-subject-dn", "CN=billing,O=Example", "--json")
    )["client_id"]

    out = run("client", "update", client_id, "--tls-san-ip", "0:0:0:0:0:0:0:1")

    assert out == f"Certificate of {client_id}: IP address 0:0:0:0:0:0:0:1; certificate-bound tokens: no.\n"
    application = Application.objects.get(client_id=client_id)
    assert (application.tls_client_auth_subject_dn, application.tls_client_auth_san_ip) == (
        "",
        "0:0:0:0:0:0:0:1",
    )
    assert AuditEvent.objects.order_by("pk").last().changes == {
        "tls_client_auth_subject_dn": {"old": "CN=billing,O=Example", "new": ""},
        "tls_client_auth_san_ip": {"old": "", "new": "0:0:0:0:0:0:0:1"},
    }
    run("client", "update", client_id, "--tls-san-email", EMAIL)
    application.refresh_from_db()
    assert (application.tls_client_auth_san_ip, application.tls_client_auth_san_email) == ("", EMAIL)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--tls-san-ip", "10.0.0.300", 'Not an IP address; write an IPv4 address like "192.0.2.7"'),
        (
            "--tls-san-uri",
            "billing",
            'Not an absolute URI: it needs a scheme, like "spiffe://example.org/billing"',
        ),
        ("--tls-san-email", "billing", 'Not an email address; write it like "billing@example.com".'),
    ],
)
def test_update_refuses_an_invalid_name_and_changes_nothing(db, option, value, message):
    client_id = json.loads(run("client", "create", "svc", "--tls-san-uri", URI, "--json"))["client_id"]
    events = AuditEvent.objects.count()

    with pytest.raises(CommandError) as raised:
        run("client", "update", client_id, option, value)

    assert str(raised.value).startswith(message)
    assert Application.objects.get(client_id=client_id).tls_client_auth_san_uri == URI
    assert AuditEvent.objects.count() == events


def test_the_admin_registers_a_client_by_ip_address_and_explains_a_bad_one(admin_client):
    url = reverse("admin:oauth_cc_application_add")
    bad = admin_client.post(
        url, client_form(token_endpoint_auth_method="tls_client_auth", tls_client_auth_san_ip="2001:db8::g")
    )
    assert bad.status_code == 200
    assert bad.context["adminform"].form.errors["tls_client_auth_san_ip"] == [
        'Not an IP address; write an IPv4 address like "192.0.2.7" or an IPv6 address like '
        '"2001:db8::7" (without brackets, port, prefix length or zone).'
    ]

    response = admin_client.post(
        url, client_form(token_endpoint_auth_method="tls_client_auth", tls_client_auth_san_ip="2001:db8::7")
    )

    assert response.status_code == 302, response.content
    assert Application.objects.get().tls_client_auth_san_ip == "2001:db8::7"


def test_a_certificate_with_a_malformed_san_extension_is_refused_not_an_error(client, make_client, settings):
    """The header parser once read the subject and key, not the extensions (parsed lazily): an
    undecodable SAN surfaced as ValueError while matching, a 500. Now the parser reads the SANs
    too, and refuses the header as for any other malformed certificate."""
    import base64

    from cryptography import x509

    from .mtls_helpers import HEADER

    settings.OAUTH_CC = {
        **settings.OAUTH_CC,
        "CLIENT_CERT_HEADER": HEADER,
        "CLIENT_CERT_HEADER_FORMAT": "rfc9440",
    }
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client(
        "dns", scopes=[SCOPE], auth_method="tls_client_auth", tls_san_dns="billing.example.com"
    )
    der = issue(None, "billing", dns=["billing.example.com"]).der
    at = der.index(b"billing.example.com") - 2
    assert der[at] == 0x82  # [2] dNSName
    broken = der[:at] + b"\x8a" + der[at + 1 :]  # [10]: no such GeneralName
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(broken).extensions

    response = token_request(
        client, application.client_id, None, header=":" + base64.b64encode(broken).decode() + ":"
    )

    assert_error(
        response, 400, "invalid_request", "The client certificate forwarded by the proxy could not be read."
    )


# -- case folding is ASCII only: a non-ASCII SAN value matches nothing ------------------------
# str.lower() maps U+212A KELVIN SIGN to "k": a certificate (from any CA the proxy trusts, or
# none) whose SAN reads "\u212aafka.example.com" once authenticated a client registered as
# "kafka.example.com". cryptography returns such SAN bytes as text (it builds only ASCII names,
# but reads what an attacker's CA wrote).

KELVIN = "\u212a"


def raw_san(kind: str, text: str) -> Any:
    """The certificate, as the header parser gives it, whose one SAN of ``kind`` is ``text``'s UTF-8."""
    from .mtls_helpers import rfc9440, with_raw_san

    return mtls.parse_header(rfc9440(with_raw_san(kind, text.encode("utf-8"))), mtls.RFC9440)


def test_a_dns_san_that_folds_to_the_registered_name_only_in_unicode_does_not_match():
    kelvin = raw_san("dns", KELVIN + "afka.example.com")

    assert mtls._san(kelvin, x509.DNSName) == [KELVIN + "afka.example.com"]  # what the library reads
    assert not mtls.san_dns_matches(kelvin, "kafka.example.com")
    assert not mtls.san_dns_matches(kelvin, "Kafka.example.com")
    assert mtls.san_dns_matches(raw_san("dns", "KAFKA.example.com"), "kafka.example.com")  # ASCII folds


def test_a_non_ascii_registered_dns_name_matches_nothing():
    # Registration refuses it (check_san_dns); a row written past validation must not match either.
    assert not mtls.san_dns_matches(raw_san("dns", "kafka.example.com"), KELVIN + "afka.example.com")
    assert not mtls.san_dns_matches(raw_san("dns", "b\u00fccher.example"), "b\u00fccher.example")


def test_an_email_domain_that_folds_only_in_unicode_does_not_match():
    assert not mtls.san_email_matches(
        raw_san("email", "ops@" + KELVIN + "afka.example.com"), "ops@kafka.example.com"
    )
    assert not mtls.san_email_matches(
        raw_san("email", "ops@kafka.example.com"), "ops@" + KELVIN + "afka.example.com"
    )
    assert not mtls.san_email_matches(
        raw_san("email", "\u00f6ps@kafka.example.com"), "\u00f6ps@kafka.example.com"
    )
    assert mtls.san_email_matches(raw_san("email", "ops@KAFKA.example.com"), "ops@kafka.example.com")


def test_a_non_ascii_uri_san_matches_nothing_even_spelled_the_same():
    uri = "spiffe://example.org/" + KELVIN
    assert not mtls.san_uri_matches(raw_san("uri", uri), uri)
    assert mtls.san_uri_matches(raw_san("uri", "spiffe://example.org/k"), "spiffe://example.org/k")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tls_client_auth_san_dns", KELVIN + "afka.example.com"),
        ("tls_client_auth_san_email", "ops@" + KELVIN + "afka.example.com"),
        ("tls_client_auth_san_uri", "spiffe://example.org/" + KELVIN),
    ],
)
def test_a_non_ascii_name_cannot_be_registered(db, field, value):
    application = Application(name="x", token_endpoint_auth_method="tls_client_auth", **{field: value})
    with pytest.raises(ValidationError) as caught:
        application.clean()
    assert caught.value.message_dict[field][0].startswith(
        ("Not a DNS name", "The email address's domain", "The URI")
    )


def test_the_kelvin_sign_certificate_does_not_authenticate_the_kafka_client(
    client, make_client, settings, caplog
):
    from .mtls_helpers import HEADER, nginx_escaped, with_raw_san

    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client(
        "kafka", scopes=[SCOPE], auth_method="tls_client_auth", tls_san_dns="kafka.example.com"
    )
    genuine = nginx_escaped(with_raw_san("dns", b"kafka.example.com"))
    assert token_request(client, application.client_id, None, header=genuine).status_code == 200

    kelvin = nginx_escaped(with_raw_san("dns", (KELVIN + "afka.example.com").encode("utf-8")))
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        response = token_request(client, application.client_id, None, header=kelvin)

    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert "does not carry the registered DNS name" in caplog.text


# -- a subject DN value in the RFC 4514 "#" hex form -------------------------------------------
# cryptography reads "CN=#0c0762696c6c696e67" as a CN whose text is the raw BER "\x0c\x07billing",
# which no certificate's subject equals: such a registration can never authenticate, so it is
# refused with what to write instead.

HEX_FORM = 'Write each value as text, not in the "#" hex form (CN=billing, not CN=#0c0762696c6c696e67); '


@pytest.mark.parametrize(
    "dn",
    [
        "CN=#0c0762696c6c696e67,O=Example",
        "CN=billing,O=#0c074578616d706c65",
        "CN=billing+UID=#0c0131,O=Example",  # in a multi-valued RDN
        "2.5.4.3=#0c0762696c6c696e67,O=Example",  # after a dotted OID
        "CN=a\\,b,O=#0c0131",  # after an escaped comma in the value before
    ],
)
def test_a_hex_form_value_is_refused_at_registration(db, dn):
    with pytest.raises(ValueError, match="^" + re.escape(HEX_FORM)):
        mtls.parse_subject_dn(dn)
    application = Application(
        name="x", token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn=dn
    )
    with pytest.raises(ValidationError) as caught:
        application.clean()
    assert caught.value.message_dict["tls_client_auth_subject_dn"] == [
        HEX_FORM + "escape a value that starts with # as \\#."
    ]


@pytest.mark.parametrize(
    ("dn", "value"),
    [
        ("CN=\\#billing,O=Example", "#billing"),  # escaped: a value starting with "#"
        ("CN=bill#ing,O=Example", "bill#ing"),  # inside a value, "#" is a character
        ("CN=a\\,b=#c,O=Example", "a,b=#c"),  # "b=#c" is part of the value (escaped comma)
        ("CN=a\\\\,O=Example", "a\\"),  # an escaped backslash
    ],
)
def test_a_hash_sign_inside_a_value_or_escaped_is_text(dn, value):
    from cryptography.x509.oid import NameOID

    name = mtls.parse_subject_dn(dn)

    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == value


def test_a_hex_form_after_an_escaped_backslash_is_refused():
    # "\\" is one escaped character, so the "," after it ends the value and "O=#..." is hex.
    with pytest.raises(ValueError, match="hex form"):
        mtls.parse_subject_dn("CN=a\\\\,O=#0c0131")


def test_a_hex_form_subject_dn_still_matches_nothing(cert):
    """A row written before this check, or past validation: it fails safe, as it always did."""
    assert not mtls.subject_matches(cert.certificate, "CN=#0c0762696c6c696e67,O=Example")
    assert mtls.subject_matches(cert.certificate, "CN=billing,O=Example")


def test_the_command_refuses_a_hex_form_subject_dn(db):
    with pytest.raises(CommandError) as raised:
        run("client", "create", "svc", "--tls-subject-dn", "CN=#0c0762696c6c696e67,O=Example")

    assert HEX_FORM in str(raised.value)
    assert not Application.objects.exists()


def test_a_dns_name_is_at_most_253_characters_of_labels_of_at_most_63() -> None:
    """RFC 1035 §2.3.4 (RFC 5280 §4.2.1.6 refers to it): the bounds themselves are accepted."""
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    mtls.check_san_dns(longest)
    with pytest.raises(ValueError, match=r"^Not a DNS name; write it like"):
        mtls.check_san_dns(longest + "d")
