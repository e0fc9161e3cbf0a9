"""``manage.py check --deploy``: oauth_cc's W1xx warnings, each on its own and through the command."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import WARNING, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from oauth_cc.checks import (
    DEPLOY_MAX_LEEWAY_SECONDS,
    DEPLOY_MAX_REFRESH_SECONDS,
    check_connect_timeout,
    check_deployment,
    check_settings,
    connect_timeout_warnings,
)
from oauth_cc.issuer.key_encryption import generate_key

GOOD = {"ISSUER": "https://auth.example.com"}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    }
}
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def deploy_ids(caches: dict[str, Any] = REDIS, **oauth_cc: Any) -> list[str]:
    with override_settings(OAUTH_CC={**GOOD, **oauth_cc}, CACHES=caches):
        messages = check_deployment()
    assert all(message.level == WARNING for message in messages)
    return [message.id for message in messages]


def message_for(check_id: str, caches: dict[str, Any] = REDIS, **oauth_cc: Any) -> Any:
    with override_settings(OAUTH_CC={**GOOD, **oauth_cc}, CACHES=caches):
        found = [m for m in check_deployment() if m.id == check_id]
    assert len(found) == 1
    return found[0]


def test_a_production_configuration_passes_every_deploy_check():
    """Every oauth_cc check ``check --deploy`` runs, not only check_deployment: an https issuer,
    a shared cache, encryption keys of its own; the test databases have a connect_timeout."""
    production = {**GOOD, "KEY_ENCRYPTION_KEYS": [generate_key()]}
    with override_settings(OAUTH_CC=production, CACHES=REDIS):
        messages = run_checks(include_deployment_checks=True)
    assert [m.id for m in messages if m.id.startswith("oauth_cc.")] == []
    assert deploy_ids() == []


def test_w107_without_encryption_keys_of_its_own():
    with override_settings(OAUTH_CC=GOOD, CACHES=REDIS):
        ids = [m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("oauth_cc.")]
    assert ids == ["oauth_cc.W107"]


def test_deploy_checks_leave_a_non_dict_setting_to_e003():
    with override_settings(OAUTH_CC="https://auth.example.com"):
        assert check_deployment() == []


def test_w101_http_issuer_even_for_a_local_host():
    assert deploy_ids(ISSUER="http://127.0.0.1:8000") == ["oauth_cc.W101"]
    assert "https" in message_for("oauth_cc.W101", ISSUER="http://auth.example.com").hint
    assert deploy_ids(ISSUER="https://127.0.0.1:8000") == []


def test_w102_insecure_jwks_uri_allowed_whatever_debug_says():
    for debug in (True, False):
        with override_settings(DEBUG=debug):
            assert deploy_ids(JWKS_URI_ALLOW_INSECURE=True) == ["oauth_cc.W102"]
    assert deploy_ids(JWKS_URI_ALLOW_INSECURE=False) == []


@pytest.mark.parametrize(
    "backend",
    ["django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache"],
)
def test_w103_per_process_cache_backend(backend: str):
    caches = {"default": {"BACKEND": backend}}
    assert deploy_ids(caches) == ["oauth_cc.W103"]
    assert "shared cache" in message_for("oauth_cc.W103", caches).hint


def test_w103_looks_at_the_cache_oauth_cc_uses_not_the_default():
    caches = {**LOCMEM, "shared": REDIS["default"]}
    assert deploy_ids(caches, CACHE_ALIAS="shared") == []
    caches = {**REDIS, "local": LOCMEM["default"]}
    assert deploy_ids(caches, CACHE_ALIAS="local") == ["oauth_cc.W103"]


def test_w104_refresh_delay_longer_than_a_minute():
    assert deploy_ids(STATE_REFRESH_SECONDS=DEPLOY_MAX_REFRESH_SECONDS) == []
    assert deploy_ids(STATE_REFRESH_SECONDS=DEPLOY_MAX_REFRESH_SECONDS + 0.5) == ["oauth_cc.W104"]


def test_w105_leeway_longer_than_five_minutes():
    assert deploy_ids(LEEWAY=DEPLOY_MAX_LEEWAY_SECONDS) == []
    assert deploy_ids(LEEWAY=DEPLOY_MAX_LEEWAY_SECONDS + 1) == ["oauth_cc.W105"]


@pytest.mark.parametrize("value", ["60", None, True, float("nan"), float("inf")])
def test_deploy_checks_leave_malformed_numbers_to_e007(value: Any):
    assert deploy_ids(STATE_REFRESH_SECONDS=value, LEEWAY=value) == []


def test_deploy_checks_do_not_run_without_deploy():
    with override_settings(OAUTH_CC={**GOOD, "ISSUER": "http://127.0.0.1"}, CACHES=LOCMEM):
        assert [m.id for m in check_settings()] == []
        out, err = StringIO(), StringIO()
        call_command("check", stdout=out, stderr=err)
        with_deploy = StringIO()
        call_command("check", "--deploy", stdout=StringIO(), stderr=with_deploy)
    assert "oauth_cc.W1" not in out.getvalue() + err.getvalue()
    assert "oauth_cc.W101" in with_deploy.getvalue()


def test_manage_py_check_deploy_prints_them():
    stderr = StringIO()
    settings = {**GOOD, "ISSUER": "http://127.0.0.1", "JWKS_URI_ALLOW_INSECURE": True}
    with override_settings(OAUTH_CC=settings, CACHES=LOCMEM):
        # --fail-level WARNING turns the warnings into a failed check, as a CI step would use it.
        with pytest.raises(SystemCheckError) as failed:
            call_command("check", "--deploy", "--fail-level", "WARNING", stdout=StringIO(), stderr=stderr)
    for check_id in ("oauth_cc.W101", "oauth_cc.W102", "oauth_cc.W103"):
        assert check_id in str(failed.value)


@pytest.mark.parametrize("engine", ["django.db.backends.postgresql", "django.db.backends.mysql"])
def test_w108_database_without_connect_timeout(engine: str):
    messages = connect_timeout_warnings({"default": {"ENGINE": engine, "NAME": "x", "OPTIONS": {}}})
    assert [m.id for m in messages] == ["oauth_cc.W108"]
    assert messages[0].level == WARNING
    assert messages[0].msg == "DATABASES['default'] has no connect_timeout."
    assert 'DATABASES["default"]["OPTIONS"]["connect_timeout"]' in messages[0].hint


@pytest.mark.parametrize(
    "config",
    [
        {"ENGINE": "django.db.backends.postgresql", "NAME": "x", "OPTIONS": {"connect_timeout": 3}},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    ],
)
def test_w108_not_raised_with_a_connect_timeout_or_for_sqlite(config: dict[str, Any]):
    assert connect_timeout_warnings({"default": config}) == []


def test_w108_is_a_deploy_check_of_the_configured_databases():
    from django.core.checks.registry import registry

    assert check_connect_timeout in registry.get_checks(include_deployment_checks=True)
    assert check_connect_timeout not in registry.get_checks(include_deployment_checks=False)
    # The test settings set a connect_timeout on PostgreSQL, as the README recommends.
    assert check_connect_timeout() == []
