"""Where operators read usage: ``client usage``, ``report stale``, the admin list, filters and charts."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO
from typing import Any
from xml.etree import ElementTree

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from oauth_cc.issuer import usage_counts
from oauth_cc.issuer.usage_chart import bar_chart
from oauth_cc.issuer.usage_counts import HOUR, hour_of
from oauth_cc.models import Application, ClientSecret, UsageBucket

SVG = "{http://www.w3.org/2000/svg}"


def run(*args: str) -> str:
    out = StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def at_start_of_hour(application: Application, tokens: int, hours_ago: int = 0) -> None:
    UsageBucket.objects.create(
        client_id=application.client_id, hour=hour_of(time.time()) - hours_ago, count=tokens
    )


def age(obj: Any, days: float, *, used_days_ago: float | None = None) -> None:
    """Make ``obj`` (client or secret) created ``days`` ago and last used ``used_days_ago`` ago."""
    now = timezone.now()
    obj.created = now - timedelta(days=days)
    obj.last_used_at = None if used_days_ago is None else now - timedelta(days=used_days_ago)
    type(obj).objects.filter(pk=obj.pk).update(created=obj.created, last_used_at=obj.last_used_at)


@pytest.fixture
def svc(make_scope, make_client):
    make_scope("reports:read", default=True)
    return make_client("svc", scopes=["reports:read"])


# -- oauth_cc client usage -----------------------------------------------------------------------


def test_client_usage_json_has_the_documented_fields(svc, monkeypatch):
    application, _ = svc
    current = hour_of(time.time())
    monkeypatch.setattr(time, "time", lambda: current * HOUR)  # at the start of the hour
    UsageBucket.objects.create(client_id=application.client_id, hour=current, count=3)
    UsageBucket.objects.create(client_id=application.client_id, hour=current - 1, count=8)
    UsageBucket.objects.create(client_id=application.client_id, hour=current - 30, count=100)
    UsageBucket.objects.create(client_id="someone-else", hour=current, count=1000)
    usage_counts.counter.count(application.client_id, now=current * HOUR)  # not flushed yet
    stamp = timezone.now() - timedelta(minutes=5)
    Application.objects.filter(pk=application.pk).update(last_used_at=stamp)

    data = run_json("client", "usage", application.client_id)

    assert {
        k: data[k] for k in ("client_id", "tokens_last_hour", "tokens_last_day", "not_caching_tokens")
    } == {
        "client_id": application.client_id,
        "tokens_last_hour": 4 + 8,  # this process's unflushed token is included
        "tokens_last_day": 12,  # hour - 30 is outside the day
        "not_caching_tokens": True,  # 12 > 10 per one-hour lifetime
    }
    assert data["last_used_at"] == stamp.isoformat()
    assert data["token_lifetime"] == 3600
    assert data["not_caching_limit_per_hour"] == 10
    assert len(data["tokens_per_day"]) == 7
    assert sum(day["tokens"] for day in data["tokens_per_day"]) == 112
    assert (
        data["tokens_per_day"][-1]["day"]
        == datetime.fromtimestamp(current * HOUR, tz=dt_timezone.utc).date().isoformat()
    )


def test_client_usage_uses_the_clients_own_lifetime(make_client, monkeypatch):
    application, _ = make_client("short", lifetime=600)
    current = hour_of(time.time())
    monkeypatch.setattr(time, "time", lambda: current * HOUR + 3599)  # previous hour counts ~0
    UsageBucket.objects.create(client_id=application.client_id, hour=current, count=60)
    assert run_json("client", "usage", application.client_id)["not_caching_tokens"] is False
    UsageBucket.objects.filter(client_id=application.client_id).update(count=61)
    assert run_json("client", "usage", application.client_id)["not_caching_tokens"] is True


def test_client_usage_limit_for_a_lifetime_over_an_hour_is_the_threshold(make_client):
    """An hour is the shortest window measured: a two-hour lifetime does not lower the limit to 5."""
    application, _ = make_client("long", lifetime=7200)
    data = run_json("client", "usage", application.client_id)
    assert (data["token_lifetime"], data["not_caching_limit_per_hour"]) == (7200, 10)


def test_client_usage_text_output(svc):
    application, _ = svc
    at_start_of_hour(application, 50)
    out = run("client", "usage", application.client_id)
    assert "not caching tokens:  YES: more than 10 tokens per hour for a 3600 s token lifetime" in out
    assert "last used:           never" in out


def test_client_usage_of_an_unknown_client_is_a_sentence(db):
    with pytest.raises(CommandError, match=r'^No API client has the client_id "nobody"\.$'):
        run("client", "usage", "nobody")


# -- oauth_cc report stale -----------------------------------------------------------------------


@pytest.fixture
def fleet(make_client):
    """Clients and secrets in every state the stale report distinguishes."""
    now = timezone.now()
    made = {}
    for name, created, used in [
        ("fresh", 1, None),  # new, never used: not stale
        ("recent", 200, 5),
        ("idle", 200, 45),
        ("never", 40, None),
    ]:
        application, _ = make_client(name)
        age(application, created, used_days_ago=used)
        made[name] = application
    secret = ClientSecret.objects.get(application=made["recent"])
    age(secret, 200, used_days_ago=40)  # the client is used, but with another secret
    revoked = ClientSecret.objects.get(application=made["idle"])
    age(revoked, 200, used_days_ago=45)
    ClientSecret.objects.filter(pk=revoked.pk).update(revoked_at=now)  # revoked: not "unused"
    expired = ClientSecret.objects.get(application=made["never"])
    age(expired, 200)  # old and never used: only its expiry keeps it out of "unused"
    ClientSecret.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(days=1))
    made["recent_secret"] = secret
    made["expired_secret"] = expired
    return made


def test_report_stale_json_shape_and_content(fleet):
    data = run_json("report", "stale", "--days", "30")
    assert set(data) == {"days", "generated_at", "unused_clients", "unused_secrets", "expired_secrets"}
    assert data["days"] == 30
    assert [c["name"] for c in data["unused_clients"]] == ["never", "idle"]
    assert set(data["unused_clients"][0]) == {"client_id", "name", "active", "created", "last_used"}
    assert data["unused_clients"][0]["last_used"] is None
    secrets = {s["id"]: s for s in data["unused_secrets"]}
    # fresh's secret is new, idle's is revoked and never's has expired: only recent's is unused.
    assert list(secrets) == [fleet["recent_secret"].pk]
    row = secrets[fleet["recent_secret"].pk]
    assert set(row) == {"client_id", "id", "prefix", "created", "expires", "last_used", "revoked"}
    assert row["client_id"] == fleet["recent"].client_id
    assert [s["id"] for s in data["expired_secrets"]] == [fleet["expired_secret"].pk]
    assert "secret_hash" not in json.dumps(data) and fleet["recent_secret"].secret_hash not in json.dumps(
        data
    )


def test_report_stale_days_moves_the_cutoff(fleet):
    data = run_json("report", "stale", "--days", "41")
    assert [c["name"] for c in data["unused_clients"]] == ["idle"]  # "never" is 40 days old
    assert [s["id"] for s in data["unused_secrets"]] == []  # recent's secret: used 40 days ago
    data = run_json("report", "stale", "--days", "40")
    assert [s["id"] for s in data["unused_secrets"]] == [fleet["recent_secret"].pk]


@pytest.mark.parametrize("days", ["740000", "999999"])
def test_report_stale_with_days_before_year_one_lists_only_what_was_never_used(fleet, days):
    data = run_json("report", "stale", "--days", days)
    # Nothing was last used before the beginning of time, and nothing was created then either.
    assert data["unused_clients"] == [] and data["unused_secrets"] == []
    assert [s["id"] for s in data["expired_secrets"]] == [fleet["expired_secret"].pk]


def test_report_stale_text(fleet):
    out = run("report", "stale", "--days", "30")
    assert "Clients unused for 30 days or more (or never used): 2" in out
    assert "Secrets still valid but unused for 30 days or more: 1" in out
    assert "Expired secrets still stored: 1" in out
    assert fleet["recent_secret"].prefix in out


@pytest.mark.parametrize("days", ["0", "-3", "abc", "1.5", "", "9" * 40, "٣", "1_0", "1000000"])
def test_report_stale_refuses_a_bad_days_value(db, days):
    with pytest.raises(
        CommandError, match=r"^--days must be a whole number of days from 1 to 999999, like --days 90"
    ):
        run("report", "stale", "--days", days)


# -- the SVG chart -------------------------------------------------------------------------------


def test_chart_is_well_formed_svg_with_one_bar_per_point_and_its_value():
    points = [("mon <b>&", 0), ("tue", 5), ("wed", 10)]
    svg = bar_chart(points, title='Tokens "per" <day>', axis_labels=[(0, "<x>")])
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    bars = root.findall(f"{SVG}rect")
    assert [int(b.get("data-value")) for b in bars] == [0, 5, 10]
    assert [b.find(f"{SVG}title").text for b in bars] == [
        "mon <b>&: 0 tokens",
        "tue: 5 tokens",
        "wed: 10 tokens",
    ]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == 0 and heights[2] == pytest.approx(2 * heights[1]) and heights[2] > 0
    assert root.get("aria-label") == 'Tokens "per" <day>'
    assert "<b>" not in svg and "<x>" not in svg
    assert "href" not in svg and "<script" not in svg


def test_chart_of_nothing_has_no_division_by_zero():
    root = ElementTree.fromstring(bar_chart([("a", 0)] * 3, title="t"))
    assert [float(b.get("height")) for b in root.findall(f"{SVG}rect")] == [0, 0, 0]


# -- admin ---------------------------------------------------------------------------------------


def changelist(admin_client: Any, **params: str) -> str:
    response = admin_client.get(reverse("admin:oauth_cc_application_changelist"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_change_page_shows_hourly_and_daily_charts(admin_client, svc):
    application, _ = svc
    at_start_of_hour(application, 7)
    at_start_of_hour(application, 4, hours_ago=2)
    response = admin_client.get(reverse("admin:oauth_cc_application_change", args=[application.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    charts = [
        html[i : html.index("</svg>", i) + 6]
        for i in range(len(html))
        if html.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="oauth-cc-usage-chart"', i)
    ]
    assert len(charts) == 2
    hourly, daily = (ElementTree.fromstring(c) for c in charts)
    hourly_values = [int(b.get("data-value")) for b in hourly.findall(f"{SVG}rect")]
    assert len(hourly_values) == 7 * 24 and hourly_values[-1] == 7 and hourly_values[-3] == 4
    assert sum(hourly_values) == 11
    daily_values = [int(b.get("data-value")) for b in daily.findall(f"{SVG}rect")]
    assert len(daily_values) == 7 and sum(daily_values) == 11 and daily_values[-1] in (7, 11)
    assert "Last hour: " in html


def test_add_page_has_no_usage(admin_client, db):
    html = admin_client.get(reverse("admin:oauth_cc_application_add")).content.decode()
    assert "oauth-cc-usage-chart" not in html


def test_list_flags_clients_not_caching_and_filters_them(
    admin_client, make_client, django_assert_max_num_queries
):
    busy, _ = make_client("busy-client")
    calm, _ = make_client("calm-client")
    short, _ = make_client("short-lived", lifetime=60)  # 60 tokens/hour is its normal rate
    at_start_of_hour(busy, 500)
    at_start_of_hour(calm, 1)
    at_start_of_hour(short, 500)
    html = changelist(admin_client)
    assert html.count('class="oauth-cc-not-caching"') == 1
    flagged = changelist(admin_client, caching="no")
    assert "busy-client" in flagged and "calm-client" not in flagged and "short-lived" not in flagged
    # The column costs no query per row.
    for i in range(10):
        make_client(f"extra-{i}")
    with django_assert_max_num_queries(12):
        changelist(admin_client)


def test_not_caching_filter_boundary(admin_client, make_client, monkeypatch):
    application, _ = make_client("edge")
    current = hour_of(time.time())
    monkeypatch.setattr(time, "time", lambda: current * HOUR + 3599)
    UsageBucket.objects.create(client_id=application.client_id, hour=current, count=10)
    assert "edge" not in changelist(admin_client, caching="no")
    UsageBucket.objects.filter(client_id=application.client_id).update(count=11)
    assert "edge" in changelist(admin_client, caching="no")


def test_not_caching_counts_the_previous_hour_in_the_list_and_the_filter(
    admin_client, make_client, monkeypatch
):
    application, _ = make_client("previous-hour")
    current = hour_of(time.time())
    monkeypatch.setattr(time, "time", lambda: current * HOUR)  # the previous hour weighs fully
    UsageBucket.objects.create(client_id=application.client_id, hour=current - 1, count=40)
    assert '40 <strong class="oauth-cc-not-caching"' in changelist(admin_client)
    assert "previous-hour" in changelist(admin_client, caching="no")


def test_not_caching_clients_include_this_workers_unflushed_tokens(make_client, monkeypatch):
    application, _ = make_client("unflushed")
    now = hour_of(time.time()) * HOUR + 10
    monkeypatch.setattr(time, "time", lambda: now)
    usage_counts.counter.reset(now=now)  # a flush interval that has not elapsed
    for _ in range(11):
        usage_counts.count_issued(application.client_id)
    assert not UsageBucket.objects.exists()
    assert usage_counts.not_caching_client_ids() == {application.client_id}


def test_unused_filter_lists_stale_clients(admin_client, fleet):
    def names(**params: str) -> set[str]:
        html = changelist(admin_client, **params)
        return {name for name in ("fresh", "recent", "idle", "never") if f">{name}<" in html}

    assert names(unused="30") == {"idle", "never"}
    assert names(unused="90") == set()
    assert names(unused="never") == {"fresh", "never"}
    assert names(secrets="unused30") == {"recent"}
    assert names(secrets="expired") == {"never"}
