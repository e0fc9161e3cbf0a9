"""oauth_cc.issuer.secrets: what a client secret looks like, how it is stored and compared."""

from __future__ import annotations

import hashlib
import re

from oauth_cc.issuer import secrets


def test_a_generated_secret_is_the_marker_and_43_urlsafe_characters():
    secret = secrets.generate_secret()
    assert re.fullmatch(r"occs_[A-Za-z0-9_-]{43}", secret), secret
    assert secrets.generate_secret() != secret


def test_the_stored_form_is_the_hex_sha256_of_the_utf8_bytes():
    assert secrets.hash_secret("occs_abc") == hashlib.sha256(b"occs_abc").hexdigest()
    assert secrets.hash_secret("é") == hashlib.sha256("é".encode()).hexdigest()
    assert len(secrets.hash_secret("x")) == 64


def test_the_prefix_is_the_marker_and_eight_characters():
    assert secrets.secret_prefix("occs_ABCDEFGHIJKLMNOP") == "occs_ABCDEFGH"
    assert secrets.secret_prefix("short") == "short"


def test_hashes_match_only_when_equal():
    digest = secrets.hash_secret("a")
    assert secrets.hashes_match(digest, digest) is True
    assert secrets.hashes_match(digest, secrets.hash_secret("b")) is False
    assert secrets.hashes_match(digest, digest[:-1]) is False
