"""Both sides: mutual TLS (RFC 8705): the client certificate a TLS-terminating proxy forwards.

The TLS handshake happens at the proxy (nginx, a load balancer). It proves the client holds the
certificate's private key and, when configured with a CA, verifies the chain and the validity
dates; it then forwards the certificate to the site in a request header. This module reads that
header, strictly, and knows nothing of the issuer's models, so a resource-only service can use it
to check certificate-bound tokens.

* ``OAUTH_CC["CLIENT_CERT_HEADER"]``: the ``request.META`` name of the header (for example
  ``"HTTP_X_SSL_CLIENT_CERT"``), or ``None`` (the default): no header is trusted, and any such
  header a client sends is ignored. The proxy **must** set or clear that header on every request
  (nginx's ``proxy_set_header`` replaces a header the client sent), or clients could forge it.
* ``OAUTH_CC["CLIENT_CERT_HEADER_FORMAT"]``: ``"nginx-escaped-pem"`` (nginx's
  ``$ssl_client_escaped_cert``: the PEM, percent-encoded) or ``"rfc9440"`` (RFC 9440
  ``Client-Cert``: the DER as a structured-field byte sequence, ``:base64:``).

An empty header means "no certificate" (nginx sends an empty value when the client presented
none). Anything else must be exactly one certificate in the configured format, at most
:data:`MAX_HEADER_BYTES`, or :class:`InvalidClientCertificate` is raised: a value a correctly
configured proxy cannot produce is refused, not guessed at. Every read of a certificate goes
through :func:`_read`, which makes any exception of the library that error, and the parser reads
up front all that the matchers and the binding check read later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..conf import oauth_cc_settings

#: The formats ``CLIENT_CERT_HEADER_FORMAT`` may name.
NGINX_ESCAPED_PEM = "nginx-escaped-pem"
RFC9440 = "rfc9440"
FORMATS = (NGINX_ESCAPED_PEM, RFC9440)

#: Largest header value read. A client certificate is typically 1-2 KiB of DER; with PEM's
#: base64 and nginx's escaping it grows by about half, so 16 KiB leaves room for large RSA keys
#: and many SANs and still bounds the work an attacker's bytes can cause.
MAX_HEADER_BYTES = 16 * 1024

#: The attribute of the request holding the parsed certificate (parsed once per request).
_REQUEST_ATTR = "_oauth_cc_client_cert"

_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# One PEM certificate (RFC 7468 §2 "strict" form, any line length, LF or CRLF line ends).
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n"
    rb"((?:[A-Za-z0-9+/=]+\r?\n)+)"
    rb"-----END CERTIFICATE-----(?:\r?\n)?"
)
_SF_BINARY = re.compile(rb":([A-Za-z0-9+/]*={0,2}):")


def settings_errors(user: dict[str, Any]) -> list[Any]:
    """System check ``oauth_cc.E014`` on the header settings (issuer and resource-only service)."""
    from django.core.checks import Error

    errors: list[Any] = []
    header = user.get("CLIENT_CERT_HEADER")
    if header is not None and (not isinstance(header, str) or not re.fullmatch(r"HTTP_[A-Z0-9_]+", header)):
        errors.append(
            Error(
                "OAUTH_CC['CLIENT_CERT_HEADER'] must be None or a request.META header name "
                'like "HTTP_X_SSL_CLIENT_CERT".',
                hint="Set it only when every request comes through a proxy that sets or clears that header.",
                id="oauth_cc.E014",
            )
        )
    if user.get("CLIENT_CERT_HEADER_FORMAT", NGINX_ESCAPED_PEM) not in FORMATS:
        errors.append(
            Error(
                "OAUTH_CC['CLIENT_CERT_HEADER_FORMAT'] must be one of: " + ", ".join(FORMATS) + ".",
                id="oauth_cc.E014",
            )
        )
    return errors


class InvalidClientCertificate(ValueError):
    """The forwarded certificate header is not one certificate in the configured format."""


def _percent_decode(raw: bytes) -> bytes:
    """Strict percent-decoding: every ``%`` starts a two-hex-digit escape; ``+`` stays ``+``."""
    if raw.count(b"%") != len(_PERCENT_ESCAPE.findall(raw)):
        raise InvalidClientCertificate("The client certificate header has an invalid percent-escape.")
    return _PERCENT_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _b64decode(text: bytes) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidClientCertificate("The client certificate is not valid base64.") from None
    if base64.b64encode(data) != text:  # padding or unused bits spelled another way
        raise InvalidClientCertificate("The client certificate is not canonical base64.")
    return data


_T = TypeVar("_T")


def _read(part: str, read: Callable[[], _T]) -> _T:
    """The one place this module reads a certificate: ``read()``, or :class:`InvalidClientCertificate`.

    ``cryptography`` raises more than ``ValueError`` for bytes it cannot read, and each parse
    error has its own type (``InvalidVersion``, ``DuplicateExtension``,
    ``UnsupportedGeneralNameType``, ``UnsupportedAlgorithm``, a deprecation warning where
    warnings are errors), with more to come in later versions. ``read`` holds only calls into
    the library, so any exception is about the attacker's bytes, never a bug of ours, and
    becomes the module's error: a client gets 400 or 401, never a 500.
    """
    try:
        return read()
    except Exception:  # any type, so a new one in a later cryptography cannot escape
        raise InvalidClientCertificate(
            f"The client certificate is not a valid X.509 certificate: its {part} could not be read."
        ) from None


def _der(certificate: x509.Certificate) -> bytes:
    return _read("DER encoding", lambda: certificate.public_bytes(Encoding.DER))


def _subject(certificate: x509.Certificate) -> x509.Name:
    return _read("subject", lambda: certificate.subject)


def _public_key(certificate: x509.Certificate) -> Any:
    return _read("public key", lambda: certificate.public_key())  # the lookup too, inside _read


def _validity(certificate: x509.Certificate) -> tuple[datetime, datetime]:
    return _read(
        "validity dates", lambda: (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
    )


def _san(certificate: x509.Certificate, kind: Any) -> list[Any]:
    """The values of one type of SAN (``x509.DNSName``, ...); none without the extension."""

    def values() -> list[Any]:
        try:
            extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return list(extension.value.get_values_for_type(kind))

    return _read("subject alternative names", values)


def _load_der(der: bytes) -> x509.Certificate:
    certificate = _read("ASN.1 structure", lambda: x509.load_der_x509_certificate(der))
    # The library parses lazily (the extensions only when first asked for): read here, through
    # the same functions, everything the matchers and the binding check read later, so a
    # certificate this returns is one they can all read, and a bad one is refused here, where
    # every caller expects InvalidClientCertificate.
    _subject(certificate)
    _public_key(certificate)
    _validity(certificate)
    _san(certificate, x509.DNSName)  # parses every extension, and walks all the SAN's names
    # RFC 5280 §4.1.2.2 (cryptography only warns, for now)
    if _read("serial number", lambda: certificate.serial_number) <= 0:
        raise InvalidClientCertificate("The client certificate is not a valid X.509 certificate.")
    if _der(certificate) != der:
        raise InvalidClientCertificate("The client certificate has trailing or non-canonical data.")
    return certificate


def parse_header(value: str, header_format: str) -> x509.Certificate | None:
    """The certificate in a forwarded header value, ``None`` for an empty value.

    Raises :class:`InvalidClientCertificate` for anything but one well-formed certificate.
    """
    if header_format not in FORMATS:
        raise ValueError(f"Unknown client certificate header format {header_format!r}.")
    if len(value) > MAX_HEADER_BYTES:
        raise InvalidClientCertificate("The client certificate header is too large.")
    if value == "":
        return None
    if not value.isascii():
        raise InvalidClientCertificate("The client certificate header is not ASCII.")
    if not value.isprintable() or " " in value:
        # Escaped PEM has no literal spaces or line breaks, and a byte sequence none at all.
        raise InvalidClientCertificate("The client certificate header holds spaces or control characters.")
    if header_format == RFC9440:
        binary = _SF_BINARY.fullmatch(value.encode("ascii"))
        if binary is None:
            raise InvalidClientCertificate("The Client-Cert header is not a byte sequence (:base64:).")
        return _load_der(_b64decode(binary.group(1)))
    pem = _PEM_CERT.fullmatch(_percent_decode(value.encode("ascii")))
    if pem is None:
        raise InvalidClientCertificate("The client certificate header is not one PEM certificate.")
    return _load_der(_b64decode(b"".join(pem.group(1).split())))


def client_certificate(request: Any) -> x509.Certificate | None:
    """The certificate the trusted proxy forwarded for this request, or ``None``.

    ``None`` when ``CLIENT_CERT_HEADER`` is off (whatever headers the client sent), when the
    header is absent or empty. Parsed once per request. Raises
    :class:`InvalidClientCertificate` for a malformed value.
    """
    header = oauth_cc_settings.CLIENT_CERT_HEADER
    if not header:
        return None
    cached = getattr(request, _REQUEST_ATTR, _REQUEST_ATTR)
    if cached is not _REQUEST_ATTR:
        if isinstance(cached, InvalidClientCertificate):
            raise cached
        return cast("x509.Certificate | None", cached)  # set below: a certificate or None
    try:
        certificate = parse_header(request.META.get(header, ""), oauth_cc_settings.CLIENT_CERT_HEADER_FORMAT)
    except InvalidClientCertificate as exc:
        setattr(request, _REQUEST_ATTR, exc)
        raise
    setattr(request, _REQUEST_ATTR, certificate)
    return certificate


def thumbprint(certificate: x509.Certificate) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url (no padding) of the SHA-256 of the DER."""
    digest = hashlib.sha256(_der(certificate)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- matching a certificate to a client's registration (RFC 8705 §2) ----------------------------


def _has_hex_value(text: str) -> bool:
    """Whether an attribute value of the RFC 4514 string ``text`` is in the ``#hex`` form (§2.4).

    ``text`` has parsed: a value starts after the first ``=`` of an attribute, an unescaped
    ``,`` or ``+`` ends it (both are always escaped inside a value), and a ``\\`` escapes the
    next character (of a ``\\XX`` pair, the second hex digit is a plain character).
    """
    in_value = False
    at = 0
    while at < len(text):
        char = text[at]
        if char == "\\":
            at += 2
            continue
        if not in_value and char == "=":
            if text[at + 1 : at + 2] == "#":
                return True
            in_value = True
        elif in_value and char in ",+":
            in_value = False
        at += 1
    return False


def parse_subject_dn(text: str) -> x509.Name:
    """A registered subject DN (RFC 4514 string); ``ValueError`` with a sentence when it is not one."""
    if not text.strip():
        raise ValueError("The subject DN is empty.")
    try:
        name = x509.Name.from_rfc4514_string(text)
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            'Not an RFC 4514 distinguished name; write it like "CN=billing,O=Example" '
            "(most specific first, no spaces around commas, known attribute names in capitals)."
        ) from None
    if not list(name):
        raise ValueError("The subject DN is empty.")
    if _has_hex_value(text):
        # The library reads "#..." as the value's raw BER (tag and length included) and holds
        # those bytes as the value's text, which no certificate subject ever equals.
        raise ValueError(
            'Write each value as text, not in the "#" hex form (CN=billing, not CN=#0c0762696c6c696e67); '
            "escape a value that starts with # as \\#."
        )
    return name


