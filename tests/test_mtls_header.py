"""The forwarded client certificate header (``oauth_cc.common.mtls.parse_header``), attacker bytes if the
proxy is misconfigured: one certificate in the configured format, bounded, or an error."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.test import RequestFactory

from oauth_cc.common import mtls
from oauth_cc.common.mtls import (
    MAX_HEADER_BYTES,
    NGINX_ESCAPED_PEM,
    RFC9440,
    InvalidClientCertificate,
    parse_header,
)

from .mtls_helpers import HEADER, Cert, issue, make_ca


@pytest.fixture(scope="module")
def cert() -> Cert:
    return issue(make_ca(), "billing", dns=["billing.example.com"], ip=["192.0.2.7"])


def test_nginx_escaped_pem_is_read(cert):
    parsed = parse_header(cert.nginx_header, NGINX_ESCAPED_PEM)

    assert parsed is not None and parsed.public_bytes(Encoding.DER) == cert.der
    assert mtls.thumbprint(parsed) == cert.thumbprint


def test_as_nginx_escapes_it_plus_and_slash_literal_crlf_lines(cert):
    # nginx leaves "+", "/" and "=" unescaped in $ssl_client_escaped_cert: a "+" is a "+", not a space.
    spelled = quote(cert.pem, safe="+/=")
    assert "+" in spelled or "/" in spelled
    assert parse_header(spelled, NGINX_ESCAPED_PEM).public_bytes(Encoding.DER) == cert.der
    crlf = quote(cert.pem.replace("\n", "\r\n"), safe="")
    assert parse_header(crlf, NGINX_ESCAPED_PEM).public_bytes(Encoding.DER) == cert.der


def test_rfc9440_client_cert_is_read(cert):
    assert parse_header(cert.rfc9440_header, RFC9440).public_bytes(Encoding.DER) == cert.der


def test_an_empty_value_is_no_certificate():
    assert parse_header("", NGINX_ESCAPED_PEM) is None
    assert parse_header("", RFC9440) is None


def _pem_with(body: str) -> str:
    return quote(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n", safe="")


@pytest.mark.parametrize(
    ("make_value", "message"),
    [
        (lambda c: "x" * (MAX_HEADER_BYTES + 1), "too large"),
        (lambda c: c.nginx_header + "%", "invalid percent-escape"),
        (lambda c: c.nginx_header.replace("%0A", "%0", 1), "invalid percent-escape"),
        (
            # A stray "%" in the middle, followed by what can never be two hex digits (the
            # certificate's own bytes after it could be, by chance, and make it a valid escape).
            lambda c: c.nginx_header.replace("%0A", "%0A%zz", 1),
            "invalid percent-escape",
        ),
        (lambda c: quote(c.pem, safe="").replace("-", "é", 1), "not ASCII"),
        (lambda c: quote(c.pem + c.pem, safe=""), "not one PEM certificate"),  # two certificates
        (lambda c: quote("junk" + c.pem, safe=""), "not one PEM certificate"),
        (lambda c: quote(c.pem.replace("CERTIFICATE", "PRIVATE KEY"), safe=""), "not one PEM certificate"),
        (lambda c: quote(c.key_pem, safe=""), "not one PEM certificate"),
        (lambda c: c.pem, "spaces or control characters"),  # spaces and newlines are literal
        (lambda c: c.nginx_header.replace("%0A", "\n", 1), "spaces or control characters"),
        (lambda c: _pem_with("AAAA"), "not a valid X.509 certificate"),
        (lambda c: _pem_with("QQ=="), "not a valid X.509 certificate"),
        (lambda c: _pem_with("QR=="), "not canonical base64"),  # unused bits set
        (lambda c: _pem_with(base64.b64encode(c.der + b"\x00").decode()), "not a valid X.509 certificate"),
        (lambda c: "%2D" * 10, "not one PEM certificate"),
        (lambda c: c.rfc9440_header, "not one PEM certificate"),
    ],
)
def test_anything_but_one_escaped_pem_certificate_is_refused(cert, make_value, message):
    with pytest.raises(InvalidClientCertificate, match=message):
        parse_header(make_value(cert), NGINX_ESCAPED_PEM)


@pytest.mark.parametrize(
    ("make_value", "message"),
    [
        (lambda c: c.rfc9440_header[1:], "not a byte sequence"),
        (lambda c: c.rfc9440_header + ";a=1", "not a byte sequence"),
        (lambda c: c.rfc9440_header + ", " + c.rfc9440_header, "spaces or control characters"),
        (lambda c: c.rfc9440_header + "," + c.rfc9440_header, "not a byte sequence"),  # a list: a chain
        (
            lambda c: ":" + base64.urlsafe_b64encode(c.der).decode() + ":",
            "not a byte sequence|not a valid X.509",
        ),
        (lambda c: ":" + base64.b64encode(c.der).decode().rstrip("=") + "A:", "base64|not a valid X.509"),
        (lambda c: ":QR==:", "not canonical base64"),
        (lambda c: "::", "not a valid X.509 certificate"),
        (lambda c: ":" + base64.b64encode(c.der + b"\x00").decode() + ":", "not a valid X.509 certificate"),
        (lambda c: c.nginx_header, "not a byte sequence"),
    ],
)
def test_anything_but_one_rfc9440_byte_sequence_is_refused(cert, make_value, message):
    with pytest.raises(InvalidClientCertificate, match=message):
        parse_header(make_value(cert), RFC9440)


def test_an_unknown_format_is_a_programming_error(cert):
    with pytest.raises(ValueError, match="Unknown client certificate header format"):
        parse_header(cert.nginx_header, "pem")


def test_client_certificate_reads_the_configured_header_only_when_on(cert, settings):
    request = RequestFactory().get("/", **{HEADER: cert.nginx_header})
    assert mtls.client_certificate(request) is None  # off by default, whatever the client sent

    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    request = RequestFactory().get("/", **{HEADER: cert.nginx_header})
    assert mtls.client_certificate(request).public_bytes(Encoding.DER) == cert.der
    assert mtls.client_certificate(RequestFactory().get("/")) is None
    bad = RequestFactory().get("/", **{HEADER: "%%"})
    for _ in range(2):  # the failure is remembered for the request, and raised again
        with pytest.raises(InvalidClientCertificate):
            mtls.client_certificate(bad)


def test_san_and_subject_matching(cert):
    c = cert.certificate
    assert mtls.subject_matches(c, "CN=billing,O=Example")
    assert mtls.subject_matches(c, "CN=bil\\6cing,O=Example")  # parsed, not compared as text
    with pytest.raises(ValueError, match="no spaces around commas"):
        mtls.parse_subject_dn("CN=billing, O=Example")
    assert not mtls.subject_matches(c, "CN=billing, O=Example")
    assert not mtls.subject_matches(c, "O=Example,CN=billing")  # order matters
    assert not mtls.subject_matches(c, "CN=billing")
    assert not mtls.subject_matches(c, "CN=Billing,O=Example")
    assert not mtls.subject_matches(c, "nonsense")
    assert mtls.san_dns_matches(c, "BILLING.example.com")
    assert not mtls.san_dns_matches(c, "example.com")
    assert not mtls.san_dns_matches(c, "")
    assert not mtls.san_dns_matches(c, "*.example.com")
    assert mtls.san_ip_matches(c, "192.0.2.7") and not mtls.san_ip_matches(c, "192.0.2.8")
    assert not mtls.san_ip_matches(c, "not an address")
    assert not mtls.san_uri_matches(c, "https://billing.example.com")
    assert not mtls.san_email_matches(c, "billing@example.com")
    assert not mtls.san_dns_matches(issue(None, "no-san").certificate, "billing.example.com")


def test_public_key_in_jwks(cert):
    assert mtls.public_key_in_jwks(cert.certificate, cert.jwks())
    other = issue(None, "other")
    assert not mtls.public_key_in_jwks(cert.certificate, other.jwks())
    assert mtls.public_key_in_jwks(cert.certificate, {"keys": [{"kty": "junk"}, *cert.jwks()["keys"]]})
    for junk in (None, [], {"keys": None}, {"keys": [{"kty": "oct", "k": "AAAA"}]}):
        assert not mtls.public_key_in_jwks(cert.certificate, junk)


def test_a_certificate_whose_key_is_on_an_unknown_curve_is_refused_not_an_error():
    """Found by the Hypothesis property: an altered curve OID made the key unloadable, and the
    library's UnsupportedAlgorithm escaped the parser (a 500 for a header a proxy passed on)."""
    import base64

    from oauth_cc.common.mtls import RFC9440, InvalidClientCertificate, parse_header
    from tests.mtls_helpers import issue, make_ca

    der = base64.b64decode(issue(make_ca(), "billing").rfc9440_header.strip(":"))
    p256 = bytes.fromhex("06082a8648ce3d030107")  # the OID of P-256, as DER
    assert p256 in der
    altered = der.replace(p256, bytes.fromhex("06082a8648ce3d030109"), 1)

    with pytest.raises(InvalidClientCertificate, match=r"not a valid X\.509 certificate"):
        parse_header(":" + base64.b64encode(altered).decode() + ":", RFC9440)
