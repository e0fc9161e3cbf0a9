"""``manage.py oauth_cc``: every subcommand, its JSON shape, and each error path."""

from __future__ import annotations

import json
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from django.utils import timezone
from jwcrypto import jwk

from oauth_cc.issuer import key_encryption
from oauth_cc.issuer.secrets import hash_secret
from oauth_cc.models import Application, ClientSecret, Scope, SigningKey

from .conftest import basic_auth, form_post


def run(*args: str) -> str:
    out = StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def token_request(client: Any, client_id: str, secret: str) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(client_id, secret),
    )


def assert_invalid_client(client: Any, client_id: str, secret: str) -> None:
    response = token_request(client, client_id, secret)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.fixture
def reports_read(make_scope):
    return make_scope("reports:read", default=True)


@pytest.fixture
def created(reports_read) -> dict[str, str]:
    """A secret-based client made by the command: {"client_id", "client_secret"}."""
    return run_json("client", "create", "svc", "--scope", "reports:read")


@pytest.fixture
def public_jwks_file(tmp_path: Path) -> tuple[Path, dict]:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="k1")
    public = {"keys": [key.export_public(as_dict=True)]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(public))
    return path, public


# -- scope -------------------------------------------------------------------------------------


def test_scope_add_creates_the_scope(db):
    output = run("scope", "add", "reports:write", "--description", "Submit reports", "--default")

    scope = Scope.objects.get(name="reports:write")
    assert scope.description == "Submit reports"
    assert scope.is_default
    assert '"reports:write"' in output


@pytest.mark.parametrize("name", ["reports read", 'say"hi', "back\\slash", "caf\u00e9"])
def test_scope_add_refuses_invalid_names(db, name):
    with pytest.raises(CommandError, match="not a valid scope name"):
        run("scope", "add", name)
    assert not Scope.objects.exists()


def test_scope_add_refuses_a_duplicate(make_scope):
    make_scope("reports:read", description="original")

    with pytest.raises(CommandError, match='A scope named "reports:read" already exists'):
        run("scope", "add", "reports:read", "--description", "changed")
    assert Scope.objects.get().description == "original"


def test_scope_list(make_scope, make_client):
    make_scope("reports:read", default=True, description="Read reports")
    make_scope("reports:write")
    make_client("svc", scopes=["reports:read"])

    assert run_json("scope", "list") == [
        {"name": "reports:read", "description": "Read reports", "default": True, "clients": 1},
        {"name": "reports:write", "description": "", "default": False, "clients": 0},
    ]
    text = run("scope", "list")
    assert "reports:read [default]" in text
    assert "reports:write" in text


def test_scope_list_when_empty_says_how_to_add_one(db):
    assert "scope add" in run("scope", "list")


# -- client create -------------------------------------------------------------------------------


def test_client_create_json_gives_a_working_secret(created, token_for):
    assert set(created) == {"client_id", "client_secret"}
    application = Application.objects.get(client_id=created["client_id"])
    assert application.secrets.get().secret_hash == hash_secret(created["client_secret"])

    assert token_for(application, created["client_secret"])["scope"] == "reports:read"


def test_client_create_text_shows_the_secret_once(reports_read, token_for):
    output = run("client", "create", "svc", "--scope", "reports:read")

    application = Application.objects.get(name="svc")
    secret = next(line.split()[-1] for line in output.splitlines() if "client_secret:" in line)
    assert application.client_id in output
    assert "shown only this once" in output
    assert token_for(application, secret)


def test_client_create_stores_every_option(make_scope):
    make_scope("reports:read")
    make_scope("reports:write")

    created = run_json(
        "client",
        "create",
        "svc",
        "--scope",
        "reports:read",
        "--scope",
        "reports:write",
        "--lifetime",
        "600",
        "--description",
        "Reports team",
        "--auth-method",
        "client_secret_post",
        "--audience",
        "https://api.example.com",
        "--audience",
        "https://other.example.com",
        "--introspect",
    )

    application = Application.objects.get(client_id=created["client_id"])
    assert sorted(application.scopes.values_list("name", flat=True)) == ["reports:read", "reports:write"]
    assert application.access_token_lifetime == 600
    assert application.description == "Reports team"
    assert application.token_endpoint_auth_method == "client_secret_post"
    assert application.audiences == ["https://api.example.com", "https://other.example.com"]
    assert application.can_introspect