def subject_matches(certificate: x509.Certificate, registered_dn: str) -> bool:
    """RFC 8705 §2.1.2 ``tls_client_auth_subject_dn``: the certificate's subject is that DN.

    Compared as parsed names (same RDNs, attribute types and values, in order): an escaped
    character (``\\6c`` or ``\\,``) stands for itself, values compare exactly. A DN that
    :func:`parse_subject_dn` refuses (including a value in the ``#`` hex form) matches nothing.
    """
    subject = _subject(certificate)
    try:
        wanted = parse_subject_dn(registered_dn)
    except ValueError:
        return False
    return subject == wanted


# One label of a DNS name as certificates carry it (RFC 5280 §4.2.1.6: the preferred name syntax,
# internationalized names as their xn-- A-labels); "_" is seen in service names, so allowed.
_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")
# RFC 3986 §3.1: a scheme, then ":".
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:.")
_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")


def check_san_dns(text: str) -> None:
    """``ValueError`` with a sentence unless ``text`` is a DNS name a certificate can carry."""
    if len(text) > 253 or not _DNS_NAME.fullmatch(text):
        raise ValueError(
            'Not a DNS name; write it like "billing.example.com": letters, digits, hyphens and dots '
            "(an internationalized name in its xn-- form), without a wildcard, scheme, port or trailing dot."
        )


