"""The admin as an operator uses it: clients and their one-time secrets, scopes, signing keys."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone
from jwcrypto import jwk

from oauth_cc.admin import ApplicationAdmin
from oauth_cc.issuer import clients, key_encryption, keys
from oauth_cc.issuer.secrets import hash_secret
from oauth_cc.models import Application, ClientSecret, Scope, SigningKey

from .conftest import basic_auth, form_post

SECRET_RE = re.compile(r"occs_[A-Za-z0-9_-]{43}")
ADD_URL = "/admin/oauth_cc/application/"


def change_url(application: Application) -> str:
    return reverse("admin:oauth_cc_application_change", args=[application.pk])


def changelist_url() -> str:
    return reverse("admin:oauth_cc_application_changelist")


def client_form(**overrides: Any) -> dict[str, Any]:
    """The add/change form as the browser posts it (unchecked boxes are simply absent)."""
    data: dict[str, Any] = {
        "name": "reporting-service",
        "description": "Reporting team, reports@example.com",
        "is_active": "on",
        "access_token_lifetime": "",
        "user": "",
        "audiences": "",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_jwks": "",
        "client_jwks_uri": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def inline_management(application: Application) -> dict[str, Any]:
    secrets = list(application.secrets.all())
    data: dict[str, Any] = {
        "secrets-TOTAL_FORMS": len(secrets),
        "secrets-INITIAL_FORMS": len(secrets),
        "secrets-MIN_NUM_FORMS": 0,
        "secrets-MAX_NUM_FORMS": 1000,
    }
    for i, secret in enumerate(secrets):
        data[f"secrets-{i}-id"] = secret.pk
        data[f"secrets-{i}-application"] = application.pk
    return data


def token_response(client: Any, application: Application, secret: str) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def the_secret(response: Any) -> str:
    found = set(SECRET_RE.findall(response.content.decode()))
    assert len(found) == 1, found
    return found.pop()


def public_jwks() -> tuple[dict, dict]:
    """(public JWKS, the same key set with the private half) for a fresh EC key."""
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="client-key-1")
    return {"keys": [key.export_public(as_dict=True)]}, {"keys": [key.export_private(as_dict=True)]}


@pytest.fixture
def reports_read(make_scope):
    return make_scope("reports:read", default=True)


# -- creating a client ----------------------------------------------------------------------


def test_creating_a_client_shows_its_secret_once(admin_client, client, reports_read, token_for):
    response = admin_client.post(ADD_URL + "add/", client_form(scopes=[reports_read.pk]))

    assert response.status_code == 200
    assert "admin/oauth_cc/application/secret_issued.html" in [t.name for t in response.templates]
    assert "no-store" in response["Cache-Control"]
    application = Application.objects.get(name="reporting-service")
    secret = the_secret(response)
    content = response.content.decode()
    assert application.client_id in content
    assert "cannot be shown again" in content
    assert change_url(application) in content
    # Only the hash is stored, nowhere the secret itself.
    (record,) = application.secrets.all()
    assert record.secret_hash == hash_secret(secret)
    assert application.client_secret == ""
    assert secret not in json.dumps(list(LogEntry.objects.values()), default=str)
    # Never shown again.
    later = admin_client.get(change_url(application))
    assert later.status_code == 200
    assert secret not in later.content.decode()
    assert record.prefix in later.content.decode()
    # And it works.
    assert token_for(application, secret)["scope"] == "reports:read"


def test_secret_is_not_put_in_session_or_messages(admin_client, reports_read):
    response = admin_client.post(ADD_URL + "add/", client_form(scopes=[reports_read.pk]))
    secret = the_secret(response)

    session = admin_client.session
    assert all(secret not in str(session[key]) for key in session.keys())
    assert all(secret not in cookie.value for cookie in admin_client.cookies.values())
    assert "was added" in response.content.decode()
    follow_up = admin_client.get(changelist_url())
    assert secret not in follow_up.content.decode()


def test_add_page_shows_no_dot_interactive_flow_fields(admin_client):
    content = admin_client.get(ADD_URL + "add/").content.decode()

    for field in (
        "redirect_uris",
        "client_type",
        "authorization_grant_type",
        "algorithm",
        "allowed_origins",
        "skip_authorization",
        "registration_source",
        "post_logout_redirect_uris",
        "hash_client_secret",
        "client_secret",
        "cimd_expires_at",
    ):
        assert f'name="{field}"' not in content, field
    shown = ("name", "scopes", "access_token_lifetime", "user", "audiences", "client_jwks", "client_jwks_uri")
    for field in shown:
        assert f'name="{field}"' in content, field


def test_private_key_jwt_client_is_created_without_a_secret(admin_client):
    public, _ = public_jwks()
    response = admin_client.post(
        ADD_URL + "add/",
        client_form(token_endpoint_auth_method="private_key_jwt", client_jwks=json.dumps(public)),
    )

    assert response.status_code == 302
    application = Application.objects.get(name="reporting-service")
    assert application.client_jwks == public
    assert not application.secrets.exists()
    thumbprint = jwk.JWK(**public["keys"][0]).thumbprint()
    page = admin_client.get(change_url(application)).content.decode()
    assert thumbprint in page
    assert "client-key-1" in page
    assert "Rotate secret" not in page


def test_private_key_pasted_into_jwks_is_refused_and_not_echoed(admin_client):
    _, private = public_jwks()
    response = admin_client.post(
        ADD_URL + "add/",
        client_form(token_endpoint_auth_method="private_key_jwt", client_jwks=json.dumps(private)),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "private key" in " ".join(errors["client_jwks"])
    assert "Paste only the public keys" in response.content.decode()
    assert private["keys"][0]["d"] not in response.content.decode()
    assert not Application.objects.exists()


def test_private_key_pasted_as_broken_json_is_not_echoed(admin_client):
    _, private = public_jwks()
    broken = json.dumps(private)[:-1] + ",}"  # a trailing comma: not JSON

    response = admin_client.post(
        ADD_URL + "add/",
        client_form(token_endpoint_auth_method="private_key_jwt", client_jwks=broken),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["client_jwks"]
    assert private["keys"][0]["d"] not in response.content.decode()
    assert not Application.objects.exists()


def test_private_key_jwt_without_keys_gets_a_sentence(admin_client):
    response = admin_client.post(ADD_URL + "add/", client_form(token_endpoint_auth_method="private_key_jwt"))

    assert response.status_code == 200
    assert "needs exactly one of" in " ".join(response.context["adminform"].form.errors["client_jwks"])
    assert not Application.objects.exists()


def test_audiences_are_entered_one_per_line(admin_client):
    response = admin_client.post(
        ADD_URL + "add/",
        client_form(
            token_endpoint_auth_method="private_key_jwt",
            client_jwks=json.dumps(public_jwks()[0]),
            audiences="https://api.example.com\r\n\r\n  urn:example:reports  \r\nhttps://api.example.com\r\n",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    application = Application.objects.get(name="reporting-service")
    # Blank lines and spaces dropped, a repeat kept once, stored as the model's JSON list.
    assert application.audiences == ["https://api.example.com", "urn:example:reports"]
    page = admin_client.get(change_url(application)).content.decode()
    assert re.search(
        r'<textarea name="audiences"[^>]*>\s*https://api.example.com\nurn:example:reports</textarea>', page
    ), page


@pytest.mark.parametrize(
    ("lines", "refused"),
    [
        ("https://api.example.com/#reports", ["https://api.example.com/#reports"]),
        ("https://api.example.com/#", ["https://api.example.com/#"]),
        ("api.example.com/reports", ["api.example.com/reports"]),
        ('["https://api.example.com"]', ['["https://api.example.com"]']),
        ("https://ok.example\n/relative\nhttps://a b.example", ["/relative", "https://a b.example"]),
    ],
)
def test_audience_lines_that_are_not_resource_identifiers_are_named(admin_client, lines, refused):
    response = admin_client.post(ADD_URL + "add/", client_form(audiences=lines))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.has_error("audiences", code="invalid_audience")
    (message,) = form.errors["audiences"]
    assert message.startswith('Not an absolute URI without a "#" fragment: ')
    for value in refused:
        assert repr(value) in message
    assert "'https://ok.example'" not in message
    # The box keeps what was typed, so it can be corrected.
    assert lines.split("\n")[-1] in response.content.decode().replace("&quot;", '"')
    assert not Application.objects.exists()


def test_editing_a_client_keeps_its_secrets(admin_client, reports_read, make_client, token_for):
    application, secret = make_client("svc", scopes=["reports:read"])
    scope = Scope.objects.get(name="reports:read")

    response = admin_client.post(
        change_url(application),
        {
            **client_form(name="svc renamed", scopes=[scope.pk], audiences="https://api.example.com"),
            **inline_management(application),
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    application.refresh_from_db()
    assert application.name == "svc renamed"
    assert application.audiences == ["https://api.example.com"]
    assert application.secrets.count() == 1
    assert token_for(application, secret)["token_type"] == "Bearer"


# -- rotating, disabling, revoking -------------------------------------------------------------


def test_rotate_action_shows_new_secret_once_and_old_one_stays_valid(
    admin_client, reports_read, client, make_client, token_for
):
    application, old_secret = make_client("svc", scopes=["reports:read"])

    response = admin_client.post(
        changelist_url(), {"action": "rotate_secret_action", "_selected_action": [application.pk]}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    new_secret = the_secret(response)
    assert new_secret != old_secret
    old_record = application.secrets.get(secret_hash=hash_secret(old_secret))
    assert old_record.state == "expiring"
    assert old_record.prefix in response.content.decode()  # the old secret's new expiry is listed
    assert token_for(application, new_secret)
    assert token_for(application, old_secret)
    assert new_secret not in admin_client.get(change_url(application)).content.decode()


def test_rotate_action_that_fails_partway_issues_no_secret(admin_client, make_client, monkeypatch):
    first, _ = make_client("first")
    second, _ = make_client("second")
    real_rotate = clients.rotate_secret
    rotated = []

    def rotate_then_fail(application, **kwargs):
        if rotated:
            raise DatabaseError("connection lost")
        rotated.append(application)
        return real_rotate(application, **kwargs)

    monkeypatch.setattr(clients, "rotate_secret", rotate_then_fail)

    with pytest.raises(DatabaseError):
        admin_client.post(
            changelist_url(), {"action": "rotate_secret_action", "_selected_action": [first.pk, second.pk]}
        )

    # The new secret of the client rotated first would never have been shown: it must not exist.
    (application,) = rotated
    assert application.secrets.count() == 1
    assert application.secrets.get().expires_at is None
    assert not LogEntry.objects.exists()


def test_rotate_button_asks_before_issuing_a_secret(admin_client, reports_read, make_client, token_for):
    application, _ = make_client("svc", scopes=["reports:read"])
    url = reverse("admin:oauth_cc_application_rotate_secret", args=[application.pk])
    assert url in admin_client.get(change_url(application)).content.decode()

    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert 'method="post"' in confirm.content.decode()
    assert application.secrets.count() == 1

    response = admin_client.post(url)
    assert response.status_code == 200
    assert application.secrets.count() == 2
    assert token_for(application, the_secret(response))


def test_rotate_needs_csrf_token(make_client, admin_user):
    from django.test import Client

    application, _ = make_client("svc")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)

    response = browser.post(reverse("admin:oauth_cc_application_rotate_secret", args=[application.pk]))

    assert response.status_code == 403
    assert application.secrets.count() == 1


def test_rotating_a_private_key_jwt_client_changes_nothing(admin_client, db):
    public, _ = public_jwks()
    application, _ = clients.create_client("signer", auth_method="private_key_jwt", jwks=public)

    response = admin_client.post(
        changelist_url(),
        {"action": "rotate_secret_action", "_selected_action": [application.pk]},
        follow=True,
    )
    button = admin_client.post(
        reverse("admin:oauth_cc_application_rotate_secret", args=[application.pk]), follow=True
    )

    assert "has no secret to rotate" in response.content.decode()
    assert "has no secret to rotate" in button.content.decode()
    assert not ClientSecret.objects.exists()


def test_disable_and_enable_actions(admin_client, reports_read, client, make_client, token_for):
    application, secret = make_client("svc", scopes=["reports:read"])

    admin_client.post(changelist_url(), {"action": "disable_action", "_selected_action": [application.pk]})
    application.refresh_from_db()
    assert not application.is_active
    refused = token_response(client, application, secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"

    admin_client.post(changelist_url(), {"action": "enable_action", "_selected_action": [application.pk]})
    application.refresh_from_db()
    assert application.is_active
    assert token_for(application, secret)


def test_revoke_tokens_action_refuses_old_tokens_and_keeps_the_client_working(
    admin_client, reports_read, client, make_client, token_for
):
    application, secret = make_client("svc", scopes=["reports:read"])
    old = token_for(application, secret)["access_token"]

    action = {"action": "revoke_tokens_action", "_selected_action": [application.pk]}
    response = admin_client.post(changelist_url(), action, follow=True)

    assert "Revoked the tokens of 1 API client" in response.content.decode()
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 401
    new = token_for(application, secret)["access_token"]
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 200


def test_revoke_a_secret_from_the_admin(admin_client, client, make_client):
    application, secret = make_client("svc")
    record = application.secrets.get()
    url = reverse("admin:oauth_cc_application_revoke_secret", args=[application.pk, record.pk])
    assert url in admin_client.get(change_url(application)).content.decode()

    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert record.prefix in confirm.content.decode()
    record.refresh_from_db()
    assert record.revoked_at is None

    response = admin_client.post(url)
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.state == "revoked"
    refused = token_response(client, application, secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    page = admin_client.get(change_url(application)).content.decode()
    assert "revoked" in page
    assert url not in page


def test_revoke_url_only_reaches_the_clients_own_secrets(admin_client, make_client):
    first, _ = make_client("first")
    second, _ = make_client("second")
    other_secret = second.secrets.get()

    response = admin_client.post(
        reverse("admin:oauth_cc_application_revoke_secret", args=[first.pk, other_secret.pk])
    )

    assert response.status_code == 404
    other_secret.refresh_from_db()
    assert other_secret.revoked_at is None


# -- the admin's shape ---------------------------------------------------------------------------


def test_dot_duplicate_screens_are_not_in_the_admin(admin_client):
    content = admin_client.get("/admin/").content.decode()

    assert "/admin/oauth2_provider/" not in content
    # One entry for the clients, linked exactly as often as any other model's entry.
    assert content.count('href="/admin/oauth_cc/application/"') == content.count(
        'href="/admin/oauth_cc/scope/"'
    )
    assert content.count(">API clients<") == 1
    assert isinstance(admin.site._registry[Application], ApplicationAdmin)


def test_client_list_is_searchable_by_client_id(admin_client, make_client):
    wanted, _ = make_client("wanted", scopes=["reports:read"])
    make_client("other")

    response = admin_client.get(changelist_url(), {"q": wanted.client_id})

    assert list(response.context["cl"].result_list) == [wanted]
    assert "reports:read" in response.content.decode()


def test_client_list_queries_do_not_grow_with_clients(
    admin_client, make_client, django_assert_max_num_queries
):
    for i in range(5):
        make_client(f"svc{i}", scopes=["reports:read", "reports:write"])
    with django_assert_max_num_queries(12):
        response = admin_client.get(changelist_url())
    assert response.status_code == 200


def test_scope_admin_counts_clients(admin_client, make_client):
    make_client("a", scopes=["reports:read"])
    make_client("b", scopes=["reports:read"])

    response = admin_client.get(reverse("admin:oauth_cc_scope_changelist"))

    (scope,) = response.context["cl"].result_list
    assert scope.client_count == 2


def test_scope_admin_refuses_invalid_names(admin_client):
    response = admin_client.post(
        reverse("admin:oauth_cc_scope_add"), {"name": "reports read", "description": ""}
    )

    assert response.status_code == 200
    assert "printable ASCII" in " ".join(response.context["adminform"].form.errors["name"])
    assert not Scope.objects.exists()


# -- signing keys ----------------------------------------------------------------------------------


def test_signing_key_admin_never_shows_private_key_material(admin_client, db):
    key = keys.ensure_current_key()
    row = SigningKey.objects.get(pk=key.pk)
    private = json.loads(key_encryption.decrypt(row.private_jwk, row.kid))
    pages = [
        admin_client.get(reverse("admin:oauth_cc_signingkey_changelist")),
        admin_client.get(reverse("admin:oauth_cc_signingkey_change", args=[key.pk])),
        admin_client.get(reverse("admin:oauth_cc_signingkey_history", args=[key.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        content = page.content.decode()
        assert private["d"] not in content
        assert "private_jwk" not in content
    assert key.kid in pages[0].content.decode()
    assert private["x"] in pages[1].content.decode()  # the public half is shown


def test_signing_keys_cannot_be_added_changed_or_deleted(admin_client, db):
    key = keys.ensure_current_key()

    assert admin_client.get(reverse("admin:oauth_cc_signingkey_add")).status_code == 403
    assert admin_client.get(reverse("admin:oauth_cc_signingkey_delete", args=[key.pk])).status_code == 403
    admin_client.post(reverse("admin:oauth_cc_signingkey_change", args=[key.pk]), {"state": "retired"})
    key.refresh_from_db()
    assert key.state == "current"


def test_rotate_signing_keys_from_the_admin(admin_client, db):
    before = keys.ensure_current_key()
    url = reverse("admin:oauth_cc_signingkey_rotate")
    assert url in admin_client.get(reverse("admin:oauth_cc_signingkey_changelist")).content.decode()
    assert admin_client.get(url).status_code == 200
    assert SigningKey.objects.get(state="current") == before

    response = admin_client.post(url, {"algorithm": "EdDSA"}, follow=True)

    current = SigningKey.objects.get(state="current")
    assert current != before
    assert SigningKey.objects.get(pk=before.pk).state == "retired"
    assert SigningKey.objects.get(state="next").algorithm == "EdDSA"
    assert f"Now signing with key {current.kid}" in response.content.decode()


def test_rotate_signing_keys_refuses_unknown_algorithm(admin_client, db):
    before = keys.ensure_current_key()

    response = admin_client.post(
        reverse("admin:oauth_cc_signingkey_rotate"), {"algorithm": "HS256"}, follow=True
    )

    assert "Unknown algorithm HS256" in response.content.decode()
    assert SigningKey.objects.get(state="current") == before


def test_staff_without_permission_cannot_rotate_keys(client, django_user_model, db):
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)
    before = keys.ensure_current_key()

    response = client.post(reverse("admin:oauth_cc_signingkey_rotate"))

    assert response.status_code == 403
    assert SigningKey.objects.get(state="current") == before


def test_dot_screens_are_removed_whatever_the_app_order(tmp_path):
    """With oauth_cc listed before oauth2_provider, DOT's admin still ends up unregistered."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "reordered_settings.py").write_text(
        "from tests.settings import *  # noqa\n"
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'oauth2_provider']\n"
        "INSTALLED_APPS.insert(INSTALLED_APPS.index('oauth_cc') + 1, 'oauth2_provider')\n"
    )
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from django.contrib import admin\n"
        "apps = settings.INSTALLED_APPS\n"
        "assert apps.index('oauth_cc') < apps.index('oauth2_provider'), apps\n"
        "print(sorted(f'{m._meta.label}:{type(a).__module__}' for m, a in admin.site._registry.items()))\n"
    )
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo,
        env={"PYTHONPATH": f"{tmp_path}:{repo}", "DJANGO_SETTINGS_MODULE": "reordered_settings", "PATH": ""},
    )

    registered = result.stdout.strip()
    assert "oauth_cc.Application:oauth_cc.admin" in registered
    assert "oauth2_provider" not in registered


