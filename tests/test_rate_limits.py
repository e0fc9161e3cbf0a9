"""Rate limits through HTTP, the admin, the command and the checks: the per-client token limit,
the failed-authentication limits, the DRF throttle, and a cache that is down."""

from __future__ import annotations

import logging
import time
from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from oauth_cc.common import ratelimit
from oauth_cc.issuer import client_auth, clients, state
from oauth_cc.models import Application, ClientSecret
from oauth_cc.signals import token_issued

from .conftest import basic_auth, form_post

BASE = {"ISSUER": "http://testserver", "JWKS_URI_ALLOW_INSECURE": True}
NO_FAILURE_LIMITS = {"FAILED_AUTH_RATE_PER_CLIENT_ID": None, "FAILED_AUTH_RATE_PER_ADDRESS": None}
#: Every limit a default turns on off.
NO_LIMITS = {**NO_FAILURE_LIMITS, "REVOCATION_FEED_RATE": None}
DEAD_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def limits(**values: Any) -> Any:
    return override_settings(OAUTH_CC={**BASE, **NO_FAILURE_LIMITS, **values})


def token_request(client: Any, client_id: str, secret: str, **extra: Any) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(client_id, secret),
        **extra,
    )


@pytest.fixture(autouse=True)
def _outage_log_each_test():
    ratelimit.reset_outage_log()
    yield
    ratelimit.reset_outage_log()


@pytest.fixture
def svc(make_client) -> tuple[Application, str]:
    return make_client("svc", scopes=["reports:read"])


LIMITED = "This client may request {} tokens; retry after {} seconds."


def assert_too_many(response: Any, description: str, retry_after: int | None = None) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body == {"error": "too_many_requests", "error_description": description}
    if retry_after is not None:
        assert response["Retry-After"] == str(retry_after)
    assert int(response["Retry-After"]) >= 1


# -- the per-client token limit --------------------------------------------------------------


def test_a_client_gets_its_limit_and_then_429(client, make_client):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="2/hour")
    sent: list[Any] = []
    token_issued.connect(lambda **kw: sent.append(kw), weak=False, dispatch_uid="rl-test")
    try:
        first = token_request(client, application.client_id, secret)
        second = token_request(client, application.client_id, secret)
        application.refresh_from_db()
        used_at = application.last_used_at
        third = token_request(client, application.client_id, secret)
    finally:
        token_issued.disconnect(dispatch_uid="rl-test")
    assert first.status_code == second.status_code == 200
    assert first["RateLimit-Policy"] == '"token";q=2;w=3600'
    assert first["RateLimit"].startswith('"token";r=1;t=')
    assert second["RateLimit"].startswith('"token";r=0;t=')
    retry = int(third["Retry-After"])
    assert_too_many(third, f"This client may request 2/hour tokens; retry after {retry} seconds.")
    # The next window, once this one weighs less than one request there: half-way into it.
    assert 1800 < retry <= 3600 + 1800
    assert third["RateLimit-Policy"] == '"token";q=2;w=3600'
    assert third["RateLimit"] == f'"token";r=0;t={retry}'
    assert "access_token" not in third.json()
    assert len(sent) == 2  # no signal for the refused request
    application.refresh_from_db()
    assert application.last_used_at == used_at


def test_the_site_default_applies_to_a_client_without_its_own(client, svc):
    application, secret = svc
    with limits(TOKEN_RATE_LIMIT="1/minute"):
        assert token_request(client, application.client_id, secret).status_code == 200
        response = token_request(client, application.client_id, secret)
    assert_too_many(response, LIMITED.format("1/minute", response["Retry-After"]))


def test_a_clients_own_limit_overrides_the_site_default(client, make_client):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="3/minute")
    with limits(TOKEN_RATE_LIMIT="1/minute"):
        codes = [token_request(client, application.client_id, secret).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_no_limit_no_headers(client, svc):
    application, secret = svc
    response = token_request(client, application.client_id, secret)
    assert response.status_code == 200
    assert "RateLimit" not in response and "RateLimit-Policy" not in response


def test_each_client_has_its_own_count(client, make_client):
    a, a_secret = make_client("a", scopes=["reports:read"], token_limit="1/hour")
    b, b_secret = make_client("b", scopes=["reports:read"], token_limit="1/hour")
    assert token_request(client, a.client_id, a_secret).status_code == 200
    assert token_request(client, b.client_id, b_secret).status_code == 200
    response = token_request(client, a.client_id, a_secret)
    assert_too_many(response, LIMITED.format("1/hour", response["Retry-After"]))


def test_failed_authentication_does_not_use_the_token_limit(client, make_client):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="1/hour")
    for _ in range(3):
        assert token_request(client, application.client_id, "wrong").status_code == 401
    assert token_request(client, application.client_id, secret).status_code == 200


