"""DOT sees oauth_cc's scopes: ``oauth_cc.scopes.DatabaseScopes`` as DOT's scopes backend (check W003)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import get_scopes_backend

from oauth_cc.models import Scope
from oauth_cc.scopes import DatabaseScopes


@pytest.fixture
def catalogue(make_scope, make_client):
    make_scope("reports:read", default=True, description="Read reports")
    make_scope("reports:write", description="Write reports")
    make_scope("admin:all", default=True, description="Everything")
    reader, _ = make_client("reader", scopes=["reports:read", "reports:write"])
    nothing, _ = make_client("nothing")
    return reader, nothing


def test_the_example_site_configures_it_as_dots_backend():
    assert isinstance(get_scopes_backend(), DatabaseScopes)


def test_all_scopes_are_the_scope_rows_with_their_descriptions(catalogue):
    assert get_scopes_backend().get_all_scopes() == {
        "admin:all": "Everything",
        "reports:read": "Read reports",
        "reports:write": "Write reports",
    }


def test_available_scopes_are_all_rows_or_the_applications_own(catalogue):
    reader, nothing = catalogue
    backend = get_scopes_backend()
    assert sorted(backend.get_available_scopes()) == ["admin:all", "reports:read", "reports:write"]
    assert sorted(backend.get_available_scopes(application=reader)) == ["reports:read", "reports:write"]
    assert backend.get_available_scopes(application=nothing) == []


def test_default_scopes_are_the_default_rows_the_application_may_use(catalogue):
    reader, nothing = catalogue
    backend = get_scopes_backend()
    assert sorted(backend.get_default_scopes()) == ["admin:all", "reports:read"]
    assert backend.get_default_scopes(application=reader) == ["reports:read"]
    assert backend.get_default_scopes(application=nothing) == []


def test_a_scope_added_in_the_database_is_seen_at_once(catalogue):
    Scope.objects.create(name="audit:read", description="Audit")
    assert get_scopes_backend().get_all_scopes()["audit:read"] == "Audit"


def test_dots_validator_allows_exactly_the_applications_scopes(catalogue):
    reader, _ = catalogue
    validator = OAuth2Validator()
    request = SimpleNamespace(client=reader)
    assert validator.validate_scopes(reader.client_id, ["reports:read"], reader, request) is True
    assert (
        validator.validate_scopes(reader.client_id, ["reports:read", "admin:all"], reader, request) is False
    )
    assert validator.get_default_scopes(reader.client_id, request) == ["reports:read"]
