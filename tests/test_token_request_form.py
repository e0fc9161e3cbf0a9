"""How the token, introspection and revocation endpoints read their form (``issuance.parse_form``),
and how a token request's scope and resource are resolved (``resolve_scopes``, ``resolve_audience``,
``issued_at``). Every refusal is checked with its exact description.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.test import RequestFactory

from oauth_cc.common.errors import InvalidRequest, InvalidScope, InvalidTarget, OAuthError
from oauth_cc.issuer import issuance
from oauth_cc.issuer.issuance import MAX_BODY_BYTES, parse_form
from oauth_cc.issuer.state import ClientRecord

FORM = "application/x-www-form-urlencoded"


def request(body: bytes | str, content_type: str = FORM, **meta: Any) -> Any:
    data = body.encode() if isinstance(body, str) else body
    built = RequestFactory().post("/oauth/token/", data=data, content_type=content_type)
    built.META["CONTENT_TYPE"] = content_type
    built.META.update(meta)
    return built


def refused(call: Any, error: type[OAuthError], message: str) -> None:
    with pytest.raises(error) as raised:
        call()
    assert raised.value.description == message


def test_a_form_is_parsed_into_a_dict():
    assert parse_form(request("grant_type=client_credentials&scope=a+b&x=%C3%A9")) == {
        "grant_type": "client_credentials",
        "scope": "a b",
        "x": "é",
    }


@pytest.mark.parametrize(
    "content_type",
    [
        FORM,
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded; charset=utf-8; x=y",
        "Application/X-WWW-Form-Urlencoded",
        f" {FORM} ",
    ],
)
def test_the_form_content_type_is_accepted_with_parameters_and_in_any_case(content_type):
    assert parse_form(request("a=1", content_type=content_type)) == {"a": "1"}


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data", "text/plain", ""])
def test_other_content_types_are_refused(content_type):
    refused(
        lambda: parse_form(request("a=1", content_type=content_type)),
        InvalidRequest,
        "The request body must be application/x-www-form-urlencoded.",
    )


def test_an_empty_body_is_an_empty_form():
    assert parse_form(request("")) == {}


def test_blank_values_are_kept():
    assert parse_form(request("scope=&resource=")) == {"scope": "", "resource": ""}


@pytest.mark.parametrize("body", ["a", "a=1&&b=2", "=1&a", "a=1&b"])
def test_a_body_that_is_not_strictly_a_form_is_refused(body):
    refused(lambda: parse_form(request(body)), InvalidRequest, "The request body is not a valid form.")


@pytest.mark.parametrize("body", [b"a=\xff", b"a=%ff", b"a=%C3", b"%80=1"])
def test_a_body_or_escapes_that_are_not_utf8_are_refused(body):
    refused(lambda: parse_form(request(body)), InvalidRequest, "The request body is not a valid form.")


def test_fifty_parameters_are_read_and_fifty_one_are_refused():
    fifty = "&".join(f"p{n}=v" for n in range(50))
    assert len(parse_form(request(fifty))) == 50
    refused(
        lambda: parse_form(request(fifty + "&p50=v")), InvalidRequest, "The request body is not a valid form."
    )


def test_a_repeated_parameter_is_refused_by_name():
    refused(
        lambda: parse_form(request("grant_type=a&scope=x&grant_type=b")),
        InvalidRequest,
        'The parameter "grant_type" was sent more than once.',
    )


def test_a_body_of_exactly_the_limit_is_read():
    body = "a=" + "x" * (MAX_BODY_BYTES - 2)
    assert parse_form(request(body))["a"] == "x" * (MAX_BODY_BYTES - 2)


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    body = "a=" + "x" * (MAX_BODY_BYTES - 1)
    built = request(body)

    refused(lambda: parse_form(built), InvalidRequest, "The request body is too large.")
    assert not hasattr(built, "_body")  # never read


def test_the_declared_length_is_what_is_checked():
    built = request("a=1", CONTENT_LENGTH=str(MAX_BODY_BYTES + 1))
    refused(lambda: parse_form(built), InvalidRequest, "The request body is too large.")


@pytest.mark.parametrize("length", ["0" * 10 + "3", "00003"])
def test_leading_zeros_in_the_length_are_fine(length):
    assert parse_form(request("a=1", CONTENT_LENGTH=length)) == {"a": "1"}


@pytest.mark.parametrize("length", ["9" * 6, "1" + "0" * 40, "9" * 5000])
def test_a_length_with_too_many_digits_is_too_large(length):
    refused(
        lambda: parse_form(request("a=1", CONTENT_LENGTH=length)),
        InvalidRequest,
        "The request body is too large.",
    )


@pytest.mark.parametrize("length", ["-1", "3.0", "0x10", " 3", "\uff13", "1e3"])
def test_a_length_that_is_not_digits_is_refused(length):
    refused(
        lambda: parse_form(request("a=1", CONTENT_LENGTH=length)),
        InvalidRequest,
        "The Content-Length header is not a number.",
    )


def test_a_missing_length_counts_as_zero():
    built = request("")
    built.META.pop("CONTENT_LENGTH", None)
    assert parse_form(built) == {}


def test_a_site_upload_limit_below_ours_is_too_large(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    refused(lambda: parse_form(request("a=" + "x" * 200)), InvalidRequest, "The request body is too large.")


# -- scopes, audience, iat --------------------------------------------------------------------


def record(**changes: Any) -> ClientRecord:
    base = ClientRecord(
        pk=1,
        client_id="c1",
        name="c1",
        is_active=True,
        grant_type="client-credentials",
        auth_method="client_secret_basic",
        allowed_scopes=frozenset({"a", "b", "c"}),
        default_scopes=("a",),
        access_token_lifetime=None,
        audiences=(),
        can_introspect=False,
        user_id=None,
        jwks=None,
        jwks_uri="",
    )
    return dataclasses.replace(base, **changes)


def test_without_a_scope_parameter_the_default_scopes_are_granted():
    assert issuance.resolve_scopes(record(default_scopes=("a", "b")), None) == ["a", "b"]


def test_without_a_scope_parameter_or_defaults_the_request_is_refused():
    refused(
        lambda: issuance.resolve_scopes(record(default_scopes=()), None),
        InvalidScope,
        "No scope was requested and this client has no default scope.",
    )


def test_requested_scopes_are_granted_once_each_in_order():
    assert issuance.resolve_scopes(record(), "b a b") == ["b", "a"]


@pytest.mark.parametrize("scope", ["", " a", "a ", "a  b", " "])
def test_scope_must_be_names_separated_by_single_spaces(scope):
    refused(
        lambda: issuance.resolve_scopes(record(), scope),
        InvalidScope,
        "The scope parameter must be scope names separated by single spaces.",
    )


def test_scopes_the_client_may_not_have_are_named_sorted():
    refused(
        lambda: issuance.resolve_scopes(record(), "a z y"),
        InvalidScope,
        "Scope not allowed for this client: y z.",
    )


def test_audience_defaults_to_the_first_allowed_or_the_resource_identifier(settings):
    assert issuance.resolve_audience(record(audiences=("https://one", "https://two")), None) == "https://one"
    assert issuance.resolve_audience(record(), None) == "http://testserver"


def test_a_requested_resource_must_be_allowed():
    client = record(audiences=("https://one", "https://two"))
    assert issuance.resolve_audience(client, "https://two") == "https://two"
    refused(
        lambda: issuance.resolve_audience(client, "https://three"),
        InvalidTarget,
        "This client may not request tokens for that resource.",
    )


@pytest.mark.parametrize("resource", ["relative/path", "https://one#frag", "", "https://[bad"])
def test_a_resource_that_is_not_an_absolute_uri_is_refused(resource):
    refused(
        lambda: issuance.resolve_audience(record(audiences=("https://one",)), resource),
        InvalidTarget,
        "resource must be an absolute URI without a fragment (RFC 8707, section 2).",
    )


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_issued_at_is_now_in_whole_seconds(monkeypatch):
    monkeypatch.setattr(issuance, "time", _Clock(1000.9))
    assert issuance.issued_at(record()) == 1000
    assert issuance.issued_at(record(tokens_valid_after=999.5)) == 1000


def test_issued_at_is_never_before_the_clients_cut_off(monkeypatch):
    monkeypatch.setattr(issuance, "time", _Clock(1000.2))
    assert issuance.issued_at(record(tokens_valid_after=1000.5)) == 1001
    assert issuance.issued_at(record(tokens_valid_after=1003.0)) == 1003


def test_a_long_list_of_refused_scopes_is_shown_cut_at_200_characters():
    names = [f"scope:{n:04d}" for n in range(30)]  # 10 characters each: 329 when joined
    joined = " ".join(sorted(names))
    refused(
        lambda: issuance.resolve_scopes(record(), " ".join(names)),
        InvalidScope,
        "Scope not allowed for this client: " + joined[:200] + "....",  # cut mark, then the full stop
    )
