""" "Last used" times: written in one statement per interval per worker, however many clients.

The token endpoint's cost must not grow with the number of clients in rotation, so the write of
"last used" is batched per worker (``oauth_cc/issuer/usage.py``); these tests pin how.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError

from oauth_cc.issuer import usage
from oauth_cc.models import Application, ClientSecret

from .conftest import basic_auth, form_post

pytestmark = pytest.mark.django_db


def token(client: Any, application: Application, secret: str) -> Any:
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response


def updates(captured: Any) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]


@pytest.fixture
def fleet(make_client: Any) -> list[tuple[Application, str]]:
    return [make_client(f"svc-{i}", scopes=["reports:read"]) for i in range(5)]


@pytest.fixture
def clock(monkeypatch: Any) -> list[float]:
    """``time.monotonic`` as seen by the bookkeeping, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(usage.time, "monotonic", lambda: now[0])
    return now


def test_one_write_per_interval_for_every_client_used_in_it(
    client, settings, fleet, clock, django_assert_max_num_queries
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LAST_USED_WRITE_INTERVAL": 60}
    for application, secret in fleet:
        token(client, application, secret)  # the first is written at once, the rest wait
    assert Application.objects.filter(last_used_at__isnull=False).count() == 1

    clock[0] += 61
    first, secret = fleet[0]
    with django_assert_max_num_queries(50) as captured:
        token(client, first, secret)

    written = updates(captured)
    assert len(written) == 2, written  # one for the clients, one for the secrets
    assert Application.objects.filter(last_used_at__isnull=False).count() == len(fleet)
    assert ClientSecret.objects.filter(last_used_at__isnull=False).count() == len(fleet)


def test_nothing_is_written_within_the_interval(
    client, settings, fleet, clock, django_assert_max_num_queries
):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LAST_USED_WRITE_INTERVAL": 60}
    token(client, *fleet[0])
    clock[0] += 59.9
    with django_assert_max_num_queries(50) as captured:
        for application, secret in fleet:
            token(client, application, secret)
    assert updates(captured) == []
    assert usage.last_used.pending()[0] == {application.pk for application, _ in fleet}


def test_a_failed_write_keeps_the_ids_for_the_next_one(client, settings, fleet, clock, monkeypatch):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LAST_USED_WRITE_INTERVAL": 60}
    real_update = type(Application.objects.all()).update
    failing = {"on": True}

    def update(queryset: Any, **kwargs: Any) -> Any:
        if failing["on"] and "last_used_at" in kwargs:
            raise DatabaseError("disk full")
        return real_update(queryset, **kwargs)

    monkeypatch.setattr(type(Application.objects.all()), "update", update)
    application, secret = fleet[0]
    token(client, application, secret)  # the write fails; the token request does not
    assert usage.last_used.pending() == (
        {application.pk},
        {ClientSecret.objects.get(application=application).pk},
    )

    failing["on"] = False
    clock[0] += 61
    token(client, *fleet[1])
    assert set(Application.objects.filter(last_used_at__isnull=False).values_list("pk", flat=True)) == {
        fleet[0][0].pk,
        fleet[1][0].pk,
    }


def test_flush_writes_what_is_pending(client, settings, fleet, clock):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LAST_USED_WRITE_INTERVAL": 60}
    for application, secret in fleet:
        token(client, application, secret)
    usage.last_used.flush()  # what the worker does at exit
    assert Application.objects.filter(last_used_at__isnull=True).count() == 0
    assert usage.last_used.pending() == (set(), set())


def test_many_ids_are_written_in_chunks(settings, make_client, monkeypatch, clock):
    monkeypatch.setattr(usage, "CHUNK", 2)
    applications = [make_client(f"c{i}")[0] for i in range(5)]
    for application in applications:
        usage.last_used.note(application.pk, None)  # the first is written at once
    usage.last_used.flush()
    assert Application.objects.filter(last_used_at__isnull=True).count() == 0