def test_client_create_with_jwks_file_is_private_key_jwt_without_secret(db, public_jwks_file):
    path, public = public_jwks_file

    created = run_json("client", "create", "signer", "--jwks-file", str(path))

    assert created["client_secret"] is None
    application = Application.objects.get(client_id=created["client_id"])
    assert application.token_endpoint_auth_method == "private_key_jwt"
    assert application.client_jwks == public
    assert not application.secrets.exists()


def test_client_create_with_jwks_uri(db):
    created = run_json("client", "create", "signer", "--jwks-uri", "https://keys.example.com/jwks.json")

    application = Application.objects.get(client_id=created["client_id"])
    assert application.token_endpoint_auth_method == "private_key_jwt"
    assert application.client_jwks_uri == "https://keys.example.com/jwks.json"


def test_client_create_refuses_unknown_scope(reports_read):
    with pytest.raises(CommandError, match=r"Unknown scope.*reports:admin"):
        run("client", "create", "svc", "--scope", "reports:read", "--scope", "reports:admin")
    assert not Application.objects.exists()


def test_client_create_refuses_a_missing_jwks_file(db, tmp_path):
    with pytest.raises(CommandError, match="Cannot read the JWKS file"):
        run("client", "create", "signer", "--jwks-file", str(tmp_path / "missing.json"))
    assert not Application.objects.exists()


def test_client_create_refuses_a_jwks_file_that_is_not_json(db, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text("-----BEGIN PUBLIC KEY-----\n")

    with pytest.raises(CommandError, match="not valid JSON"):
        run("client", "create", "signer", "--jwks-file", str(path))
    assert not Application.objects.exists()


def test_client_create_refuses_a_private_key_in_the_jwks_file(db, tmp_path):
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.export_private(as_dict=True)]}))

    with pytest.raises(CommandError, match="private key"):
        run("client", "create", "signer", "--jwks-file", str(path))
    assert not Application.objects.exists()


def test_client_create_refuses_jwks_for_a_secret_client(db, public_jwks_file):
    path, _ = public_jwks_file

    with pytest.raises(CommandError, match="only used by private_key_jwt"):
        run("client", "create", "svc", "--auth-method", "client_secret_basic", "--jwks-file", str(path))
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--lifetime", "0"],
        ["--auth-method", "password"],
        ["--jwks-uri", "https://a.example/jwks", "--jwks-file", "x.json"],
    ],
)
def test_client_create_refuses_bad_options(db, args):
    with pytest.raises(CommandError):
        run("client", "create", "svc", *args)
    assert not Application.objects.exists()


def test_errors_exit_non_zero_with_the_sentence_on_stderr(db, capsys):
    utility = ManagementUtility(["manage.py", "oauth_cc", "client", "show", "no-such-client"])

    with pytest.raises(SystemExit) as exit_info:
        utility.execute()

    assert exit_info.value.code == 1
    assert 'No API client has the client_id "no-such-client"' in capsys.readouterr().err


# -- rotate, revoke, disable, enable -------------------------------------------------------------


def test_rotate_secret_keeps_the_old_secret_valid_during_the_grace(created, client, token_for):
    application = Application.objects.get(client_id=created["client_id"])
    old_prefix = application.secrets.get().prefix

    rotated = run_json("client", "rotate-secret", created["client_id"], "--grace", "3600")

    assert set(rotated) == {"client_id", "client_secret", "old_secrets"}
    assert rotated["client_id"] == created["client_id"]
    assert [old["prefix"] for old in rotated["old_secrets"]] == [old_prefix]
    old = application.secrets.get(prefix=old_prefix)
    assert rotated["old_secrets"][0]["expires"] == old.expires_at.isoformat()
    assert token_for(application, rotated["client_secret"])
    assert token_for(application, created["client_secret"])


def test_rotate_secret_with_zero_grace_ends_the_old_secret(created, client, token_for):
    application = Application.objects.get(client_id=created["client_id"])

    rotated = run_json("client", "rotate-secret", created["client_id"], "--grace", "0")

    (old,) = rotated["old_secrets"]
    assert old["prefix"] == created["client_secret"][:13]
    assert datetime.fromisoformat(old["expires"]) <= timezone.now()
    assert_invalid_client(client, created["client_id"], created["client_secret"])
    assert token_for(application, rotated["client_secret"])


def test_rotate_secret_text_output(created):
    output = run("client", "rotate-secret", created["client_id"])

    assert "client_secret: occs_" in output
    assert "stays valid until" in output
    assert "shown only this once" in output


