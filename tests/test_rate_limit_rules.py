"""oauth_cc.common.ratelimit on its own: the rate parser, the sliding window's arithmetic, and the
caller's address read from REMOTE_ADDR or a trusted proxy's header (attacker bytes)."""

from __future__ import annotations

import ipaddress
import logging
import time

import pytest
from django.core.cache import caches
from django.test import RequestFactory, override_settings
from hypothesis import given
from hypothesis import strategies as st

from oauth_cc.common import ratelimit
from oauth_cc.common.ratelimit import Rate, RateError, address_from_header, address_key, hit, over, parse_rate

# -- parse_rate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1/second", Rate(1, 1)),
        ("5/s", Rate(5, 1)),
        ("5/sec", Rate(5, 1)),
        ("100/minute", Rate(100, 60)),
        ("100/min", Rate(100, 60)),
        ("100/m", Rate(100, 60)),
        ("100/hour", Rate(100, 3600)),
        ("100/h", Rate(100, 3600)),
        ("7/day", Rate(7, 86400)),
        ("7/d", Rate(7, 86400)),
        ("1000000000/day", Rate(1_000_000_000, 86400)),
    ],
)
def test_rates_in_every_accepted_spelling(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text",
    [
        "",
        "100",
        "/hour",
        "0/hour",  # would lock the client out: disable it instead
        "00/hour",
        "01/hour",
        "-1/hour",
        "+1/hour",
        "1.5/hour",
        "100/hours",
        "100/Hour",
        "100/hr",
        "100/ hour",
        " 100/hour",
        "100/hour ",
        "100/hour\n",
        "100//hour",
        "100/hour/x",
        "1_000/hour",
        "\u0661\u0660\u0660/hour",  # Arabic-Indic digits: int() would take them
        "100/week",
        "10000000000/day",
    ],
)
def test_anything_else_is_refused_with_what_to_write(text):
    with pytest.raises(RateError) as raised:
        parse_rate(text)
    assert 'a rate like "100/hour"' in str(raised.value)


def test_a_rate_above_a_billion_says_so():
    with pytest.raises(RateError, match="at most 1,000,000,000 per period"):
        parse_rate("1000000001/day")


@pytest.mark.parametrize("value", [None, 100, 1.5, b"100/hour", ["100/hour"]])
def test_non_strings_are_refused(value):
    with pytest.raises(RateError, match='Enter a rate like "100/hour"'):
        parse_rate(value)


def test_a_refused_rate_is_shown_safely():
    with pytest.raises(RateError) as raised:
        parse_rate("\x1b[31m" + "x" * 100)
    assert "\x1b" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x" * 40, "x" * 40),  # up to 40 printable characters: as written
        ("x" * 41, repr("x" * 40)),  # longer: its first 40, quoted
        ("1/hour\x07", repr("1/hour\x07")),  # short but not printable: quoted
    ],
)
def test_a_refused_rate_is_shown_whole_only_when_short_and_printable(text, shown):
    with pytest.raises(RateError) as raised:
        parse_rate(text)
    assert str(raised.value) == f'"{shown}" is not a rate. Enter {ratelimit.RATE_HELP}.'


@given(st.text(max_size=30))
def test_parse_rate_only_ever_raises_rate_error(text):
    try:
        rate = parse_rate(text)
    except RateError:
        return
    assert 1 <= rate.count <= ratelimit.MAX_COUNT and rate.period in (1, 60, 3600, 86400)


@given(st.integers(1, ratelimit.MAX_COUNT), st.sampled_from(sorted(ratelimit.PERIODS)))
def test_a_rate_prints_in_its_one_spelling_and_parses_back(count, unit):
    rate = parse_rate(f"{count}/{unit}")
    assert parse_rate(str(rate)) == rate
    assert str(rate) == f"{count}/{ {1: 'second', 60: 'minute', 3600: 'hour', 86400: 'day'}[rate.period] }"


# -- the sliding window --------------------------------------------------------------------------

HOUR = Rate(10, 3600)
T0 = 1_800_000_000.0  # the start of a one-hour window (a multiple of 3600)


def test_exactly_the_limit_is_admitted_in_one_window():
    decisions = [hit("t", "k", HOUR, now=T0 + i) for i in range(12)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))


def test_keys_and_scopes_are_counted_apart():
    for _ in range(10):
        assert hit("t", "k", HOUR, now=T0).allowed
    assert not hit("t", "k", HOUR, now=T0).allowed
    assert hit("t", "other", HOUR, now=T0).allowed
    assert hit("other-scope", "k", HOUR, now=T0).allowed