def test_saving_a_secret_client_without_usable_secret_says_how_to_fix(admin_client, db):
    public, _ = public_jwks()
    application, _ = clients.create_client("signer", auth_method="private_key_jwt", jwks=public)

    response = admin_client.post(
        change_url(application), {**client_form(name="signer"), **inline_management(application)}, follow=True
    )

    application.refresh_from_db()
    assert application.token_endpoint_auth_method == "client_secret_basic"
    assert "has no usable secret" in response.content.decode()
    assert "Rotate secret" in response.content.decode()


def test_unticking_active_in_the_admin_form_invalidates_tokens_for_good(
    make_client, token_for, client, admin_client
):
    """Disabling in the admin change form keeps old tokens dead after re-enabling there."""
    application, secret = make_client("form-disabled", scopes=["reports:read"])
    token = token_for(application, secret, scope="reports:read")["access_token"]
    form = {**client_form(name="form-disabled"), **inline_management(application)}
    form.update({"scopes": [s.pk for s in application.scopes.all()]})

    without_active = {name: value for name, value in form.items() if name != "is_active"}  # box unticked
    unticked = admin_client.post(change_url(application), without_active, follow=True)
    assert unticked.status_code == 200
    application.refresh_from_db()
    assert application.is_active is False
    assert application.tokens_valid_after is not None
    ticked = admin_client.post(change_url(application), {**form, "is_active": "on"}, follow=True)
    assert ticked.status_code == 200
    application.refresh_from_db()
    assert application.is_active is True

    response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert "invalidated" in response.json()["detail"]


