"""Issuer side: signing keys for access tokens: generation, rotation, the published JWKS, and a per-worker
key store.

Life of a key: ``next`` (published in the JWKS, not signing yet) -> ``current`` (signs new
tokens; exactly one) -> ``retired`` (published until every token it signed has expired, then
deleted). Because the next key is published one rotation ahead, verifiers that cache the
JWKS already know a key before the first token it signs exists; workers of this site that
meet an unknown ``kid`` reload the keys from the database at once, so a rotation never makes
a verification fail.

Private keys stay in the ``SigningKey`` rows, encrypted (:mod:`oauth_cc.issuer.key_encryption`):
never in the shared cache, the admin, logs or the JWKS. A worker decrypts a key once, when
it first signs with it, not per request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from jwcrypto import jwk
from jwcrypto.common import base64url_encode, json_encode
from jwcrypto.jwa import JWA

from ..common import resets
from ..common.algorithms import ACCESS_TOKEN_ALGORITHMS, ALGORITHMS, generate_key
from ..common.bounded import BoundedMap
from ..common.errors import TemporarilyUnavailable
from ..common.shared import share, shared_or_loaded
from ..conf import oauth_cc_settings
from . import key_encryption, outage

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ..models import SigningKey

logger = logging.getLogger("oauth_cc.keys")

PUBLIC_KEYS_CACHE_KEY = "oauth_cc:public_keys:v1"
# After an unknown kid forced a reload, another reload for the same kid waits this long,
# so a flood of tokens with made-up kids cannot turn into a flood of queries.
UNKNOWN_KID_RETRY_SECONDS = 1.0
# And whatever the kid, a worker reloads for unknown kids at most this often, so tokens with
# ever-new made-up kids cost at most ten queries a second. A real new key is published one
# rotation ahead and normally known before it signs, so it rarely needs this path at all.
UNKNOWN_KID_MIN_INTERVAL = 0.1
#: How many unknown kids a worker remembers (for the per-kid retry delay above).
MAX_UNKNOWN_KIDS = 1000


def generate_jwk(algorithm: str) -> jwk.JWK:
    """A new private key for ``algorithm`` with a random ``kid``; ``ValueError`` if unsupported."""
    return generate_key(algorithm, kid=uuid.uuid4().hex, use="sig")


def _new_key_row(state: str, algorithm: str | None = None) -> SigningKey:
    from ..models import SigningKey

    algorithm = algorithm or oauth_cc_settings.SIGNING_ALGORITHM
    key = generate_jwk(algorithm)
    now = timezone.now()
    return SigningKey(
        kid=key["kid"],
        algorithm=algorithm,
        state=state,
        private_jwk=key_encryption.encrypt(key.export_private()),
        public_jwk=json.loads(key.export_public()),
        created=now,
        activated_at=now if state == "current" else None,
    )


def max_token_lifetime() -> int:
    """The longest lifetime any token can have right now, in seconds."""
    from ..models import Application

    longest = Application.objects.aggregate(m=Max("access_token_lifetime"))["m"] or 0
    return max(int(oauth_cc_settings.ACCESS_TOKEN_LIFETIME), int(longest))


def ensure_current_key() -> SigningKey:
    """The current signing key, creating the site's first key pair if there is none."""
    from ..models import SigningKey

    key = SigningKey.objects.filter(state="current").first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            key = _new_key_row("current")
            key.save()
            if not SigningKey.objects.filter(state="next").exists():
                _new_key_row("next").save()
        logger.info("Created signing key %s (%s)", key.kid, key.algorithm)
    except IntegrityError:
        # Another worker created it first (one current key is a database constraint).
        key = SigningKey.objects.get(state="current")
    publish_public_keys()
    return key


@dataclass(frozen=True)
class RotationResult:
    retired_kid: str | None
    current_kid: str
    next_kid: str
    removed_kids: tuple[str, ...]