@pytest.fixture
def jwt_client(make_client) -> tuple[Application, Any]:
    from .assertion_helpers import generate_key, jwks_of

    key = generate_key("ES256")
    application, _ = make_client(
        "signer",
        scopes=["reports:read"],
        auth_method="private_key_jwt",
        jwks=jwks_of(key),
        token_limit="1/hour",
    )
    return application, key


def signed(application: Application, key: Any) -> str:
    from .assertion_helpers import TOKEN_PATH, assertion_claims

    return key.sign(assertion_claims(application.client_id, "http://testserver" + TOKEN_PATH))


def test_a_limited_private_key_jwt_request_keeps_its_assertion(client, jwt_client):
    from .assertion_helpers import post_assertion

    application, key = jwt_client
    assert post_assertion(client, signed(application, key), scope="reports:read").status_code == 200
    kept = signed(application, key)
    assert post_assertion(client, kept, scope="reports:read").status_code == 429
    # Not recorded as used: once the client may ask again, the same assertion still works.
    Application.objects.filter(pk=application.pk).update(token_limit="")
    state.reset_all()
    assert post_assertion(client, kept, scope="reports:read").status_code == 200


def test_failures_stop_assertion_checks_too(client, jwt_client, monkeypatch):
    from .assertion_helpers import post_assertion

    application, key = jwt_client
    calls = []
    verify = client_auth.verify_client_assertion
    monkeypatch.setattr(
        client_auth, "verify_client_assertion", lambda *a, **k: calls.append(1) or verify(*a, **k)
    )
    wrong_key_assertion = signed(
        application,
        __import__("tests.assertion_helpers").assertion_helpers.generate_key("ES256", kid=key.kid),
    )
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="2/minute"):
        codes = [post_assertion(client, wrong_key_assertion).status_code for _ in range(5)]
        assert post_assertion(client, signed(application, key)).status_code == 429
    assert codes == [401, 401, 429, 429, 429]
    assert len(calls) == 2


def test_the_token_endpoint_makes_no_query_with_limits_on(client, make_client, django_assert_num_queries):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="100/minute")
    with limits(
        TOKEN_RATE_LIMIT="100/minute",
        FAILED_AUTH_RATE_PER_CLIENT_ID="100/minute",
        FAILED_AUTH_RATE_PER_ADDRESS="100/minute",
    ):
        assert token_request(client, application.client_id, secret).status_code == 200  # warms up
        with django_assert_num_queries(0):
            response = token_request(client, application.client_id, secret)
    assert response.status_code == 200
    assert response["RateLimit"].startswith('"token";r=98;')


# -- revocation feed reads --------------------------------------------------------------------------

FEED = "/oauth/revocation-feed/"
FEED_LIMITED = "This client may read the revocation feed {}; retry after {} seconds."


@pytest.fixture
def reader(make_client) -> tuple[Application, str]:
    return make_client("resource-service", can_introspect=True)


def read_feed(client: Any, credentials: tuple[Application, str], **headers: Any) -> Any:
    application, secret = credentials
    return client.get(FEED, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret), **headers)


def test_the_default_feed_rate_is_ten_reads_a_second():
    # A reader polls every REVOCATION_FEED_POLL_SECONDS (2 s) per site: room for several sites
    # (or a poll a second from several hosts) sharing one client.
    from oauth_cc.conf import DEFAULTS

    assert ratelimit.parse_rate(DEFAULTS["REVOCATION_FEED_RATE"]) == ratelimit.Rate(600, 60)


def test_feed_reads_are_limited_per_client_304s_included(client, reader, make_client):
    other = make_client("second-service", can_introspect=True)
    with limits(REVOCATION_FEED_RATE="2/minute"):
        first = read_feed(client, reader)
        unchanged = read_feed(client, reader, HTTP_IF_NONE_MATCH=first["ETag"])
        refused = read_feed(client, reader, HTTP_IF_NONE_MATCH=first["ETag"])
        elsewhere = read_feed(client, other)
    assert (first.status_code, unchanged.status_code, elsewhere.status_code) == (200, 304, 200)
    assert first["RateLimit-Policy"] == unchanged["RateLimit-Policy"] == '"feed";q=2;w=60'
    assert first["RateLimit"].startswith('"feed";r=1;t=')
    assert unchanged["RateLimit"].startswith('"feed";r=0;t=')
    retry = int(refused["Retry-After"])
    assert_too_many(refused, FEED_LIMITED.format("2/minute", retry))
    assert 1 <= retry <= 90
    assert refused["RateLimit-Policy"] == '"feed";q=2;w=60'
    assert refused["RateLimit"] == f'"feed";r=0;t={retry}'
    assert "ETag" not in refused


