"""Resource side: the issuer's revocation feed, as a resource-only service reads it.

The issuer serves ``{ISSUER}/oauth/revocation-feed/`` (:func:`oauth_cc.views.revocation_feed`)
to clients allowed to introspect tokens, read with the service's own client credentials
(:mod:`.feed_auth`: a ``GET`` with HTTP Basic, or a form ``POST``): the revoked ``jti`` values
until their ``exp``, the disabled and deleted clients, and the per-client cut-offs, with an
``ETag``. Every ``REVOCATION_FEED_POLL_SECONDS`` one worker of the site (a cache claim) asks for
it with ``If-None-Match`` (an unchanged feed costs a 304) and shares the result through the
cache; each worker adopts the shared copy into its own
:class:`~oauth_cc.common.revocation_snapshot.Snapshot`, which the request path reads without a query,
a cache read or a network call.

When the feed has not been read for ``REVOCATION_FEED_STALE_SECONDS``,
``REVOCATION_FEED_UNREACHABLE`` decides: ``"keep"`` (default) serves with the last state and logs
it, ``"refuse"`` answers 503 until the feed is read again. A worker that never read it answers 503.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, cast

from django.core.cache import caches

from ..common import claims as claim_values
from ..common import hardened_http, json_input
from ..common.errors import TemporarilyUnavailable
from ..common.revocation_snapshot import Snapshot
from ..common.shared import claim
from ..common.tokens import MAX_CLIENT_ID_LENGTH, MAX_JTI_LENGTH
from ..conf import oauth_cc_settings
from . import feed_auth

logger = logging.getLogger("oauth_cc.resource")

FEED_PATH = "/oauth/revocation-feed/"


def _key(kind: str) -> str:
    issuer = hashlib.sha256(oauth_cc_settings.issuer.encode()).hexdigest()[:16]
    return f"oauth_cc:resource:feed-{kind}:v1:{issuer}"


def _identifiers(name: str, values: Any, max_length: int) -> None:
    """Each of ``values`` an identifier as a token's claims parser takes it (non-empty, printable,
    at most ``max_length`` characters): an entry that no token could carry is no issuer's feed,
    and it would be kept in every worker's memory."""
    for value in values:
        problem = claim_values.identifier_problem(value, max_length=max_length)
        if problem:
            raise hardened_http.FetchError(f"the revocation feed's {name} has an entry that {problem}")


def _strings(document: dict[str, Any], name: str, max_length: int) -> frozenset[str]:
    value = document.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise hardened_http.FetchError(f"the revocation feed's {name} is not a list of strings")
    _identifiers(name, value, max_length)
    return frozenset(value)


def _times(document: dict[str, Any]) -> dict[str, float]:
    """``tokens_valid_after`` as client_id -> epoch seconds, each read as a claim's NumericDate.

    The claims parser's rule, so a cut-off is a finite number in the range a token's ``iat``
    can hold: ``1e400`` (inf to the JSON decoder) and an integer of 400 digits (which
    ``float()`` cannot convert) are refused like a string.
    """
    cutoffs = document.get("tokens_valid_after")
    refused = hardened_http.FetchError("the revocation feed's tokens_valid_after is not an object of times")
    if not isinstance(cutoffs, dict):
        raise refused
    times: dict[str, float] = {}
    for client_id in cutoffs:
        try:
            value = claim_values.numeric_date(cutoffs, client_id, required=True)
        except claim_values.ClaimError:
            raise refused from None
        times[str(client_id)] = float(value or 0)  # required: never None
    _identifiers("tokens_valid_after", times, MAX_CLIENT_ID_LENGTH)
    return times


def parse(document: Any) -> Snapshot:
    """The snapshot a feed document describes; FetchError unless it is exactly a feed of ISSUER."""
    if not isinstance(document, dict):
        raise hardened_http.FetchError("the revocation feed is not a JSON object")
    if document.get("issuer") != oauth_cc_settings.issuer:
        raise hardened_http.FetchError("the revocation feed names another issuer")
    valid_after = _times(document)
    return Snapshot(
        revoked_jtis=_strings(document, "revoked_jtis", MAX_JTI_LENGTH),
        disabled_clients=_strings(document, "disabled_clients", MAX_CLIENT_ID_LENGTH),
        deleted_clients=_strings(document, "deleted_clients", MAX_CLIENT_ID_LENGTH),
        valid_after=valid_after,
    )


def feed_url(advertised: str | None = None) -> str:
    """The feed the issuer's metadata advertises (``oauth_cc_revocation_feed_endpoint``, read
    with the issuer's keys and passed in), else ``{ISSUER}/oauth/revocation-feed/``."""
    return advertised or oauth_cc_settings.issuer + FEED_PATH


