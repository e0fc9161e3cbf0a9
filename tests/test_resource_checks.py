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