def test_a_post_read_of_the_feed_is_counted_too(client, make_client):
    application, secret = make_client("post-reader", can_introspect=True, auth_method="client_secret_post")
    form = {"client_id": application.client_id, "client_secret": secret}
    with limits(REVOCATION_FEED_RATE="1/hour"):
        assert form_post(client, FEED, form).status_code == 200
        refused = form_post(client, FEED, form)
    assert_too_many(refused, FEED_LIMITED.format("1/hour", refused["Retry-After"]))


def test_a_limited_feed_read_keeps_its_assertion(client, make_client):
    from .assertion_helpers import ASSERTION_TYPE, generate_key, jwks_of

    key = generate_key("ES256")
    application, _ = make_client(
        "jwt-reader", can_introspect=True, auth_method="private_key_jwt", jwks=jwks_of(key)
    )

    def form() -> dict[str, str]:
        from .assertion_helpers import assertion_claims

        claims = assertion_claims(application.client_id, "http://testserver" + FEED)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": key.sign(claims)}

    kept = form()
    with limits(REVOCATION_FEED_RATE="1/hour"):
        assert form_post(client, FEED, form()).status_code == 200
        assert form_post(client, FEED, kept).status_code == 429
    with limits(REVOCATION_FEED_RATE=None):
        # Not recorded as used by the refused read: it still works once the reader may read.
        response = form_post(client, FEED, kept)
    assert response.status_code == 200
    assert "RateLimit" not in response


def test_failed_feed_authentication_does_not_use_the_feed_limit(client, reader):
    application, _ = reader
    with limits(REVOCATION_FEED_RATE="1/hour"):
        for _ in range(3):
            assert read_feed(client, (application, "wrong")).status_code == 401
        assert read_feed(client, reader).status_code == 200


def test_a_dead_cache_closes_the_feed_when_failing_closed(client, reader):
    failing_closed = {**BASE, **NO_FAILURE_LIMITS, "RATE_LIMIT_FAIL_OPEN": False}
    with override_settings(CACHES=DEAD_REDIS, OAUTH_CC=failing_closed):
        response = read_feed(client, reader)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The revocation feed is unavailable right now; retry shortly.",
    }
    assert response["Retry-After"] == "5"


def test_a_dead_cache_lets_feed_reads_through_when_failing_open(client, reader, caplog):
    with override_settings(CACHES=DEAD_REDIS, OAUTH_CC={**BASE, **NO_FAILURE_LIMITS}):
        response = read_feed(client, reader)
    assert response.status_code == 200
    assert "oauth_cc could not reach the cache to count feed requests" in caplog.text


# -- failed authentication ------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How often the expensive steps ran: the client lookup and the secret's hash."""
    calls = {"lookup": 0, "hash": 0}
    lookup, digest = state.client_cache.client, client_auth.hash_secret

    def counting_lookup(client_id: str) -> Any:
        calls["lookup"] += 1
        return lookup(client_id)

    def counting_hash(secret: str) -> str:
        calls["hash"] += 1
        return digest(secret)

    monkeypatch.setattr(state.client_cache, "client", counting_lookup)
    monkeypatch.setattr(client_auth, "hash_secret", counting_hash)
    return calls


FAILED = "Too many failed client authentications; retry after {} seconds."


def test_failures_from_one_address_stop_the_work_and_then_everything_from_it(client, svc, counted):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="3/minute"):
        for _ in range(3):
            assert token_request(client, application.client_id, "wrong").status_code == 401
        assert counted == {"lookup": 3, "hash": 3}
        for _ in range(20):
            response = token_request(client, "anyone", "wrong")
            assert_too_many(response, FAILED.format(response["Retry-After"]))
        # A refused request costs one hash (to see whether it is a secret known to be good) and
        # no lookup. The right secret of a client that has not authenticated lately is refused
        # too: it cannot be told apart without a query.
        assert token_request(client, application.client_id, secret).status_code == 429
        assert counted == {"lookup": 3, "hash": 3 + 21}
        # Another address is not affected.
        assert (
            token_request(client, application.client_id, secret, REMOTE_ADDR="198.51.100.9").status_code
            == 200
        )


def test_failures_for_one_client_id_are_refused_from_every_address(client, svc, counted):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="4/minute", FAILED_AUTH_RATE_PER_ADDRESS="100/minute"):
        for i in range(4):
            response = token_request(client, application.client_id, "wrong", REMOTE_ADDR=f"198.51.100.{i}")
            assert response.status_code == 401
        response = token_request(client, application.client_id, secret, REMOTE_ADDR="203.0.113.1")
        assert_too_many(response, FAILED.format(response["Retry-After"]))
        assert counted["hash"] == 5  # the four failures, and one to see the secret is not known good


