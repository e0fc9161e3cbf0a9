"""Properties of private_key_jwt client assertions: ``parse_assertion`` and the token endpoint.

Assertions are signed with PyJWT by a key registered for the client, so hostile headers and
claims carry a genuine signature and reach every check after it.

The endpoint tests use function-scoped fixtures (``client``, ``make_client`` and so ``db``) and
suppress Hypothesis's ``function_scoped_fixture`` health check. The fixtures register one client
and its key per test; the examples only read them. The one thing an example writes that the
next could see is the record of used ``jti`` values (a single-use rule), so every example first
deletes this client's records: each starts from the same state, whatever ran before it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, event, example, given, note
from hypothesis import strategies as st

from oauth_cc.common.errors import InvalidClient
from oauth_cc.common.jws import REFUSED_HEADER_PARAMETERS
from oauth_cc.common.verification import check_access_token
from oauth_cc.issuer import assertions
from oauth_cc.issuer.assertions import ParsedAssertion, parse_assertion
from oauth_cc.issuer.issuance import MAX_BODY_BYTES
from oauth_cc.models import UsedAssertion
from tests.assertion_helpers import ClientKey, assertion_form, generate_key, jwks_of
from tests.attacks import forge

from .conftest import ISSUER, db_examples
from .strategies import (
    EDGE_NUMBERS,
    EDIT_KINDS,
    depth,
    header_bytes,
    header_values,
    is_standard_json,
    json_values,
    jws_shaped,
    one_character_edit,
    payload_bytes,
    unicode_text,
)

TOKEN_URL = ISSUER + "/oauth/token/"
LEEWAY = 30
MAX_LIFETIME = 300  # exp ahead, without an iat
MAX_AGE = 300  # iat ago
MAX_LIFETIME_WITH_IAT = 3600  # exp ahead, with an iat
#: Seconds around a time limit within which the outcome depends on when the request is handled.
MARGIN = 5


# -- parse_assertion ----------------------------------------------------------------------------


@given(jws_shaped)
@example("eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.AA")  # typ at+jwt: an access token
def test_parse_assertion_returns_a_parsed_assertion_or_raises_invalid_client_for_any_string(
    text: str,
) -> None:
    try:
        parsed = parse_assertion(text)
    except InvalidClient as exc:
        assert exc.description.startswith("client_assertion")
        assert exc.status == 401
        return
    assert isinstance(parsed, ParsedAssertion)
    assert isinstance(parsed.claims, dict)
    assert parsed.jws.typ is None or parsed.jws.typ.lower() not in ("at+jwt", "application/at+jwt")
    try:
        assert isinstance(parsed.unverified_client_id, str)
    except InvalidClient:
        pass


@given(header_bytes, payload_bytes, st.binary(max_size=80))
def test_parse_assertion_of_valid_base64url_around_hostile_json_raises_only_invalid_client(
    header: bytes, payload: bytes, signature: bytes
) -> None:
    text = ".".join(forge.b64(part) for part in (header, payload, signature))
    try:
        parsed = parse_assertion(text)
        parsed.unverified_client_id
    except InvalidClient:
        pass


# -- the token endpoint, for assertions signed by the client's registered key -------------------


@dataclass
class JWTClient:
    client_id: str
    key: ClientKey

    def claims(self, now: float, **changes: Any) -> dict[str, Any]:
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "iat": int(now),
            "exp": int(now) + 60,
            "jti": uuid.uuid4().hex,
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not DELETE}


DELETE = object()


@pytest.fixture
def jwt_client(make_client: Any) -> JWTClient:
    key = generate_key("ES256")
    application, _ = make_client(
        "jwt-props", scopes=["reports:read"], auth_method="private_key_jwt", jwks=jwks_of(key)
    )
    return JWTClient(application.client_id, key)


def post(client: Any, assertion: str) -> Any:
    return client.post(
        "/oauth/token/",
        assertion_form(assertion, scope="reports:read"),
        content_type="application/x-www-form-urlencoded",
    )


def refused_as_invalid_client(response: Any) -> bool:
    body = response.json()
    return (
        response.status_code == 401 and body.get("error") == "invalid_client" and "access_token" not in body
    )


def number(value: Any) -> bool:
    """A NumericDate this site accepts: from the epoch to the end of year 9999."""
    if type(value) is int:
        return 0 <= value <= 253_402_300_799
    return type(value) is float and math.isfinite(value) and 0 <= value <= 253_402_300_799


def header_acceptable(header: dict[str, Any], jwt_client: JWTClient) -> bool:
    """RFC 7515/8725 for this site's assertions, written independently."""
    accepted = assertions.HEADER_POLICY.accepted
    return (
        header.get("alg") == "ES256"
        and header.get("kid", jwt_client.key.kid) == jwt_client.key.kid
        and not set(header) & set(REFUSED_HEADER_PARAMETERS)
        and all(isinstance(header[name], str) for name in accepted & set(header))
        and str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt")
        and is_standard_json(header)
        and len(json.dumps(header, separators=(",", ":")).encode()) <= 2048
        and depth(header) <= 4
    )