def check_san_uri(text: str) -> None:
    """``ValueError`` with a sentence unless ``text`` is an absolute URI (RFC 3986 §4.3)."""
    if _NOT_VISIBLE_ASCII.search(text):
        raise ValueError(
            "The URI contains spaces, control or non-ASCII characters; percent-encode them, "
            "as the certificate does."
        )
    if not _URI_SCHEME.match(text):
        raise ValueError(
            'Not an absolute URI: it needs a scheme, like "spiffe://example.org/billing" or '
            '"https://billing.example.com/".'
        )


def check_san_ip(text: str) -> None:
    """``ValueError`` with a sentence unless ``text`` is one IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
        valid = "%" not in text  # an IPv6 zone is local to a host; a certificate has none
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            'Not an IP address; write an IPv4 address like "192.0.2.7" or an IPv6 address like '
            '"2001:db8::7" (without brackets, port, prefix length or zone).'
        )


def check_san_email(text: str) -> None:
    """``ValueError`` with a sentence unless ``text`` is ``local@domain`` (RFC 5280 §4.2.1.6)."""
    local, at, domain = text.rpartition("@")
    if not at or not local or _NOT_VISIBLE_ASCII.search(local):
        raise ValueError('Not an email address; write it like "billing@example.com".')
    try:
        check_san_dns(domain)
    except ValueError:
        raise ValueError(
            f'The email address\'s domain is not a DNS name; write it like "{local}@example.com".'
        ) from None


def _ascii_lower(text: str) -> str | None:
    """``text`` with A-Z lowercased, or ``None`` (which equals no name) when it is not ASCII.

    ``str.lower()`` folds by Unicode rules: U+212A KELVIN SIGN becomes "k", so a SAN
    "\u212aafka.example.com" would equal "kafka.example.com". A dNSName or rfc822Name is an
    IA5String (ASCII; RFC 5280 §4.2.1.6) and registered names are ASCII: anything else in a
    certificate is an encoding trick, and matches nothing.
    """
    return text.lower() if text.isascii() else None  # on ASCII text, lower() changes A-Z only


def san_dns_matches(certificate: x509.Certificate, registered: str) -> bool:
    """``tls_client_auth_san_dns``: a dNSName SAN equal to it (ASCII case-insensitive, no wildcards)."""
    wanted = _ascii_lower(registered.strip())
    names = _san(certificate, x509.DNSName)
    return bool(wanted) and any(_ascii_lower(name) == wanted for name in names)


def san_uri_matches(certificate: x509.Certificate, registered: str) -> bool:
    """``tls_client_auth_san_uri``: a uniformResourceIdentifier SAN equal to it.

    Compared exactly, as the certificate spells it: no case folding or normalisation, so a
    registration that differs in spelling is refused, never a different URI accepted. A
    non-ASCII value (a URI SAN is an IA5String) matches nothing.
    """
    uris = _san(certificate, x509.UniformResourceIdentifier)
    return bool(registered) and registered.isascii() and registered in uris


def san_ip_matches(certificate: x509.Certificate, registered: str) -> bool:
    """``tls_client_auth_san_ip``: an iPAddress SAN equal to it, compared as addresses.

    So ``::1`` and ``0:0:0:0:0:0:0:1`` match; an IPv4 address never matches an IPv6 one (not
    even its ``::ffff:`` form: the certificate holds 4 or 16 octets, RFC 5280 §4.2.1.6).
    """
    try:
        check_san_ip(registered)
        wanted = ipaddress.ip_address(registered)
    except ValueError:
        return False
    return wanted in _san(certificate, x509.IPAddress)


def san_email_matches(certificate: x509.Certificate, registered: str) -> bool:
    """``tls_client_auth_san_email``: an rfc822Name SAN equal to it.

    As RFC 5280 §7.5 compares them: the local part exactly, the domain case-insensitively (in
    ASCII: a non-ASCII value matches nothing, see :func:`_ascii_lower`).
    """
    names = _san(certificate, x509.RFC822Name)
    local, at, domain = registered.rpartition("@")
    wanted_domain = _ascii_lower(domain)
    if not at or not local or not wanted_domain or not local.isascii():
        return False
    for name in names:
        their_local, their_at, their_domain = name.rpartition("@")
        if their_at and their_local == local and _ascii_lower(their_domain) == wanted_domain:
            return True
    return False


@dataclass(frozen=True)
class CertificateName:
    """One way RFC 8705 §2.1.2 lets a ``tls_client_auth`` client name its certificate."""

    #: The client metadata name (RFC 8705 §2.1.2), also the model field holding it.
    metadata: str
    #: What it is, for sentences: "the certificate's {label}".
    label: str
    #: Raises ``ValueError`` with a sentence saying what to fix.
    check: Callable[[str], Any]
    #: Whether a certificate carries the registered value.
    matches: Callable[[x509.Certificate, str], bool]


#: The RFC 8705 §2.1.2 names, in the RFC's order: a ``tls_client_auth`` client registers exactly one.
CERTIFICATE_NAMES: tuple[CertificateName, ...] = (
    CertificateName("tls_client_auth_subject_dn", "subject DN", parse_subject_dn, subject_matches),
    CertificateName("tls_client_auth_san_dns", "DNS name", check_san_dns, san_dns_matches),
    CertificateName("tls_client_auth_san_uri", "URI", check_san_uri, san_uri_matches),
    CertificateName("tls_client_auth_san_ip", "IP address", check_san_ip, san_ip_matches),
    CertificateName("tls_client_auth_san_email", "email address", check_san_email, san_email_matches),
)
CERTIFICATE_NAMES_BY_METADATA = {name.metadata: name for name in CERTIFICATE_NAMES}
CERTIFICATE_NAME_FIELDS = tuple(CERTIFICATE_NAMES_BY_METADATA)


def within_validity(certificate: x509.Certificate, now: datetime | None = None) -> bool:
    """Whether ``now`` is within the certificate's notBefore/notAfter."""
    not_before, not_after = _validity(certificate)
    now = now or datetime.now(timezone.utc)
    return not_before <= now <= not_after


