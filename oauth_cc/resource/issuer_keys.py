"""Resource side: the issuer's public signing keys, as a resource-only service gets them (RFC 8414, RFC 7517).

Discovery: ``{ISSUER}/.well-known/oauth-authorization-server`` names the ``jwks_uri`` (and must
name ``ISSUER`` as its ``issuer``, RFC 8414 §3.3); both are fetched with
:mod:`oauth_cc.common.hardened_http`. The key set is fresh for its ``Cache-Control: max-age`` and
shared with the other workers through the cache (``CACHE_ALIAS``): one worker per site fetches
it (a cache claim), the others adopt its copy. The background thread (:mod:`.sync`) refreshes it
when it goes stale, so the request path only reads this worker's dict, except for:

* a ``kid`` this worker does not know: the shared copy is read, then the key set is fetched
  again, at most once per ``ISSUER_UNKNOWN_KID_REFETCH_SECONDS`` per site;
* the first token a worker checks, when no worker has shared the keys yet.

When the issuer cannot be reached, the last good keys are used for up to
``ISSUER_KEYS_MAX_STALE_SECONDS`` past their max-age; after that a protected view answers 503.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django.core.cache import caches
from jwcrypto.jwk import JWK

from ..common import hardened_http, json_input
from ..common.algorithms import ACCESS_TOKEN_ALGORITHMS, ALGORITHMS
from ..common.errors import TemporarilyUnavailable
from ..common.jwks_validation import public_jwk
from ..common.shared import Throttle, claim
from ..conf import oauth_cc_settings

logger = logging.getLogger("oauth_cc.resource")

METADATA_PATH = "/.well-known/oauth-authorization-server"
#: Bounds of the max-age honoured: at least a second, at most a day.
MIN_MAX_AGE = 1
MAX_MAX_AGE = 86400
#: Without a max-age, the keys are fresh this long.
DEFAULT_MAX_AGE = 300
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


def _key(kind: str) -> str:
    issuer = hashlib.sha256(oauth_cc_settings.issuer.encode()).hexdigest()[:16]
    return f"oauth_cc:resource:{kind}:v1:{issuer}"


def max_age(cache_control: str | None) -> int:
    """Seconds the response may be used (``Cache-Control: max-age``), within the bounds above."""
    if not cache_control:
        return DEFAULT_MAX_AGE
    if re.search(r"(?:^|[,\s])(no-store|no-cache)\b", cache_control, re.IGNORECASE):
        return MIN_MAX_AGE
    found = _MAX_AGE.search(cache_control)
    if found is None:
        return DEFAULT_MAX_AGE
    return max(MIN_MAX_AGE, min(MAX_MAX_AGE, int(found.group(1))))


def _get_json(url: str, *, what: str) -> tuple[Any, dict[str, str]]:
    """The JSON document at ``url``: hardened_http refuses any answer but a 200 (no conditional
    request is made here, so no 304 either), each with its own sentence."""
    settings = oauth_cc_settings
    fetched = hardened_http.get(
        url,
        timeout=float(settings.ISSUER_FETCH_TIMEOUT),
        max_bytes=int(settings.ISSUER_FETCH_MAX_BYTES),
        allow_insecure=bool(settings.ISSUER_ALLOW_INSECURE),
    )
    try:
        return json_input.loads(fetched.body, max_bytes=len(fetched.body) + 1), fetched.headers
    except json_input.JSONInputError:
        raise hardened_http.FetchError(f"{what} is not JSON") from None


def verifiers(document: Any) -> dict[str, tuple[str, JWK]]:
    """``kid -> (alg, key)`` of the usable access-token keys of a JWK Set; FetchError if none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise hardened_http.FetchError('the issuer\'s JWKS is not a JWK Set ({"keys": [...]})')
    found: dict[str, tuple[str, JWK]] = {}
    for position, entry in enumerate(document["keys"][:50], start=1):
        try:
            key = public_jwk(entry, position=position)
        except ValueError as exc:
            logger.warning("Ignoring a key of the issuer's JWKS: %s", exc)
            continue
        alg = entry.get("alg")
        algorithm = ALGORITHMS.get(alg) if alg in ACCESS_TOKEN_ALGORITHMS else None
        # The issuer's keys name their algorithm; it is pinned to the kid like on the issuer.
        if algorithm is None or not algorithm.fits(key):
            logger.warning("Ignoring key %s of the issuer's JWKS: no access-token alg", entry.get("kid"))
            continue
        found.setdefault(entry["kid"], (alg, key))
    if not found:
        raise hardened_http.FetchError("the issuer's JWKS holds no usable signing key")
    return found


#: The metadata member naming the issuer's revocation feed (oauth_cc's own extension).
FEED_ENDPOINT_MEMBER = "oauth_cc_revocation_feed_endpoint"


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def feed_endpoint(metadata: dict[str, Any]) -> str | None:
    """The revocation feed's URL the metadata advertises, or None (then ``{ISSUER}/oauth/revocation-feed/``).

    Only a URL on the issuer's own origin (scheme, host, port) is used: the feed request carries
    this service's client credentials, which must go nowhere else. Another value is logged.
    """
    advertised = metadata.get(FEED_ENDPOINT_MEMBER)
    if advertised is None:
        return None
    issuer = oauth_cc_settings.issuer
    if (
        not isinstance(advertised, str)
        or len(advertised) > 2048
        or _origin(advertised) is None
        or _origin(advertised) != _origin(issuer)
        or urlsplit(advertised).username is not None
    ):
        logger.warning(
            "Ignoring the issuer's %s: not a URL under %s; using the default path",
            FEED_ENDPOINT_MEMBER,
            issuer,
        )
        return None
    return advertised