def claims_verdict(claims: dict[str, Any], client_id: str, now: float) -> bool | None:
    """RFC 7523 §3 for this site, written independently; None when too close to a time limit."""
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud
    exp, nbf, iat, jti = claims.get("exp"), claims.get("nbf"), claims.get("iat"), claims.get("jti")
    # With an iat its age is bounded and exp may be an hour ahead; without, exp is bounded.
    furthest_exp = MAX_LIFETIME if "iat" not in claims else MAX_LIFETIME_WITH_IAT
    limits = []
    if number(exp):
        limits += [exp - (now - LEEWAY), exp - (now + furthest_exp + LEEWAY)]
    if number(nbf):
        limits += [nbf - (now + LEEWAY)]
    if number(iat):
        limits += [iat - (now + LEEWAY), iat - (now - MAX_AGE - LEEWAY)]
    if any(abs(limit) < MARGIN for limit in limits):
        return None
    return (
        claims.get("iss") == client_id
        and claims.get("sub") == client_id
        and isinstance(auds, list)
        and bool(auds)
        and all(isinstance(a, str) and a for a in auds)
        and bool({TOKEN_URL, ISSUER} & set(auds))
        and number(exp)
        and now - LEEWAY < exp <= now + furthest_exp + LEEWAY
        and ("nbf" not in claims or (number(nbf) and nbf <= now + LEEWAY))
        and ("iat" not in claims or (number(iat) and now - MAX_AGE - LEEWAY <= iat <= now + LEEWAY))
        and isinstance(jti, str)
        and bool(jti)
        and len(jti) <= 255
        and jti.isprintable()
        and is_standard_json(claims)
        and depth(claims) <= 16
    )


OFFSETS = st.one_of(
    st.sampled_from([-400, -331, -300, -60, -31, 0, 29, 60, 299, 331, 400, 3599, 3631, 3700, 10**6]),
    st.integers(-1000, 1000),
    st.floats(-1000, 1000),
)


@st.composite
def claim_changes(draw: st.DrawFn, client_id: str, now: float) -> dict[str, Any]:
    """One or two claims replaced or removed: by a value that matters for that claim (about
    half of them valid), or by anything at all."""
    times = OFFSETS.map(lambda offset: now + offset if isinstance(offset, float) else int(now) + offset)
    identities = st.sampled_from([client_id, client_id + " ", client_id.upper(), "", None])
    relevant = {
        "iss": identities,
        "sub": identities,
        "aud": st.sampled_from(
            [TOKEN_URL, ISSUER, [TOKEN_URL], ["x", ISSUER], [TOKEN_URL, ""], "x", [], [1]]
        ),
        "exp": times,
        "iat": times,
        "nbf": times,
        "jti": st.one_of(
            st.sampled_from(["", "a" * 255, "a" * 256, "jti\n", "\x00", "\u2028"]), unicode_text(max_size=8)
        ),
        "other": json_values(4),
    }
    anything = st.one_of(json_values(4), st.sampled_from(EDGE_NUMBERS), st.sampled_from([True, "", "1"]))
    names = draw(st.lists(st.sampled_from(sorted(relevant)), min_size=1, max_size=2, unique=True))
    return {
        name: draw(st.one_of(relevant[name], relevant[name], st.just(DELETE), anything)) for name in names
    }


