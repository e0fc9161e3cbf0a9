"""System checks: one test per check id in :mod:`oauth_cc.checks`."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import ERROR, WARNING
from django.test import modify_settings, override_settings

from oauth_cc.checks import NUMERIC_SETTINGS, check_settings
from oauth_cc.conf import DEFAULTS

GOOD = {"ISSUER": "https://auth.example.com"}


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def check_with(**oauth_cc: Any) -> list[Any]:
    with override_settings(OAUTH_CC={**GOOD, **oauth_cc}):
        return check_settings()


def only(messages: list[Any], check_id: str) -> Any:
    found = [message for message in messages if message.id == check_id]
    assert len(found) == 1, ids(messages)
    return found[0]


def test_good_configuration_passes_every_check():
    assert check_with() == []


def test_e001_application_model_not_swapped_in():
    with override_settings(OAUTH2_PROVIDER_APPLICATION_MODEL="oauth2_provider.Application", OAUTH_CC=GOOD):
        message = only(check_settings(), "oauth_cc.E001")
    assert message.level == ERROR
    assert "OAUTH2_PROVIDER_APPLICATION_MODEL" in message.hint


@pytest.mark.parametrize(
    ("app", "label"), [("rest_framework", "REST framework"), ("oauth2_provider", "oauth-toolkit")]
)
def test_e002_required_app_not_installed(app, label):
    with modify_settings(INSTALLED_APPS={"remove": [app]}), override_settings(OAUTH_CC=GOOD):
        message = only(check_settings(), "oauth_cc.E002")
    assert message.level == ERROR
    assert label in message.msg
    assert app in message.hint


def test_e003_oauth_cc_setting_is_not_a_dict():
    with override_settings(OAUTH_CC=[("ISSUER", "https://auth.example.com")]):
        messages = check_settings()
    assert ids(messages) == ["oauth_cc.E003"]


def test_e004_unknown_setting_name():
    message = only(check_with(ISUER="https://typo.example.com", LIFETIME=60), "oauth_cc.E004")
    assert message.level == ERROR
    assert "ISUER" in message.msg and "LIFETIME" in message.msg


@pytest.mark.parametrize(
    "issuer",
    [
        None,
        "",
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://auth.example.com/?tenant=1",
        "https://auth.example.com/#top",
        42,
    ],
)
def test_e005_issuer_missing_or_not_a_base_url(issuer):
    messages = check_with(ISSUER=issuer)
    assert only(messages, "oauth_cc.E005").level == ERROR
    assert "oauth_cc.W001" not in ids(messages)


def test_w001_http_issuer_for_a_remote_host():
    message = only(check_with(ISSUER="http://auth.example.com"), "oauth_cc.W001")
    assert message.level == WARNING


@pytest.mark.parametrize("issuer", ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"])
def test_w001_not_raised_for_a_local_http_issuer(issuer):
    assert check_with(ISSUER=issuer) == []


@pytest.mark.parametrize("algorithm", ["HS256", "none", "ES512", "es256"])
def test_e006_unsupported_signing_algorithm(algorithm):
    message = only(check_with(SIGNING_ALGORITHM=algorithm), "oauth_cc.E006")
    assert message.level == ERROR


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_e006_not_raised_for_a_supported_algorithm(algorithm):
    assert check_with(SIGNING_ALGORITHM=algorithm) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCESS_TOKEN_LIFETIME", 0),
        ("ACCESS_TOKEN_LIFETIME", "3600"),
        ("STATE_REFRESH_SECONDS", -1),
        ("VERIFIED_TOKEN_CACHE_SIZE", True),
        ("CLIENT_CACHE_SIZE", None),
        ("JWKS_URI_TIMEOUT", 0),
    ],
)
def test_e007_setting_that_must_be_a_positive_number(name, value):
    message = only(check_with(**{name: value}), "oauth_cc.E007")
    assert name in message.msg


def _below(minimum: float) -> float:
    return minimum - 1 if minimum >= 1 else minimum - 0.0005 if minimum > 0 else -1


@pytest.mark.parametrize("name", sorted(NUMERIC_SETTINGS))
def test_e007_every_numeric_setting_refuses_values_below_its_minimum(name):
    kind, minimum = NUMERIC_SETTINGS[name]
    message = only(check_with(**{name: kind(_below(minimum))}), "oauth_cc.E007")
    expected = "a whole number" if kind is int else "a number"
    assert message.msg == f"OAUTH_CC['{name}'] must be {expected} of at least {minimum:g}."
    assert check_with(**{name: kind(minimum) if minimum else 0}) == []


@pytest.mark.parametrize("name", sorted(NUMERIC_SETTINGS))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "10", True, None, [10]])
def test_e007_every_numeric_setting_refuses_non_numbers_and_non_finite_values(name, value):
    message = only(check_with(**{name: value}), "oauth_cc.E007")
    assert name in message.msg


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in NUMERIC_SETTINGS.items() if kind is int))
def test_e007_whole_number_settings_refuse_fractions(name):
    message = only(check_with(**{name: 10.5}), "oauth_cc.E007")
    assert "whole number" in message.msg


def test_every_numeric_default_is_checked():
    numeric = {
        name
        for name, value in DEFAULTS.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    assert numeric == set(NUMERIC_SETTINGS)


@pytest.mark.parametrize("name", sorted(NUMERIC_SETTINGS))
def test_every_numeric_default_passes_its_own_check(name):
    assert check_with(**{name: DEFAULTS[name]}) == []


def test_w002_access_token_lifetime_longer_than_a_day():
    message = only(check_with(ACCESS_TOKEN_LIFETIME=2 * 24 * 3600), "oauth_cc.W002")
    assert message.level == WARNING


def test_w002_not_raised_for_a_day_or_less():
    assert check_with(ACCESS_TOKEN_LIFETIME=24 * 3600) == []


@pytest.mark.parametrize(
    "hook", ["tests.no_such_module.claims", "tests.test_checks.no_such_function", "notdotted"]
)
def test_e008_claims_hook_cannot_be_imported(hook):
    message = only(check_with(CLAIMS_HOOK=hook), "oauth_cc.E008")
    assert message.level == ERROR


def test_e008_not_raised_for_an_importable_hook():
    assert check_with(CLAIMS_HOOK="tests.test_claims_hook.add_tenant") == []


def test_e009_cache_alias_not_in_caches():
    message = only(check_with(CACHE_ALIAS="shared"), "oauth_cc.E009")
    assert "'shared'" in message.msg


def test_w003_dot_scopes_backend_is_not_oauth_ccs():
    with override_settings(OAUTH2_PROVIDER={}, OAUTH_CC=GOOD):
        message = only(check_settings(), "oauth_cc.W003")
    assert message.level == WARNING
    assert "oauth_cc.scopes.DatabaseScopes" in message.hint


def test_w004_insecure_jwks_uri_outside_debug():
    with override_settings(DEBUG=False):
        message = only(check_with(JWKS_URI_ALLOW_INSECURE=True), "oauth_cc.W004")
    assert message.level == WARNING


def test_w004_not_raised_in_debug():
    with override_settings(DEBUG=True):
        assert check_with(JWKS_URI_ALLOW_INSECURE=True) == []


def test_checks_run_with_the_django_check_framework():
    from django.core import checks

    with override_settings(OAUTH_CC={**GOOD, "SIGNING_ALGORITHM": "HS256"}):
        messages = checks.run_checks(tags=["oauth_cc"])
    assert "oauth_cc.E006" in ids(messages)


def _drf(**changes: Any) -> Any:
    from django.conf import settings

    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **changes})


RATE_FORMAT = 'Enter a rate like "100/hour": a whole number from 1, a slash, and second, minute, hour or day.'


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        ("100/fortnight", '"100/fortnight" is not a rate. '),
        ("0/minute", '"0/minute" is not a rate. '),
        ("100 / hour", '"100 / hour" is not a rate. '),
        (100, ""),
    ],
)
def test_e015_a_client_throttle_rate_that_is_not_a_rate(rate, shown):
    # ClientRateThrottle would raise ImproperlyConfigured inside every request it throttles: an
    # HTML 500 for the client. The check says so at start-up, in the throttle's parser's words.
    with _drf(DEFAULT_THROTTLE_RATES={"oauth_cc_client": rate}):
        message = only(check_with(), "oauth_cc.E015")
    assert message.level == ERROR
    assert message.msg == (
        f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["oauth_cc_client"] is not a rate: {shown}{RATE_FORMAT}'
    )
    assert message.hint == "ClientRateThrottle reads it on each request it throttles; None turns it off."


@pytest.mark.parametrize("rate", ["1000/hour", "5/min", "1/s", None])
def test_e015_not_raised_for_a_rate_or_none(rate):
    with _drf(DEFAULT_THROTTLE_RATES={"oauth_cc_client": rate}):
        assert check_with() == []


def test_e015_a_default_client_throttle_without_a_rate():
    with _drf(
        DEFAULT_THROTTLE_CLASSES=["oauth_cc.contrib.rest_framework.ClientRateThrottle"],
        DEFAULT_THROTTLE_RATES={"user": "10/minute"},
    ):
        message = only(check_with(), "oauth_cc.E015")
    assert message.msg == (
        'REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] names '
        'oauth_cc.contrib.rest_framework.ClientRateThrottle, but REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]'
        '["oauth_cc_client"] is not set: every request it '
        "throttles would fail."
    )
    assert message.hint == (
        'Set REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["oauth_cc_client"] to a rate like "1000/hour", '
        "or to None to turn the throttle off."
    )


def test_e015_no_rate_is_fine_when_the_throttle_is_not_a_default_class():
    # Named on some views only, it may carry its own rate (a subclass's ``rate``).
    with _drf(DEFAULT_THROTTLE_CLASSES=[], DEFAULT_THROTTLE_RATES={}):
        assert check_with() == []
    with _drf(DEFAULT_THROTTLE_RATES="not a dict"):
        assert check_with() == []
    with override_settings(REST_FRAMEWORK=None):
        assert check_with() == []