def test_a_refused_request_is_not_counted():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0)
    for _ in range(50):
        assert not hit("t", "k", HOUR, now=T0 + 1).allowed
    # Half-way through the next window the previous one weighs 10 * 0.5 = 5: five more fit.
    # Had the 50 refusals been counted, none would.
    later = [hit("t", "k", HOUR, now=T0 + 3600 + 1800).allowed for _ in range(6)]
    assert later == [True] * 5 + [False]


def test_the_previous_window_weighs_by_its_overlap():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0 + 3000)
    # A quarter into the next window: 10 * 0.75 = 7.5, so two more fit (9.5), a third does not.
    now = T0 + 3600 + 900
    assert [hit("t", "k", HOUR, now=now).allowed for _ in range(3)] == [True, True, False]


def test_a_burst_at_a_window_boundary_does_not_double_the_limit():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0 + 3599)
    assert not hit("t", "k", HOUR, now=T0 + 3601).allowed


def test_retry_after_when_this_window_is_full():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0)
    refused = hit("t", "k", HOUR, now=T0 + 600)
    # Next window starts in 3000 s; there 10 * (1 - g) + 1 <= 10 needs g >= 0.1: 360 s more.
    assert (refused.allowed, refused.remaining, refused.reset) == (False, 0, 3360)
    assert not hit("t", "k", HOUR, now=T0 + 3600 + 359).allowed
    assert hit("t", "k", HOUR, now=T0 + 3600 + 361).allowed


def test_retry_after_when_the_previous_window_still_weighs():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0)
    for _ in range(4):
        hit("t", "k", HOUR, now=T0 + 3600 + 1800)  # 10 * 0.5 + 4 = 9: nine of ten used
    assert hit("t", "k", HOUR, now=T0 + 3600 + 1800).allowed
    refused = hit("t", "k", HOUR, now=T0 + 3600 + 1800)
    # 10 * (1 - f) + 5 + 1 <= 10 needs f >= 0.6: 360 s after the half-way point.
    assert refused.reset == 360
    assert not hit("t", "k", HOUR, now=T0 + 3600 + 2159).allowed
    assert hit("t", "k", HOUR, now=T0 + 3600 + 2161).allowed


def test_an_admitted_request_reports_the_end_of_its_window():
    decision = hit("t", "k", HOUR, now=T0 + 600)
    assert (decision.allowed, decision.remaining, decision.reset) == (True, 9, 3000)
    assert decision.headers("token") == {
        "RateLimit-Policy": '"token";q=10;w=3600',
        "RateLimit": '"token";r=9;t=3000',
    }


def test_an_admitted_request_rounds_remaining_down_and_its_reset_up():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0)
    # 1000.5 s into the next window: 10 * (1 - 1000.5/3600) + 1 = 8.22 used, 1.78 left;
    # the window ends in 2599.5 s.
    decision = hit("t", "k", HOUR, now=T0 + 3600 + 1000.5)
    assert (decision.allowed, decision.remaining, decision.reset) == (True, 1, 2600)


def test_a_limit_of_one_held_by_the_previous_window_waits_for_this_window_to_end():
    one = Rate(1, 3600)
    assert hit("t", "k", one, now=T0).allowed
    # Half-way into the next window the previous request still weighs 0.5: 1.5 > 1. Only in
    # the window after, where this one has no requests, does one fit: in 1800 s.
    refused = hit("t", "k", one, now=T0 + 3600 + 1800)
    assert (refused.allowed, refused.remaining, refused.reset) == (False, 0, 1800)