header_changes = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {}, optional={"typ": st.sampled_from(["JWT", "at+jwt", "AT+JWT", ""]), "kid": st.just(DELETE)}
    ),
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "cty", "x5t", "jwk", "crit", "jku", "x-unknown"]),
        st.one_of(st.just(DELETE), header_values),
        max_size=3,
    ),
)


@db_examples
@given(st.data(), header_changes)
@example(None, {"typ": "at+jwt"})
@example(None, {"alg": "ES384"})
@example(None, {"kid": DELETE})
@example(None, {"kid": "other-key"})
@example(None, {"jwk": {"kty": "EC"}})
def test_token_endpoint_issues_a_token_exactly_for_valid_signed_assertions(
    client: Any, jwt_client: JWTClient, data: st.DataObject | None, header_change: dict[str, Any]
) -> None:
    """Header members and claims replaced, added or removed, under a genuine signature by the
    client's key: the answer is a token exactly when an independent statement of the rules
    says so, and otherwise ``invalid_client`` with no token and no ``jti`` recorded."""
    UsedAssertion.objects.filter(client_id=jwt_client.client_id).delete()
    now = time.time()
    changes = {} if data is None else data.draw(claim_changes(jwt_client.client_id, now), label="claims")
    header = {"alg": "ES256", "typ": "JWT", "kid": jwt_client.key.kid, **header_change}
    header = {name: value for name, value in header.items() if value is not DELETE}
    claims = jwt_client.claims(now, **changes)
    note(f"header={header!r} claims={claims!r}")
    try:
        assertion = forge.sign_with(jwt_client.key.private_key, "ES256", header, claims)
    except (TypeError, ValueError):
        return  # a value json.dumps refuses (a huge int): nothing to send
    expected = header_acceptable(header, jwt_client) and claims_verdict(claims, jwt_client.client_id, now)
    response = post(client, assertion)
    event(f"expected {expected}, answered {response.status_code}")
    if response.status_code == 200:
        assert expected is not False, response.content
        assert check_access_token(response.json()["access_token"]).client_id == jwt_client.client_id
        assert UsedAssertion.objects.filter(client_id=jwt_client.client_id, jti=claims["jti"]).exists()
    else:
        assert refused_as_invalid_client(response), response.content
        assert expected is not True, response.content
        assert not UsedAssertion.objects.filter(client_id=jwt_client.client_id).exists()


@db_examples
@given(header_bytes, payload_bytes)
def test_token_endpoint_answers_hostile_signed_bytes_with_invalid_client_never_an_error(
    client: Any, jwt_client: JWTClient, header: bytes, payload: bytes
) -> None:
    UsedAssertion.objects.filter(client_id=jwt_client.client_id).delete()
    assertion = forge.sign_with(jwt_client.key.private_key, "ES256", header, payload)
    response = post(client, assertion)
    if len(assertion) > MAX_BODY_BYTES:  # refused before the body is read: a 400, not invalid_client
        assert response.status_code == 400, response.content
        assert response.json()["error_description"] == "The request body is too large."
        return
    assert refused_as_invalid_client(response), response.content