def rotate(algorithm: str | None = None, *, actor: str | None = None) -> RotationResult:
    """Promote the next key to current, retire the current one, and publish a new next key.

    ``algorithm`` applies to the newly generated next key (default: ``SIGNING_ALGORITHM``).
    Retired keys whose tokens have all expired are deleted. With ``actor`` (an operator's
    rotation) one audit event is recorded in the rotation's transaction: kids only.
    """
    from ..models import SigningKey

    now = timezone.now()
    keep_for = timedelta(seconds=max_token_lifetime() + int(oauth_cc_settings.LEEWAY))
    with transaction.atomic():
        keys = list(SigningKey.objects.select_for_update().filter(state__in=["current", "next"]))
        current = next((k for k in keys if k.state == "current"), None)
        upcoming = next((k for k in keys if k.state == "next"), None)
        if upcoming is None:
            upcoming = _new_key_row("next", algorithm)
            upcoming.save()
        if current is not None:
            current.state = "retired"
            current.retired_at = now
            current.remove_after = now + keep_for
            current.save(update_fields=["state", "retired_at", "remove_after"])
        upcoming.state = "current"
        upcoming.activated_at = timezone.now()
        upcoming.save(update_fields=["state", "activated_at"])
        new_next = _new_key_row("next", algorithm)
        new_next.save()
        removed = prune_retired_keys()
        if actor is not None:
            from ..models import AuditAction
            from . import audit

            audit.record(
                actor,
                AuditAction.KEY_ROTATED,
                upcoming,
                {
                    "current": upcoming.kid,
                    "next": {"kid": new_next.kid, "algorithm": new_next.algorithm},
                    "retired": current.kid if current else None,
                    "removed": list(removed),
                },
            )
    publish_public_keys()
    logger.info(
        "Rotated signing keys: current %s, next %s, retired %s",
        upcoming.kid,
        new_next.kid,
        current.kid if current else "-",
    )
    return RotationResult(
        retired_kid=current.kid if current else None,
        current_kid=upcoming.kid,
        next_kid=new_next.kid,
        removed_kids=removed,
    )


def prune_retired_keys() -> tuple[str, ...]:
    """Delete retired keys that no unexpired token can still need."""
    from ..models import SigningKey

    expired = SigningKey.objects.filter(state="retired", remove_after__lte=timezone.now())
    kids = tuple(expired.values_list("kid", flat=True))
    if kids:
        SigningKey.objects.filter(kid__in=kids).delete()
    return kids


def published_key_rows() -> QuerySet[SigningKey]:
    from ..models import SigningKey

    return SigningKey.objects.filter(Q(remove_after__isnull=True) | Q(remove_after__gt=timezone.now()))


def load_public_keys() -> dict[str, dict[str, Any]]:
    """``kid -> public JWK dict`` of every published key (one query)."""
    return {row.kid: row.public_jwk for row in published_key_rows().only("kid", "public_jwk")}


def publish_public_keys() -> None:
    """Write the published public keys to the shared cache so other workers see them now."""
    share(PUBLIC_KEYS_CACHE_KEY, load_public_keys())
    key_store.reset()


def jwks_document() -> dict[str, Any]:
    """The RFC 7517 JWK Set: the next, current and retired public keys."""
    if not key_store.public_jwks():
        ensure_current_key()
        key_store.reset()
    return {"keys": list(key_store.public_jwks().values())}


class SigningKeyUnavailable(Exception):
    """The current signing key cannot be decrypted; ``str(exc)`` says what to fix, without key material."""


class Signer:
    """Signs JWS compact tokens with one private key.

    The protected header (``alg``, ``typ``, ``kid``) is the same for every token of a key,
    so it is encoded once here; each token then costs one base64 of the payload and one
    signature through jwcrypto's JWA layer (~25 µs for ES256).
    """

    def __init__(self, kid: str, alg: str, key: jwk.JWK) -> None:
        self.kid = kid
        self.alg = alg
        self._key = key
        self._engine = JWA.signing_alg(alg)
        self._protected = base64url_encode(json_encode({"alg": alg, "typ": "at+jwt", "kid": kid}))  # type: ignore[arg-type]  # types-jwcrypto: str only; json.dumps takes any

    def sign(self, payload: bytes) -> str:
        signing_input = f"{self._protected}.{base64url_encode(payload)}"
        # types-jwcrypto types signing_alg() as the JWAAlgorithm base, which declares no sign().
        signature = self._engine.sign(self._key, signing_input.encode("ascii"))  # type: ignore[attr-defined]
        return f"{signing_input}.{base64url_encode(signature)}"


