"""Issuer side: signing keys encrypted at rest: a database dump alone does not yield a private key.

``SigningKey.private_jwk`` holds ``fernet:v1:<Fernet token>``: the private JWK (JSON)
encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``) under the first
key of ``OAUTH_CC["KEY_ENCRYPTION_KEYS"]``. Every key of that list decrypts, so the keys can
be rotated: add a new key second, deploy; move it first, deploy; run
``manage.py oauth_cc key reencrypt``; then remove the old key.

Without that setting, the key is derived from ``SECRET_KEY`` with HKDF-SHA256 and an
oauth_cc-specific label (never ``SECRET_KEY`` itself), and the ``SECRET_KEY_FALLBACKS`` give
decryption-only keys, so it works with no setting and survives a ``SECRET_KEY`` rotation. The
keys derived from ``SECRET_KEY`` also decrypt when the setting is given, so moving from the
default to explicit keys is "set it, deploy, reencrypt" rather than an outage.

A row that is still plain JSON (written before this module existed, or left over by an
interrupted migration) is still read: refusing it would stop token issuance without protecting
anything, since its content has been in the clear all along (and whoever can write the table
can publish a public key of their own anyway). It is reported instead, by system check
``oauth_cc.W006``, by ``oauth_cc key list`` and by a log line, and ``key reencrypt`` fixes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jwcrypto import jwk

from ..conf import oauth_cc_settings

#: Prefix of every encrypted value; the version names the format (Fernet, JSON JWK inside).
PREFIX = "fernet:v1:"
# HKDF inputs for the key derived from SECRET_KEY. Changing them makes every stored key
# unreadable, so they are part of the stored format (v1), not a tunable.
_HKDF_SALT = b"oauth_cc.issuer.key_encryption"
_HKDF_INFO = b"oauth_cc signing-key encryption v1"
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class KeyDecryptionError(Exception):
    """A stored private key cannot be read. ``str(exc)`` says why and never holds key material."""


class Storage(str, Enum):
    """How a ``private_jwk`` value is stored, as ``key list`` and the checks report it."""

    ENCRYPTED = "encrypted"  # under the key that encrypts new rows
    OLDER_KEY = "encrypted with an older key"  # readable; ``key reencrypt`` moves it
    PLAINTEXT = "plaintext"  # readable; ``key reencrypt`` encrypts it
    UNREADABLE = "undecryptable"  # no configured key opens it (or it was altered)


def key_problem(value: Any) -> str:
    """What is wrong with one ``KEY_ENCRYPTION_KEYS`` entry, or "" (never the value itself)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return "is not ASCII"
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    # Strict: the decoder alone skips characters outside the alphabet, so "a key" with a
    # stray space or "+" would pass and encrypt under a key the operator did not write.
    if not _URLSAFE_B64.fullmatch(value):
        return "is not urlsafe base64"
    try:
        raw = base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        return "is not urlsafe base64"
    if len(raw) != 32:
        return f"decodes to {len(raw)} bytes, not 32"
    return ""


def settings_problem(keys: Any) -> str:
    """What is wrong with the ``KEY_ENCRYPTION_KEYS`` setting, or "" (never a key)."""
    if keys is None:
        return ""
    if not isinstance(keys, (list, tuple)):
        return f"must be a list of keys, not a {type(keys).__name__}"
    if not keys:
        return "is an empty list; give at least one key, or remove the setting to use SECRET_KEY"
    for index, value in enumerate(keys):
        problem = key_problem(value)
        if problem:
            return f"entry {index} {problem} (a key is 32 random bytes in urlsafe base64, 44 characters)"
    return ""


def generate_key() -> str:
    """A new key for ``KEY_ENCRYPTION_KEYS``."""
    return Fernet.generate_key().decode("ascii")


def uses_secret_key() -> bool:
    """Whether new rows are encrypted with the key derived from ``SECRET_KEY`` (no setting)."""
    return oauth_cc_settings.KEY_ENCRYPTION_KEYS is None