@pytest.fixture
def cache_reads(monkeypatch) -> list[list[str]]:
    """The keys of every read of the shared failure counts (``ratelimit.over``)."""
    reads: list[list[str]] = []
    over = ratelimit.over

    def counting_over(checks: Any, **kwargs: Any) -> Any:
        reads.append([scope for scope, _, _ in checks])
        return over(checks, **kwargs)

    monkeypatch.setattr(ratelimit, "over", counting_over)
    return reads


def test_a_caller_that_has_not_failed_here_costs_no_cache_read(client, svc, cache_reads):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="5/minute", FAILED_AUTH_RATE_PER_ADDRESS="5/minute"):
        for _ in range(3):
            assert token_request(client, application.client_id, secret).status_code == 200
        assert cache_reads == []
        assert token_request(client, application.client_id, "wrong").status_code == 401
        assert cache_reads == []  # the first failure is checked, and counted, after the work
        assert token_request(client, application.client_id, secret).status_code == 200
    # From now on this worker reads the shared counts of that address and client_id first.
    assert cache_reads == [["auth-fail-addr", "auth-fail-id"]]


def test_failures_counted_by_other_workers_stop_this_one_after_its_first_failure(client, svc, counted):
    application, secret = svc
    rate = ratelimit.parse_rate("3/minute")
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="3/minute", FAILED_AUTH_RATE_PER_ADDRESS="100/minute"):
        # Another worker (or host) saw three failures for this client_id: the shared count is full.
        for _ in range(3):
            ratelimit.note([("auth-fail-id", ratelimit.ident(application.client_id), rate)])
        # This worker has seen none, so the right secret is checked and accepted,
        assert token_request(client, application.client_id, secret).status_code == 200
        # and one wrong one is checked, refused and remembered;
        assert token_request(client, application.client_id, "wrong").status_code == 401
        assert counted["hash"] == 2
        # after which every attempt is refused without a query; only the secret this worker
        # holds still gets through (one hash each).
        response = token_request(client, application.client_id, "wrong-again")
        assert_too_many(response, FAILED.format(response["Retry-After"]))
        assert counted["hash"] == 3
        assert token_request(client, application.client_id, secret).status_code == 200
        assert counted["hash"] == 5  # one for the held-secret look, one for the authentication


def test_failing_closed_reads_the_counts_of_every_caller(client, svc, cache_reads):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="5/minute", RATE_LIMIT_FAIL_OPEN=False):
        assert token_request(client, application.client_id, secret).status_code == 200
    assert cache_reads == [["auth-fail-id"]]


def test_an_unknown_client_id_is_counted_like_a_known_one(client, svc):
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="2/minute", FAILED_AUTH_RATE_PER_ADDRESS="100/minute"):
        codes = [token_request(client, "no-such-client", "x").status_code for _ in range(3)]
        known = [token_request(client, svc[0].client_id, "x").status_code for _ in range(3)]
    assert codes == known == [401, 401, 429]


def test_malformed_credentials_count_against_the_address(client, svc):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="2/minute"):
        for _ in range(2):
            response = form_post(
                client, "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION="Basic !!"
            )
            assert response.status_code == 401
        assert token_request(client, application.client_id, secret).status_code == 429


def test_malformed_credentials_past_the_limit_are_refused_unchecked(client, svc):
    def malformed() -> Any:
        return form_post(
            client, "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION="Basic !!"
        )

    with limits(FAILED_AUTH_RATE_PER_ADDRESS="2/minute"):
        assert [malformed().status_code for _ in range(2)] == [401, 401]
        response = malformed()
    assert_too_many(response, FAILED.format(response["Retry-After"]))


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The worker's monotonic clock, moved by hand (how long a caller stays a suspect)."""
    now = [1_000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_a_caller_that_failed_is_read_first_for_two_periods_then_no_more(client, svc, cache_reads, clock):
    """The sliding window looks back two periods, so a failure matters, and is read, that long."""
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="5/minute", FAILED_AUTH_RATE_PER_ADDRESS="5/minute"):
        assert token_request(client, application.client_id, "wrong").status_code == 401
        clock[0] += 61  # past one period, inside two
        assert token_request(client, application.client_id, secret).status_code == 200
        assert cache_reads == [["auth-fail-addr", "auth-fail-id"]]
        clock[0] += 60  # 121 s: past two periods
        assert token_request(client, application.client_id, secret).status_code == 200
    assert len(cache_reads) == 1


def test_successes_are_not_counted_as_failures(client, svc):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_CLIENT_ID="2/minute", FAILED_AUTH_RATE_PER_ADDRESS="2/minute"):
        codes = [token_request(client, application.client_id, secret).status_code for _ in range(5)]
    assert codes == [200] * 5