@db_examples
@pytest.mark.parametrize("kind", EDIT_KINDS)
@given(data=st.data())
def test_any_one_character_edit_of_a_genuine_assertion_is_refused_and_issues_no_token(
    client: Any, jwt_client: JWTClient, kind: str, data: st.DataObject
) -> None:
    UsedAssertion.objects.filter(client_id=jwt_client.client_id).delete()
    genuine = jwt_client.key.sign(jwt_client.claims(time.time()))
    edited = data.draw(one_character_edit(genuine, kind), label="edited assertion")
    # A lone surrogate has no UTF-8 form, so no HTTP request can carry it.
    assume(edited.isascii() or not any("\ud800" <= char <= "\udfff" for char in edited))
    response = post(client, edited)
    assert refused_as_invalid_client(response), response.content
    assert not UsedAssertion.objects.filter(client_id=jwt_client.client_id).exists()
    # The refusal was the edit's own: the genuine assertion, sent next, is accepted once.
    assert post(client, genuine).status_code == 200
    assert refused_as_invalid_client(post(client, genuine))


@given(json_values(6), st.dictionaries(unicode_text(max_size=5).filter(lambda n: n != "sub"), json_values(2)))
def test_unverified_client_id_is_the_sub_string_or_invalid_client(value: Any, others: dict[str, Any]) -> None:
    payload = {**others, "sub": value}
    header = forge.b64(b'{"alg":"ES256"}')
    parsed = parse_assertion(f"{header}.{forge.b64(json.dumps(payload).encode())}.AA")
    if isinstance(value, str) and value:
        assert parsed.unverified_client_id == value
    else:
        with pytest.raises(InvalidClient):
            parsed.unverified_client_id


# -- no oracle before authentication ---------------------------------------------------------------

#: The attacker's key: registered for no client.
INTRUDER = generate_key("ES256", kid="intruder")
UNKNOWN_CLIENT_ID = "no-such-client"


@pytest.fixture
def no_failure_limits(settings: Any) -> None:
    """Two failures per example: the per-address limit would otherwise answer 429 part-way."""
    settings.OAUTH_CC = {
        **settings.OAUTH_CC,
        "FAILED_AUTH_RATE_PER_ADDRESS": None,
        "FAILED_AUTH_RATE_PER_CLIENT_ID": None,
    }


@db_examples
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "alg": st.one_of(st.sampled_from(["ES256", "RS256", "PS256", "EdDSA"]), header_values),
            "kid": st.one_of(
                st.sampled_from(["zzz", "", "intruder"]), unicode_text(max_size=12), header_values
            ),
            "typ": header_values,
        },
    ),
    st.booleans(),
)
@example({}, True)  # the client's own kid, another key's signature
@example({"alg": "RS256"}, True)  # the client's EC key named for RS256
@example({"kid": "zzz"}, False)
def test_an_assertion_not_signed_by_the_clients_key_is_answered_as_for_an_unknown_client_id(
    client: Any,
    jwt_client: JWTClient,
    no_failure_limits: None,
    header_change: dict[str, Any],
    names_the_clients_kid: bool,
) -> None:
    """Whatever its header, an assertion the client's key did not sign tells the caller nothing
    about the client it names: the answer (status, body, headers) is the one an unknown
    client_id gets with the same header."""
    header = {
        "alg": "ES256",
        **({"kid": jwt_client.key.kid} if names_the_clients_kid else {}),
        **header_change,
    }
    now = time.time()
    answers = []
    for named in (jwt_client.client_id, UNKNOWN_CLIENT_ID):
        claims = jwt_client.claims(now, iss=named, sub=named)
        try:
            assertion = forge.sign_with(INTRUDER.private_key, "ES256", header, claims)
        except (TypeError, ValueError):
            return  # a value json.dumps refuses: nothing to send
        response = post(client, assertion)
        assert refused_as_invalid_client(response), response.content
        answers.append((response.status_code, response.content, sorted(response.items())))
    note(f"header={header!r}")
    assert answers[0] == answers[1]
    assert not UsedAssertion.objects.filter(client_id=jwt_client.client_id).exists()