def fetch() -> dict[str, Any]:
    """Discover and fetch the issuer's JWKS: the entry shared with the other workers."""
    issuer = oauth_cc_settings.issuer
    metadata, _ = _get_json(issuer + METADATA_PATH, what="the issuer's metadata")
    if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
        # RFC 8414 §3.3: a document naming another issuer must not be used.
        raise hardened_http.FetchError("the issuer's metadata names another issuer")
    jwks_uri = metadata.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise hardened_http.FetchError("the issuer's metadata has no jwks_uri")
    document, headers = _get_json(jwks_uri, what="the issuer's JWKS")
    verifiers(document)  # refuse a set without a usable key before sharing it
    now = time.time()
    fresh_until = now + max_age(headers.get("cache-control"))
    return {
        "document": document,
        "fetched_at": now,
        "fresh_until": fresh_until,
        "feed_endpoint": feed_endpoint(metadata),
    }


class IssuerKeys:
    """A worker's copy of the issuer's keys.

    ``verifier(kid)`` is what :func:`oauth_cc.common.tokens.verify` asks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refetch = Throttle(max_keys=1)
        self.reset()

    def reset(self) -> None:
        self._verifiers: dict[str, tuple[str, JWK]] = {}
        self._fetched_at = float("-inf")
        self._fresh_until = float("-inf")
        self._failing = False
        self._feed_endpoint: str | None = None
        self._refetch.reset()

    @property
    def fresh_until(self) -> float:
        return self._fresh_until

    @property
    def feed_endpoint(self) -> str | None:
        """The revocation feed URL the issuer's metadata advertised when the keys were last fetched."""
        return self._feed_endpoint

    def verifier(self, kid: str) -> tuple[str, JWK] | None:
        if not self._verifiers:
            self._first_load()
        if time.time() > self._fresh_until + float(oauth_cc_settings.ISSUER_KEYS_MAX_STALE_SECONDS):
            raise TemporarilyUnavailable(
                "The issuer's signing keys could not be refreshed; retry shortly.", retry_after=5
            )
        found = self._verifiers.get(kid)
        if found is not None:
            return found
        # Unknown kid: another worker may have fetched a newer set already; else fetch, rarely.
        self._adopt(self._shared())
        found = self._verifiers.get(kid)
        if found is None and self._refetch.ready(
            _key("kid-refetch"), float(oauth_cc_settings.ISSUER_UNKNOWN_KID_REFETCH_SECONDS)
        ):
            self._fetch_and_share()
            found = self._verifiers.get(kid)
        return found

    def refresh(self) -> None:
        """Called by the background thread: renew the keys once their max-age has passed."""
        now = time.time()
        if now < self._fresh_until:
            return
        shared = self._shared()
        if shared is not None and float(shared["fresh_until"]) > now:
            self._adopt(shared)
            return
        timeout = max(1, math.ceil(float(oauth_cc_settings.ISSUER_FETCH_TIMEOUT)))
        if claim(_key("fetch"), timeout):
            self._fetch_and_share()

    def _first_load(self) -> None:
        self._adopt(self._shared())
        if not self._verifiers:
            self._fetch_and_share()
        if not self._verifiers:
            raise TemporarilyUnavailable("The issuer's signing keys could not be fetched; retry shortly.")

    def _fetch_and_share(self) -> None:
        try:
            entry = fetch()
        except Exception as exc:
            # Not only FetchError: whatever a hostile or broken issuer's document or a library
            # makes of it is a failed fetch, logged once, and the last good keys stay. An
            # unexpected exception is named by its type: its message may quote the document.
            if not self._failing:
                reason = (
                    str(exc)
                    if isinstance(exc, hardened_http.FetchError)
                    else f"an unexpected {type(exc).__name__} while reading them"
                )
                logger.warning("oauth_cc could not fetch the issuer's keys: %s", reason)
            self._failing = True
            return
        if self._failing:
            logger.warning("oauth_cc fetched the issuer's keys again")
        self._failing = False
        try:
            caches[oauth_cc_settings.CACHE_ALIAS].set(_key("keys"), entry, timeout=None)
        except Exception:
            logger.warning("oauth_cc could not share the issuer's keys through the cache")
        self._adopt(entry)

    def _shared(self) -> dict[str, Any] | None:
        try:
            entry = caches[oauth_cc_settings.CACHE_ALIAS].get(_key("keys"))
        except Exception:
            logger.warning("oauth_cc could not read the issuer's keys from the cache")
            return None
        return entry if isinstance(entry, dict) else None

    def _adopt(self, entry: dict[str, Any] | None) -> None:
        if entry is None or float(entry["fetched_at"]) <= self._fetched_at:
            return
        try:
            keys = verifiers(entry["document"])
        except hardened_http.FetchError:
            return
        with self._lock:
            self._verifiers = keys
            self._fetched_at = float(entry["fetched_at"])
            self._fresh_until = float(entry["fresh_until"])
            self._feed_endpoint = entry.get("feed_endpoint")