def test_the_failure_limit_guards_introspection_and_revocation_too(client, svc):
    application, _ = svc
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="1/minute"):
        auth = basic_auth(application.client_id, "wrong")
        assert (
            form_post(client, "/oauth/introspect/", {"token": "x"}, HTTP_AUTHORIZATION=auth).status_code
            == 401
        )
        response = form_post(client, "/oauth/revoke/", {"token": "x"}, HTTP_AUTHORIZATION=auth)
    assert_too_many(response, FAILED.format(response["Retry-After"]))


def test_the_address_comes_from_the_trusted_header_when_configured(client, svc):
    application, secret = svc
    proxied = {"REMOTE_ADDR": "10.0.0.2"}
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="1/minute", CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR"):
        bad = token_request(
            client, application.client_id, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.5", **proxied
        )
        assert bad.status_code == 401
        # A spoofed left-most entry does not move the caller to a fresh key.
        spoofed = token_request(
            client, application.client_id, secret, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.5", **proxied
        )
        assert_too_many(spoofed, FAILED.format(spoofed["Retry-After"]))
        other = token_request(
            client, application.client_id, secret, HTTP_X_FORWARDED_FOR="203.0.113.6", **proxied
        )
        assert other.status_code == 200


# -- a cache that is down -------------------------------------------------------------------------


def test_a_dead_cache_fails_open_by_default_and_says_so_once(client, make_client, caplog):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="1/hour")
    with override_settings(CACHES=DEAD_REDIS), caplog.at_level(logging.WARNING, "oauth_cc.ratelimit"):
        codes = [token_request(client, application.client_id, secret).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    outage = [r for r in caplog.records if r.name == "oauth_cc.ratelimit"]
    assert len(outage) == 1 and "letting requests through" in outage[0].getMessage()


def test_a_dead_cache_fails_closed_when_configured(client, make_client):
    application, secret = make_client("svc", scopes=["reports:read"], token_limit="1/hour")
    with override_settings(
        CACHES=DEAD_REDIS, OAUTH_CC={**BASE, **NO_FAILURE_LIMITS, "RATE_LIMIT_FAIL_OPEN": False}
    ):
        response = token_request(client, application.client_id, secret)
    assert response.status_code == 503
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The token endpoint is unavailable right now; retry shortly.",
    }
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"


def test_a_dead_cache_closes_client_authentication_when_failing_closed(client, svc):
    application, secret = svc
    settings = {**BASE, "RATE_LIMIT_FAIL_OPEN": False, "FAILED_AUTH_RATE_PER_ADDRESS": "5/minute"}
    with override_settings(CACHES=DEAD_REDIS, OAUTH_CC=settings):
        response = token_request(client, application.client_id, secret)
    assert response.status_code == 503
    assert response.json()["error_description"] == (
        "Client authentication is unavailable right now; retry shortly."
    )


def test_a_dead_cache_with_failure_limits_fails_open(client, svc):
    application, secret = svc
    settings = {
        **BASE,
        "FAILED_AUTH_RATE_PER_ADDRESS": "1/minute",
        "FAILED_AUTH_RATE_PER_CLIENT_ID": "1/minute",
    }
    with override_settings(CACHES=DEAD_REDIS, OAUTH_CC=settings):
        assert token_request(client, application.client_id, "wrong").status_code == 401
        assert token_request(client, application.client_id, secret).status_code == 200


# -- DRF throttle ----------------------------------------------------------------------------------


def throttled(client: Any, token: str) -> Any:
    return client.get(reverse("throttled"), HTTP_AUTHORIZATION=f"Bearer {token}")


def drf_rates(rate: str | None) -> Any:
    from django.conf import settings

    return override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"oauth_cc_client": rate}}
    )


@pytest.mark.urls("tests.urls")
def test_the_throttle_counts_per_client_across_tokens(client, svc, make_client, token_for):
    application, secret = svc
    other, other_secret = make_client("other", scopes=["reports:read"])
    with drf_rates("2/minute"):
        first = token_for(application, secret, scope="reports:read")["access_token"]
        assert throttled(client, first).status_code == 200
        assert throttled(client, first).status_code == 200
        fresh = token_for(application, secret, scope="reports:read")[
            "access_token"
        ]  # a new token does not reset it
        refused = throttled(client, fresh)
        assert (
            throttled(
                client, token_for(other, other_secret, scope="reports:read")["access_token"]
            ).status_code
            == 200
        )
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 120
    assert refused.json()["detail"].startswith("Request was throttled.")


def test_the_throttle_leaves_requests_without_a_token_alone():
    from rest_framework.test import APIRequestFactory

    from oauth_cc.contrib.rest_framework import ClientRateThrottle

    with drf_rates("1/minute"):
        throttle = ClientRateThrottle()
        request = APIRequestFactory().get("/")
        request.auth = None
        assert all(throttle.allow_request(request, None) for _ in range(5))


