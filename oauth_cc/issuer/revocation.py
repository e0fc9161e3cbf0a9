"""Issuer side: revocation of JWT access tokens (RFC 7009) without a row per issued token.

Design: tokens are not stored when issued. A write per token would cap throughput (one
SQLite commit alone costs ~0.75 ms) and the JWT already carries everything a verifier
needs. What revocation needs is small:

* a list of revoked ``jti`` values, each kept only until that token's own ``exp``
  (:class:`~oauth_cc.models.RevokedToken`), so the list never outgrows the live tokens;
* per client, ``tokens_valid_after``: every token issued before it is invalid (used when a
  client is disabled and re-enabled, or all its tokens must go at once);
* the set of disabled clients, whose tokens are refused while they stay disabled;
* the set of deleted clients (:class:`~oauth_cc.models.DeletedClient`), kept until the last
  token issued to each has expired. A client saved again under a deleted client_id takes the
  deletion time as its ``tokens_valid_after`` and the record goes (:func:`adopt_deletion`), so
  only the old tokens are refused.

Audit of issuance goes to the ``token_issued`` signal and one log line per token instead.

Workers hold a snapshot of this state. A change is written to the database, replaces the
site's change token (:mod:`oauth_cc.issuer.generation`) and pushes a new snapshot, tagged with that
token, to the shared Django cache. Each worker reads the token at most every
``STATE_REFRESH_SECONDS`` and fetches the snapshot only when it changed (from the shared
cache, or from the database when the shared copy is missing or carries another tag), so a
change reaches every worker within one refresh interval with a shared cache (Redis) and
about two with a per-process one, and an unchanged site never fetches the snapshot again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..common import resets
from ..common.claims import MAX_NUMERIC_DATE
from ..common.errors import TemporarilyUnavailable
from ..common.revocation_snapshot import Snapshot as Snapshot  # re-exported: callers import it from here
from ..common.shared import Throttle, share, shared_or_loaded
from ..conf import oauth_cc_settings
from . import generation, outage

# v4: Snapshot moved to oauth_cc.common.revocation_snapshot (v3 the generation tag, v2 deleted_clients);
# a pickle of another version must not be read.
CACHE_KEY = "oauth_cc:revocation:v4"


def load_snapshot(tag: int | None = None) -> Snapshot:
    """Build the snapshot from the database (three queries, four without ``tag``).

    ``tag`` is the change token if the caller has just read it; otherwise it is read first.
    Read before the rows, a change committed in between makes the snapshot newer than its
    tag, never older: a worker holding it then reloads once more, and misses nothing.
    """
    from ..models import Application, DeletedClient, RevokedToken

    if tag is None:
        tag = generation.read_database(generation.REVOCATION)
    now = timezone.now()
    jtis = frozenset(RevokedToken.objects.filter(expires_at__gt=now).values_list("jti", flat=True))
    disabled: set[str] = set()
    valid_after: dict[str, float] = {}
    rows = Application.objects.filter(is_active=False) | Application.objects.filter(
        tokens_valid_after__isnull=False
    )
    for client_id, is_active, cutoff in rows.values_list("client_id", "is_active", "tokens_valid_after"):
        if not is_active:
            disabled.add(client_id)
        if cutoff is not None:
            valid_after[client_id] = cutoff.timestamp()
    deleted = frozenset(DeletedClient.objects.filter(expires_at__gt=now).values_list("client_id", flat=True))
    return Snapshot(
        revoked_jtis=jtis,
        disabled_clients=frozenset(disabled),
        deleted_clients=deleted,
        valid_after=valid_after,
        generation=tag,
    )


def publish() -> Snapshot:
    """Record a change, rebuild the snapshot and push it to the shared cache and this worker.

    Call it inside the transaction that made the change, or right after it committed.
    """
    generation.bump(generation.REVOCATION)
    snapshot = load_snapshot()
    share(CACHE_KEY, snapshot)
    revocation_state.set(snapshot)
    return snapshot


class RevocationState:
    """A worker's copy of the revocation snapshot, kept while the site's change token stays the same.

    So a worker does not fetch the snapshot (which holds every revoked jti: megabytes with
    100,000 of them) once per interval, only once per change.
    """

    def __init__(self) -> None:
        self._watcher = generation.Watcher(generation.REVOCATION)
        self.reset()

    def reset(self) -> None:
        self._snapshot = Snapshot()
        self._watcher.reset()

    def set(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        if snapshot.generation is not None:
            # Built from the database just now: no need to fetch it again for this change.
            self._watcher.saw(snapshot.generation, time.monotonic())

    def current(self) -> Snapshot:
        """The snapshot; at most one change-token read per refresh interval, then a fetch if it changed.

        With the database down, the snapshot held is the latest this worker can know (revoking
        is a database write): it is kept while confirmed within ``STALE_STATE_MAX_SECONDS``,
        and a worker that holds none answers 503 rather than start without one.
        """
        now = time.monotonic()
        value = self._watcher.check(now)
        if value is None:
            return self._snapshot
        try:
            snapshot = shared_or_loaded(CACHE_KEY, lambda: _load(value))
            if snapshot.generation != value:
                # The shared copy predates the change (or comes from a transaction that
                # never committed): build one from the database and share that.
                snapshot = _load(None)
                share(CACHE_KEY, snapshot)
        except TemporarilyUnavailable:
            # Not marked as seen: the change is looked for again, and the bound counts from
            # the last snapshot that was confirmed current.
            if self._watcher.seen is None or not outage.usable(self._watcher.confirmed_at):
                raise
            return self._snapshot
        self._snapshot = snapshot
        self._watcher.saw(value, now)
        return self._snapshot


@dataclass(frozen=True)
class FeedDocument:
    """The revocation feed's body for one snapshot, as sent, and its ``ETag``."""

    body: bytes = field(repr=False)
    etag: str


