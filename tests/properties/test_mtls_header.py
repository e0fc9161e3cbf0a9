"""Properties of ``oauth_cc.common.mtls.parse_header``, the forwarded client certificate header.

Any string gives a certificate, ``None`` (empty only) or :class:`InvalidClientCertificate`:
never another exception. A mutated genuine header is refused or is the one spelling, in the
format, of the certificate it gives (canonical base64 and DER: no second spelling); and every
escaping nginx or another proxy may choose reads the same certificate.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, unquote

from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from oauth_cc.common.mtls import FORMATS, NGINX_ESCAPED_PEM, RFC9440, InvalidClientCertificate, parse_header
from tests.mtls_helpers import issue, make_ca

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