@pytest.mark.urls("tests.urls")
def test_a_none_rate_turns_the_throttle_off(client, svc, token_for):
    application, secret = svc
    with drf_rates(None):
        token = token_for(application, secret, scope="reports:read")["access_token"]
        assert [throttled(client, token).status_code for _ in range(3)] == [200] * 3


def test_each_throttle_scope_has_its_own_budget_and_a_rate_set_on_the_class_applies(svc, token_for):
    from types import SimpleNamespace

    from oauth_cc.common.verification import check_access_token
    from oauth_cc.contrib.rest_framework import ClientRateThrottle

    class ReportsThrottle(ClientRateThrottle):
        scope = "reports"  # no DEFAULT_THROTTLE_RATES entry: the class's own rate is the one
        rate = "1/minute"

    application, secret = svc
    request = SimpleNamespace(
        auth=check_access_token(token_for(application, secret, scope="reports:read")["access_token"])
    )
    with drf_rates("3/minute"):
        reports, site = ReportsThrottle(), ClientRateThrottle()
        assert [reports.allow_request(request, None) for _ in range(2)] == [True, False]
        assert [site.allow_request(request, None) for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({}, "No throttle rate for the 'oauth_cc_client' scope"),
        ({"oauth_cc_client": "100/fortnight"}, "The 'oauth_cc_client' throttle rate is not valid"),
    ],
)
def test_a_missing_or_bad_throttle_rate_is_a_configuration_error(rates, message):
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from oauth_cc.contrib.rest_framework import ClientRateThrottle

    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        with pytest.raises(ImproperlyConfigured, match=message):
            ClientRateThrottle()


# -- operator surfaces: command, admin, checks ---------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


def test_the_command_sets_shows_and_clears_a_clients_limit(make_scope):
    import json

    make_scope("reports:read")
    created = json.loads(run("client", "create", "svc", "--token-limit", "100/min", "--json"))
    client_id = created["client_id"]
    assert Application.objects.get(client_id=client_id).token_limit == "100/minute"
    assert json.loads(run("client", "show", client_id, "--json"))["token_limit"] == "100/minute"
    assert "token limit:         100/minute" in run("client", "show", client_id)
    assert (
        run("client", "update", client_id, "--token-limit", "5/second")
        == f"Token limit of {client_id}: 5/second.\n"
    )
    assert Application.objects.get(client_id=client_id).token_limit == "5/second"
    assert run("client", "update", client_id, "--token-limit", "none") == (
        f"Token limit of {client_id}: the site default.\n"
    )
    assert Application.objects.get(client_id=client_id).token_limit == ""
    assert json.loads(run("client", "show", client_id, "--json"))["token_limit"] is None
    with limits(TOKEN_RATE_LIMIT="10/hour"):
        assert "token limit:         site default (10/hour)" in run("client", "show", client_id)


@pytest.mark.parametrize("value", ["0/hour", "100/fortnight", "lots", ""])
def test_the_command_refuses_a_bad_limit_and_changes_nothing(svc, value):
    application, _ = svc
    refusal = r'Enter a rate like "100/hour".* Or "none" for the site default\.'
    with pytest.raises(CommandError, match=refusal):
        run("client", "update", application.client_id, "--token-limit", value)
    with pytest.raises(CommandError, match='Or "none"'):
        run("client", "create", "other", "--token-limit", value)
    application.refresh_from_db()
    assert application.token_limit == ""
    assert not Application.objects.filter(name="other").exists()


def test_update_without_a_change_says_what_to_give(svc):
    with pytest.raises(CommandError, match="Nothing to change: give --token-limit RATE"):
        run("client", "update", svc[0].client_id)


def test_a_changed_limit_reaches_the_token_endpoint(client, svc):
    application, secret = svc
    assert token_request(client, application.client_id, secret).status_code == 200
    run("client", "update", application.client_id, "--token-limit", "1/hour")
    state.reset_all()  # as after STATE_REFRESH_SECONDS
    assert token_request(client, application.client_id, secret).status_code == 200
    response = token_request(client, application.client_id, secret)
    assert_too_many(response, LIMITED.format("1/hour", response["Retry-After"]))


def test_the_admin_edits_the_limit_in_its_one_spelling(admin_client, svc):
    from .test_admin import change_url, client_form, inline_management

    application, _ = svc
    form = {**client_form(name="svc"), **inline_management(application), "scopes": []}
    response = admin_client.post(change_url(application), {**form, "token_limit": "30/min"})
    assert response.status_code == 302
    application.refresh_from_db()
    assert application.token_limit == "30/minute"
    response = admin_client.post(change_url(application), {**form, "token_limit": "30 per minute"})
    assert response.status_code == 200
    assert "&quot;30 per minute&quot; is not a rate." in response.content.decode()
    application.refresh_from_db()
    assert application.token_limit == "30/minute"
    admin_client.post(change_url(application), {**form, "token_limit": ""})
    application.refresh_from_db()
    assert application.token_limit == ""