@pytest.fixture
def wall_clock(monkeypatch) -> list[float]:
    """``time.time`` moved by hand: the counters and the cache's own expiry both follow it."""
    now = [T0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def test_a_window_count_outlives_its_window_until_the_next_one_has_read_it(wall_clock):
    for _ in range(10):
        assert hit("t", "k", HOUR).allowed
    # One second into the next window the previous one still weighs 10 * 3599/3600: full.
    wall_clock[0] = T0 + 3600 + 1
    refused = hit("t", "k", HOUR)
    assert (refused.allowed, refused.remaining) == (False, 0)


def test_a_noted_failure_outlives_its_window_until_the_next_one_has_read_it(wall_clock):
    rate = Rate(3, 60)
    for _ in range(3):
        ratelimit.note([("f", "a", rate)])
    wall_clock[0] = T0 + 60 + 1
    refusal = over([("f", "a", rate)])
    assert refusal is not None and not refusal.allowed


def test_over_reads_without_counting():
    rate = Rate(3, 60)
    checks = [("f", "a", rate)]
    for _ in range(5):
        assert over(checks, now=T0) is None
    for _ in range(2):
        ratelimit.note(checks, now=T0)
    assert over(checks, now=T0) is None
    ratelimit.note(checks, now=T0)
    refusal = over(checks, now=T0 + 15)
    # Next window in 45 s; there 3 * (1 - g) + 1 <= 3 needs g >= 1/3: 20 s more.
    assert refusal is not None and refusal.reset == 45 + 20
    assert over([("f", "b", rate)], now=T0) is None


def test_over_reports_the_first_full_check():
    lenient, strict = Rate(100, 60), Rate(1, 3600)
    ratelimit.note([("f", "a", lenient), ("g", "a", strict)], now=T0)
    refusal = over([("f", "a", lenient), ("g", "a", strict)], now=T0)
    assert refusal is not None and refusal.rate == strict


def test_an_admitted_request_in_the_last_second_of_its_window_resets_in_one_second():
    decision = hit("t", "k", HOUR, now=T0 + 3599.5)
    assert (decision.allowed, decision.remaining, decision.reset) == (True, 9, 1)


def test_retry_after_can_be_a_single_second():
    for _ in range(10):
        hit("t", "k", HOUR, now=T0)
    # 359.5 s into the next window the previous one weighs 10 * (1 - 359.5/3600) = 9.0014:
    # one more is 10.0014, over. At 360 s it weighs 9 and one fits: half a second away.
    refused = hit("t", "k", HOUR, now=T0 + 3600 + 359.5)
    assert (refused.allowed, refused.remaining, refused.reset) == (False, 0, 1)


def test_over_with_nothing_counted_admits_a_limit_of_one():
    one = [("f", "a", Rate(1, 60))]
    assert over(one, now=T0) is None
    ratelimit.note(one, now=T0)
    refusal = over(one, now=T0)
    assert refusal is not None and (refusal.allowed, refusal.remaining) == (False, 0)


def test_over_waits_for_the_previous_windows_weight_to_shrink():
    rate = Rate(2, 60)
    for _ in range(2):
        ratelimit.note([("f", "a", rate)], now=T0)
    # A quarter into the next window the previous two weigh 1.5: one more would be 2.5.
    # Half-way they weigh 1 and one fits: 15 s away.
    refusal = over([("f", "a", rate)], now=T0 + 60 + 15)
    assert refusal is not None
    assert (refusal.allowed, refusal.rate, refusal.remaining, refusal.reset) == (False, rate, 0, 15)


def counter(scope: str, rate: Rate, now: float) -> int | None:
    current_key, _, _ = ratelimit._keys(scope, "k", rate, now)
    return caches["default"].get(current_key)


@pytest.mark.parametrize("count", ["hit", "note"])
def test_a_counter_is_dropped_two_periods_and_a_second_after_it_was_created(wall_clock, count):
    """Long enough for the next window to read it (up to two periods later), and not longer:
    every client_id an attacker makes up is a counter in the cache, which must not pile up."""
    rate = Rate(3, 60)
    if count == "hit":
        assert hit("t", "k", rate).allowed
    else:
        ratelimit.note([("t", "k", rate)])
    wall_clock[0] = T0 + 120.5
    assert counter("t", rate, T0) == 1
    wall_clock[0] = T0 + 121
    assert counter("t", rate, T0) is None


@pytest.fixture
def cache_calls(monkeypatch) -> list[tuple[str, str]]:
    """The ``incr`` and ``add`` calls the counter makes, in order, with their keys."""
    cache = caches["default"]
    calls: list[tuple[str, str]] = []
    for name in ("incr", "add"):
        real = getattr(cache, name)

        def record(key, *args, _name=name, _real=real, **kwargs):
            calls.append((_name, key))
            return _real(key, *args, **kwargs)

        monkeypatch.setattr(cache, name, record)
    return calls


def test_an_existing_counter_costs_one_incr(cache_calls):
    key, _, _ = ratelimit._keys("t", "k", HOUR, T0)
    hit("t", "k", HOUR, now=T0)
    assert cache_calls == [("incr", key), ("add", key)]  # the first: missing, so created
    cache_calls.clear()
    assert hit("t", "k", HOUR, now=T0).remaining == 8
    assert cache_calls == [("incr", key)]


def test_a_counter_another_worker_creates_meanwhile_is_counted_not_let_through(monkeypatch):
    """The race in the counter: missing at the ``incr``, present at the ``add``."""
    cache = caches["default"]
    key, _, _ = ratelimit._keys("t", "k", HOUR, T0)
    real_incr = cache.incr
    raced: list[str] = []

    def incr(k, *args, **kwargs):
        if not raced:
            raced.append(k)
            cache.add(key, 10, timeout=60)  # the other worker's ten requests land now
            raise ValueError(f"Key '{k}' not found")
        return real_incr(k, *args, **kwargs)

    monkeypatch.setattr(cache, "incr", incr)
    refused = hit("t", "k", HOUR, now=T0)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert cache.get(key) == 10  # the refused one taken back out


OUTAGE = "oauth_cc could not reach the cache to count {}; {}"
LETTING_THROUGH = "letting requests through (RATE_LIMIT_FAIL_OPEN)"


@pytest.fixture
def dead_cache(monkeypatch) -> None:
    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    cache = caches["default"]
    for name in ("incr", "add", "get", "get_many", "decr"):
        monkeypatch.setattr(cache, name, down)
    ratelimit.reset_outage_log()
    yield
    ratelimit.reset_outage_log()


def outage_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "oauth_cc.ratelimit"]


