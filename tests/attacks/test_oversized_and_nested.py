"""Inputs sized or shaped to cost the server: every one is a 4xx with a reason, never a 500.

Deeply nested JSON used to raise ``RecursionError`` (an HTML "Server Error (500)" on DRF views,
a JSON ``server_error`` on the OAuth endpoints); a non-numeric ``Content-Length`` raised
``ValueError`` in the form parser. Sizes and depths are now bounded before anything is decoded.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from oauth_cc.models import Application
from tests.conftest import form_post
from tests.helpers import token_claims

from . import expect
from .conftest import INTROSPECT, REVOKE, TOKEN
from .forge import b64, dumps, nested, site_header, site_signed

# 3,000 levels fit in 8 KiB and reach the depth check; 5,000 are refused for their size first.
DEPTHS = [20, 3_000, 5_000]


@pytest.mark.parametrize("depth", DEPTHS)
def test_deeply_nested_header_is_refused(db, at_every_door, unchanged, depth):
    header = dumps(site_header())[:-1] + b',"x":' + nested(depth).encode() + b"}"
    token = f"{b64(header)}.{b64(dumps(token_claims()))}.c2ln"
    reason = "longer than" if len(token) > 8192 else "nested more than"
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, reason)


@pytest.mark.parametrize("depth", [17, 1_500, 5_000])
def test_deeply_nested_claims_behind_a_genuine_signature_are_refused(db, at_every_door, unchanged, depth):
    payload = dumps(token_claims())[:-1] + b',"x":' + nested(depth).encode() + b"}"
    token = site_signed(payload)
    reason = "longer than" if len(token) > 8192 else "nested more than 16 levels"
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, reason)


def test_nesting_inside_strings_does_not_count(client, db):
    token = site_signed(token_claims(note="[" * 500 + "{" * 500))
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_token_over_eight_kib_is_refused_before_decoding(db, at_every_door, unchanged):
    token = site_signed(token_claims(padding="x" * 9000))
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, "longer than 8192 bytes")


def test_huge_bearer_header_is_refused(client, db):
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION="Bearer " + "A" * 1_000_000)
    expect.invalid_token(response, "longer than 8192 bytes")


# -- the form body ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [TOKEN, INTROSPECT, REVOKE])
@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "0x10", "\u0663", " 12", "12 ", "1_0"])
def test_non_numeric_content_length_is_invalid_request(client, attacker, unchanged, path, length):
    with unchanged():
        response = form_post(
            client, path, {"grant_type": "client_credentials"}, CONTENT_LENGTH=length, **attacker.basic
        )
    expect.invalid_request(response, "Content-Length header is not a number")


@pytest.mark.parametrize("path", [TOKEN, INTROSPECT, REVOKE])
def test_body_over_64_kib_is_refused_unread(client, attacker, unchanged, path):
    with unchanged():
        response = form_post(
            client, path, {"grant_type": "client_credentials", "x": "y" * 70_000}, **attacker.basic
        )
    expect.invalid_request(response, "too large")


def test_declared_length_over_the_bound_is_refused(client, attacker):
    response = form_post(
        client, TOKEN, {"grant_type": "client_credentials"}, CONTENT_LENGTH="99999999999", **attacker.basic
    )
    expect.invalid_request(response, "too large")


def test_site_upload_limit_below_ours_is_still_a_400(client, attacker, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = form_post(
        client, TOKEN, {"grant_type": "client_credentials", "x": "y" * 500}, **attacker.basic
    )
    expect.invalid_request(response, "too large")


def test_more_than_fifty_parameters_are_refused(client, attacker):
    params = [("grant_type", "client_credentials")] + [(f"p{i}", "v") for i in range(60)]
    response = form_post(client, TOKEN, params, **attacker.basic)
    expect.invalid_request(response, "not a valid form")


# -- JSON an operator pastes or a client serves ---------------------------------------------


def test_deeply_nested_jwks_in_the_admin_is_a_form_error(admin_client, db):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"),
        {
            "name": "nested",
            "is_active": "on",
            "audiences": "",
            "token_endpoint_auth_method": "private_key_jwt",
            "client_jwks": nested(20_000),
            "client_jwks_uri": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "nested more than 16 levels" in errors["client_jwks"][0]
    assert not Application.objects.exists()


def test_deeply_nested_audiences_in_the_admin_is_a_form_error(admin_client, db):
    response = admin_client.post(
        reverse("admin:oauth_cc_application_add"),
        {
            "name": "nested",
            "is_active": "on",
            "audiences": nested(20_000, '"https://x.example"'),
            "token_endpoint_auth_method": "client_secret_basic",
            "client_jwks": "",
            "client_jwks_uri": "",
        },
    )
    assert response.status_code == 200
    # The field takes one URI per line (no JSON is parsed): the nesting is just a bad line.
    (message,) = response.context["adminform"].form.errors["audiences"]
    assert message.startswith('Not an absolute URI without a "#" fragment: ')
    assert len(message) < 400  # the bad line is shown shortened
    assert not Application.objects.exists()


def test_deeply_nested_jwks_file_is_a_command_error(db, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": ' + nested(50_000) + "}")
    with pytest.raises(CommandError, match="nested more than"):
        call_command("oauth_cc", "client", "create", "nested", "--jwks-file", str(path), stdout=io.StringIO())
    assert not Application.objects.exists()


def test_jwks_file_that_is_not_utf8_is_a_command_error(db, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_bytes(b'{"keys": ["\xff"]}')
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("oauth_cc", "client", "create", "latin", "--jwks-file", str(path), stdout=io.StringIO())


def test_jwk_member_generate_from_outside_never_makes_a_key(db, tmp_path):
    """jwcrypto's JWK(**members) would generate a key for {"generate": ...}; members are filtered."""
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": [{"kid": "k", "kty": "RSA", "generate": "RSA", "size": 16384}]}')
    with pytest.raises(CommandError, match='Key "k" is not a valid JWK'):
        call_command("oauth_cc", "client", "create", "gen", "--jwks-file", str(path), stdout=io.StringIO())


# -- cost: every bound is linear -------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"a":"' + '\\"' * 500_000, id="unterminated-string-of-escaped-quotes"),
        pytest.param('"' * 1_000_000, id="a-million-quotes"),
        pytest.param("[" * 1_000_000, id="a-million-open-brackets"),
        pytest.param('["\\\\' * 200_000, id="strings-ending-in-backslashes"),
    ],
)
def test_the_depth_check_is_linear_on_hostile_text(text):
    """A required closing quote made the string pattern retry at every escaped quote: 16 KB of
    \\" cost a second and a 2.5 MB API body hours. A megabyte must now take milliseconds; the
    timeout fails the test long before a quadratic scan would finish."""
    from oauth_cc.common.json_input import JSONInputError, loads, nesting_depth

    assert nesting_depth(text) >= 0
    with pytest.raises(JSONInputError):
        loads(text, max_bytes=len(text))


@pytest.mark.timeout(30)
def test_a_megabyte_api_body_of_escaped_quotes_is_refused(client, victim):
    body = '{"title":"' + '\\"' * 500_000
    response = client.post(
        "/api/reports/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {victim.token}"
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