def _derived(secret: str | bytes) -> Fernet:
    material = secret.encode("utf-8") if isinstance(secret, str) else secret
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def _fernets() -> list[Fernet]:
    """The keys in order: the first encrypts, all decrypt. Built per call: this runs only
    when a key is written or a worker loads a new signing key, and so follows the settings."""
    configured = oauth_cc_settings.KEY_ENCRYPTION_KEYS
    problem = settings_problem(configured)
    if problem:
        raise ImproperlyConfigured(f"OAUTH_CC['KEY_ENCRYPTION_KEYS'] {problem}.")
    fernets = [Fernet(key) for key in configured or ()]
    secrets: Sequence[str | bytes] = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    fernets.extend(_derived(secret) for secret in secrets if secret)
    return fernets


def encrypt(private_jwk: str) -> str:
    """The value to store for the private JWK ``private_jwk`` (JSON text)."""
    return PREFIX + _fernets()[0].encrypt(private_jwk.encode("utf-8")).decode("ascii")


def is_plaintext(stored: str) -> bool:
    return stored.lstrip().startswith("{")


def decrypt(stored: str, kid: str) -> str:
    """The private JWK (JSON text) in a stored value; :class:`KeyDecryptionError` if unreadable."""
    if is_plaintext(stored):
        return stored
    if not stored.startswith(PREFIX):
        raise KeyDecryptionError(
            f"The private key of signing key {kid} is in an unknown format (not {PREFIX}...)."
        )
    try:
        return MultiFernet(_fernets()).decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        # No "from exc": the chained traceback would add nothing, and nothing here may
        # carry key material into a log or an error report.
        raise KeyDecryptionError(
            f"No key in OAUTH_CC['KEY_ENCRYPTION_KEYS'] (or derived from SECRET_KEY and "
            f"SECRET_KEY_FALLBACKS) decrypts the private key of signing key {kid}, or it was altered. "
            "Add the key it was encrypted with to OAUTH_CC['KEY_ENCRYPTION_KEYS'] (or restore the "
            "SECRET_KEY to SECRET_KEY_FALLBACKS), or rotate the signing keys."
        ) from None


def load_private_key(stored: str, kid: str, public_jwk: dict[str, Any]) -> jwk.JWK:
    """The private key in a ``SigningKey`` row, checked against the row's kid and public key.

    The check catches a value copied from another row (Fernet does not bind a ciphertext to
    its row): such a key would sign tokens that no verifier accepts.
    """
    text = decrypt(stored, kid)
    try:
        key = jwk.JWK.from_json(text)
        public = json.loads(key.export_public())
    except Exception:
        raise KeyDecryptionError(f"The private key of signing key {kid} is not a valid JWK.") from None
    if key.get("kid") != kid or public != public_jwk:
        raise KeyDecryptionError(
            f"The private key stored for signing key {kid} does not match its public key; "
            "the row was altered. Rotate the signing keys."
        )
    return key


def storage(stored: str) -> Storage:
    """How ``stored`` is kept. Checks the MAC with each key; never decrypts."""
    if is_plaintext(stored):
        return Storage.PLAINTEXT
    if not stored.startswith(PREFIX):
        return Storage.UNREADABLE
    token = stored[len(PREFIX) :].encode("ascii", "replace")
    for index, fernet in enumerate(_fernets()):
        try:
            fernet.extract_timestamp(token)  # verifies the HMAC, decrypts nothing
        except InvalidToken:
            continue
        return Storage.ENCRYPTED if index == 0 else Storage.OLDER_KEY
    return Storage.UNREADABLE


def reencrypt(stored: str, kid: str) -> str | None:
    """``stored`` encrypted under the first key, or None if it already is."""
    if storage(stored) is Storage.ENCRYPTED:
        return None
    return encrypt(decrypt(stored, kid))