def test_the_model_refuses_a_bad_stored_limit(svc):
    from django.core.exceptions import ValidationError

    application, _ = svc
    application.token_limit = "0/hour"
    with pytest.raises(ValidationError, match="is not a rate"):
        application.full_clean()


def test_a_bad_limit_written_past_validation_falls_back_to_the_site_default(client, svc, caplog):
    application, secret = svc
    Application.objects.filter(pk=application.pk).update(token_limit="garbage")
    with limits(TOKEN_RATE_LIMIT="1/hour"):
        assert token_request(client, application.client_id, secret).status_code == 200
        assert token_request(client, application.client_id, secret).status_code == 429
    assert "invalid token_limit 'garbage'" in caplog.text


def ids(**oauth_cc: Any) -> list[str]:
    with override_settings(OAUTH_CC={**BASE, **oauth_cc}):
        return [m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("oauth_cc.")]


@pytest.mark.parametrize(
    "name",
    [
        "TOKEN_RATE_LIMIT",
        "FAILED_AUTH_RATE_PER_CLIENT_ID",
        "FAILED_AUTH_RATE_PER_ADDRESS",
        "REVOCATION_FEED_RATE",
    ],
)
def test_a_bad_rate_setting_is_e010(name):
    assert "oauth_cc.E010" not in ids(**{name: "10/minute"})
    assert "oauth_cc.E010" not in ids(**{name: None})
    assert "oauth_cc.E010" in ids(**{name: "10 a minute"})
    assert "oauth_cc.E010" in ids(**{name: 10})


@pytest.mark.parametrize("header", ["X-Forwarded-For", "HTTP_X_FORWARDED_FOR\n", "REMOTE_ADDR", 1])
def test_a_bad_client_ip_header_is_e011(header):
    assert "oauth_cc.E011" in ids(CLIENT_IP_HEADER=header)
    assert "oauth_cc.E011" not in ids(CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR")


@pytest.mark.parametrize("count", [0, -1, 1.5, "2", True])
def test_trusted_proxy_count_is_a_whole_number_from_one(count):
    assert "oauth_cc.E007" in ids(TRUSTED_PROXY_COUNT=count)
    assert "oauth_cc.E007" not in ids(TRUSTED_PROXY_COUNT=2)


def test_w106_limits_on_a_per_process_cache():
    # tests/settings.py: LocMemCache. The defaults turn the failure limits on.
    assert "oauth_cc.W106" in ids()
    assert "oauth_cc.W106" not in ids(**NO_LIMITS)
    assert "oauth_cc.W106" in ids(**NO_LIMITS, TOKEN_RATE_LIMIT="1/second")
    assert "oauth_cc.W106" in ids(**NO_FAILURE_LIMITS)  # the feed's limit, on by default
    redis = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    with override_settings(CACHES=redis):
        assert "oauth_cc.W106" not in ids()
    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=dummy):
        assert "oauth_cc.W106" in ids()


def test_w106_the_drf_throttle_alone_on_a_per_process_cache():
    from django.conf import settings

    throttle = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["oauth_cc.contrib.rest_framework.ClientRateThrottle"],
    }
    with override_settings(REST_FRAMEWORK=throttle):
        assert "oauth_cc.W106" in ids(**NO_LIMITS)


def test_w106_looks_at_the_cache_oauth_cc_counts_in_not_the_default():
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}
    with override_settings(CACHES={"default": locmem, "shared": redis}):
        assert "oauth_cc.W106" not in ids(CACHE_ALIAS="shared")
    with override_settings(CACHES={"default": redis, "local": locmem}):
        assert "oauth_cc.W106" in ids(CACHE_ALIAS="local")


@pytest.mark.urls("tests.urls")
def test_the_throttle_fails_closed_with_a_json_503_when_the_cache_is_down(client, svc, token_for):
    application, secret = svc
    token = token_for(application, secret, scope="reports:read")["access_token"]
    failing_closed = {**BASE, **NO_FAILURE_LIMITS, "RATE_LIMIT_FAIL_OPEN": False}
    with drf_rates("5/minute"), override_settings(CACHES=DEAD_REDIS, OAUTH_CC=failing_closed):
        response = throttled(client, token)
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Requests cannot be counted right now; try again shortly."}
    assert response["Retry-After"] == str(ratelimit.FAIL_CLOSED_RETRY_AFTER)


