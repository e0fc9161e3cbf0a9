"""Issuer side: client secrets: generation and one-way hashing (RFC 6749 §2.3.1).

Why SHA-256 and not Django's password hasher: a password hasher is slow on purpose
(PBKDF2 with ~1.5M iterations costs ~270 ms) so that guessing *low-entropy* human
passwords from a leaked hash is expensive. Client secrets here are 256 random bits,
so a leaked hash cannot be reversed by guessing at any speed; a single SHA-256 is a
sound one-way function for them and costs well under a microsecond. It is deliberately
not keyed by ``SECRET_KEY``: rotating the site's ``SECRET_KEY`` must not lock every API
client out.

Because the hash is deterministic it is also the lookup key: a token request finds the
secret with one indexed query on ``secret_hash`` instead of looping over hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _stdlib_secrets

#: Every generated secret starts with this, so leaked secrets are easy to spot by scanners.
SECRET_MARKER = "occs_"
#: Characters of the random part shown to operators to recognise a secret.
PREFIX_LENGTH = 8
#: 32 random bytes: 256 bits of entropy.
SECRET_BYTES = 32


def generate_secret() -> str:
    """A new client secret: ``occs_`` followed by 43 URL-safe characters (256 random bits)."""
    return SECRET_MARKER + _stdlib_secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_prefix(secret: str) -> str:
    """The recognisable, non-secret start of a secret (marker plus 8 of its 43 characters)."""
    return secret[: len(SECRET_MARKER) + PREFIX_LENGTH]


def hashes_match(stored_hash: str, presented_hash: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(stored_hash.encode("ascii"), presented_hash.encode("ascii"))
