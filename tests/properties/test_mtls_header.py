"""Properties of ``oauth_cc.common.mtls.parse_header``, the forwarded client certificate header.

Any string gives a certificate, ``None`` (empty only) or :class:`InvalidClientCertificate`:
never another exception. A mutated genuine header is refused or is the one spelling, in the
format, of the certificate it gives (canonical base64 and DER: no second spelling); and every
escaping nginx or another proxy may choose reads the same certificate. A certificate's DER
mutated (bytes replaced, inserted, deleted, cut) is refused or read, and every function that
reads a certificate raises nothing but that error.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from oauth_cc.common import mtls
from oauth_cc.common.mtls import FORMATS, NGINX_ESCAPED_PEM, RFC9440, InvalidClientCertificate, parse_header
from tests.mtls_helpers import issue, make_ca, nginx_escaped, rfc9440

from .strategies import unicode_text

CERT = issue(make_ca(), "billing", dns=["billing.example.com"])
GENUINE = {NGINX_ESCAPED_PEM: CERT.nginx_header, RFC9440: CERT.rfc9440_header}


def _parse(value: str, header_format: str):
    try:
        return parse_header(value, header_format)
    except InvalidClientCertificate:
        return "refused"


@given(
    value=unicode_text(max_size=400) | st.text(alphabet="%0123456789ABCDEFabcdef:=+/-\n", max_size=400),
    header_format=st.sampled_from(FORMATS),
)
@example(value="", header_format=RFC9440)
@example(value="%", header_format=NGINX_ESCAPED_PEM)
def test_any_string_gives_a_certificate_none_or_the_one_error(value, header_format):
    result = _parse(value, header_format)
    assert result == "refused" or (result is None) == (value == "")


@given(
    header_format=st.sampled_from(FORMATS),
    position=st.integers(min_value=0),  # modulo the length of the genuine header
    replacement=st.text(max_size=3),
    cut=st.integers(min_value=0, max_value=3),
)
def test_a_mutated_header_is_the_same_certificate_or_refused(header_format, position, replacement, cut):
    genuine = GENUINE[header_format]
    at = position % (len(genuine) + 1)
    value = genuine[:at] + replacement + genuine[at + cut :]
    result = _parse(value, header_format)
    if result in ("refused", None):
        return
    # Not necessarily CERT: a changed byte inside a field is another certificate (its signature
    # is the proxy's to check). But the value is that certificate's one spelling in the format.
    if header_format == RFC9440:
        assert value == ":" + base64.b64encode(result.public_bytes(Encoding.DER)).decode() + ":"
    else:
        pem = result.public_bytes(Encoding.PEM).decode()
        assert re.sub(r"\s", "", unquote(value)) == re.sub(r"\s", "", pem)


@given(safe=st.sets(st.sampled_from("+/=-"), max_size=4), lower_hex=st.booleans(), crlf=st.booleans())
def test_every_escaping_of_the_pem_reads_the_same_certificate(safe, lower_hex, crlf):
    pem = CERT.pem.replace("\n", "\r\n") if crlf else CERT.pem
    value = quote(pem, safe="".join(safe))
    if lower_hex:
        value = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), value)
    assert parse_header(value, NGINX_ESCAPED_PEM).public_bytes(Encoding.DER) == CERT.der


# -- mutated DER: whatever the library makes of the bytes, only the module's error escapes -------

FULL = issue(
    make_ca(),
    "billing",
    dns=["billing.example.com"],
    uri=["spiffe://example.org/billing"],
    ip=["192.0.2.7"],
    email=["billing@example.com"],
)
REGISTERED = {
    "tls_client_auth_subject_dn": "CN=billing,O=Example",
    "tls_client_auth_san_dns": "billing.example.com",
    "tls_client_auth_san_uri": "spiffe://example.org/billing",
    "tls_client_auth_san_ip": "192.0.2.7",
    "tls_client_auth_san_email": "billing@example.com",
}
_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "insert", "delete", "truncate"]),
        st.integers(min_value=0),  # modulo the length
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(der: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(der)
    for kind, position, value in edits:
        at = position % (len(data) + 1)
        if kind == "replace" and at < len(data):
            data[at] = value
        elif kind == "insert":
            data.insert(at, value)
        elif kind == "delete" and at < len(data):
            del data[at]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


def _read_everything(certificate: Any) -> None:
    """Every function of the module that reads a certificate."""
    for name in mtls.CERTIFICATE_NAMES:
        assert name.matches(certificate, REGISTERED[name.metadata]) in (True, False)
    mtls.within_validity(certificate)
    mtls.key_thumbprint(certificate)
    mtls.thumbprint(certificate)
    mtls.public_key_in_jwks(certificate, FULL.jwks())


def _at(der: bytes, marker: bytes) -> int:
    return der.index(marker)


_VERSION_AT = _at(FULL.der, bytes.fromhex("a003020102")) + 4
_SAN_AT = _at(FULL.der, b"\x82\x13billing.example.com")


@given(edits=_EDITS, header_format=st.sampled_from(FORMATS))
@example(edits=[("replace", _VERSION_AT, 7)], header_format=RFC9440)  # InvalidVersion
@example(edits=[("replace", _SAN_AT, 0xA3)], header_format=RFC9440)  # UnsupportedGeneralNameType
@example(edits=[("replace", _SAN_AT, 0x8A)], header_format=NGINX_ESCAPED_PEM)  # no such GeneralName
@example(edits=[("truncate", 200, 0)], header_format=RFC9440)
def test_a_mutated_certificate_is_refused_or_read_without_error_everywhere(edits, header_format):
    der = _mutate(FULL.der, edits)
    value = rfc9440(der) if header_format == RFC9440 else nginx_escaped(der)
    try:
        certificate = parse_header(value, header_format)
    except InvalidClientCertificate:
        certificate = None
    if certificate is not None:
        # Read up front by the parser: nothing raises here at all, not even the module's error.
        _read_everything(certificate)
    try:
        loaded = x509.load_der_x509_certificate(der)
    except Exception:  # the library's own refusal; what the parser turns into its error
        return
    # A certificate the parser did not vet (the library reads lazily): only the module's error.
    try:
        _read_everything(loaded)
    except InvalidClientCertificate:
        pass