def encode_feed(snapshot: Snapshot, issuer: str) -> bytes:
    """The feed document of ``snapshot`` (:func:`oauth_cc.views.revocation_feed`), sorted so that
    every worker writes the same bytes for the same state, and so sends the same ``ETag``."""
    return json.dumps(
        {
            "issuer": issuer,
            "revoked_jtis": sorted(snapshot.revoked_jtis),
            "disabled_clients": sorted(snapshot.disabled_clients),
            "deleted_clients": sorted(snapshot.deleted_clients),
            "tokens_valid_after": dict(sorted(snapshot.valid_after.items())),
        },
        separators=(",", ":"),
    ).encode()


class FeedMemo:
    """The feed of the latest snapshot, built once per snapshot rather than once per read.

    With 100,000 revoked jtis the body is 2.5 MB and building it (sort, encode, SHA-256) costs
    tens of milliseconds: once per change of the state, not per poll of every resource service
    (nor per 304). A snapshot is replaced, never changed, when the state changes
    (:class:`RevocationState`), so its identity says whether the memo is current; the memo holds
    it, so the identity cannot be reused by another object. One entry: the latest.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._latest: tuple[Snapshot, str, FeedDocument] | None = None

    def document(self, snapshot: Snapshot, issuer: str) -> FeedDocument:
        latest = self._latest  # one read: another thread may replace it meanwhile
        if latest is not None and latest[0] is snapshot and latest[1] == issuer:
            return latest[2]
        body = encode_feed(snapshot, issuer)
        document = FeedDocument(body=body, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        self._latest = (snapshot, issuer, document)
        return document


feed_memo = FeedMemo()
resets.register("oauth_cc.issuer.revocation.feed_memo", feed_memo.reset)


def _load(tag: int | None) -> Snapshot:
    return outage.database.run("the revocation state", lambda: load_snapshot(tag))


revocation_state = RevocationState()
resets.register("oauth_cc.issuer.revocation.revocation_state", revocation_state.reset)


def revoke_jti(*, jti: str, client_id: str, expires_at: float) -> bool:
    """Record ``jti`` as revoked while the token can still be accepted; True if it was not before.

    ``expires_at`` is the token's ``exp``. Verifiers accept a token until ``exp + LEEWAY``, so
    the record is kept that long too: dropping it at ``exp`` would let the revoked token back
    in for the leeway.
    """
    from ..models import RevokedToken

    # Capped at the last NumericDate a claim may hold (the end of year 9999, which datetime holds).
    keep_until = min(expires_at + float(oauth_cc_settings.LEEWAY), float(MAX_NUMERIC_DATE))
    if keep_until <= time.time():
        return False  # No verifier accepts it any more: nothing left to revoke.

    def insert() -> bool:
        try:
            with transaction.atomic():
                RevokedToken.objects.create(
                    jti=jti,
                    client_id=client_id,
                    expires_at=datetime.fromtimestamp(keep_until, tz=dt_timezone.utc),
                )
        except IntegrityError:
            return False
        return True

    # Database down: 503, so the client knows the token is not revoked yet and retries.
    if not outage.database.run("a revocation", insert):
        return False
    publish()
    return True


def record_deleted_client(client_id: str, token_lifetime: int | None) -> None:
    """Remember that ``client_id`` was deleted, until its last possible token has expired.

    Called from the ``post_delete`` receiver, so inside the deleting transaction: the record
    commits or rolls back with the deletion. Publishing the snapshot is the caller's job.
    """
    from ..models import DeletedClient

    now = timezone.now()
    lifetime = max(int(token_lifetime or 0), int(oauth_cc_settings.ACCESS_TOKEN_LIFETIME))
    DeletedClient.objects.update_or_create(
        client_id=client_id,
        defaults={
            "deleted_at": now,
            "expires_at": now + timedelta(seconds=lifetime + int(oauth_cc_settings.LEEWAY)),
        },
    )


def adopt_deletion(client_id: str) -> None:
    """A client saved under a deleted ``client_id`` inherits the deletion as its token cut-off.

    Tokens issued before the deletion stay refused (``tokens_valid_after``), while the new
    client's own tokens work; the deletion record is no longer needed. Two queries when such a
    record exists, one otherwise.
    """
    from ..models import Application, DeletedClient

    record = DeletedClient.objects.filter(client_id=client_id).first()
    if record is None:
        return
    Application.objects.filter(client_id=client_id).filter(
        Q(tokens_valid_after__isnull=True) | Q(tokens_valid_after__lt=record.deleted_at)
    ).update(tokens_valid_after=record.deleted_at)
    record.delete()


def invalidate_client_tokens(client_id: str) -> None:
    """Invalidate every token issued to ``client_id`` until now."""
    from ..models import Application
    from .state import client_cache

    with transaction.atomic():
        Application.objects.filter(client_id=client_id).update(tokens_valid_after=timezone.now())
        # update() sends no post_save: other workers reload the client (its tokens_valid_after
        # dates its next tokens, see issuance.issued_at), this one forgets it now.
        generation.bump(generation.CLIENTS)
        client_cache.clear()
        publish()


#: Seconds between two opportunistic prunes (see :func:`prune_now_and_then`).
PRUNE_INTERVAL = 300.0
PRUNE_KEY = "oauth_cc:prune"
prune_throttle = Throttle(max_keys=1)
prune_throttle.mark(PRUNE_KEY)  # the first prune comes one interval after start-up


def prune_now_and_then() -> None:
    """Run :func:`prune_expired` at most once per ``PRUNE_INTERVAL`` (per site with a shared cache).

    Called from the token endpoint, so expired ``RevokedToken`` and ``UsedAssertion`` rows (one
    per private_key_jwt request) never pile up without a cron job. Costs one clock read per
    call; two indexed DELETEs once per interval.
    """
    if prune_throttle.ready(PRUNE_KEY, PRUNE_INTERVAL):
        try:
            outage.database.run("expired records (pruning)", _prune_all)
        except TemporarilyUnavailable:
            pass  # housekeeping: the token is issued anyway; the next interval prunes


def _prune_all() -> None:
    prune_expired()
    from . import usage_counts

    usage_counts.prune()  # hourly usage counts past USAGE_RETENTION_DAYS


#: Seconds a single-use assertion record outlives its assertion's acceptance window.
USED_ASSERTION_PRUNE_MARGIN = 300


def prune_expired() -> int:
    """Delete revocation, deleted-client and single-use records that can no longer matter."""
    from ..models import DeletedClient, RevokedToken, UsedAssertion

    now = timezone.now()
    removed = RevokedToken.objects.filter(expires_at__lte=now).delete()[0]
    # A margin past the last moment an assertion is accepted: the request that checked its times
    # records its use a little later (and another host's clock may be ahead), so a record must
    # outlive the acceptance window, or a replay could pass in between.
    used_until = now - timedelta(seconds=USED_ASSERTION_PRUNE_MARGIN)
    removed += UsedAssertion.objects.filter(expires_at__lte=used_until).delete()[0]
    removed += DeletedClient.objects.filter(expires_at__lte=now).delete()[0]
    return removed