def key_thumbprint(certificate: x509.Certificate) -> str | None:
    """RFC 7638 thumbprint of the certificate's public key; ``None`` for a key no JWK expresses (DSA)."""
    from jwcrypto.jwk import JWK

    key = _public_key(certificate)
    try:
        return str(JWK.from_pyca(key).thumbprint())  # DSA & co. raise
    except Exception:  # a key type JWK cannot express: it can match no JWK
        return None


def key_among(presented: str | None, keys: Iterable[Any]) -> bool:
    """RFC 8705 §2.2: the key of thumbprint ``presented`` (:func:`key_thumbprint`) is one of
    ``keys`` (parsed JWKs)."""
    return presented is not None and any(
        hmac.compare_digest(str(key.thumbprint()).encode(), presented.encode()) for key in keys
    )


def public_key_in_jwks(certificate: x509.Certificate, jwks: Any) -> bool:
    """RFC 8705 §2.2: the certificate's public key is one of the keys of a JWK Set document."""
    from .jwks_validation import usable_keys

    return key_among(key_thumbprint(certificate), usable_keys(jwks))


# -- certificate-bound access tokens (RFC 8705 §3) ----------------------------------------------


class BindingError(Exception):
    """A certificate-bound token without the certificate it is bound to."""


def check_binding(request: Any, bound_thumbprint: str | None) -> None:
    """Refuse a certificate-bound token unless this request carries the same certificate.

    ``bound_thumbprint`` is the token's ``cnf.x5t#S256`` (``None``: not bound, nothing to check).
    Raises :class:`BindingError`; runs on every request, not only when the token was verified.
    """
    if bound_thumbprint is None:
        return
    try:
        certificate = client_certificate(request)
        presented = thumbprint(certificate) if certificate is not None else None
    except InvalidClientCertificate:
        raise BindingError("The client certificate could not be read.") from None
    if presented is None:
        raise BindingError("The access token is bound to a client certificate; none was presented.")
    if not hmac.compare_digest(presented.encode(), bound_thumbprint.encode()):
        raise BindingError("The access token is bound to a different client certificate.")
