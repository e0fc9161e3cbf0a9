"""System checks of a resource-only service (oauth_cc.resource.apps) and where it records DPoP proofs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from oauth_cc import dpop
from oauth_cc.conf import oauth_cc_settings
from oauth_cc.resource.apps import check_resource_settings

RESOURCE = {
    "ISSUER": "https://auth.example.com",
    "RESOURCE_IDENTIFIER": "https://reports.example.com",
    "RESOURCE_CLIENT_ID": "reader",
    "RESOURCE_CLIENT_SECRET": "secret",
}


def problems(**extra: Any) -> list[tuple[str, str]]:
    with override_settings(OAUTH_CC={**RESOURCE, **extra}):
        # E101 ("oauth_cc" installed too) is the test settings' doing, not the checked settings'.
        return [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]


def test_valid_resource_settings_have_no_problem() -> None:
    assert problems() == []
    assert problems(DPOP_REPLAY_STORE="cache", CLIENT_CERT_HEADER="HTTP_X_SSL_CLIENT_CERT") == []


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_replay_store_other_than_the_cache_is_refused(store: str) -> None:
    assert problems(DPOP_REPLAY_STORE=store) == [
        (
            "oauth_cc.E104",
            f"OAUTH_CC['DPOP_REPLAY_STORE'] is {store!r}; a resource-only service has no oauth_cc tables, "
            'so DPoP proof ids are recorded in the cache: leave it unset or set "cache".',
        )
    ]


def test_client_certificate_settings_are_checked_on_a_resource_service() -> None:
    assert problems(CLIENT_CERT_HEADER="X-SSL-Client-Cert", CLIENT_CERT_HEADER_FORMAT="pem") == [
        (
            "oauth_cc.E014",
            "OAUTH_CC['CLIENT_CERT_HEADER'] must be None or a request.META header name "
            'like "HTTP_X_SSL_CLIENT_CERT".',
        ),
        (
            "oauth_cc.E014",
            "OAUTH_CC['CLIENT_CERT_HEADER_FORMAT'] must be one of: nginx-escaped-pem, rfc9440.",
        ),
    ]


def test_resource_only_service_records_proofs_in_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dpop.replay_store() == "database"  # the issuer: the default
    monkeypatch.setitem(oauth_cc_settings._cached, "_resource_only", True)
    assert dpop.replay_store() == "cache"
    with override_settings(OAUTH_CC={**RESOURCE, "DPOP_REPLAY_STORE": "database"}):
        monkeypatch.setitem(oauth_cc_settings._cached, "_resource_only", True)
        assert dpop.replay_store() == "cache"  # even when E104 is silenced


def test_a_proof_is_recorded_once_in_the_cache_on_a_resource_service(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setitem(oauth_cc_settings._cached, "_resource_only", True)
    verified = dpop.VerifiedProof(jkt="thumb", jti="proof-1", accepted_until=time.time() + 60)
    dpop.record_use(verified)  # no database access: the test has no db fixture
    with pytest.raises(dpop.InvalidDPoPProof, match="has already been used"):
        dpop.record_use(verified)


@pytest.mark.parametrize(
    ("backend", "warned"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", True),
        ("django.core.cache.backends.dummy.DummyCache", True),
        ("django.core.cache.backends.redis.RedisCache", False),
    ],
)
def test_w109_a_per_process_cache_on_a_resource_only_service(backend: str, warned: bool) -> None:
    from oauth_cc.resource.apps import check_resource_deployment

    caches = {"default": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:6379/0"}}
    if "redis" not in backend:
        caches["default"].pop("LOCATION")
    with override_settings(OAUTH_CC=RESOURCE, CACHES=caches):
        found = check_resource_deployment()
    assert [w.id for w in found] == (["oauth_cc.W109"] if warned else [])
    if warned:
        assert "a proof used on one worker can be replayed on another" in found[0].hint


def test_w109_looks_at_the_cache_oauth_cc_uses() -> None:
    from oauth_cc.resource.apps import check_resource_deployment

    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"},
    }
    with override_settings(OAUTH_CC={**RESOURCE, "CACHE_ALIAS": "shared"}, CACHES=caches):
        assert check_resource_deployment() == []


def test_check_deploy_on_the_example_resource_service_says_w109(tmp_path) -> None:
    """The warning is registered by the resource app itself: ``manage.py check --deploy`` of the
    example's resource-only service, on its default per-process cache, prints it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.resource_settings",
        RESOURCE_DATABASE_URL=f"sqlite:///{tmp_path / 'resource.sqlite3'}",
        OAUTH_CC_RESOURCE_CLIENT_ID="resource-service",
        OAUTH_CC_RESOURCE_CLIENT_SECRET="not-used-here",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "oauth_cc.W109" in done.stdout + done.stderr, done.stdout + done.stderr