def test_rotate_secret_refuses_private_key_jwt_client(db, public_jwks_file):
    path, _ = public_jwks_file
    created = run_json("client", "create", "signer", "--jwks-file", str(path))

    with pytest.raises(CommandError, match="no secret to rotate"):
        run("client", "rotate-secret", created["client_id"])
    assert not ClientSecret.objects.exists()


def test_rotate_secret_refuses_negative_grace(created):
    with pytest.raises(CommandError, match="cannot be negative"):
        run("client", "rotate-secret", created["client_id"], "--grace", "-1")
    assert ClientSecret.objects.count() == 1


@pytest.mark.parametrize("by", ["id", "prefix"])
def test_revoke_secret_makes_it_fail_with_invalid_client(created, client, by):
    secret = ClientSecret.objects.get()
    reference = str(secret.pk) if by == "id" else secret.prefix

    output = run("client", "revoke-secret", created["client_id"], reference)

    assert secret.prefix in output
    secret.refresh_from_db()
    assert secret.state == "revoked"
    assert_invalid_client(client, created["client_id"], created["client_secret"])


def test_revoke_secret_refuses_unknown_secret(created, make_client):
    other, _ = make_client("other")
    other_secret = other.secrets.get()

    with pytest.raises(CommandError, match="has no secret"):
        run("client", "revoke-secret", created["client_id"], str(other_secret.pk))
    assert not ClientSecret.objects.filter(revoked_at__isnull=False).exists()


def test_disable_gives_invalid_client_and_enable_restores(created, client, token_for):
    run("client", "disable", created["client_id"])

    application = Application.objects.get(client_id=created["client_id"])
    assert not application.is_active
    assert_invalid_client(client, created["client_id"], created["client_secret"])

    run("client", "enable", created["client_id"])

    assert token_for(application, created["client_secret"])


@pytest.mark.parametrize(
    "args",
    [
        ["rotate-secret", "nope"],
        ["revoke-secret", "nope", "1"],
        ["disable", "nope"],
        ["enable", "nope"],
        ["show", "nope"],
    ],
)
def test_unknown_client_is_an_error(created, args):
    with pytest.raises(CommandError, match='No API client has the client_id "nope"'):
        run("client", *args)
    assert Application.objects.get().is_active
    assert ClientSecret.objects.get().state == "active"


# -- list and show -------------------------------------------------------------------------------


def test_client_list(created, make_client):
    make_client("another")

    rows = run_json("client", "list")

    assert [row["name"] for row in rows] == ["another", "svc"]
    svc = rows[1]
    assert set(svc) == {"client_id", "name", "active", "auth_method", "scopes", "created", "last_used"}
    assert svc["client_id"] == created["client_id"]
    assert svc["scopes"] == ["reports:read"]
    assert svc["active"] is True
    assert created["client_id"] in run("client", "list")


def test_client_show_lists_secrets_but_never_a_secret(created, token_for):
    run("client", "rotate-secret", created["client_id"], "--grace", "60")
    first, second = ClientSecret.objects.order_by("created")

    details = run_json("client", "show", created["client_id"])
    text = run("client", "show", created["client_id"])

    assert details["client_id"] == created["client_id"]
    assert details["scopes"] == ["reports:read"]
    assert details["auth_method"] == "client_secret_basic"
    assert [(s["id"], s["prefix"], s["state"]) for s in details["secrets"]] == [
        (second.pk, second.prefix, "active"),
        (first.pk, first.prefix, "expiring"),
    ]
    assert set(details["secrets"][0]) == {"id", "prefix", "created", "expires", "last_used", "state"}
    for output in (json.dumps(details), text):
        assert created["client_secret"] not in output
        assert first.secret_hash not in output and second.secret_hash not in output
    assert f"secret id {first.pk}: {first.prefix}" in text


def test_client_show_lists_key_thumbprints(db, public_jwks_file):
    path, public = public_jwks_file
    created = run_json("client", "create", "signer", "--jwks-file", str(path))

    details = run_json("client", "show", created["client_id"])

    assert details["jwks_thumbprints"] == [
        {"kid": "k1", "thumbprint": jwk.JWK(**public["keys"][0]).thumbprint()}
    ]


# -- keys ----------------------------------------------------------------------------------------