def test_a_dead_cache_admits_with_the_whole_rate_left_and_says_why(dead_cache, caplog):
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    decision = hit("token", "k", HOUR, now=T0 + 600)
    assert (decision.allowed, decision.remaining, decision.reset) == (True, 10, 3600)
    [record] = outage_records(caplog)
    assert record.getMessage() == OUTAGE.format("token requests", LETTING_THROUGH)
    # With the cache's own error attached: it says which host and why.
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)


@pytest.mark.parametrize("step", ["over", "note"])
def test_a_dead_cache_while_counting_failures_is_logged_as_such(dead_cache, caplog, step):
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    checks = [("f", "a", Rate(3, 60))]
    if step == "over":
        assert over(checks, now=T0) is None
    else:
        ratelimit.note(checks, now=T0)
    [record] = outage_records(caplog)
    assert record.getMessage() == OUTAGE.format("failed authentications", LETTING_THROUGH)


def test_a_dead_cache_failing_closed_refuses_and_says_so(dead_cache, caplog):
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    closed = {"ISSUER": "http://testserver", "RATE_LIMIT_FAIL_OPEN": False}
    with override_settings(OAUTH_CC=closed):
        with pytest.raises(ratelimit.CacheUnavailable) as raised:
            over([("f", "a", Rate(3, 60))], now=T0)
        ratelimit.note([("f", "a", Rate(3, 60))], now=T0)  # never raises: already refusing
    assert raised.value.args == ("failed authentications",)
    [record] = outage_records(caplog)
    assert record.getMessage() == OUTAGE.format("failed authentications", "refusing requests")


def test_a_cache_outage_is_logged_at_once_then_once_a_minute(monkeypatch, caplog):
    """Also in the first minute of the monotonic clock (a host that has just booted)."""
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    clock = [5.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    ratelimit.reset_outage_log()
    logged = []
    for now in (5.0, 6.0, 64.5, 65.0, 66.0, 125.0):
        clock[0] = now
        before = len(outage_records(caplog))
        ratelimit.cache_failed("token requests")
        logged.append(len(outage_records(caplog)) - before)
    assert logged == [1, 0, 0, 1, 0, 1]
    ratelimit.reset_outage_log()  # as after a settings change: the next outage is logged again
    clock[0] = 126.0
    ratelimit.cache_failed("token requests")
    assert len(outage_records(caplog)) == 4


def test_ident_is_a_fixed_length_hex_for_any_client_id():
    values = ["a", "a" * 10_000, "x y\n\x00", "\udcff", "ü"]
    keys = [ratelimit.ident(v) for v in values]
    assert len(set(keys)) == len(values)
    assert all(len(k) == 32 and all(c in "0123456789abcdef" for c in k) for k in keys)


# -- the caller's address --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("  203.0.113.7\t", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::1", "::/64"),
        # The longest spelling of an address (45 characters) is still read.
        ("0000:0000:0000:0000:0000:ffff:203.100.113.107", "203.100.113.107"),
    ],
)
def test_addresses_are_keyed_in_one_spelling(text, key):
    assert address_key(text) == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unknown",
        "203.0.113.7:8080",
        "[2001:db8::1]",
        "[2001:db8::1]:443",
        "fe80::1%eth0",
        "203.0.113.07",
        "203.0.113",
        "203.0.113.256",
        "\u0662\u0660\u0663.0.113.7",
        "203.0.113.7\n",
        "X203.0.113.7X",  # only spaces and tabs are trimmed
        "203.0.113.7, 198.51.100.1",
        "2001:db8::1" + ":1" * 50,
        "1" * 100,
        None,
        42,
    ],
)
def test_anything_but_a_bare_address_is_not_an_address(text):
    assert address_key(text) is None


