"""A forwarded client certificate the library cannot fully read (an outside attack found these
as 500s): a version beyond v3 (``InvalidVersion``), two subjectAltName extensions
(``DuplicateExtension``), an x400Address SAN (``UnsupportedGeneralNameType``).

Every read of a certificate in ``oauth_cc.common.mtls`` goes through one function that turns any
exception of the library into ``InvalidClientCertificate``; the header parser reads all of it
up front. So the token endpoint and the revocation feed answer ``400 invalid_request`` (as for
any malformed header, README "Mutual TLS"), a protected view ``401 invalid_token`` for a bound
token; the resource-only service is ``tests/test_resource_service.py``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from oauth_cc.common import mtls
from oauth_cc.common.mtls import NGINX_ESCAPED_PEM, RFC9440, InvalidClientCertificate, parse_header
from oauth_cc.models import Scope

from .conftest import basic_auth
from .mtls_helpers import (
    HEADER,
    Cert,
    issue,
    make_ca,
    nginx_escaped,
    rfc9440,
    with_two_san_extensions,
    with_version,
    with_x400_address_san,
)
from .test_mtls import SCOPE, assert_error, assert_invalid_token, token_request, whoami

DNS = "billing.example.com"
NOT_READ = "The client certificate forwarded by the proxy could not be read."


@pytest.fixture(scope="module")
def ca() -> Cert:
    return make_ca()


@pytest.fixture(scope="module")
def genuine(ca: Cert) -> Cert:
    return issue(ca, "billing", dns=[DNS])


#: name -> (how to make it from the CA and a genuine certificate, the part the parser says it could not read)
UNREADABLE: dict[str, tuple[Callable[[Cert, Cert], bytes], str]] = {
    "version 8": (lambda ca, genuine: with_version(genuine.der, 7), "ASN.1 structure"),
    "two SAN extensions": (lambda ca, genuine: with_two_san_extensions(ca, DNS), "subject alternative names"),
    "an x400Address SAN": (
        lambda ca, genuine: with_x400_address_san(genuine.der, DNS),
        "subject alternative names",
    ),
}


def unreadable(name: str, ca: Cert, genuine: Cert) -> bytes:
    return UNREADABLE[name][0](ca, genuine)


def message(part: str) -> str:
    return f"The client certificate is not a valid X.509 certificate: its {part} could not be read."


# -- the parser --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNREADABLE)
@pytest.mark.parametrize(("header_format", "spell"), [(RFC9440, rfc9440), (NGINX_ESCAPED_PEM, nginx_escaped)])
def test_the_parser_refuses_each_unreadable_certificate_with_what_it_could_not_read(
    ca, genuine, name, header_format, spell
):
    der = unreadable(name, ca, genuine)

    with pytest.raises(InvalidClientCertificate) as caught:
        parse_header(spell(der), header_format)

    assert str(caught.value) == message(UNREADABLE[name][1])


@pytest.mark.parametrize("name", ["two SAN extensions", "an x400Address SAN"])
@pytest.mark.parametrize(
    "matches", [mtls.san_dns_matches, mtls.san_uri_matches, mtls.san_ip_matches, mtls.san_email_matches]
)
def test_a_san_matcher_given_a_certificate_the_parser_did_not_read_raises_the_module_error(
    ca, genuine, name, matches
):
    # The library loads these (it reads the extensions only when asked): the matcher's read fails.
    certificate = x509.load_der_x509_certificate(unreadable(name, ca, genuine))

    with pytest.raises(InvalidClientCertificate) as caught:
        matches(certificate, "192.0.2.7")

    assert str(caught.value) == message("subject alternative names")


class FutureLibraryError(Exception):
    """An exception type a later version of the library might raise."""


class _Unreadable:
    """Stands for a certificate every read of which raises an exception type no one knows yet."""

    def __getattr__(self, attribute: str) -> Any:
        raise FutureLibraryError(attribute)

    def public_key(self) -> Any:
        raise FutureLibraryError("public_key")

    def public_bytes(self, encoding: Any) -> bytes:
        raise FutureLibraryError("public_bytes")


@pytest.mark.parametrize(
    ("read", "part"),
    [
        (lambda c: mtls.subject_matches(c, "CN=billing"), "subject"),
        (lambda c: mtls.san_dns_matches(c, DNS), "subject alternative names"),
        (lambda c: mtls.san_uri_matches(c, "spiffe://example.org/billing"), "subject alternative names"),
        (lambda c: mtls.san_ip_matches(c, "192.0.2.7"), "subject alternative names"),
        (lambda c: mtls.san_email_matches(c, "billing@example.com"), "subject alternative names"),
        (mtls.within_validity, "validity dates"),
        (mtls.key_thumbprint, "public key"),
        (mtls.thumbprint, "DER encoding"),
    ],
)
def test_any_exception_of_any_read_becomes_the_module_error(read, part):
    with pytest.raises(InvalidClientCertificate) as caught:
        read(_Unreadable())

    assert str(caught.value) == message(part)


@pytest.mark.parametrize(
    ("attribute", "part"),
    [
        ("subject", "subject"),
        ("extensions", "subject alternative names"),
        ("public_key", "public key"),
        ("not_valid_after_utc", "validity dates"),
        ("serial_number", "serial number"),
        ("public_bytes", "DER encoding"),
    ],
)
def test_the_parser_reads_everything_up_front_whatever_the_library_raises(
    monkeypatch, genuine, attribute, part
):
    """Loading may succeed and a later read fail with a new type: the parser still refuses it,
    so what the matchers and the binding check read later is known readable."""
    certificate = x509.load_der_x509_certificate(genuine.der)
    monkeypatch.setattr(x509, "load_der_x509_certificate", lambda der: _FailingOn(certificate, attribute))

    with pytest.raises(InvalidClientCertificate) as caught:
        parse_header(genuine.rfc9440_header, RFC9440)

    assert str(caught.value) == message(part)


class _FailingOn:
    """A loaded certificate one attribute of which, alone, cannot be read."""

    def __init__(self, certificate: x509.Certificate, attribute: str) -> None:
        self._certificate = certificate
        self._attribute = attribute

    def __getattr__(self, attribute: str) -> Any:
        if attribute == self._attribute:
            raise FutureLibraryError(attribute)
        return getattr(self._certificate, attribute)


# -- over HTTP: the token endpoint, the revocation feed, a protected view ---------------------


@pytest.fixture
def mtls_on(settings: Any) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}


@pytest.fixture
def dns_client(make_client: Any, mtls_on: None) -> Any:
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, _ = make_client("dns", scopes=[SCOPE], auth_method="tls_client_auth", tls_san_dns=DNS)
    return application


@pytest.mark.parametrize("name", UNREADABLE)
def test_the_token_endpoint_answers_invalid_request(client, dns_client, ca, genuine, name):
    assert token_request(client, dns_client.client_id, genuine).status_code == 200  # the name is right

    response = token_request(
        client, dns_client.client_id, None, header=nginx_escaped(unreadable(name, ca, genuine))
    )

    assert_error(response, 400, "invalid_request", NOT_READ)


@pytest.mark.parametrize("name", UNREADABLE)
def test_the_revocation_feed_answers_invalid_request(client, make_client, mtls_on, ca, genuine, name):
    reader, secret = make_client("reader", can_introspect=True)

    response = client.get(
        "/oauth/revocation-feed/",
        HTTP_AUTHORIZATION=basic_auth(reader.client_id, secret),
        **{HEADER: nginx_escaped(unreadable(name, ca, genuine))},
    )

    assert_error(response, 400, "invalid_request", NOT_READ)


@pytest.mark.parametrize("name", UNREADABLE)
def test_a_bound_token_with_an_unreadable_certificate_is_invalid_token(
    client, make_client, mtls_on, ca, genuine, name
):
    Scope.objects.get_or_create(name=SCOPE, defaults={"is_default": True})
    application, secret = make_client("bound", scopes=[SCOPE], certificate_bound_tokens=True)
    issued = token_request(
        client, None, genuine, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret)
    )
    assert issued.status_code == 200, issued.content
    token = issued.json()["access_token"]

    response = whoami(client, token, None, header=nginx_escaped(unreadable(name, ca, genuine)))

    assert_invalid_token(response, "The client certificate could not be read.")
    assert whoami(client, token, genuine).status_code == 200


def test_the_helpers_make_what_they_say(ca, genuine):
    """Each certificate fails in the library with the type the attack found, so the tests above
    cover those types (and not an earlier, ordinary ValueError)."""
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_certificate(with_version(genuine.der, 7))
    with pytest.raises(x509.DuplicateExtension):
        x509.load_der_x509_certificate(with_two_san_extensions(ca, DNS)).extensions
    with pytest.raises(x509.UnsupportedGeneralNameType):
        x509.load_der_x509_certificate(with_x400_address_san(genuine.der, DNS)).extensions
    assert base64.b64decode(rfc9440(genuine.der)[1:-1]) == genuine.der
    assert parse_header(nginx_escaped(genuine.der), NGINX_ESCAPED_PEM).subject == genuine.certificate.subject


@pytest.mark.parametrize(("encoded", "parsed"), [("020100", None), ("020181", None), ("020101", 1)])
def test_a_serial_number_that_is_not_positive_is_refused(genuine: Cert, encoded: str, parsed: Any) -> None:
    """RFC 5280 §4.1.2.2: a positive integer. The library only warns of 0 and negatives (which
    these tests' warnings-as-errors would turn into the ASN.1 refusal): as in production, the
    warning is let through here, so the parser's own check is what refuses."""
    import warnings

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.utils import CryptographyDeprecationWarning

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "billing")])
    der = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(genuine.certificate.not_valid_before_utc)
        .not_valid_after(genuine.certificate.not_valid_after_utc)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    version_and_serial = bytes.fromhex("a003020102020101")  # v3, then INTEGER 1
    assert der.count(version_and_serial) == 1
    der = der.replace(version_and_serial, bytes.fromhex("a003020102" + encoded))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if parsed is None:
            with pytest.raises(InvalidClientCertificate) as raised:
                parse_header(rfc9440(der), RFC9440)
            assert str(raised.value) == "The client certificate is not a valid X.509 certificate."
        else:
            certificate = parse_header(rfc9440(der), RFC9440)
            assert certificate is not None and certificate.serial_number == parsed
