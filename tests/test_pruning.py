"""Expired revocation and single-use records are deleted without a cron job."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from oauth_cc.issuer import revocation
from oauth_cc.models import RevokedToken, UsedAssertion


def _records(days: int) -> None:
    when = timezone.now() + timedelta(days=days)
    RevokedToken.objects.create(jti=f"jti-{days}", client_id="c", expires_at=when)
    UsedAssertion.objects.create(jti=f"assertion-{days}", client_id="c", expires_at=when)


def test_token_request_prunes_expired_records_once_the_interval_has_passed(
    make_client, token_for, monkeypatch
):
    application, secret = make_client("svc", scopes=["reports:read"])
    _records(days=-1)
    _records(days=1)
    revocation.prune_throttle.reset()

    token_for(application, secret, scope="reports:read")

    assert list(RevokedToken.objects.values_list("jti", flat=True)) == ["jti-1"]
    assert list(UsedAssertion.objects.values_list("jti", flat=True)) == ["assertion-1"]


def test_token_request_within_the_interval_does_not_prune(make_client, token_for):
    application, secret = make_client("svc", scopes=["reports:read"])
    revocation.prune_throttle.mark(revocation.PRUNE_KEY)
    _records(days=-1)

    token_for(application, secret, scope="reports:read")

    assert RevokedToken.objects.count() == 1
    assert UsedAssertion.objects.count() == 1


def test_a_used_assertion_record_outlives_its_acceptance_window_by_the_margin(db):
    """The request that checked an assertion's times records its use a little later: pruned
    at its exact end, a record could be gone while the assertion is still being accepted."""
    now = timezone.now()
    margin = revocation.USED_ASSERTION_PRUNE_MARGIN
    UsedAssertion.objects.create(jti="just-ended", client_id="c", expires_at=now - timedelta(seconds=1))
    UsedAssertion.objects.create(
        jti="within-margin", client_id="c", expires_at=now - timedelta(seconds=margin - 5)
    )
    UsedAssertion.objects.create(
        jti="past-margin", client_id="c", expires_at=now - timedelta(seconds=margin + 5)
    )

    revocation.prune_expired()

    assert sorted(UsedAssertion.objects.values_list("jti", flat=True)) == ["just-ended", "within-margin"]