@pytest.mark.parametrize(
    ("header", "proxies", "key"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # the client wrote 6.6.6.6 itself
        ("6.6.6.6,203.0.113.7", 1, "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        ("1.1.1.1, 6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # counted from the right
        ("1.1.1.1, 6.6.6.6, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        ("203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        ("10.0.0.2", 2, None),  # fewer entries than proxies: not written by them
        ("garbage, 203.0.113.7", 1, "203.0.113.7"),
        ("203.0.113.7, garbage", 1, None),
        ("203.0.113.7,", 1, None),
        ("", 1, None),
        ("203.0.113.7", 0, None),
    ],
)
def test_the_client_is_the_entry_the_last_trusted_proxy_wrote(header, proxies, key):
    assert address_from_header(header, proxies) == key


@given(junk=st.text(max_size=200), last=st.ip_addresses(), proxies=st.integers(1, 4))
def test_bytes_left_of_the_trusted_entries_never_matter(junk, last, proxies):
    hops = ", ".join(["10.0.0.1"] * (proxies - 1))
    header = f"{junk}, {last}" + (f", {hops}" if hops else "")
    assert address_from_header(header, proxies) == address_key(str(last))


@given(st.text(max_size=100), st.integers(1, 3))
def test_a_forwarding_header_yields_a_normalised_address_or_nothing(header, proxies):
    key = address_from_header(header, proxies)
    if key is not None:
        if "/" in key:
            assert ipaddress.IPv6Network(key).prefixlen == 64
        else:
            assert str(ipaddress.ip_address(key)) == key


def meta_request(**meta: str):
    request = RequestFactory().get("/")
    request.META.update(meta)
    return request


def test_remote_addr_is_the_caller_without_a_proxy_setting():
    request = meta_request(REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert ratelimit.client_address(request) == "198.51.100.1"


def test_a_configured_header_names_the_caller():
    request = meta_request(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    with override_settings(
        OAUTH_CC={"ISSUER": "http://testserver", "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR"}
    ):
        assert ratelimit.client_address(request) == "203.0.113.7"
    with override_settings(
        OAUTH_CC={
            "ISSUER": "http://testserver",
            "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
            "TRUSTED_PROXY_COUNT": 2,
        }
    ):
        assert ratelimit.client_address(request) == "6.6.6.6"


def test_a_missing_or_bad_header_falls_back_to_remote_addr():
    settings = {"ISSUER": "http://testserver", "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR"}
    with override_settings(OAUTH_CC=settings):
        assert ratelimit.client_address(meta_request(REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
        bad = meta_request(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7:1234")
        assert ratelimit.client_address(bad) == "10.0.0.2"
        assert ratelimit.client_address(meta_request(REMOTE_ADDR="")) is None


FORWARDED_WARNING = (
    "Requests carry X-Forwarded-For or Forwarded but OAUTH_CC['CLIENT_IP_HEADER'] is not set: "
    "failed authentications are counted per REMOTE_ADDR, which behind a proxy is the proxy's "
    "address, shared by every caller. If a proxy you run sets that header, set "
    "CLIENT_IP_HEADER and TRUSTED_PROXY_COUNT (see the README's Rate limits section)."
)


@pytest.mark.parametrize(
    ("meta", "warned"),
    [
        ({}, False),
        ({"HTTP_X_FORWARDED_FOR": "203.0.113.7"}, True),
        ({"HTTP_FORWARDED": "for=203.0.113.7"}, True),
        ({"HTTP_X_FORWARDED_FOR": "203.0.113.7", "HTTP_FORWARDED": "for=203.0.113.7"}, True),
    ],
)
def test_a_forwarding_header_without_client_ip_header_is_warned_about(caplog, meta, warned):
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    ratelimit.reset_outage_log()
    try:
        assert ratelimit.client_address(meta_request(REMOTE_ADDR="10.0.0.2", **meta)) == "10.0.0.2"
    finally:
        ratelimit.reset_outage_log()
    messages = [r.getMessage() for r in caplog.records if r.name == "oauth_cc.ratelimit"]
    assert messages == ([FORWARDED_WARNING] if warned else [])