def test_key_rotate_and_list(db):
    first = run("key", "rotate")
    current = SigningKey.objects.get(state="current")
    assert f"Now signing with key {current.kid}" in first

    second = run("key", "rotate", "--algorithm", "RS256")

    assert f"Retired key {current.kid}" in second
    rows = run_json("key", "list")
    assert {row["state"] for row in rows} == {"next", "current", "retired"}
    assert next(row for row in rows if row["state"] == "next")["algorithm"] == "RS256"
    assert set(rows[0]) == {
        "kid",
        "algorithm",
        "state",
        "created",
        "signing_since",
        "retired",
        "remove_after",
        "storage",
    }
    private_parts = [
        json.loads(key_encryption.decrypt(k.private_jwk, k.kid))["d"] for k in SigningKey.objects.all()
    ]
    listing = json.dumps(rows) + run("key", "list")
    assert not any(part in listing for part in private_parts)


def test_key_rotate_refuses_unknown_algorithm(db):
    with pytest.raises(CommandError, match="invalid choice"):
        run("key", "rotate", "--algorithm", "HS256")
    assert not SigningKey.objects.exists()


def test_client_revoke_tokens_refuses_tokens_issued_before(make_client, token_for, client):
    application, secret = make_client("svc", scopes=["reports:read"])
    token = token_for(application, secret, scope="reports:read")["access_token"]

    out = StringIO()
    call_command("oauth_cc", "client", "revoke-tokens", application.client_id, stdout=out)

    assert "is refused" in out.getvalue()
    response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_client_revoke_tokens_of_an_unknown_client_is_a_clear_error(db):
    with pytest.raises(CommandError, match='No API client has the client_id "nope"'):
        call_command("oauth_cc", "client", "revoke-tokens", "nope")


def test_tokens_prune_deletes_expired_records_and_keeps_live_ones(db):
    from datetime import timedelta

    from django.utils import timezone

    from oauth_cc.models import RevokedToken, UsedAssertion

    past, future = timezone.now() - timedelta(minutes=1), timezone.now() + timedelta(minutes=1)
    RevokedToken.objects.create(jti="old", client_id="c", expires_at=past)
    RevokedToken.objects.create(jti="live", client_id="c", expires_at=future)
    UsedAssertion.objects.create(jti="old", client_id="c", expires_at=past - timedelta(hours=1))

    out = StringIO()
    call_command("oauth_cc", "tokens", "prune", stdout=out)

    assert "Deleted 2 expired record(s)" in out.getvalue()
    assert list(RevokedToken.objects.values_list("jti", flat=True)) == ["live"]
    assert not UsedAssertion.objects.exists()


def test_scope_add_that_loses_a_race_is_a_clear_error(db, monkeypatch):
    from oauth_cc.models import Scope

    Scope.objects.create(name="raced")
    # The existence check runs before the other call commits: only the INSERT sees the clash.
    monkeypatch.setattr(type(Scope.objects.filter(name="raced")), "exists", lambda self: False)

    with pytest.raises(CommandError, match='A scope named "raced" already exists'):
        call_command("oauth_cc", "scope", "add", "raced")


@pytest.mark.parametrize(
    "audience", ["https://api.example.com#part", "https://api.example.com#", "relative/path", "a b"]
)
def test_client_create_refuses_an_audience_that_is_not_a_resource_identifier(db, audience):
    from oauth_cc.models import Application

    with pytest.raises(CommandError, match="absolute URIs without a"):
        call_command("oauth_cc", "client", "create", "aud", "--audience", audience, stdout=StringIO())
    assert not Application.objects.exists()


def test_client_create_accepts_a_urn_audience(db):
    from oauth_cc.models import Application

    call_command("oauth_cc", "client", "create", "aud", "--audience", "urn:example:api", stdout=StringIO())
    assert Application.objects.get().audiences == ["urn:example:api"]


def test_client_create_refuses_a_jwk_with_a_member_of_another_key_type(db, tmp_path):
    """jwcrypto raises KeyError for "e" on an EC key; that is a sentence here, not a traceback."""
    from oauth_cc.models import Application

    from .assertion_helpers import generate_key, jwks_of

    jwks = jwks_of(generate_key("ES256", kid="mixed"))
    jwks["keys"][0]["e"] = "AQAB"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    with pytest.raises(CommandError, match='Key "mixed" is not a valid JWK: Cannot set'):
        call_command("oauth_cc", "client", "create", "mixed", "--jwks-file", str(path), stdout=StringIO())
    assert not Application.objects.exists()