def fetch(shared: dict[str, Any] | None, url: str | None = None) -> dict[str, Any]:
    """Read the feed (conditionally, when ``shared`` has an ETag): the new shared entry."""
    settings = oauth_cc_settings
    try:
        credentials = feed_auth.feed_request()
    except feed_auth.KeyProblem as exc:
        raise hardened_http.FetchError(str(exc)) from None
    except Exception as exc:
        # E106 loads the key at start-up; a key that loads and still cannot sign (a library's
        # own refusal) fails the poll with a sentence too. Its message may quote the key.
        raise hardened_http.FetchError(
            f"OAUTH_CC['RESOURCE_CLIENT_PRIVATE_KEY'] could not sign the feed request "
            f"({type(exc).__name__}); run manage.py check"
        ) from None
    headers = dict(credentials.headers)
    if shared is not None and shared.get("etag"):
        headers["If-None-Match"] = str(shared["etag"])
    timeout = float(settings.ISSUER_FETCH_TIMEOUT)
    max_bytes = int(settings.REVOCATION_FEED_MAX_BYTES)
    allow_insecure = bool(settings.ISSUER_ALLOW_INSECURE)
    if credentials.form is None:
        fetched = hardened_http.get(
            url or feed_url(),
            headers=headers,
            timeout=timeout,
            max_bytes=max_bytes,
            allow_insecure=allow_insecure,
        )
    else:
        fetched = hardened_http.post_form(
            url or feed_url(),
            form=credentials.form,
            headers=headers,
            timeout=timeout,
            max_bytes=max_bytes,
            allow_insecure=allow_insecure,
        )
    now = time.time()
    if fetched.status == 304:
        # hardened_http takes a 304 only as the answer to a conditional request, and only a
        # shared entry with an ETag makes one (above): ``shared`` is that entry.
        return {**cast(dict[str, Any], shared), "checked_at": now}
    try:
        document = json_input.loads(fetched.body, max_bytes=len(fetched.body) + 1)
    except json_input.JSONInputError:
        raise hardened_http.FetchError("the revocation feed is not JSON") from None
    return {"etag": fetched.headers.get("etag"), "snapshot": parse(document), "checked_at": now}


def _usable(shared: Any) -> bool:
    """Whether a shared entry has the shape :func:`fetch` writes (the cache may hold anything)."""
    return (
        isinstance(shared, dict)
        and isinstance(shared.get("snapshot"), Snapshot)
        and isinstance(shared.get("checked_at"), float)
    )


class FeedState:
    """A worker's copy of the issuer's revocation state: ``current()`` is the request path's read."""

    def __init__(self, advertised: Callable[[], str | None] = lambda: None) -> None:
        #: The feed URL the issuer's metadata advertises, if known (its keys' reader has it).
        self._advertised = advertised
        self.reset()

    def reset(self) -> None:
        self._snapshot: Snapshot | None = None
        self._checked_at = float("-inf")
        self._failing = False
        self._stale_logged = False

    @property
    def checked_at(self) -> float:
        return self._checked_at

    def stale(self) -> bool:
        return time.time() - self._checked_at > float(oauth_cc_settings.REVOCATION_FEED_STALE_SECONDS)

    def current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            self.poll()  # this worker's first token: read it now
            snapshot = self._snapshot
            if snapshot is None:
                raise TemporarilyUnavailable(
                    "The issuer's revocation state could not be read yet; retry shortly.", retry_after=5
                )
        if oauth_cc_settings.REVOCATION_FEED_UNREACHABLE == "refuse" and self.stale():
            raise TemporarilyUnavailable(
                "The issuer's revocation state is out of date; retry shortly.", retry_after=5
            )
        return snapshot

    def poll(self) -> None:
        """One poll: fetch the feed if this worker wins the site's claim, then adopt the shared copy."""
        cache = caches[oauth_cc_settings.CACHE_ALIAS]
        try:
            shared = cache.get(_key("state"))
        except Exception:
            logger.warning("oauth_cc could not read the revocation feed's copy from the cache")
            shared = None
        interval = float(oauth_cc_settings.REVOCATION_FEED_POLL_SECONDS)
        if self._snapshot is None or claim(_key("poll"), max(1, math.ceil(interval))):
            try:
                shared = fetch(shared if _usable(shared) else None, feed_url(self._advertised()))
            except Exception as exc:
                # Not only FetchError: whatever a hostile or broken issuer's document or a
                # library makes of it is a failed poll, logged once, not a 503 per request.
                # An unexpected exception is named by its type: its message may quote the
                # document or a key.
                if not self._failing:
                    reason = (
                        str(exc)
                        if isinstance(exc, hardened_http.FetchError)
                        else f"an unexpected {type(exc).__name__} while reading it"
                    )
                    logger.warning("oauth_cc could not read the issuer's revocation feed: %s", reason)
                self._failing = True
            else:
                if self._failing:
                    logger.warning("oauth_cc reads the issuer's revocation feed again")
                self._failing = False
                try:
                    cache.set(_key("state"), shared, timeout=None)
                except Exception:
                    logger.warning("oauth_cc could not share the revocation feed through the cache")
        if _usable(shared) and shared["checked_at"] > self._checked_at:
            self._snapshot = shared["snapshot"]
            self._checked_at = shared["checked_at"]
        if self._snapshot is not None and self.stale():
            if not self._stale_logged:
                keep = oauth_cc_settings.REVOCATION_FEED_UNREACHABLE != "refuse"
                logger.error(
                    "oauth_cc has not read the issuer's revocation feed for over %ss; %s",
                    oauth_cc_settings.REVOCATION_FEED_STALE_SECONDS,
                    "serving with the last state read" if keep else "refusing tokens (503) until it can",
                )
            self._stale_logged = True
        else:
            self._stale_logged = False
