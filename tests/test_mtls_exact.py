"""Exact sentences and boundaries of ``oauth_cc.common.mtls``: the texts a client or an admin
reads, the header size bound, per-request caching, and the edges of the name matchers."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from django.test import RequestFactory

from oauth_cc.common import mtls
from oauth_cc.common.mtls import MAX_HEADER_BYTES, NGINX_ESCAPED_PEM, RFC9440, InvalidClientCertificate

from .mtls_helpers import HEADER, Cert, issue, make_ca, with_raw_san


@pytest.fixture(scope="module")
def cert() -> Cert:
    return issue(make_ca(), "billing", dns=["billing.example.com"])


def _pem_with(body: str) -> str:
    return quote(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n", safe="")


@pytest.mark.parametrize(
    ("value", "header_format", "message"),
    [
        ("x" * (MAX_HEADER_BYTES + 1), RFC9440, "The client certificate header is too large."),
        ("%2D%", NGINX_ESCAPED_PEM, "The client certificate header has an invalid percent-escape."),
        ("é", NGINX_ESCAPED_PEM, "The client certificate header is not ASCII."),
        ("a b", RFC9440, "The client certificate header holds spaces or control characters."),
        ("abc", RFC9440, "The Client-Cert header is not a byte sequence (:base64:)."),
        ("%2D", NGINX_ESCAPED_PEM, "The client certificate header is not one PEM certificate."),
        (":A:", RFC9440, "The client certificate is not valid base64."),
        # Padding inside the body: lenient decoding would stop there and call it non-canonical.
        (_pem_with("QQ==QQ=="), NGINX_ESCAPED_PEM, "The client certificate is not valid base64."),
        (":QR==:", RFC9440, "The client certificate is not canonical base64."),
        (_pem_with("QR=="), NGINX_ESCAPED_PEM, "The client certificate is not canonical base64."),
    ],
)
def test_each_header_refusal_has_its_exact_sentence(value, header_format, message):
    with pytest.raises(InvalidClientCertificate) as raised:
        mtls.parse_header(value, header_format)

    assert str(raised.value) == message


def test_a_header_of_exactly_the_limit_is_not_too_large():
    # The bound is "more than MAX_HEADER_BYTES": a value of exactly that size is parsed (and
    # refused for what it is, here not a byte sequence).
    with pytest.raises(InvalidClientCertificate) as raised:
        mtls.parse_header("x" * MAX_HEADER_BYTES, RFC9440)

    assert str(raised.value) == "The Client-Cert header is not a byte sequence (:base64:)."


def test_the_certificate_is_parsed_once_per_request(cert, settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    request = RequestFactory().get("/", **{HEADER: cert.nginx_header})

    first = mtls.client_certificate(request)

    assert first is not None
    assert mtls.client_certificate(request) is first  # the cached object, not a second parse


def test_the_failure_is_cached_for_the_request(settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    request = RequestFactory().get("/", **{HEADER: "%%"})
    with pytest.raises(InvalidClientCertificate) as first:
        mtls.client_certificate(request)
    with pytest.raises(InvalidClientCertificate) as second:
        mtls.client_certificate(request)

    assert second.value is first.value


def test_the_header_setting_check_says_when_to_set_it():
    (error,) = mtls.settings_errors({"CLIENT_CERT_HEADER": "X-Client-Cert"})

    assert error.id == "oauth_cc.E014"
    assert error.hint == (
        "Set it only when every request comes through a proxy that sets or clears that header."
    )


def test_a_blank_subject_dn_is_refused_with_its_sentence():
    with pytest.raises(ValueError) as raised:
        mtls.parse_subject_dn("   ")

    assert str(raised.value) == "The subject DN is empty."


def test_an_x_in_a_value_does_not_end_it():
    # Only an unescaped "," or "+" ends a value: "=#41" inside "aX=#41" is text, not the hex form.
    name = mtls.parse_subject_dn("CN=aX=#41,O=Example")

    assert name.rfc4514_string() == "CN=aX=#41,O=Example"


def test_an_email_domain_is_after_the_last_at_sign():
    with pytest.raises(ValueError) as raised:
        mtls.check_san_email("billing@team@not a domain")

    assert str(raised.value) == (
        'The email address\'s domain is not a DNS name; write it like "billing@team@example.com".'
    )


def _with_email_san(raw: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(with_raw_san("email", raw))


def test_an_email_san_with_two_at_signs_matches_the_same_text():
    # The local part is everything before the last "@", on both sides.
    certificate = _with_email_san(b"a@b@example.com")

    assert mtls.san_email_matches(certificate, "a@b@Example.com")
    assert not mtls.san_email_matches(certificate, "a@example.com")


def test_an_empty_local_part_matches_nothing_even_an_empty_one():
    certificate = _with_email_san(b"@example.com")

    assert not mtls.san_email_matches(certificate, "@example.com")


def test_validity_includes_both_bounds(cert):
    not_before = cert.certificate.not_valid_before_utc
    not_after = cert.certificate.not_valid_after_utc

    assert mtls.within_validity(cert.certificate, not_before)
    assert mtls.within_validity(cert.certificate, not_after)
    assert not mtls.within_validity(cert.certificate, not_before - timedelta(seconds=1))
    assert not mtls.within_validity(cert.certificate, not_after + timedelta(seconds=1))
