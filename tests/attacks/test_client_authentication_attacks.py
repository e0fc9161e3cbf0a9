"""Attacks on the form body and the client credentials of the OAuth endpoints (RFC 6749 §2.3, §3.2, §5.2).

Before any signature or secret is checked, the token, introspection and revocation endpoints
read attacker bytes: an ``Authorization: Basic`` header, a form body with its declared length
and content type, and parameters such as ``scope``, ``resource`` and ``grant_type``. Each case
here must be answered with RFC 6749 §5.2 JSON for the reason it targets (400
``invalid_request``, 401 ``invalid_client`` with a Basic challenge when Basic was used,
``invalid_scope``, ``invalid_target``, ``unsupported_grant_type``), never with a 500, and must
not change the database (RFC 6749 §3.2: "parameters MUST NOT be included more than once";
§2.3: one authentication method per request).

Client ids that no client can have (a NUL or other control character, more than 255
characters) are refused before any query: PostgreSQL cannot even compare a string holding NUL.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest

from oauth_cc.models import UsedAssertion
from tests.assertion_helpers import ASSERTION_TYPE, generate_key
from tests.conftest import form_post

from . import expect
from .conftest import INTROSPECT, REVOKE, TOKEN

FORM = "application/x-www-form-urlencoded"
NOT_BASIC = "The Authorization header is not valid HTTP Basic credentials."
GENERIC = "Client authentication failed."
ONE_METHOD = "Use exactly one client authentication method per request (RFC 6749, section 2.3)."
NOT_A_FORM = "The request body is not a valid form."
TOO_LARGE = "The request body is too large."
BAD_LENGTH = "The Content-Length header is not a number."
WRONG_TYPE = "The request body must be application/x-www-form-urlencoded."
UNSUPPORTED = "Only grant_type=client_credentials is supported."
BODY_LIMIT = 64 * 1024
#: A complete token request for the attacker (whose client has no default scope).
GRANT = {"grant_type": "client_credentials", "scope": "reports:read"}


def basic(credentials: str | bytes) -> str:
    """``Basic`` + base64 of exactly ``credentials`` (no form-urlencoding applied)."""
    raw = credentials.encode("utf-8") if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode("ascii")


def post(client: Any, body: str | bytes, path: str = TOKEN, content_type: str = FORM, **extra: Any) -> Any:
    """POST ``body`` exactly as given."""
    return client.post(path, body, content_type=content_type, **extra)


def refused_with_challenge(response: Any, reason: str) -> None:
    """401 ``invalid_client`` for ``reason``, with the RFC 6749 §5.2 Basic challenge."""
    expect.invalid_client(response, reason)
    assert response["WWW-Authenticate"].startswith("Basic realm="), response.get("WWW-Authenticate")


def refused_without_challenge(response: Any, reason: str) -> None:
    expect.invalid_client(response, reason)
    assert "WWW-Authenticate" not in response


def issued(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    return body


@pytest.fixture
def poster(make_client: Any) -> Any:
    """A client_secret_post client: ``(application, secret)``."""
    return make_client("poster", scopes=["reports:read"], auth_method="client_secret_post")


@pytest.fixture(scope="module")
def stray_key() -> Any:
    """An EC key for well-formed (not necessarily valid) client assertions."""
    return generate_key("ES256")


# == Baselines: what the strict parser does accept =================================================


def test_ordinary_basic_request_is_accepted(client, attacker):
    issued(form_post(client, TOKEN, GRANT, **attacker.basic))


def test_basic_scheme_name_is_case_insensitive(client, attacker):
    # RFC 7617 §2 / RFC 9110 §11.1: the scheme name is case-insensitive.
    header = "basic " + attacker.basic["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    issued(form_post(client, TOKEN, GRANT, HTTP_AUTHORIZATION=header))


def test_form_urlencoded_basic_credentials_are_decoded(client, attacker):
    # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic encoding.
    credentials = f"{quote(attacker.client_id, safe='')}:{quote_plus(attacker.secret)}"
    issued(form_post(client, TOKEN, GRANT, HTTP_AUTHORIZATION=basic(credentials)))


def test_content_type_is_matched_case_insensitively_with_parameters(client, attacker):
    content_type = "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
    issued(post(client, urlencode(GRANT), content_type=content_type, **attacker.basic))


def test_percent_encoded_parameter_names_and_values_are_decoded(client, attacker):
    issued(post(client, "grant%5Ftype=client%5Fcredentials&scope=reports%3Aread", **attacker.basic))


def test_exactly_fifty_parameters_are_accepted(client, attacker):
    pairs = list(GRANT.items()) + [(f"x{i}", "1") for i in range(48)]
    issued(form_post(client, TOKEN, pairs, **attacker.basic))


def test_body_of_exactly_64_kib_is_accepted(client, attacker):
    body = urlencode(GRANT) + "&pad="
    body += "p" * (BODY_LIMIT - len(body))
    assert len(body) == BODY_LIMIT
    issued(post(client, body, **attacker.basic))


def test_resource_that_is_the_allowed_audience_is_accepted(client, attacker):
    issued(form_post(client, TOKEN, {**GRANT, "resource": "http://testserver"}, **attacker.basic))


# == The Basic header (RFC 7617, RFC 6749 §2.3.1) ====================================================


def _url_safe_basic() -> str:
    standard = base64.b64encode(b"c???:s>>>").decode()
    assert "+" in standard and "/" in standard
    return "Basic " + standard.replace("+", "-").replace("/", "_")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic !!!!", id="not-base64"),
        pytest.param(basic("client-id-without-a-colon"), id="no-colon"),
        pytest.param(basic(":some-secret"), id="empty-client-id"),
        pytest.param(basic(":"), id="only-a-colon"),
        pytest.param(basic(b""), id="empty-credentials"),
        pytest.param(basic(b"\xff\xfeclient:secret"), id="invalid-utf-8"),
        pytest.param(basic(b"\xc0\xafclient:secret"), id="overlong-utf-8"),
        pytest.param(basic(b"client\xed\xa0\x80:secret"), id="utf-8-encoded-surrogate"),
        pytest.param(basic("client:secret".encode("utf-16")), id="utf-16"),
        pytest.param("Basic YTpiYw", id="missing-padding"),
        pytest.param("Basic YTpi YWM=", id="space-inside-base64"),
        pytest.param(_url_safe_basic(), id="url-safe-alphabet"),
        pytest.param("Basic Y2xpZW50OnNlY3JldA==\x00", id="NUL-after-base64"),
        pytest.param("Basic é", id="non-ascii"),
        pytest.param("Basic ", id="empty-value"),
        pytest.param("Basic", id="scheme-only"),
    ],
)
def test_malformed_basic_header_is_refused_with_a_basic_challenge(client, attacker, unchanged, header):
    with unchanged():
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    refused_with_challenge(response, NOT_BASIC)


@pytest.mark.parametrize("part", ["client_id", "secret"])
def test_basic_percent_escapes_that_decode_to_invalid_utf8_are_refused(client, attacker, unchanged, part):
    # The form body refuses "%FF" (it would become U+FFFD); Basic credentials are form-urlencoded
    # too (RFC 6749 §2.3.1) and must follow the same rule, not decode "%FF" and "%FE" alike.
    client_id = quote(attacker.client_id, safe="") + ("%FF" if part == "client_id" else "")
    secret = quote_plus(attacker.secret) + ("%FF" if part == "secret" else "")
    with unchanged():
        response = form_post(
            client,
            TOKEN,
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(f"{client_id}:{secret}"),
        )
    refused_with_challenge(response, NOT_BASIC)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer {token}", id="bearer-access-token"),
        pytest.param('Digest username="{client_id}"', id="digest"),
        pytest.param("Negotiate YTpi", id="negotiate"),
        pytest.param("Basicx YTpi", id="basic-prefix"),
        pytest.param("{client_id}:{secret}", id="no-scheme"),
    ],
)
def test_authorization_scheme_other_than_basic_is_refused(client, attacker, unchanged, header):
    value = header.format(token=attacker.token, client_id=attacker.client_id, secret=attacker.secret)
    with unchanged():
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=value)
    refused_with_challenge(response, "Authenticate with HTTP Basic or the methods in the server metadata.")


CONTROL_CHARACTERS = [
    pytest.param("\x00", id="NUL"),
    pytest.param("\x01", id="SOH"),
    pytest.param("\x1b", id="ESC"),
    pytest.param("\n", id="LF"),
    pytest.param("\r", id="CR"),
    pytest.param("\t", id="TAB"),
    pytest.param("\x7f", id="DEL"),
    pytest.param("\x85", id="NEL"),
    pytest.param("\u2028", id="LINE-SEPARATOR"),
]


@pytest.mark.parametrize("where", ["alone", "prefix", "suffix"])
@pytest.mark.parametrize("control", CONTROL_CHARACTERS)
def test_basic_client_id_with_a_control_character_is_refused_before_any_query(
    client, attacker, unchanged, django_assert_num_queries, control, where
):
    client_id = {
        "alone": control,
        "prefix": control + attacker.client_id,
        "suffix": attacker.client_id + control,
    }
    header = basic(f"{client_id[where]}:{attacker.secret}")
    with unchanged(), django_assert_num_queries(0):
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    refused_with_challenge(response, GENERIC)


@pytest.mark.parametrize("escape", ["%00", "%0A", "%1B", "%7F", "%C2%85", "%E2%80%A8"])
def test_basic_client_id_percent_encoding_a_control_character_is_refused_before_any_query(
    client, attacker, unchanged, django_assert_num_queries, escape
):
    header = basic(f"{attacker.client_id}{escape}:{quote_plus(attacker.secret)}")
    with unchanged(), django_assert_num_queries(0):
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    refused_with_challenge(response, GENERIC)


@pytest.mark.parametrize("control", CONTROL_CHARACTERS)
def test_form_client_id_with_a_control_character_is_refused_before_any_query(
    client, poster, unchanged, django_assert_num_queries, control
):
    application, secret = poster
    data = {
        "grant_type": "client_credentials",
        "client_id": application.client_id + control,
        "client_secret": secret,
    }
    with unchanged(), django_assert_num_queries(0):
        response = form_post(client, TOKEN, data)
    refused_without_challenge(response, GENERIC)


def test_form_client_id_nul_with_basic_credentials_is_a_mismatch(client, attacker, unchanged):
    with unchanged():
        response = post(client, "grant_type=client_credentials&client_id=%00", **attacker.basic)
    refused_with_challenge(response, "client_id does not match the authenticated client.")


def test_form_client_id_nul_alone_is_not_authentication(client, db, unchanged, django_assert_num_queries):
    with unchanged(), django_assert_num_queries(0):
        response = post(client, "grant_type=client_credentials&client_id=%00")
    refused_with_challenge(response, "Client authentication is required.")


def test_nul_in_the_secret_is_refused(client, attacker, poster, unchanged):
    application, _ = poster
    with unchanged():
        via_basic = form_post(
            client,
            TOKEN,
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(f"{attacker.client_id}:%00"),
        )
        via_form = post(
            client, f"grant_type=client_credentials&client_id={application.client_id}&client_secret=%00"
        )
    refused_with_challenge(via_basic, GENERIC)
    refused_without_challenge(via_form, GENERIC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param({"client_secret": "x"}, "client_id is missing.", id="secret-without-client_id"),
        pytest.param({"client_id": "", "client_secret": "x"}, "client_id is missing.", id="empty-client_id"),
        pytest.param(
            {"client_id": "{cid}"}, "Client authentication is required.", id="client_id-without-secret"
        ),
        pytest.param({"client_id": "{cid}", "client_secret": ""}, GENERIC, id="empty-secret"),
    ],
)
def test_incomplete_client_secret_post_credentials_are_refused(client, poster, unchanged, data, reason):
    application, _ = poster
    form = {
        "grant_type": "client_credentials",
        **{k: v.format(cid=application.client_id) for k, v in data.items()},
    }
    with unchanged():
        response = form_post(client, TOKEN, form)
    expect.invalid_client(response, reason)


@pytest.mark.parametrize("length", [256, 10_000])
@pytest.mark.parametrize("method", ["basic", "post"])
def test_overlong_client_id_is_refused_before_any_query(
    client, attacker, unchanged, django_assert_num_queries, length, method
):
    client_id = "c" * length
    with unchanged(), django_assert_num_queries(0):
        if method == "basic":
            response = form_post(
                client,
                TOKEN,
                {"grant_type": "client_credentials"},
                HTTP_AUTHORIZATION=basic(f"{client_id}:x"),
            )
        else:
            response = form_post(
                client,
                TOKEN,
                {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"},
            )
    if method == "basic":
        refused_with_challenge(response, GENERIC)
    else:
        refused_without_challenge(response, GENERIC)


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda cid: cid.upper(), id="upper-case"),
        pytest.param(lambda cid: cid + " ", id="trailing-space"),
        pytest.param(lambda cid: " " + cid, id="leading-space"),
        pytest.param(lambda cid: chr(0xFEE0 + ord(cid[0])) + cid[1:], id="fullwidth-first-character"),
    ],
)
def test_client_id_spelled_differently_finds_no_client(client, attacker, unchanged, spelling):
    header = basic(f"{quote_plus(spelling(attacker.client_id))}:{attacker.secret}")
    with unchanged():
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    refused_with_challenge(response, GENERIC)


def test_attackers_secret_with_the_victims_client_id_is_refused(client, attacker, victim, unchanged):
    header = basic(f"{victim.client_id}:{attacker.secret}")
    with unchanged():
        response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    refused_with_challenge(response, GENERIC)


# == Several credentials at once (RFC 6749 §2.3: one method per request) ============================


def _assertion(key: Any, client_id: str) -> str:
    return key.sign({"iss": client_id, "sub": client_id, "aud": "http://testserver/oauth/token/"})


@pytest.mark.parametrize(
    "combination", ["basic+post", "basic+post-same-credentials", "basic+assertion", "post+assertion"]
)
def test_two_authentication_methods_at_once_are_refused(
    client, attacker, poster, stray_key, unchanged, combination
):
    application, secret = poster
    data = {"grant_type": "client_credentials"}
    extra: dict[str, str] = {}
    if combination.startswith("basic"):
        extra = attacker.basic
    if combination == "basic+post":
        data |= {"client_id": attacker.client_id, "client_secret": secret}
    elif combination == "basic+post-same-credentials":
        data |= {"client_id": attacker.client_id, "client_secret": attacker.secret}
    elif combination == "basic+assertion":
        data |= {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(stray_key, attacker.client_id),
        }
    else:
        data |= {
            "client_id": application.client_id,
            "client_secret": secret,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(stray_key, application.client_id),
        }
    with unchanged():
        response = form_post(client, TOKEN, data, **extra)
    expect.invalid_request(response, ONE_METHOD)
    assert not UsedAssertion.objects.exists()


@pytest.mark.parametrize(
    "body_client_id",
    [
        pytest.param(lambda a, v: v.client_id, id="the-victims"),
        pytest.param(lambda a, v: "", id="empty"),
        pytest.param(lambda a, v: a.client_id.upper(), id="upper-case"),
        pytest.param(lambda a, v: a.client_id + " ", id="trailing-space"),
        pytest.param(lambda a, v: a.client_id + "\x00", id="trailing-NUL"),
    ],
)
def test_body_client_id_differing_from_basic_is_refused(client, attacker, victim, unchanged, body_client_id):
    data = {"grant_type": "client_credentials", "client_id": body_client_id(attacker, victim)}
    with unchanged():
        response = form_post(client, TOKEN, data, **attacker.basic)
    refused_with_challenge(response, "client_id does not match the authenticated client.")


def test_credentials_in_the_query_string_are_ignored(client, attacker, unchanged):
    # RFC 6749 §2.3.1: client credentials MUST NOT be in the request URI.
    query = urlencode({"client_id": attacker.client_id, "client_secret": attacker.secret})
    with unchanged():
        response = post(client, "grant_type=client_credentials", path=f"{TOKEN}?{query}")
    refused_with_challenge(response, "Client authentication is required.")


@pytest.mark.parametrize("path", [TOKEN, INTROSPECT, REVOKE])
def test_get_with_credentials_in_the_query_is_refused(client, attacker, unchanged, path):
    query = {
        "grant_type": "client_credentials",
        "client_id": attacker.client_id,
        "client_secret": attacker.secret,
    }
    with unchanged():
        response = client.get(path, query, **attacker.basic)
    expect.oauth_error(response, 405, "invalid_request", "Use POST.")
    assert response["Allow"] == "POST"


# == The form body (RFC 6749 §3.2, Appendix B) ======================================================


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"grant_type=client_credentials&scope=r\xe9ports", id="latin-1-in-a-value"),
        pytest.param(b"grant_type=client_credentials&sc\xe9pe=x", id="latin-1-in-a-name"),
        pytest.param(b"grant_type=client_credentials\x80", id="lone-continuation-byte"),
        pytest.param(b"grant_type=client_credentials&scope=\xc0\xaf", id="overlong-encoding"),
        pytest.param(b"grant_type=client_credentials&scope=\xed\xa0\x80", id="encoded-surrogate"),
        pytest.param(b"grant_type=client_credentials&scope=\xe2\x82", id="truncated-sequence"),
        pytest.param(b"grant_type=client_credentials&scope=\xf8\x88\x80\x80\x80", id="five-byte-sequence"),
        pytest.param("grant_type=client_credentials".encode("utf-16"), id="utf-16"),
    ],
)
def test_form_body_that_is_not_utf8_is_refused(client, attacker, unchanged, body):
    with unchanged():
        response = post(client, body, **attacker.basic)
    expect.invalid_request(response, NOT_A_FORM)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("grant_type=client_credentials&scope=%FF", id="FF-in-scope"),
        pytest.param("grant_type=client_credentials&client_id=%FF", id="FF-in-client_id"),
        pytest.param("grant_type=client_credentials%C0%AF", id="overlong-in-grant_type"),
        pytest.param(
            "grant_type=client_credentials&resource=http://testserver%ED%A0%80", id="surrogate-in-resource"
        ),
        pytest.param("grant_type=client_credentials&%E2%82=x", id="truncated-in-a-name"),
        pytest.param("grant_type=client_credentials&scope=reports%3Aread%80", id="lone-continuation"),
    ],
)
def test_percent_escapes_that_decode_to_invalid_utf8_are_refused(client, attacker, unchanged, body):
    with unchanged():
        response = post(client, body, **attacker.basic)
    expect.invalid_request(response, NOT_A_FORM)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("grant_type=client_credentials&&scope=reports:read", id="empty-field"),
        pytest.param("grant_type=client_credentials&scope", id="field-without-equals"),
        pytest.param("&grant_type=client_credentials", id="leading-ampersand"),
        pytest.param("grant_type=client_credentials&", id="trailing-ampersand"),
    ],
)
def test_malformed_form_syntax_is_refused(client, attacker, unchanged, body):
    with unchanged():
        response = post(client, body, **attacker.basic)
    expect.invalid_request(response, NOT_A_FORM)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        pytest.param(
            "grant_type=client_credentials&grant_type=client_credentials",
            "grant_type",
            id="grant_type-same-value",
        ),
        pytest.param(
            "grant_type=password&grant_type=client_credentials", "grant_type", id="grant_type-two-values"
        ),
        pytest.param(
            "grant_type=client_credentials&grant%5Ftype=password",
            "grant_type",
            id="grant_type-percent-encoded-name",
        ),
        pytest.param(
            "grant_type=client_credentials&scope=reports:read&scope=reports:write", "scope", id="scope"
        ),
        pytest.param(
            "grant_type=client_credentials&resource=http://testserver&resource=http://x",
            "resource",
            id="resource",
        ),
        pytest.param(
            "grant_type=client_credentials&client_id={cid}&client_id={cid}", "client_id", id="client_id"
        ),
        pytest.param(
            "grant_type=client_credentials&client_secret=a&client_secret=b",
            "client_secret",
            id="client_secret",
        ),
        pytest.param(
            "grant_type=client_credentials&client_assertion=a&client_assertion=b",
            "client_assertion",
            id="client_assertion",
        ),
        pytest.param("grant_type=client_credentials&=1&=2", "", id="empty-name"),
    ],
)
def test_repeated_parameters_are_refused(client, attacker, unchanged, body, name):
    with unchanged():
        response = post(client, body.format(cid=attacker.client_id), **attacker.basic)
    expect.invalid_request(response, f'The parameter "{name}" was sent more than once.')


@pytest.mark.parametrize("count", [51, 200, 5000])
def test_more_than_fifty_parameters_are_refused(client, attacker, unchanged, count):
    body = "grant_type=client_credentials&" + "&".join(f"x{i}=1" for i in range(count - 1))
    with unchanged():
        response = post(client, body, **attacker.basic)
    expect.invalid_request(response, NOT_A_FORM)


@pytest.mark.parametrize("path", [TOKEN, INTROSPECT, REVOKE])
@pytest.mark.parametrize("size", [BODY_LIMIT + 1, 1024 * 1024], ids=["64KiB+1", "1MiB"])
def test_body_over_64_kib_is_refused(client, attacker, unchanged, path, size):
    body = "grant_type=client_credentials&token=x&pad="
    body += "p" * (size - len(body))
    with unchanged():
        response = post(client, body, path=path, **attacker.basic)
    expect.invalid_request(response, TOO_LARGE)


@pytest.mark.parametrize(
    "length",
    [
        pytest.param("abc", id="letters"),
        pytest.param("-1", id="negative"),
        pytest.param("-0", id="negative-zero"),
        pytest.param("+29", id="plus-sign"),
        pytest.param("\u0662\u0669", id="arabic-indic-digits"),
        pytest.param("\uff12\uff19", id="fullwidth-digits"),
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("29 ", id="trailing-space"),
        pytest.param(" 29", id="leading-space"),
        pytest.param("2_9", id="underscore"),
        pytest.param("0x1d", id="hex"),
        pytest.param("2.9e1", id="float"),
        pytest.param("29, 29", id="list"),
    ],
)
def test_content_length_that_is_not_ascii_digits_is_refused(client, attacker, unchanged, length):
    with unchanged():
        response = post(client, "grant_type=client_credentials", CONTENT_LENGTH=length, **attacker.basic)
    expect.invalid_request(response, BAD_LENGTH)


def test_huge_content_length_is_refused_as_too_large(client, attacker, unchanged):
    with unchanged():
        response = post(client, "grant_type=client_credentials", CONTENT_LENGTH="9" * 40, **attacker.basic)
    expect.invalid_request(response, TOO_LARGE)


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json", id="json"),
        pytest.param("text/plain", id="text"),
        pytest.param("application/octet-stream", id="octet-stream"),
        pytest.param("multipart/form-data; boundary=BoUnDaRy", id="multipart"),
        pytest.param("application/x-www-form-urlencoded-but-not-really", id="form-prefix"),
        pytest.param("application/x-www-form-urlencodedx", id="form-plus-a-letter"),
        pytest.param("application/x-www-form-urlencoded, text/plain", id="two-types"),
        pytest.param("", id="empty"),
    ],
)
def test_wrong_content_type_is_refused(client, attacker, unchanged, content_type):
    with unchanged():
        response = post(client, "grant_type=client_credentials", content_type=content_type, **attacker.basic)
    expect.invalid_request(response, WRONG_TYPE)


@pytest.mark.parametrize("encoding", ["json", "multipart"])
def test_well_formed_parameters_in_another_encoding_are_refused(client, attacker, unchanged, encoding):
    params = {
        "grant_type": "client_credentials",
        "client_id": attacker.client_id,
        "client_secret": attacker.secret,
    }
    with unchanged():
        if encoding == "json":
            response = post(client, json.dumps(params), content_type="application/json")
        else:
            # Django's test client encodes a dict as multipart/form-data.
            response = client.post(TOKEN, params)
            assert response.wsgi_request.META["CONTENT_TYPE"].startswith("multipart/form-data")
    expect.invalid_request(response, WRONG_TYPE)


# == Parameters: resource, scope, grant_type (RFC 8707 §2, RFC 6749 §3.3, §4.4.2) ===================


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        pytest.param(
            "http://[", "resource must be an absolute URI without a fragment", id="unclosed-bracket"
        ),
        pytest.param(
            "http://[::1", "resource must be an absolute URI without a fragment", id="unclosed-ipv6"
        ),
        pytest.param(
            "http://]", "resource must be an absolute URI without a fragment", id="closing-bracket-only"
        ),
        pytest.param("relative/path", "resource must be an absolute URI without a fragment", id="relative"),
        pytest.param(
            "//testserver", "resource must be an absolute URI without a fragment", id="scheme-relative"
        ),
        pytest.param("", "resource must be an absolute URI without a fragment", id="empty"),
        pytest.param(
            "http://testserver#frag", "resource must be an absolute URI without a fragment", id="fragment"
        ),
        pytest.param(
            "http://testserver#", "resource must be an absolute URI without a fragment", id="empty-fragment"
        ),
        pytest.param(
            "http://evil.example", "This client may not request tokens for that resource.", id="other"
        ),
        pytest.param(
            "http://testserver\x00", "resource must be an absolute URI without a fragment", id="NUL"
        ),
        pytest.param(
            "http://test\tserver", "resource must be an absolute URI without a fragment", id="tab-stripped"
        ),
        pytest.param(
            "HTTP://TESTSERVER", "This client may not request tokens for that resource.", id="upper-case"
        ),
    ],
)
def test_resource_that_is_not_a_valid_allowed_uri_is_refused(client, attacker, unchanged, resource, reason):
    data = {**GRANT, "resource": resource}
    with unchanged():
        response = form_post(client, TOKEN, data, **attacker.basic)
    expect.oauth_error(response, 400, "invalid_target", reason)


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param('reports:read"', id="double-quote"),
        pytest.param("reports\\read", id="backslash"),
        pytest.param("reports:read\x00", id="NUL"),
        pytest.param("reports:read\x7f", id="DEL"),
        pytest.param("réports:read", id="non-ascii"),
        pytest.param("reports:read\treports:read", id="tab-separated"),
        pytest.param("reports:read\u3000reports:read", id="ideographic-space"),
        pytest.param("reports:write", id="not-granted"),
    ],
)
def test_scope_outside_the_rfc6749_syntax_or_the_grant_is_refused(client, attacker, unchanged, scope):
    with unchanged():
        response = form_post(
            client, TOKEN, {"grant_type": "client_credentials", "scope": scope}, **attacker.basic
        )
    expect.oauth_error(response, 400, "invalid_scope", "Scope not allowed for this client")


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="one-space"),
        pytest.param(" reports:read", id="leading-space"),
        pytest.param("reports:read ", id="trailing-space"),
        pytest.param("reports:read  reports:read", id="double-space"),
    ],
)
def test_scope_with_empty_names_is_refused(client, attacker, unchanged, scope):
    with unchanged():
        response = form_post(
            client, TOKEN, {"grant_type": "client_credentials", "scope": scope}, **attacker.basic
        )
    expect.oauth_error(response, 400, "invalid_scope", "must be scope names separated by single spaces")


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("grant_type=client_credentials&scope=reports%3Aread%1B%5B2J", id="scope-ESC"),
        pytest.param("grant_type=client_credentials&scope=x%00y", id="scope-NUL"),
        pytest.param("grant_type=client_credentials&scope=x%0D%0Ay", id="scope-CRLF"),
        pytest.param("grant_type=client_credentials&x%1B%5B2J=1&x%1B%5B2J=2", id="repeated-name-ESC"),
        pytest.param("grant_type=client_credentials&x%E2%80%A8=1&x%E2%80%A8=2", id="repeated-name-LS"),
    ],
)
def test_error_description_does_not_echo_control_characters(client, attacker, unchanged, body):
    # RFC 6749 §5.2: error_description is limited to printable ASCII; attacker-chosen control
    # characters echoed into it reach logs, terminals and client UIs.
    with unchanged():
        response = post(client, body, **attacker.basic)
    assert response.status_code == 400, response.content
    description = response.json()["error_description"]
    assert response.json()["error"] in ("invalid_scope", "invalid_request")
    assert not _has_control_characters(description), repr(description)


@pytest.mark.parametrize(
    "grant_type",
    [
        pytest.param("password", id="password"),
        pytest.param("authorization_code", id="authorization_code"),
        pytest.param("refresh_token", id="refresh_token"),
        pytest.param("implicit", id="implicit"),
        pytest.param("urn:ietf:params:oauth:grant-type:jwt-bearer", id="jwt-bearer"),
        pytest.param("urn:ietf:params:oauth:grant-type:token-exchange", id="token-exchange"),
        pytest.param("urn:ietf:params:oauth:grant-type:device_code", id="device_code"),
        pytest.param("CLIENT_CREDENTIALS", id="upper-case"),
        pytest.param("Client_Credentials", id="mixed-case"),
        pytest.param("client_credentials ", id="trailing-space"),
        pytest.param(" client_credentials", id="leading-space"),
        pytest.param("client_credentials\x00", id="trailing-NUL"),
        pytest.param("client credentials", id="space-for-underscore"),
        pytest.param("client_credentials;scope=reports:write", id="semicolon-smuggling"),
        pytest.param("client_credentials,password", id="comma-list"),
    ],
)
def test_grant_type_other_than_client_credentials_is_refused(client, attacker, unchanged, grant_type):
    with unchanged():
        response = form_post(client, TOKEN, {"grant_type": grant_type}, **attacker.basic)
    expect.oauth_error(response, 400, "unsupported_grant_type", UNSUPPORTED)


def test_semicolon_is_not_a_parameter_separator(client, attacker, unchanged):
    # Python < 3.10 split on ";" too; "scope=reports:write" must stay part of grant_type.
    with unchanged():
        response = post(client, "grant_type=client_credentials;scope=reports:write", **attacker.basic)
    expect.oauth_error(response, 400, "unsupported_grant_type", UNSUPPORTED)


@pytest.mark.parametrize(
    "body", ["", "grant_type=", "scope=reports:read"], ids=["empty-body", "empty", "missing"]
)
def test_missing_grant_type_is_an_invalid_request(client, attacker, unchanged, body):
    with unchanged():
        # Django's test client sends no Content-Type with an empty body unless told to.
        response = post(client, body, CONTENT_TYPE=FORM, **attacker.basic)
    expect.invalid_request(response, "grant_type is required.")


# == The same form and credential attacks at introspection and revocation ===========================


@pytest.mark.parametrize("path", [INTROSPECT, REVOKE], ids=["introspect", "revoke"])
@pytest.mark.parametrize(
    "attack",
    [
        "repeated-token",
        "not-utf-8",
        "percent-FF",
        "bad-content-length",
        "wrong-content-type",
        "too-many-parameters",
        "nul-client-id",
        "malformed-basic",
        "two-methods",
        "body-client_id-mismatch",
    ],
)
def test_form_and_credential_attacks_are_refused_at_introspection_and_revocation(
    client, attacker, victim, gateway, unchanged, django_assert_max_num_queries, path, attack
):
    caller = gateway if path == INTROSPECT else attacker
    token = quote_plus(victim.token)
    with unchanged():
        if attack == "repeated-token":
            response = post(client, f"token={token}&token=x", path=path, **caller.basic)
            expect.invalid_request(response, 'The parameter "token" was sent more than once.')
        elif attack == "not-utf-8":
            response = post(client, f"token={token}&x=\xff".encode("latin-1"), path=path, **caller.basic)
            expect.invalid_request(response, NOT_A_FORM)
        elif attack == "percent-FF":
            response = post(client, f"token={token}%FF", path=path, **caller.basic)
            expect.invalid_request(response, NOT_A_FORM)
        elif attack == "bad-content-length":
            response = post(client, f"token={token}", path=path, CONTENT_LENGTH="-1", **caller.basic)
            expect.invalid_request(response, BAD_LENGTH)
        elif attack == "wrong-content-type":
            response = post(
                client,
                json.dumps({"token": victim.token}),
                path=path,
                content_type="application/json",
                **caller.basic,
            )
            expect.invalid_request(response, WRONG_TYPE)
        elif attack == "too-many-parameters":
            body = f"token={token}&" + "&".join(f"x{i}=1" for i in range(50))
            response = post(client, body, path=path, **caller.basic)
            expect.invalid_request(response, NOT_A_FORM)
        elif attack == "nul-client-id":
            with django_assert_max_num_queries(0):
                response = post(
                    client,
                    f"token={token}",
                    path=path,
                    HTTP_AUTHORIZATION=basic(f"{caller.client_id}\x00:{caller.secret}"),
                )
            refused_with_challenge(response, GENERIC)
        elif attack == "malformed-basic":
            response = post(client, f"token={token}", path=path, HTTP_AUTHORIZATION=basic(caller.client_id))
            refused_with_challenge(response, NOT_BASIC)
        elif attack == "two-methods":
            body = f"token={token}&client_id={caller.client_id}&client_secret={quote_plus(caller.secret)}"
            response = post(client, body, path=path, **caller.basic)
            expect.invalid_request(response, ONE_METHOD)
        else:
            response = post(client, f"token={token}&client_id={victim.client_id}", path=path, **caller.basic)
            refused_with_challenge(response, "client_id does not match the authenticated client.")
    # The victim's token was neither revoked nor disclosed.
    assert client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {victim.token}").status_code == 200
