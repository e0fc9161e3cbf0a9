"""Resource side: how a resource-only service authenticates to its issuer's revocation feed.

``RESOURCE_CLIENT_AUTH_METHOD`` picks one of the methods the feed accepts
(:func:`oauth_cc.views.revocation_feed`), the one the service's client is registered with on the
issuer (a client registered for one method is refused with the others):

* ``"client_secret_basic"`` (default): ``GET`` with HTTP Basic (RFC 6749 §2.3.1; the id and
  secret are form-urlencoded before the Basic encoding);
* ``"client_secret_post"``: ``POST`` with ``client_id`` and ``client_secret`` in the form body;
* ``"private_key_jwt"``: ``POST`` with a client assertion (RFC 7523 §2.2, §3) signed with
  ``RESOURCE_CLIENT_PRIVATE_KEY``: a fresh one per request, ``iss`` and ``sub`` the client_id,
  ``aud`` the issuer identifier, ``iat`` now, ``exp`` :data:`ASSERTION_LIFETIME` seconds later
  and a random ``jti`` (the issuer accepts each once). The issuer accepts its identifier or the
  feed's URL as ``aud``; the identifier is the one value that cannot be mistaken for another
  server's endpoint (the audience-injection concern of RFC 7523bis) and holds wherever the
  issuer mounts its URLs.

Cost: one Basic encoding, or one signature per poll (one poll per ``REVOCATION_FEED_POLL_SECONDS``
per site); the private key is loaded once per worker (and again when the settings change). The
secret and the key never reach a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from ..common import resets
from ..common.algorithms import (
    ALGORITHMS,
    ASSERTION_ALGORITHMS,
    MIN_RSA_BITS,
    algorithms_for_key_type,
    rsa_key_bits,
)
from ..conf import oauth_cc_settings

CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
PRIVATE_KEY_JWT = "private_key_jwt"
#: Methods that present ``RESOURCE_CLIENT_SECRET``.
SECRET_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST)
#: The choices of ``RESOURCE_CLIENT_AUTH_METHOD``.
AUTH_METHODS = (*SECRET_METHODS, PRIVATE_KEY_JWT)
JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds between an assertion's ``iat`` and ``exp``: it is sent at once, and the issuer allows
#: ``LEEWAY`` for clock skew on both.
ASSERTION_LIFETIME = 60


class KeyProblem(ValueError):
    """A private-key setting cannot be used. ``str(exc)`` is a sentence naming the setting and
    what to fix; it never holds key material."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"OAUTH_CC['{setting}'] {problem}.")


@dataclass(frozen=True)
class SigningKey:
    """The service's private key for assertions, with the ``alg`` and ``kid`` its header names."""

    jwk: JWK = field(repr=False)
    alg: str
    kid: str | None


@dataclass(frozen=True)
class FeedRequest:
    """How to send one feed request: the headers to add, and the form to POST (None: a GET)."""

    headers: dict[str, str] = field(repr=False)
    form: dict[str, str] | None = field(repr=False)


def _parse_key(value: Any) -> tuple[JWK, str | None]:
    """The key ``value`` holds, and the kid it names (a PEM names none)."""
    key_setting = "RESOURCE_CLIENT_PRIVATE_KEY"
    if isinstance(value, dict):
        text = json.dumps(value)
    elif isinstance(value, (str, bytes)) and value:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    else:
        raise KeyProblem(key_setting, "must be a PEM private key or a private JWK (JSON or a dict)")
    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            key = JWK.from_json(stripped)
            kid = key.get("kid")
            return key, str(kid) if kid is not None else None
        if "-----BEGIN" in stripped:
            if "ENCRYPTED" in stripped.split("-----", 2)[1]:
                raise KeyProblem(key_setting, "is an encrypted PEM; give the key unencrypted")
            # jwcrypto names a PEM key by its RFC 7638 thumbprint, which need not be the kid
            # registered on the issuer: the header names none unless RESOURCE_CLIENT_KEY_ID does.
            return JWK.from_pem(stripped.encode("utf-8")), None
    except KeyProblem:
        raise
    except Exception:  # jwcrypto and cryptography raise many types on malformed input
        # Their messages may quote the input: not shown.
        kind = "JWK" if stripped.startswith("{") else "PEM"
        raise KeyProblem(
            key_setting, f"could not be read as a {kind} key; check that it was copied whole"
        ) from None
    raise KeyProblem(key_setting, 'is neither a PEM key ("-----BEGIN PRIVATE KEY-----") nor a JWK in JSON')


