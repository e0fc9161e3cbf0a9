"""Issuer side: stale credentials: clients and secrets unused for N days, and expired secrets still stored.

Shared by ``oauth_cc report stale`` and the admin's list filters. "Used" is ``last_used_at``,
written at most once per ``LAST_USED_WRITE_INTERVAL`` by the token endpoint (and the other
endpoints that authenticate clients), so it is exact to about a minute.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ..models import Application, ClientSecret


def cutoff_before(now: datetime, days: int) -> datetime:
    """``now`` minus ``days``, or the earliest datetime when that is before year 1."""
    try:
        return now - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=now.tzinfo)


def _unused_since(cutoff: datetime) -> Q:
    """Last used before ``cutoff``, or never used and created before it (a new one is not stale)."""
    return Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created__lt=cutoff)


def unused_clients(days: int, now: datetime | None = None) -> QuerySet[Application]:
    cutoff = cutoff_before(now or timezone.now(), days)
    return Application.objects.filter(_unused_since(cutoff))


def never_used_clients() -> QuerySet[Application]:
    return Application.objects.filter(last_used_at__isnull=True)


def unused_secrets(days: int, now: datetime | None = None) -> QuerySet[ClientSecret]:
    """Secrets that still work (not revoked, not expired) but were not used for ``days`` days."""
    now = now or timezone.now()
    cutoff = cutoff_before(now, days)
    return ClientSecret.objects.filter(
        _unused_since(cutoff),
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        revoked_at__isnull=True,
    )


def expired_secrets(now: datetime | None = None) -> QuerySet[ClientSecret]:
    """Secrets past their expiry that are still stored (revoked or not): safe to delete."""
    return ClientSecret.objects.filter(expires_at__lte=now or timezone.now())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _secret_row(secret: ClientSecret) -> dict[str, Any]:
    return {
        "client_id": secret.application.client_id,
        "id": secret.pk,
        "prefix": secret.prefix,
        "created": _iso(secret.created),
        "expires": _iso(secret.expires_at),
        "last_used": _iso(secret.last_used_at),
        "revoked": _iso(secret.revoked_at),
    }


def report(days: int, now: datetime | None = None) -> dict[str, Any]:
    """The stale report as plain data (the JSON of ``oauth_cc report stale --json``)."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError("days must be a positive whole number")
    now = now or timezone.now()
    # Never used first, then the longest unused; the same order on every database.
    never_first = F("last_used_at").asc(nulls_first=True)
    clients = unused_clients(days, now).order_by(never_first, "created", "client_id")
    secrets = unused_secrets(days, now).select_related("application").order_by(never_first, "created", "pk")
    expired = expired_secrets(now).select_related("application").order_by("expires_at", "pk")
    return {
        "days": days,
        "generated_at": now.isoformat(),
        "unused_clients": [
            {
                "client_id": c.client_id,
                "name": c.name,
                "active": c.is_active,
                "created": _iso(c.created),
                "last_used": _iso(c.last_used_at),
            }
            for c in clients
        ],
        "unused_secrets": [_secret_row(s) for s in secrets],
        "expired_secrets": [_secret_row(s) for s in expired],
    }
