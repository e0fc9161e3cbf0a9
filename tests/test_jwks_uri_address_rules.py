"""Where a jwks_uri may point (``validate_jwks_uri``, ``is_public_address``, ``checked_addresses``).

In production (``JWKS_URI_ALLOW_INSECURE`` off) the server fetches only https URLs whose host is
neither this machine nor a private, loopback, link-local or multicast address, before and after
DNS resolution, and refuses a name if *any* of its addresses is internal (a resolver may hand out
a mix). Each refusal has its own sentence.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from oauth_cc.common import hardened_http
from oauth_cc.common.hardened_http import FetchError, is_public_address
from oauth_cc.common.jwks_validation import jwk_thumbprints, validate_jwks_uri

from .assertion_helpers import generate_key


@pytest.fixture
def secure_only(settings: Any) -> None:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": False}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("::ffff:93.184.215.14", True),  # IPv4-mapped: judged as the IPv4 address it carries
        ("::ffff:10.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("10.1.2.3", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("224.0.0.1", False),  # multicast is "global" to ipaddress, and still refused
        ("233.252.0.1", False),
        ("ff0e::1", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://keys.example.com/jwks.json", "The JWKS URI must use https://."),
        ("https://localhost/jwks.json", "The JWKS URI must not point at this machine (localhost)."),
        ("https://LOCALHOST/jwks.json", "The JWKS URI must not point at this machine (localhost)."),
        ("https://keys.localhost/jwks.json", "The JWKS URI must not point at this machine (localhost)."),
        (
            "https://10.1.2.3/jwks.json",
            "The JWKS URI points at 10.1.2.3, a private, loopback or link-local address; "
            "use a public https URL.",
        ),
        (
            "https://224.0.0.1/jwks.json",
            "The JWKS URI points at 224.0.0.1, a private, loopback or link-local address; "
            "use a public https URL.",
        ),
        ("ftp://keys.example.com/jwks.json", "The JWKS URI must be an absolute https:// URL."),
        ("/jwks.json", "The JWKS URI must be an absolute https:// URL."),
        ("https://user:pw@keys.example.com/", "The JWKS URI must not contain a user name or password."),
        ("https://user@keys.example.com/", "The JWKS URI must not contain a user name or password."),
        ("https://:pw@keys.example.com/", "The JWKS URI must not contain a user name or password."),
    ],
)
def test_validate_jwks_uri_refuses_with_a_sentence(secure_only, url, message):
    with pytest.raises(ValueError) as raised:
        validate_jwks_uri(url)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://keys.example.com:99999/", "Port out of range 0-65535"),
        ("https://keys.example.com:x/", "Port could not be cast to integer value as 'x'"),
        ("https://[::1/jwks.json", "Invalid IPv6 URL"),
    ],
)
def test_validate_jwks_uri_refuses_a_malformed_url_with_the_parsers_reason(secure_only, url, reason):
    with pytest.raises(ValueError) as raised:
        validate_jwks_uri(url)
    assert str(raised.value) == f"The JWKS URI is not a valid URL: {reason}."


@pytest.mark.parametrize(
    "url",
    [
        "https://keys.example.com/jwks.json",
        "https://93.184.215.14/jwks.json",
        "https://keys.example.com:8443/tenant?x=1",
        "https://localhost.example.com/jwks.json",
    ],
)
def test_validate_jwks_uri_accepts_public_https(secure_only, url):
    assert validate_jwks_uri(url) is None


def test_insecure_mode_allows_http_and_local_hosts_but_not_credentials(settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "JWKS_URI_ALLOW_INSECURE": True}
    assert validate_jwks_uri("http://127.0.0.1:8000/jwks.json") is None
    assert validate_jwks_uri("http://localhost/jwks.json") is None
    with pytest.raises(ValueError, match="user name or password"):
        validate_jwks_uri("http://u:p@127.0.0.1/")
    with pytest.raises(ValueError, match="absolute https:// URL"):
        validate_jwks_uri("file:///etc/passwd")


def _resolving_to(monkeypatch: Any, *addresses: str) -> None:
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: list(addresses))


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.5",),
        ("93.184.215.14", "10.0.0.5"),
        ("93.184.215.14", "2606:2800:21f:cb07::1", "127.0.0.1"),
        ("2606:2800:21f:cb07::1", "fe80::1%eth0"),
        ("::ffff:192.168.1.1",),
    ],
)
def test_a_name_with_any_internal_address_is_refused(secure_only, monkeypatch, addresses):
    _resolving_to(monkeypatch, *addresses)
    with pytest.raises(FetchError) as raised:
        hardened_http.checked_addresses("keys.example.com", 443, allow_insecure=False)
    assert str(raised.value) == "the host name resolves to a private, loopback or link-local address"


def test_every_public_address_of_a_name_is_returned_in_order(secure_only, monkeypatch):
    _resolving_to(monkeypatch, "93.184.215.14", "2606:2800:21f:cb07::1")
    assert hardened_http.checked_addresses("keys.example.com", 443, allow_insecure=False) == [
        "93.184.215.14",
        "2606:2800:21f:cb07::1",
    ]


def test_insecure_mode_does_not_check_the_resolved_addresses(monkeypatch):
    _resolving_to(monkeypatch, "127.0.0.1", "10.0.0.5")
    assert hardened_http.checked_addresses("keys.example.com", 443, allow_insecure=True) == [
        "127.0.0.1",
        "10.0.0.5",
    ]


@pytest.mark.parametrize("failure", [OSError("no such name"), UnicodeError("label too long")])
def test_a_name_that_does_not_resolve_is_a_fetch_error(secure_only, monkeypatch, failure):
    def fail(host: str, port: int) -> list[str]:
        raise failure

    monkeypatch.setattr(hardened_http, "resolve", fail)
    with pytest.raises(FetchError) as raised:
        hardened_http.checked_addresses("keys.example.com", 443, allow_insecure=False)
    assert str(raised.value) == "the host name does not resolve"


def test_a_name_with_no_address_is_a_fetch_error(secure_only, monkeypatch):
    _resolving_to(monkeypatch)
    with pytest.raises(FetchError) as raised:
        hardened_http.checked_addresses("keys.example.com", 443, allow_insecure=False)
    assert str(raised.value) == "the host name does not resolve"


def test_jwk_thumbprints_lists_each_key_with_its_rfc7638_thumbprint():
    key = generate_key("ES256", kid="k1")
    public = key.public_jwk()
    no_kid = {name: value for name, value in generate_key("EdDSA").public_jwk().items() if name != "kid"}
    from jwcrypto.jwk import JWK

    result = jwk_thumbprints({"keys": [public, {"kty": "EC", "kid": "broken"}, no_kid]})

    assert result == [
        ("k1", JWK(**public).thumbprint()),
        ("broken", "(not a valid key)"),
        ("", JWK(**no_kid).thumbprint()),
    ]


@pytest.mark.parametrize("jwks", [None, {}, {"other": 1}])
def test_jwk_thumbprints_of_no_key_set_is_empty(jwks):
    assert jwk_thumbprints(jwks) == []


def test_the_host_and_port_of_the_url_are_what_is_resolved(secure_only, monkeypatch):
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["93.184.215.14"]

    monkeypatch.setattr(hardened_http, "resolve", resolve)
    assert hardened_http.checked_addresses("keys.example.com", 8443, allow_insecure=False) == [
        "93.184.215.14"
    ]
    assert asked == [("keys.example.com", 8443)]