def test_requests_without_an_address_are_not_limited_as_one_address(client, svc):
    """Behind a proxy on a Unix socket REMOTE_ADDR is empty: one caller's failures must not
    lock every client out (the per-client_id limit still holds)."""
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="3/minute", FAILED_AUTH_RATE_PER_CLIENT_ID="3/minute"):
        for i in range(10):
            assert token_request(client, f"nobody-{i}", "wrong", REMOTE_ADDR="").status_code == 401
        assert token_request(client, application.client_id, secret, REMOTE_ADDR="").status_code == 200
        for _ in range(3):
            assert token_request(client, application.client_id, "wrong", REMOTE_ADDR="").status_code == 401
        response = token_request(client, application.client_id, "wrong", REMOTE_ADDR="")
        assert_too_many(response, FAILED.format(response["Retry-After"]))


def test_a_flood_from_a_shared_address_cannot_lock_out_a_client_in_use(client, svc, make_client, counted):
    """Behind a proxy without CLIENT_IP_HEADER every caller shares one address: a caller in use
    (its client and secret held by the worker) still gets tokens; anyone else gets 429 unchecked."""
    application, secret = svc
    other, other_secret = make_client("other", scopes=["reports:read"])
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="5/minute", FAILED_AUTH_RATE_PER_CLIENT_ID="5/minute"):
        assert token_request(client, application.client_id, secret).status_code == 200  # in use
        for i in range(5):
            assert token_request(client, f"attacker-{i}", "x").status_code == 401
        lookups = counted["lookup"]

        for i in range(20):
            response = token_request(client, f"attacker-{i}", "x")
            assert_too_many(response, FAILED.format(response["Retry-After"]))
        assert counted["lookup"] == lookups  # refused without a lookup
        assert token_request(client, application.client_id, secret).status_code == 200
        # A wrong secret for the client in use, and a client this worker does not hold: 429.
        assert token_request(client, application.client_id, "guess").status_code == 429
        assert token_request(client, other.client_id, other_secret).status_code == 429


@pytest.mark.parametrize(
    ("change", "answer"),
    [
        ("revoked", "This client secret has been revoked."),
        ("expired", "This client secret has expired."),
        ("disabled", "This client is disabled."),
    ],
)
def test_a_known_good_secret_passes_the_limit_but_not_the_authentication(client, svc, change, answer):
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="2/minute"):
        assert token_request(client, application.client_id, secret).status_code == 200
        for i in range(2):
            token_request(client, f"attacker-{i}", "x")
        stored = ClientSecret.objects.get(application=application)
        if change == "revoked":
            clients.revoke_secret(application, str(stored.pk))
        elif change == "expired":
            ClientSecret.objects.filter(pk=stored.pk).update(expires_at=timezone.now())
        else:
            clients.set_active(application, False)
        state.reset_all()  # every worker has taken in the change
        response = token_request(client, application.client_id, secret)
    # Past the limit's pre-check (one hash), then authenticated in full and refused for its reason.
    assert response.status_code == 401, response.content
    assert response.json() == {"error": "invalid_client", "error_description": answer}


def test_a_secret_known_good_on_another_worker_passes_the_limit_here(client, svc, counted):
    """The site-wide entry in the shared cache: a worker that restarted still knows the client."""
    application, secret = svc
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="2/minute"):
        assert token_request(client, application.client_id, secret).status_code == 200
        for i in range(2):
            token_request(client, f"attacker-{i}", "x")
        lookups = counted["lookup"]
        state.reset_all()  # a fresh worker: nothing held, only the shared cache knows the secret
        client_auth._suspects.put(("auth-fail-addr", "127.0.0.1"), float("inf"))  # and the flood
        assert token_request(client, application.client_id, secret).status_code == 200
        assert counted["lookup"] == lookups + 1
        response = token_request(client, application.client_id, "guess")
        assert_too_many(response, FAILED.format(response["Retry-After"]))


def test_a_forwarded_header_without_client_ip_header_is_logged_once(client, svc, caplog):
    application, _ = svc
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="100/minute"):
        token_request(client, application.client_id, "wrong")  # no proxy header: nothing said
        for _ in range(3):
            token_request(client, application.client_id, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.9")
    warnings = [r.getMessage() for r in caplog.records if r.name == "oauth_cc.ratelimit"]
    assert len(warnings) == 1, warnings
    assert "OAUTH_CC['CLIENT_IP_HEADER'] is not set" in warnings[0]
    assert "203.0.113.9" not in warnings[0]


def test_no_forwarded_warning_when_client_ip_header_is_set(client, svc, caplog):
    application, _ = svc
    caplog.set_level(logging.WARNING, logger="oauth_cc.ratelimit")
    with limits(FAILED_AUTH_RATE_PER_ADDRESS="100/minute", CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR"):
        token_request(client, application.client_id, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert not [r for r in caplog.records if r.name == "oauth_cc.ratelimit"]
