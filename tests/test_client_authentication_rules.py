"""Client authentication (oauth_cc.issuer.client_auth): which credentials a request carries and whether
they hold, each refusal with its exact description and, when Basic was used, its Basic challenge.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from django.test import RequestFactory

from oauth_cc.common.errors import InvalidClient, InvalidRequest, OAuthError
from oauth_cc.common.tokens import MAX_CLIENT_ID_LENGTH
from oauth_cc.issuer import client_auth
from oauth_cc.issuer.client_auth import authenticate_client, presented_credentials
from oauth_cc.models import ClientSecret

BASIC_CHALLENGE = 'Basic realm="oauth_cc", charset="UTF-8"'
NOT_BASIC = "The Authorization header is not valid HTTP Basic credentials."
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def req(authorization: str | None = None) -> Any:
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return RequestFactory().post("/oauth/token/", **extra)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def refused(call: Any, error: type[OAuthError], message: str, *, challenge: bool) -> OAuthError:
    with pytest.raises(error) as raised:
        call()
    assert raised.value.description == message
    assert raised.value.headers.get("WWW-Authenticate") == (BASIC_CHALLENGE if challenge else None)
    return raised.value


# -- presented_credentials --------------------------------------------------------------------


def test_basic_credentials_are_read_and_form_decoded():
    presented = presented_credentials(req(basic("my%20id", "s+e%2Bc")), {})
    assert (presented.method, presented.client_id, presented.secret) == (
        "client_secret_basic",
        "my id",
        "s e+c",
    )
    assert presented.basic is True


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC"])
def test_the_basic_scheme_is_case_insensitive(scheme):
    value = base64.b64encode(b"id:secret").decode()
    assert presented_credentials(req(f"{scheme} {value}"), {}).client_id == "id"


def test_the_secret_may_contain_colons():
    assert presented_credentials(req(basic("id", "a:b:c")), {}).secret == "a:b:c"


@pytest.mark.parametrize("scheme", ["Bearer abc", "Digest x", "Token"])
def test_another_scheme_is_refused_with_the_basic_challenge(scheme):
    refused(
        lambda: presented_credentials(req(scheme), {}),
        InvalidClient,
        "Authenticate with HTTP Basic or the methods in the server metadata.",
        challenge=True,
    )


@pytest.mark.parametrize(
    "value",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic " + base64.b64encode(b"id:s").decode() + "==",
        "Basic aWQ6cw=",
        "Basic " + base64.b64encode(b"id%ff:secret").decode(),
        "Basic " + base64.b64encode(b"id:sec%C3").decode(),
        "Basic é",
    ],
)
def test_malformed_basic_credentials_are_refused(value):
    refused(lambda: presented_credentials(req(value), {}), InvalidClient, NOT_BASIC, challenge=True)


def test_client_secret_post_is_read_from_the_body():
    presented = presented_credentials(req(), {"client_id": "id", "client_secret": "s"})
    assert (presented.method, presented.client_id, presented.secret) == ("client_secret_post", "id", "s")
    assert presented.basic is False


def test_no_credentials_at_all_get_the_basic_challenge():
    refused(
        lambda: presented_credentials(req(), {"client_id": "id"}),
        InvalidClient,
        "Client authentication is required.",
        challenge=True,
    )


def test_two_methods_in_one_request_are_a_bad_request():
    refused(
        lambda: presented_credentials(req(basic("id", "s")), {"client_id": "id", "client_secret": "s"}),
        InvalidRequest,
        "Use exactly one client authentication method per request (RFC 6749, section 2.3).",
        challenge=False,
    )


def test_a_client_id_in_the_body_must_match_the_basic_one():
    refused(
        lambda: presented_credentials(req(basic("id", "s")), {"client_id": "other"}),
        InvalidClient,
        "client_id does not match the authenticated client.",
        challenge=True,
    )
    assert presented_credentials(req(basic("id", "s")), {"client_id": "id"}).client_id == "id"


def test_a_post_secret_without_client_id_is_refused():
    refused(
        lambda: presented_credentials(req(), {"client_secret": "s"}),
        InvalidClient,
        "client_id is missing.",
        challenge=False,
    )


@pytest.mark.parametrize("client_id", ["c" * (MAX_CLIENT_ID_LENGTH + 1), "a\x00b", "tab\tid"])
def test_a_client_id_that_no_client_can_have_is_refused_before_any_lookup(client_id):
    refused(
        lambda: presented_credentials(req(), {"client_id": client_id, "client_secret": "s"}),
        InvalidClient,
        "Client authentication failed.",
        challenge=False,
    )


def test_the_longest_possible_client_id_is_looked_up():
    longest = "c" * MAX_CLIENT_ID_LENGTH
    assert presented_credentials(req(), {"client_id": longest, "client_secret": "s"}).client_id == longest


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"client_assertion": "x.y.z"}, f'client_assertion_type must be "{ASSERTION_TYPE}".'),
        (
            {"client_assertion_type": "urn:other", "client_assertion": "x.y.z"},
            f'client_assertion_type must be "{ASSERTION_TYPE}".',
        ),
        ({"client_assertion_type": ASSERTION_TYPE}, "client_assertion is missing."),
        ({"client_assertion_type": ASSERTION_TYPE, "client_assertion": ""}, "client_assertion is missing."),
    ],
)
def test_assertion_parameters_must_be_complete(params, message):
    refused(lambda: presented_credentials(req(), params), InvalidClient, message, challenge=False)


# -- authenticate_client ----------------------------------------------------------------------


@pytest.fixture
def svc(make_client: Any) -> tuple[Any, str]:
    return make_client("svc", scopes=["reports:read"])


def test_the_right_secret_authenticates_the_client(svc):
    application, secret = svc
    client = authenticate_client(req(basic(application.client_id, secret)), {}, endpoint="token")
    assert client.client_id == application.client_id


def test_an_unknown_client_is_refused_with_the_generic_description(db):
    refused(
        lambda: authenticate_client(req(basic("nobody", "x")), {}, endpoint="token"),
        InvalidClient,
        "Client authentication failed.",
        challenge=True,
    )


def test_a_wrong_secret_is_refused_with_the_generic_description(svc):
    application, secret = svc
    refused(
        lambda: authenticate_client(req(basic(application.client_id, secret + "x")), {}, endpoint="token"),
        InvalidClient,
        "Client authentication failed.",
        challenge=True,
    )


def test_an_empty_secret_is_refused(svc):
    application, _ = svc
    refused(
        lambda: authenticate_client(req(basic(application.client_id, "")), {}, endpoint="token"),
        InvalidClient,
        "Client authentication failed.",
        challenge=True,
    )


def test_another_clients_secret_is_refused(svc, make_client):
    application, _ = svc
    _, other_secret = make_client("other", scopes=["reports:read"])
    refused(
        lambda: authenticate_client(req(basic(application.client_id, other_secret)), {}, endpoint="token"),
        InvalidClient,
        "Client authentication failed.",
        challenge=True,
    )


def test_a_secret_client_may_send_its_secret_by_basic_or_in_the_form(svc):
    application, secret = svc  # registered for client_secret_basic
    params = {"client_id": application.client_id, "client_secret": secret}
    assert authenticate_client(req(), params, endpoint="token").client_id == application.client_id
    by_basic = authenticate_client(req(basic(application.client_id, secret)), {}, endpoint="token")
    assert by_basic.client_id == application.client_id


def test_a_private_key_jwt_client_is_refused_a_secret_and_the_caller_is_not_told_why(svc, caplog):
    application, secret = svc
    application.token_endpoint_auth_method = "private_key_jwt"
    application.client_jwks = {"keys": []}
    application.save()
    params = {"client_id": application.client_id, "client_secret": secret}
    with caplog.at_level(logging.INFO, logger="oauth_cc.client_auth"):
        refused(
            lambda: authenticate_client(req(), params, endpoint="token"),
            InvalidClient,
            "Client authentication failed.",
            challenge=False,
        )
    [record] = [r for r in caplog.records if r.name == "oauth_cc.client_auth"]
    assert record.getMessage() == (
        f"client {application.client_id} presented client_secret_post but is registered for "
        "private_key_jwt"
    )
    assert record.levelno == logging.INFO


def test_a_revoked_secret_is_refused_saying_so(svc):
    application, secret = svc
    from django.utils import timezone

    ClientSecret.objects.filter(application=application).update(revoked_at=timezone.now())
    refused(
        lambda: authenticate_client(req(basic(application.client_id, secret)), {}, endpoint="token"),
        InvalidClient,
        "This client secret has been revoked.",
        challenge=True,
    )


def test_an_expired_secret_is_refused_saying_so(svc):
    from django.utils import timezone

    application, secret = svc
    ClientSecret.objects.filter(application=application).update(expires_at=timezone.now())
    refused(
        lambda: authenticate_client(req(basic(application.client_id, secret)), {}, endpoint="token"),
        InvalidClient,
        "This client secret has expired.",
        challenge=True,
    )


def test_a_disabled_client_is_refused_saying_so(svc):
    application, secret = svc
    application.is_active = False
    application.save()
    refused(
        lambda: authenticate_client(req(basic(application.client_id, secret)), {}, endpoint="token"),
        InvalidClient,
        "This client is disabled.",
        challenge=True,
    )


def test_endpoint_url_is_under_the_issuer():
    assert client_auth.endpoint_url("token") == "http://testserver/oauth/token/"
    assert client_auth.endpoint_url("introspect") == "http://testserver/oauth/introspect/"