# -- what the pages show (issue 11) -------------------------------------------------------------


def test_clients_have_no_view_on_site_and_its_url_answers_404(admin_client, make_client):
    from django.contrib.contenttypes.models import ContentType

    application, _ = make_client("svc")
    page = admin_client.get(change_url(application)).content.decode()
    assert "viewsitelink" not in page
    assert "/admin/r/" not in page
    assert not hasattr(application, "get_absolute_url")

    content_type = ContentType.objects.get_for_model(Application)
    response = admin_client.get(f"/admin/r/{content_type.pk}/{application.pk}/")
    assert response.status_code == 404  # was a 500: NoReverseMatch for oauth2_provider:detail


def test_secret_client_page_marks_key_fields_for_private_key_jwt_only(admin_client, make_client):
    application, _ = make_client("svc")

    response = admin_client.get(change_url(application))
    page = response.content.decode()
    # No document is an empty box, not "null"; no extra audiences is an empty box, not "[]".
    assert re.search(r'<textarea name="client_jwks"[^>]*>\s*</textarea>', page), page
    assert re.search(r'<textarea name="audiences"[^>]*>\s*</textarea>', page), page
    assert ">null</textarea>" not in page and ">[]</textarea>" not in page
    # The script's map: which rows each method shows, and the saved method.
    match = re.search(r'<script id="oauth-cc-auth-method-fields" type="application/json">(.*?)<', page)
    config = json.loads(match.group(1))
    assert config == {
        "fields": {
            "client_secret_basic": [],
            "client_secret_post": [],
            "private_key_jwt": ["client_jwks", "client_jwks_uri", "key_thumbprints"],
            "tls_client_auth": [
                "tls_client_auth_subject_dn",
                "tls_client_auth_san_dns",
                "tls_client_auth_san_uri",
                "tls_client_auth_san_ip",
                "tls_client_auth_san_email",
            ],
            "self_signed_tls_client_auth": ["client_jwks", "client_jwks_uri", "key_thumbprints"],
        },
        "method": "client_secret_basic",
    }
    assert "/static/oauth_cc/admin/auth_method_fields.js" in page
    for row in ("field-client_jwks", "field-client_jwks_uri", "field-key_thumbprints"):
        assert f"form-row {row}" in page, row