class KeyStore:
    """A worker's view of the keys: the signing key and the public keys by ``kid``.

    Public keys come from the shared cache (filled from the database when missing); the
    private signing key only ever comes from the database.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._public: dict[str, dict[str, Any]] = {}
        self._verifiers: dict[str, tuple[str, jwk.JWK]] = {}
        self._public_loaded_at = float("-inf")
        self._signer: Signer | None = None
        self._signing_loaded_at = float("-inf")
        self._signing_error: SigningKeyUnavailable | None = None
        self._unknown_kid_at: BoundedMap[str, float] = BoundedMap(lambda: MAX_UNKNOWN_KIDS)
        self._forced_reload_at = float("-inf")

    # -- signing -------------------------------------------------------------------------
    def signer(self) -> Signer:
        """The :class:`Signer` of the current key; one query per refresh interval to follow rotations.

        The private key is decrypted only when the current kid changes. If it cannot be, this
        raises :class:`SigningKeyUnavailable` (and logs why once) until the next refresh: a
        worker keeps failing fast rather than querying and logging on every request, and never
        falls back to an older key, whose publication ends on its own schedule.
        """
        signer = self._signer
        # reset() makes the load time -inf, so a fresh store loads at once.
        if time.monotonic() - self._signing_loaded_at > oauth_cc_settings.STATE_REFRESH_SECONDS:
            try:
                row = outage.database.run("the signing key", ensure_current_key)
            except TemporarilyUnavailable:
                # Database down: keep signing with the key held, for a bounded time. Nobody can
                # rotate keys meanwhile (a database write), so it is still the current one.
                if signer is None or not outage.usable(self._signing_loaded_at):
                    raise
                return signer
            if signer is None or signer.kid != row.kid:
                signer, error = self._load_signer(row)
                # Error first: a thread that sees no signer must find the reason.
                self._signing_error = error
            # Stored whether or not it was just loaded: a reset() by another thread (a rotation
            # publishing its keys) since this call read it must not leave the store without a
            # signer until the next refresh, failing every request in between.
            self._signer = signer
            self._signing_loaded_at = time.monotonic()
        if signer is None:
            raise self._signing_error or SigningKeyUnavailable("No signing key is loaded.")
        return signer

    @staticmethod
    def _load_signer(row: SigningKey) -> tuple[Signer | None, SigningKeyUnavailable | None]:
        try:
            private = key_encryption.load_private_key(row.private_jwk, row.kid, row.public_jwk)
        except (key_encryption.KeyDecryptionError, ImproperlyConfigured) as exc:
            logger.error("Cannot sign access tokens: %s", exc)
            return None, SigningKeyUnavailable(str(exc))
        # The algorithm column is trusted no more than the key: an altered row must not make the
        # site sign with another algorithm ("none" included) or fail with a 500.
        algorithm = ALGORITHMS.get(row.algorithm) if row.algorithm in ACCESS_TOKEN_ALGORITHMS else None
        if algorithm is None or not algorithm.fits(private):
            message = (
                f"Signing key {row.kid} is stored with algorithm {row.algorithm!r}, which is not one this "
                "site signs with or does not fit the key; rotate the key (manage.py oauth_cc key rotate)."
            )
            logger.error("Cannot sign access tokens: %s", message)
            return None, SigningKeyUnavailable(message)
        if key_encryption.is_plaintext(row.private_jwk):
            logger.warning(
                "Signing key %s is stored unencrypted; run: manage.py oauth_cc key reencrypt", row.kid
            )
        return Signer(row.kid, row.algorithm, private), None

    # -- verification --------------------------------------------------------------------
    def public_jwks(self) -> dict[str, dict[str, Any]]:
        self._refresh_public()
        return self._public

    def verifier(self, kid: str) -> tuple[str, jwk.JWK] | None:
        """``(alg, public JWK)`` for ``kid``, or None if no published key has it.

        Raises :class:`~oauth_cc.common.errors.TemporarilyUnavailable` for a kid this worker does not
        hold while the database is down (from a failed attempt to the next one that works): the
        token cannot be checked, so it is neither accepted nor called invalid, and a legitimate
        client retries the same token instead of discarding it.
        """
        self._refresh_public()
        found = self._verifiers.get(kid)
        if found is not None:
            return found
        now = time.monotonic()
        last = self._unknown_kid_at.get(kid)
        if (last is not None and now - last < UNKNOWN_KID_RETRY_SECONDS) or (
            now - self._forced_reload_at < UNKNOWN_KID_MIN_INTERVAL
        ):
            if outage.database.down:
                raise outage.unavailable()  # the database cannot be asked: no verdict
            return None
        self._forced_reload_at = now
        self._unknown_kid_at.put(kid, now)
        # A key this worker has not seen yet: maybe rotated in moments ago. Ask the database.
        self._set_public(outage.database.run("the public keys", load_public_keys))
        return self._verifiers.get(kid)

    def _refresh_public(self) -> None:
        if time.monotonic() - self._public_loaded_at <= oauth_cc_settings.STATE_REFRESH_SECONDS:
            return
        try:
            keys = shared_or_loaded(
                PUBLIC_KEYS_CACHE_KEY, lambda: outage.database.run("the public keys", load_public_keys)
            )
        except TemporarilyUnavailable:
            # Keep the keys held (see oauth_cc.issuer.outage); none at all, or too old: 503.
            if not self._public or not outage.usable(self._public_loaded_at):
                raise
            return
        self._set_public(keys)

    def _set_public(self, keys: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            if keys != self._public:
                verifiers = {}
                for kid, data in keys.items():
                    verifiers[kid] = (data["alg"], jwk.JWK(**data))
                self._public, self._verifiers = keys, verifiers
            self._public_loaded_at = time.monotonic()


key_store = KeyStore()
resets.register("oauth_cc.issuer.keys.key_store", key_store.reset)