def load_signing_key(value: Any, *, kid: Any = None, alg: Any = None) -> SigningKey:
    """The signing key ``value`` (a PEM private key, or a private JWK as JSON or a dict) gives.

    ``alg`` (``RESOURCE_CLIENT_KEY_ALG``) defaults to the key's own ``alg`` member, else the
    first accepted algorithm for its type (RS256, ES256, EdDSA); ``kid``
    (``RESOURCE_CLIENT_KEY_ID``) to the JWK's own ``kid``, else none (the issuer then tries the
    client's keys that fit the algorithm). Raises :class:`KeyProblem`.
    """
    key_setting, alg_setting, kid_setting = (
        "RESOURCE_CLIENT_PRIVATE_KEY",
        "RESOURCE_CLIENT_KEY_ALG",
        "RESOURCE_CLIENT_KEY_ID",
    )
    key, own_kid = _parse_key(value)
    kty = str(key.get("kty"))
    if not algorithms_for_key_type(kty):
        raise KeyProblem(key_setting, f"is a {kty[:10]} key; use an RSA, EC (P-256) or Ed25519 private key")
    if not key.has_private:
        raise KeyProblem(
            key_setting, "is a public key; give the private key (the issuer holds the public one)"
        )
    accepted = ", ".join(ASSERTION_ALGORITHMS)
    if alg is not None:
        if alg not in ASSERTION_ALGORITHMS:
            raise KeyProblem(alg_setting, f"must be one of {accepted} (or None: from the key)")
        chosen, setting = str(alg), alg_setting
    elif key.get("alg") is not None:
        chosen, setting = str(key.get("alg")), key_setting
        if chosen not in ASSERTION_ALGORITHMS:
            raise KeyProblem(key_setting, f'has "alg": "{chosen[:20]}"; the issuer accepts {accepted}')
    else:
        chosen, setting = algorithms_for_key_type(kty)[0], key_setting
    if not ALGORITHMS[chosen].fits(key):
        curve = f" on {str(key.get('crv'))[:10]}" if key.get("crv") else ""
        raise KeyProblem(setting, f"cannot be used for {chosen}: the key is {kty}{curve}")
    _check_signing_use(key, kty)
    if kty == "RSA" and rsa_key_bits(key) < MIN_RSA_BITS:
        raise KeyProblem(key_setting, f"is an RSA key of under {MIN_RSA_BITS} bits; use a longer one")
    if kid is not None and (not isinstance(kid, str) or not kid or not kid.isprintable()):
        raise KeyProblem(
            kid_setting, "must be the key's kid as registered on the issuer (a non-empty string)"
        )
    return SigningKey(jwk=key, alg=chosen, kid=kid if kid is not None else own_kid)


def _check_signing_use(key: JWK, kty: str) -> None:
    """Refuse a key jwcrypto would not sign with, here rather than at every poll.

    ``use`` and ``key_ops`` (RFC 7517 §4.2, §4.3) are honoured by jwcrypto when it signs; and its
    JWK is parsed lazily, so numbers that do not make a key (an RSA modulus of 3, a point off the
    curve, a missing CRT member) surface only when the signing key is built. Building it now
    turns each into a sentence. jwcrypto's and cryptography's messages are not shown: they may
    quote the numbers.
    """
    key_setting = "RESOURCE_CLIENT_PRIVATE_KEY"
    use = key.get("use")
    if use is not None and use != "sig":
        raise KeyProblem(key_setting, 'has a "use" other than "sig"; give "use": "sig" or leave "use" out')
    operations = key.get("key_ops")
    if operations is not None and (not isinstance(operations, list) or "sign" not in operations):
        raise KeyProblem(
            key_setting, 'has a "key_ops" that is not a list with "sign"; add "sign" or leave "key_ops" out'
        )
    try:
        key.get_op_key("sign")
    except Exception:  # ValueError, TypeError, jwcrypto's own: the numbers do not make a key
        members = " (n, e, d, p, q, dp, dq and qi)" if kty == "RSA" else ""
        raise KeyProblem(
            key_setting,
            f"is not a valid {kty} private key: its members{members} do not make one; "
            "check that it was copied whole",
        ) from None


_loaded: dict[str, SigningKey] = {}


def _signing_key() -> SigningKey:
    if "key" not in _loaded:
        settings = oauth_cc_settings
        _loaded["key"] = load_signing_key(
            settings.RESOURCE_CLIENT_PRIVATE_KEY,
            kid=settings.RESOURCE_CLIENT_KEY_ID,
            alg=settings.RESOURCE_CLIENT_KEY_ALG,
        )
    return _loaded["key"]


resets.register("oauth_cc.resource.feed_auth", _loaded.clear)


def client_assertion(client_id: str, *, now: float | None = None) -> str:
    """A fresh RFC 7523 client assertion for ``client_id``, signed with the configured key."""
    key = _signing_key()
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": oauth_cc_settings.issuer,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(24),
    }
    header: dict[str, str] = {"alg": key.alg}
    if key.kid is not None:
        header["kid"] = key.kid
    jws = JWS(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    jws.add_signature(key.jwk, alg=key.alg, protected=json.dumps(header, separators=(",", ":")))
    return str(jws.serialize(compact=True))


def feed_request() -> FeedRequest:
    """The credentials of one feed request, by ``RESOURCE_CLIENT_AUTH_METHOD``.

    Raises :class:`KeyProblem` when ``private_key_jwt``'s key cannot be used (the system check
    ``oauth_cc.E106`` says so at start-up).
    """
    settings = oauth_cc_settings
    client_id = str(settings.RESOURCE_CLIENT_ID)
    method = settings.RESOURCE_CLIENT_AUTH_METHOD
    if method == PRIVATE_KEY_JWT:
        form = {
            "client_id": client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": client_assertion(client_id),
        }
        return FeedRequest(headers={}, form=form)
    secret = str(settings.RESOURCE_CLIENT_SECRET)
    if method == CLIENT_SECRET_POST:
        return FeedRequest(headers={}, form={"client_id": client_id, "client_secret": secret})
    # RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return FeedRequest(
        headers={"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}, form=None
    )