def test_keys_posted_for_a_secret_client_are_still_refused(admin_client):
    # The page hides the key rows for a secret method; the server still checks what is posted.
    response = admin_client.post(ADD_URL + "add/", client_form(client_jwks=json.dumps(public_jwks()[0])))

    assert response.status_code == 200
    (message,) = response.context["adminform"].form.errors["client_jwks"]
    assert message == (
        "Public keys are only used by private_key_jwt and self_signed_tls_client_auth clients; "
        "clear them or change the method."
    )
    assert not Application.objects.exists()


def test_client_list_columns(admin_client, make_client):
    basic, _ = make_client("basic-svc", scopes=["reports:read", "reports:write"])
    clients.rotate_secret(basic)  # the first secret now expires after the grace period
    Application.objects.filter(pk=basic.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    make_client("post-svc", auth_method="client_secret_post")
    clients.create_client("signer", auth_method="private_key_jwt", jwks=public_jwks()[0])

    response = admin_client.get(changelist_url())
    page = response.content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page)
    assert headers == [
        "name",
        "client_id",
        "is_active",
        "scope_names",
        "auth_method_short",
        "last_used",
        "secret_expires",
        "tokens_last_hour",
    ]
    assert '<span title="client_secret_basic (HTTP Basic)">secret (Basic)</span>' in page
    assert '<span title="client_secret_post (form fields)">secret (POST)</span>' in page
    assert '<span title="private_key_jwt (signed JWT assertion, RFC 7523)">key (JWT)</span>' in page
    assert "reports:read reports:write" in page
    expires = timezone.localtime(basic.secrets.exclude(expires_at=None).get().expires_at)
    assert re.search(
        r'<td class="field-secret_expires"><span class="oauth-cc-secret-expires"[^>]*>'
        + re.escape(f'<time datetime="{expires.isoformat()}">{expires:%Y-%m-%d %H:%M}</time></span></td>'),
        page,
    ), page
    used = timezone.localtime(Application.objects.get(pk=basic.pk).last_used_at)
    last_used = f'<time datetime="{used.isoformat()}">{used:%Y-%m-%d %H:%M}</time>'
    assert f'<td class="field-last_used">{last_used}</td>' in page
    assert page.count('<td class="field-last_used">-</td>') == 2
    # Only the rotated client has a secret that expires.
    assert page.count('class="oauth-cc-secret-expires"') == 1
    assert "/static/oauth_cc/admin/admin.css" in page


def test_signing_key_list_says_the_first_token_creates_a_key(admin_client, db):
    page = admin_client.get(reverse("admin:oauth_cc_signingkey_changelist")).content.decode()
    assert "No signing key yet. The first token request creates one" in page

    keys.ensure_current_key()
    page = admin_client.get(reverse("admin:oauth_cc_signingkey_changelist")).content.decode()
    assert "No signing key yet" not in page
