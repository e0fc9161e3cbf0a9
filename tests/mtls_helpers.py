"""Test certificates for mutual TLS: a CA, certificates it issues, self-signed ones, and the headers
a proxy forwards them in (nginx's ``$ssl_client_escaped_cert``, RFC 9440 ``Client-Cert``)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwcrypto.jwk import JWK

HEADER = "HTTP_X_SSL_CLIENT_CERT"


@dataclass(frozen=True)
class Cert:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")

    @property
    def thumbprint(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(self.der).digest()).rstrip(b"=").decode()

    @property
    def nginx_header(self) -> str:
        """As nginx's ``$ssl_client_escaped_cert``: the PEM, URL-encoded."""
        return quote(self.pem, safe="")

    @property
    def rfc9440_header(self) -> str:
        return ":" + base64.b64encode(self.der).decode("ascii") + ":"

    def jwks(self, kid: str = "cert-key") -> dict:
        jwk = JWK.from_pyca(self.key.public_key())
        return {"keys": [{**jwk.export_public(as_dict=True), "kid": kid}]}

    def write(self, directory: Path, name: str) -> tuple[str, str]:
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_text(self.pem)
        key_path.write_text(self.key_pem)
        return str(cert_path), str(key_path)


def _name(cn: str, org: str = "Example") -> x509.Name:
    """``O=org`` then ``CN=cn`` (most significant first): its RFC 4514 string is ``CN=cn,O=org``."""
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def make_ca(cn: str = "Test CA") -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Cert(certificate, key)


def issue(
    ca: Cert | None,
    cn: str,
    *,
    dns: list[str] = (),
    server: bool = False,
    ip: list[str] = (),
    uri: list[str] = (),
    email: list[str] = (),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Cert:
    """A certificate for ``cn`` issued by ``ca``, or self-signed when ``ca`` is None."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    subject = _name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(hours=1))
        .not_valid_after(not_after or now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip]
    names += [x509.UniformResourceIdentifier(u) for u in uri]
    names += [x509.RFC822Name(e) for e in email]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Cert(builder.sign(ca.key if ca else key, hashes.SHA256()), key)


# -- certificates the library cannot fully read, made by editing a genuine one's DER ------------
# The signature no longer verifies: the proxy's chain check would refuse them, but a proxy set up
# without one (optional_no_ca) forwards them, and oauth_cc must refuse them without an error.

_GENERAL_NAME_TAGS = {"email": 0x81, "dns": 0x82, "uri": 0x86}


def with_version(der: bytes, version: int) -> bytes:
    """``der`` claiming X.509 version ``version`` (0-based: 2 is v3), which the library refuses beyond v3."""
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
    assert der.count(v3) == 1
    return der.replace(v3, bytes.fromhex("a0030201") + bytes([version]))


def with_two_san_extensions(ca: Cert | None, dns: str = "billing.example.com") -> bytes:
    """A certificate with two subjectAltName extensions (RFC 5280 §4.2: at most one of each)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("billing"))
        .issuer_name(ca.certificate.subject if ca else _name("billing"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.IssuerAlternativeName([x509.DNSName(dns)]), critical=False)
        .sign(ca.key if ca else key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    issuer_alt_name = bytes.fromhex("0603551d12")  # OID 2.5.29.18, made 2.5.29.17 (subjectAltName)
    assert der.count(issuer_alt_name) == 1
    return der.replace(issuer_alt_name, bytes.fromhex("0603551d11"))


def with_x400_address_san(der: bytes, dns: str) -> bytes:
    """``der`` with its dNSName SAN ``dns`` made an x400Address, a type the library cannot hold."""
    general_name = bytes([0x82, len(dns)]) + dns.encode("ascii")
    assert der.count(general_name) == 1 and 2 <= len(dns) < 128
    # [3] constructed, same length; inside, an OCTET STRING filling it.
    x400 = bytes([0xA3, len(dns), 0x04, len(dns) - 2]) + b"a" * (len(dns) - 2)
    return der.replace(general_name, x400)


def with_raw_san(kind: str, raw: bytes) -> bytes:
    """A self-signed certificate whose one SAN of ``kind`` ("dns", "email", "uri") holds the bytes
    ``raw`` (the library only builds ASCII names; an attacker's CA writes any bytes)."""
    assert 1 <= len(raw) < 128
    placeholder = b"x" * len(raw)  # the library checks no syntax, only that it is ASCII
    text = placeholder.decode("ascii")
    names = {"dns": x509.DNSName, "email": x509.RFC822Name, "uri": x509.UniformResourceIdentifier}
    key = _SAN_KEY
    now = datetime.now(timezone.utc)
    der = (
        x509.CertificateBuilder()
        .subject_name(_name("billing"))
        .issuer_name(_name("billing"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([names[kind](text)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    general_name = bytes([_GENERAL_NAME_TAGS[kind], len(raw)]) + placeholder
    assert der.count(general_name) == 1
    return der.replace(general_name, bytes([_GENERAL_NAME_TAGS[kind], len(raw)]) + raw)


_SAN_KEY = ec.generate_private_key(ec.SECP256R1())


def rfc9440(der: bytes) -> str:
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def nginx_escaped(der: bytes) -> str:
    """As nginx's ``$ssl_client_escaped_cert``: the PEM (64-character lines), URL-encoded."""
    body = base64.b64encode(der).decode("ascii")
    lines = "\n".join(body[at : at + 64] for at in range(0, len(body), 64))
    return quote(f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n", safe="")
