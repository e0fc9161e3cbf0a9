"""Properties of the RFC 8705 §2.1.2 certificate names an operator registers (``oauth_cc.common.mtls``).

Any text is accepted or refused with ``ValueError`` (a sentence for the admin and the command),
never another exception, and matching never raises. An IP address matches in every spelling
of the same address and no other address; a registered URI, IP address or email address is
never matched by the same text in a SAN of another type. Case folding is ASCII only: a SAN that
equals a registered DNS name or email domain only under Unicode rules (U+212A KELVIN SIGN is
"k" to ``str.lower()``) matches nothing, nor does any non-ASCII SAN value.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import example, given
from hypothesis import strategies as st

from oauth_cc.common import mtls
from tests.mtls_helpers import rfc9440, with_raw_san

from .strategies import unicode_text

_KEY = ec.generate_private_key(ec.SECP256R1())
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billing")])


def certificate(*names: x509.GeneralName) -> x509.Certificate:
    """A self-signed certificate whose SAN extension holds ``names`` (one key: signing is fast)."""
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_NAME)
        .issuer_name(_NAME)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .sign(_KEY, hashes.SHA256())
    )


ANY_TEXT = unicode_text(max_size=80) | st.text(alphabet="0123456789abcdefABCDEF:.%/[]@-_ ", max_size=60)
ONE_OF_EACH = certificate(
    x509.DNSName("billing.example.com"),
    x509.UniformResourceIdentifier("spiffe://example.org/billing"),
    x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
    x509.IPAddress(ipaddress.ip_address("2001:db8::7")),
    x509.RFC822Name("billing@example.com"),
)


@given(text=ANY_TEXT, name=st.sampled_from(mtls.CERTIFICATE_NAMES))
@example(text="::1%", name=mtls.CERTIFICATE_NAMES_BY_METADATA["tls_client_auth_san_ip"])
@example(text="a@", name=mtls.CERTIFICATE_NAMES_BY_METADATA["tls_client_auth_san_email"])
@example(text="CN=", name=mtls.CERTIFICATE_NAMES_BY_METADATA["tls_client_auth_subject_dn"])
def test_any_text_is_a_name_or_a_value_error_and_matching_never_raises(text, name):
    try:
        name.check(text)
    except ValueError as exc:
        assert str(exc).endswith(".")  # a sentence
    assert name.matches(ONE_OF_EACH, text) in (True, False)


@given(address=st.ip_addresses())
def test_an_address_matches_in_every_spelling_and_no_other_address(address):
    cert = certificate(x509.IPAddress(address))
    spellings = {str(address), address.exploded, address.compressed, address.exploded.upper()}
    for spelling in spellings:
        mtls.check_san_ip(spelling)
        assert mtls.san_ip_matches(cert, spelling), spelling
    neighbour = address + 1 if int(address) < (2**address.max_prefixlen - 1) else address - 1
    assert not mtls.san_ip_matches(cert, str(neighbour))
    if address.version == 4:  # the IPv4-mapped IPv6 spelling is another (16-octet) address
        assert not mtls.san_ip_matches(cert, f"::ffff:{address}")


@given(text=ANY_TEXT)
@example(text="192.0.2.7")
@example(text="spiffe://example.org/billing")
@example(text="billing@example.com")
def test_the_same_text_in_another_san_type_never_matches(text):
    # cryptography writes a dNSName of any ASCII text (it does not check the syntax), which is
    # what an attacker's CA could issue; the check must still look at the SAN type.
    if not text.isascii() or not text:
        return
    as_dns = certificate(x509.DNSName(text))
    assert not mtls.san_uri_matches(as_dns, text)
    assert not mtls.san_ip_matches(as_dns, text)
    assert not mtls.san_email_matches(as_dns, text)
    as_uri = certificate(x509.UniformResourceIdentifier(text))
    assert not mtls.san_dns_matches(as_uri, text)
    assert not mtls.san_email_matches(as_uri, text)
    assert mtls.san_uri_matches(as_uri, text)


def _from_raw_san(kind: str, text: str) -> x509.Certificate | None:
    """The header parser's certificate whose one SAN of ``kind`` holds ``text`` as UTF-8 (what an
    attacker's CA may write), or ``None`` when the parser refuses it."""
    raw = text.encode("utf-8")
    if not 1 <= len(raw) < 128:
        return None
    try:
        return mtls.parse_header(rfc9440(with_raw_san(kind, raw)), mtls.RFC9440)
    except mtls.InvalidClientCertificate:
        return None


def _spellings(text: str) -> list[str]:
    """Registered values a Unicode-aware comparison could take for ``text``."""
    return [text, text.lower(), text.upper(), text.casefold(), unicodedata.normalize("NFKC", text).lower()]


LOOK_ALIKES = st.text(alphabet="kK\u212aAs\u017f\u0131iI\u0130.-é", min_size=1, max_size=12)


@given(san=LOOK_ALIKES | ANY_TEXT.filter(bool), other=ANY_TEXT)
@example(san="\u212aafka.example.com", other="kafka.example.com")
@example(san="\u017fvc.example", other="svc.example")  # LATIN SMALL LONG S: upper() is "S"
def test_a_dns_name_matches_only_its_ascii_case_variants(san, other):
    certificate = _from_raw_san("dns", san)
    if certificate is None:
        return
    for registered in [*_spellings(san), other]:
        expected = (
            san.isascii() and registered.strip().isascii() and san.lower() == registered.strip().lower()
        )
        assert mtls.san_dns_matches(certificate, registered) == (expected and bool(registered.strip())), (
            registered
        )


@given(
    domain=(LOOK_ALIKES | ANY_TEXT).filter(
        lambda d: d and "@" not in d
    ),  # one "@": local and domain are clear
    other=ANY_TEXT,
)
@example(domain="\u212aafka.example.com", other="kafka.example.com")
def test_an_email_domain_matches_only_its_ascii_case_variants(domain, other):
    certificate = _from_raw_san("email", "ops@" + domain)
    if certificate is None:
        return
    for registered_domain in [*_spellings(domain), other]:
        expected = (
            ("ops@" + domain).isascii()
            and registered_domain.isascii()
            and bool(registered_domain)
            and domain.lower() == registered_domain.lower()
        )
        assert mtls.san_email_matches(certificate, "ops@" + registered_domain) == expected, registered_domain
