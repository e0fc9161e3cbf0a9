"""Attacks on private_key_jwt client assertions (RFC 7523 §2.2, §3), by RFC 8725 / RFC 9700 class.

The attacker's goal is a token (or an introspection or a revocation) as a client whose
private key it does not hold, or an assertion the server reads differently from what the
signature covers. The classes follow RFC 8725 (JWT BCP): §2.6/§3.7 serialization and JSON
input, §2.1/§3.1/§3.2 algorithm confusion, §2.9/§3.10 keys and key references carried in
the token, §2.8/§3.11 cross-JWT confusion, §3.8/§3.9/§3.10 claim checks; plus bounded
parsing and, after RFC 9700 §2.5 (client authentication) and RFC 7523 §3, single use.

Every refusal is checked for its status, its ``invalid_client`` code and the reason in its
``error_description``, so a test cannot pass because an earlier check refused the request for
another reason; and every refused assertion must leave no ``UsedAssertion`` row behind.
Assertions are built byte by byte with PyJWT's algorithm objects (:mod:`.forge`), never with
oauth_cc's own JOSE code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote_plus

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from oauth_cc.common.jws import b64url_decode
from oauth_cc.issuer.clients import set_active
from oauth_cc.models import Application, RevokedToken, Scope, UsedAssertion
from tests.assertion_helpers import ASSERTION_TYPE, ClientKey, generate_key, jwks_of
from tests.conftest import basic_auth, form_post, refused_unproven

from . import expect
from .bait import KeyBait, self_signed_certificate
from .conftest import INTROSPECT, REVOKE, TOKEN
from .forge import b64, dumps, hmac_signed, json_smuggled, nested, public_key_encodings, sign_with, site_key

ISSUER = "http://testserver"
TOKEN_URL = ISSUER + TOKEN
INTROSPECT_URL = ISSUER + INTROSPECT
REVOKE_URL = ISSUER + REVOKE

NOT_COMPACT = "not a well-formed JWT"
NOT_BASE64URL = "a segment is not base64url"
NOT_VERIFIED = "signature does not verify with this client's registered keys"

#: Leaves a member out of a header or claims set (``None`` is a JSON null, a value to test).
OMIT: Any = object()


@dataclass(frozen=True)
class Raw:
    """A claim value written as raw JSON text (``NaN``, ``1e400``, a lone surrogate escape)."""

    text: str


# -- keys and clients --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, ClientKey]:
    """The registered client's keys, one per key type; RSA generation is slow, so once per module."""
    return {alg: generate_key(alg) for alg in ("RS256", "ES256", "EdDSA")}


@pytest.fixture(scope="module")
def intruder() -> ClientKey:
    """A key the attacker holds; registered for no client (unless a test registers it)."""
    return generate_key("ES256", kid="intruder-key")


@pytest.fixture(scope="module")
def foreign_curves() -> dict[str, Any]:
    """Private keys for algorithms the server does not accept, keyed by JWS algorithm."""
    return {
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "ES512": ec.generate_private_key(ec.SECP521R1()),
        "ES256K": ec.generate_private_key(ec.SECP256K1()),
    }


@pytest.fixture
def make_jwt_client(make_client: Any) -> Callable[..., Application]:
    def make(*client_keys: ClientKey, name: str = "jwt-client", **kwargs: Any) -> Application:
        """A client registered with ``client_jwks_fetch`` (or with the JWK Set given as ``jwks=``)."""
        # A default scope, so token requests need not name one.
        Scope.objects.update_or_create(name="reports:read", defaults={"is_default": True})
        kwargs.setdefault("jwks", jwks_of(*client_keys))
        application, secret = make_client(
            name, scopes=["reports:read"], auth_method="private_key_jwt", **kwargs
        )
        assert secret == ""
        return application

    return make


@pytest.fixture
def holder(make_jwt_client: Any, keys: dict[str, ClientKey]) -> Application:
    """The client under attack: an RSA, an EC and an Ed25519 key, allowed to introspect."""
    return make_jwt_client(keys["RS256"], keys["ES256"], keys["EdDSA"], name="holder", can_introspect=True)


@pytest.fixture
def rival(make_jwt_client: Any, intruder: ClientKey) -> Application:
    """The attacker's own, legitimate private_key_jwt client, registered with the intruder key."""
    return make_jwt_client(intruder, name="rival")


# -- building and presenting assertions ---------------------------------------------------------


def claims_for(client_id: str, **overrides: Any) -> dict[str, Any]:
    """RFC 7523 §3 claims valid now, for the token endpoint; ``OMIT`` drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not OMIT}


def json_text(members: dict[str, Any]) -> bytes:
    """Compact JSON of ``members``, with :class:`Raw` values spliced in as written."""
    plain: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for position, (name, value) in enumerate(members.items()):
        if isinstance(value, Raw):
            placeholder = f"__raw_{position}__"
            raw[json.dumps(placeholder)] = value.text
            value = placeholder
        plain[name] = value
    text = dumps(plain).decode("utf-8")
    for placeholder, value_text in raw.items():
        text = text.replace(placeholder, value_text)
    return text.encode("utf-8")


def header_for(key: ClientKey, **members: Any) -> dict[str, Any]:
    """``{"alg", "kid"}`` of ``key`` plus ``members``; ``OMIT`` drops one."""
    header = {"alg": key.alg, "kid": key.kid, **members}
    return {name: value for name, value in header.items() if value is not OMIT}


def signed(
    key: ClientKey,
    payload: dict[str, Any] | bytes,
    header: dict[str, Any] | bytes | None = None,
    *,
    alg: str | None = None,
) -> str:
    """A compact JWS whose signature by ``key`` over exactly these bytes is genuine."""
    body = json_text(payload) if isinstance(payload, dict) else payload
    return sign_with(key.private_key, alg or key.alg, header_for(key) if header is None else header, body)


def unsigned(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, signature: bytes = b"") -> str:
    head = dumps(header) if isinstance(header, dict) else header
    body = json_text(payload) if isinstance(payload, dict) else payload
    return f"{b64(head)}.{b64(body)}.{b64(signature)}"


def present(client: Any, assertion: str, path: str = TOKEN, **params: str) -> Any:
    """POST ``assertion`` as private_key_jwt client authentication to ``path``."""
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **params}
    if path == TOKEN:
        data = {"grant_type": "client_credentials", **data}
    return form_post(client, path, data)


def refused(response: Any, reason: str, *, used: int = 0) -> None:
    """401 ``invalid_client`` for ``reason``, and no assertion recorded as used by the refusal."""
    expect.invalid_client(response, reason)
    assert "WWW-Authenticate" not in response, "no Basic challenge: Basic was not used"
    assert UsedAssertion.objects.count() == used


def unproven(response: Any, auth_log: Any, reason: str, *, used: int = 0) -> None:
    """Refused before the client's key verified the signature: the generic ``invalid_client`` an
    unknown client_id gets (the reason depends on the client's keys), ``reason`` only in the log."""
    refused_unproven(response, auth_log, reason)
    assert "WWW-Authenticate" not in response, "no Basic challenge: Basic was not used"
    assert UsedAssertion.objects.count() == used


def accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    return body


# == Accepted baselines: the policy is not "refuse everything" =====================================


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_genuine_assertion_is_accepted_and_used_once(client, holder, keys, alg):
    accepted(present(client, keys[alg].sign(claims_for(holder.client_id))))
    assert UsedAssertion.objects.filter(client_id=holder.client_id).count() == 1


def test_assertion_whose_header_has_x5t_and_unknown_private_members_is_accepted(client, holder, keys):
    # RFC 7515 §4: a recipient ignores header parameters it does not understand.
    key = keys["ES256"]
    thumbprint = b64(hashlib.sha1(b"some certificate").digest())
    header = header_for(
        key,
        typ="JWT",
        cty="JWT",
        x5t=thumbprint,
        **{"x5t#S256": b64(hashlib.sha256(b"some certificate").digest())},
        **{"x-vendor-trace": {"span": ["a", 1]}, "iat-hint": 17},
    )
    accepted(present(client, signed(key, claims_for(holder.client_id), header)))


@pytest.mark.parametrize(
    "typ", ["JWT", "client-authentication+jwt", OMIT], ids=["JWT", "rfc7523bis", "no-typ"]
)
def test_assertion_with_an_ordinary_typ_is_accepted(client, holder, keys, typ):
    key = keys["ES256"]
    accepted(present(client, signed(key, claims_for(holder.client_id), header_for(key, typ=typ))))


def test_claims_nested_to_the_depth_bound_and_brackets_inside_strings_are_accepted(client, holder, keys):
    # The claims object is level 1; 15 more levels inside reach the bound of 16 exactly.
    claims = claims_for(holder.client_id, jti="[" * 200, deep=Raw(nested(15)))
    accepted(present(client, signed(keys["ES256"], claims)))


@pytest.mark.parametrize(
    "jti", ["j" * 255, "é" * 255, "日本語-🔑"], ids=["255-ascii", "255-non-ascii", "emoji"]
)
def test_long_and_non_ascii_jti_up_to_the_bound_is_accepted_and_stored(client, holder, keys, jti):
    accepted(present(client, signed(keys["ES256"], claims_for(holder.client_id, jti=jti))))
    assert UsedAssertion.objects.get().jti == jti


@pytest.mark.parametrize(
    ("path", "audience", "params"),
    [
        pytest.param(INTROSPECT, INTROSPECT_URL, {"token": "not-a-token"}, id="introspect-endpoint-url"),
        pytest.param(INTROSPECT, ISSUER, {"token": "not-a-token"}, id="introspect-issuer"),
        pytest.param(REVOKE, REVOKE_URL, {"token": "not-a-token"}, id="revoke-endpoint-url"),
        pytest.param(REVOKE, ISSUER, {"token": "not-a-token"}, id="revoke-issuer"),
    ],
)
def test_genuine_assertion_is_accepted_at_introspection_and_revocation(
    client, holder, keys, path, audience, params
):
    response = present(client, keys["EdDSA"].sign(claims_for(holder.client_id, aud=audience)), path, **params)
    assert response.status_code == 200, response.content
    assert UsedAssertion.objects.count() == 1


# == Serialization confusion (RFC 8725 §2.6, §3.7; RFC 7515 §3, §7) =================================


@pytest.mark.parametrize("form", ["flattened", "general", "flattened-with-dots", "claims-smuggled"])
def test_json_serialization_of_a_genuine_assertion_is_refused(
    client, holder, make_jwt_client, keys, unchanged, form
):
    genuine = signed(keys["ES256"], claims_for(holder.client_id))
    header, payload, signature = genuine.split(".")
    if form == "flattened":
        document = json.dumps({"protected": header, "payload": payload, "signature": signature})
    elif form == "general":
        document = json.dumps(
            {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
        )
    elif form == "flattened-with-dots":
        # Three dot-separated parts, like the compact form, once the dots in "x" are counted.
        document = json.dumps({"protected": header, "payload": payload, "signature": signature, "x": "a.b.c"})
        assert document.count(".") == 2
    else:
        other = make_jwt_client(keys["RS256"], name="other")
        document = json_smuggled(genuine, claims_for(other.client_id))
    with unchanged():
        response = present(client, document)
    refused(response, NOT_COMPACT)
    # The genuine assertion was not used up by the refusal.
    accepted(present(client, genuine))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t + ".", id="trailing-dot"),
        pytest.param(lambda t: "." + t, id="leading-dot"),
        pytest.param(lambda t: t + "." + t.split(".")[2], id="four-segments"),
        pytest.param(lambda t: t + ".e30.e30", id="five-segments-like-JWE"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-segments"),
        pytest.param(lambda t: t.split(".")[1], id="one-segment"),
        pytest.param(lambda t: "." + t.split(".", 1)[1], id="empty-header"),
        pytest.param(lambda t: t.split(".")[0] + ".." + t.split(".")[2], id="empty-payload"),
        pytest.param(lambda t: t.replace(".", "\uff0e"), id="fullwidth-dots"),
        pytest.param(lambda t: "..", id="only-dots"),
    ],
)
def test_wrong_number_of_segments_is_refused(client, holder, keys, unchanged, mangle):
    with unchanged():
        response = present(client, mangle(signed(keys["ES256"], claims_for(holder.client_id))))
    refused(response, NOT_COMPACT)


def test_genuine_header_and_payload_with_the_signature_stripped_is_refused(
    client, holder, keys, unchanged, auth_log
):
    header, payload, _ = signed(keys["ES256"], claims_for(holder.client_id)).split(".")
    with unchanged():
        response = present(client, f"{header}.{payload}.")
    unproven(response, auth_log, NOT_VERIFIED)


def _insert(assertion: str, segment: int, text: str) -> str:
    parts = assertion.split(".")
    parts[segment] = parts[segment][:5] + text + parts[segment][5:]
    return ".".join(parts)


SEGMENTS = [pytest.param(0, id="header"), pytest.param(1, id="payload"), pytest.param(2, id="signature")]


@pytest.mark.parametrize("segment", SEGMENTS)
@pytest.mark.parametrize(
    "stray",
    [
        pytest.param("!", id="bang"),
        pytest.param("=", id="equals"),
        pytest.param("+", id="plus"),
        pytest.param("/", id="slash"),
        pytest.param("%3D", id="percent-escape"),
        pytest.param(" ", id="space"),
        pytest.param("\t", id="tab"),
        pytest.param("\n", id="newline"),
        pytest.param("\x00", id="NUL"),
        pytest.param("é", id="non-ascii"),
        pytest.param("\u200b", id="zero-width-space"),
        pytest.param("\uff21", id="fullwidth-A"),
    ],
)
def test_stray_characters_in_any_segment_are_refused(client, holder, keys, unchanged, segment, stray):
    assertion = _insert(signed(keys["ES256"], claims_for(holder.client_id)), segment, stray)
    with unchanged():
        response = present(client, assertion)
    refused(response, NOT_BASE64URL)


@pytest.mark.parametrize("where", ["leading", "trailing"])
@pytest.mark.parametrize("whitespace", [" ", "\n", "\r\n", "\t"], ids=["space", "LF", "CRLF", "tab"])
def test_whitespace_around_the_assertion_is_refused(client, holder, keys, unchanged, where, whitespace):
    genuine = signed(keys["ES256"], claims_for(holder.client_id))
    assertion = whitespace + genuine if where == "leading" else genuine + whitespace
    with unchanged():
        response = present(client, assertion)
    refused(response, NOT_BASE64URL)


@pytest.mark.parametrize("segment", SEGMENTS)
def test_padding_on_any_segment_is_refused(client, holder, keys, unchanged, segment):
    parts = signed(keys["ES256"], claims_for(holder.client_id)).split(".")
    parts[segment] += "=" * (-len(parts[segment]) % 4 or 4)
    with unchanged():
        response = present(client, ".".join(parts))
    refused(response, NOT_BASE64URL)


@pytest.mark.parametrize("segment", SEGMENTS)
def test_standard_base64_alphabet_in_any_segment_is_refused(client, holder, keys, unchanged, segment):
    key = keys["ES256"]
    # Find a signed assertion whose chosen segment has a "-" or "_" to translate.
    for _ in range(50):
        parts = signed(key, claims_for(holder.client_id, pad="?>?>?>" * 3), header_for(key, x="??>>")).split(
            "."
        )
        if "-" in parts[segment] or "_" in parts[segment]:
            break
    else:
        raise AssertionError("no segment with a character to translate")
    parts[segment] = parts[segment].replace("-", "+").replace("_", "/")
    with unchanged():
        response = present(client, ".".join(parts))
    refused(response, NOT_BASE64URL)


@pytest.mark.parametrize("segment", SEGMENTS)
def test_impossible_base64_length_is_refused(client, holder, keys, unchanged, segment):
    parts = signed(keys["ES256"], claims_for(holder.client_id)).split(".")
    parts[segment] = parts[segment][: len(parts[segment]) // 4 * 4] + "A"
    assert len(parts[segment]) % 4 == 1
    with unchanged():
        response = present(client, ".".join(parts))
    refused(response, NOT_BASE64URL)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _with_unused_bits(members: dict[str, Any]) -> dict[str, Any]:
    """``members`` plus a filler so that its JSON is not a multiple of 3 bytes long."""
    for size in range(3):
        candidate = {**members, "filler": "f" * size}
        if len(json_text(candidate)) % 3:
            return candidate
    raise AssertionError("unreachable")


@pytest.mark.parametrize("segment", SEGMENTS)
def test_non_canonical_trailing_bits_in_any_segment_are_refused(client, holder, keys, unchanged, segment):
    key = keys["ES256"]  # a 64-byte signature: its last character has four unused bits
    genuine = signed(key, _with_unused_bits(claims_for(holder.client_id)), _with_unused_bits(header_for(key)))
    parts = genuine.split(".")
    assert len(parts[segment]) % 4 in (2, 3)
    last = _ALPHABET.index(parts[segment][-1])
    parts[segment] = parts[segment][:-1] + _ALPHABET[last | 1]  # the lowest bit is always unused
    respelled = ".".join(parts)
    assert b64url_decode(genuine.split(".")[segment]) == base64.urlsafe_b64decode(parts[segment] + "==")
    with unchanged():
        response = present(client, respelled)
    refused(response, "not canonical base64url")
    accepted(present(client, genuine))


# == Algorithm confusion (RFC 8725 §2.1, §3.1, §3.2) ===============================================


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("none", id="none"),
        pytest.param("None", id="None"),
        pytest.param("NONE", id="NONE"),
        pytest.param("nOnE", id="nOnE"),
        pytest.param("", id="empty-string"),
    ],
)
@pytest.mark.parametrize("signature", ["empty", "garbage", "genuine-es256"])
def test_alg_none_in_every_spelling_is_refused(client, holder, keys, unchanged, spelling, signature):
    header = {"alg": spelling, "typ": "JWT", "kid": keys["ES256"].kid}
    claims = claims_for(holder.client_id)
    if signature == "empty":
        assertion = unsigned(header, claims)
    elif signature == "garbage":
        assertion = unsigned(header, claims, b"signature")
    else:
        # A signature the client really made, over this very header naming "none".
        assertion = signed(keys["ES256"], claims, header, alg="ES256")
    with unchanged():
        response = present(client, assertion)
    refused(response, f'alg "{spelling}" is not accepted')


_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@pytest.mark.parametrize("hmac_alg", sorted(_DIGESTS))
@pytest.mark.parametrize("encoding", ["pem", "der", "jwk-json", "jwk-json-sorted", "raw"])
@pytest.mark.parametrize("key_alg", ["RS256", "ES256"])
def test_hmac_keyed_with_the_clients_public_key_is_refused(
    client, holder, keys, unchanged, key_alg, encoding, hmac_alg
):
    key = keys[key_alg]
    encodings = public_key_encodings(key.private_key.public_key(), key.public_jwk())
    secret = encodings[encoding] if encoding != "raw" else encodings.get("x962-point", encodings.get("pkcs1"))
    assertion = hmac_signed(
        secret,
        {"alg": hmac_alg, "typ": "JWT", "kid": key.kid},
        claims_for(holder.client_id),
        _DIGESTS[hmac_alg],
    )
    with unchanged():
        response = present(client, assertion)
    refused(response, f'alg "{hmac_alg}" is not accepted')


@pytest.mark.parametrize(
    ("signer", "header_alg", "named", "reason"),
    [
        pytest.param(
            "RS256", "RS256", "ES256", "is an EC key and cannot verify RS256", id="RS256-naming-the-EC-kid"
        ),
        pytest.param(
            "RS256", "ES256", "RS256", "is an RSA key and cannot verify ES256", id="ES256-with-the-RSA-key"
        ),
        pytest.param(
            "EdDSA", "EdDSA", "ES256", "is an EC key and cannot verify EdDSA", id="EdDSA-with-the-EC-key"
        ),
        pytest.param(
            "ES256", "ES256", "EdDSA", "is an OKP key and cannot verify ES256", id="ES256-with-the-OKP-key"
        ),
        pytest.param(
            "RS256", "PS256", "EdDSA", "is an OKP key and cannot verify PS256", id="PS256-with-the-OKP-key"
        ),
        pytest.param(
            "ES256", "EdDSA", "RS256", "is an RSA key and cannot verify EdDSA", id="EdDSA-with-the-RSA-key"
        ),
    ],
)
def test_algorithm_and_key_type_mismatch_is_refused(
    client, holder, keys, unchanged, signer, header_alg, named, reason, auth_log
):
    header = {"alg": header_alg, "kid": keys[named].kid}
    assertion = signed(keys[signer], claims_for(holder.client_id), header)
    with unchanged():
        response = present(client, assertion)
    unproven(response, auth_log, f'Key "{keys[named].kid}" {reason}')


@pytest.mark.parametrize(
    ("registered", "signer"),
    [
        pytest.param("RS256", "ES256", id="ES256-for-an-RSA-only-client"),
        pytest.param("ES256", "EdDSA", id="EdDSA-for-an-EC-only-client"),
        pytest.param("EdDSA", "RS256", id="RS256-for-an-OKP-only-client"),
        pytest.param("ES256", "RS256", id="RS256-for-an-EC-only-client"),
    ],
)
def test_algorithm_no_registered_key_can_verify_without_kid_is_refused(
    client, make_jwt_client, keys, unchanged, registered, signer, auth_log
):
    application = make_jwt_client(keys[registered], name="single-key")
    assertion = signed(keys[signer], claims_for(application.client_id), {"alg": signer})
    with unchanged():
        response = present(client, assertion)
    unproven(response, auth_log, f"None of this client's registered keys can verify {signer}")


def test_key_pinned_to_another_algorithm_is_refused_for_its_pin(
    client, make_jwt_client, keys, unchanged, auth_log
):
    # The registered JWK says "alg": "RS256"; a PS256 assertion naming it must be refused, and
    # the reason (in the operator's log: the caller has proved nothing yet) must be the pin. An
    # RSA key can verify PS256, so "is a RSA key and cannot verify PS256" sends the client's
    # developer looking in the wrong place.
    pinned = {**keys["RS256"].public_jwk(), "kid": "pinned", "alg": "RS256"}
    application = make_jwt_client(name="pinned", jwks={"keys": [pinned]})
    header = {"alg": "PS256", "kid": "pinned"}
    assertion = signed(keys["RS256"], claims_for(application.client_id), header, alg="PS256")
    with unchanged():
        response = present(client, assertion)
    assert "is a RSA key and cannot verify" not in auth_log.text
    unproven(response, auth_log, 'Key "pinned" is registered for RS256 only and cannot verify PS256.')


@pytest.mark.parametrize(
    ("header_alg", "signing_alg"),
    [
        pytest.param("PS256", "RS256", id="RS256-signature-labelled-PS256"),
        pytest.param("RS256", "PS256", id="PS256-signature-labelled-RS256"),
    ],
)
def test_rsa_signature_under_the_other_rsa_algorithm_is_refused(
    client, holder, keys, unchanged, header_alg, signing_alg, auth_log
):
    key = keys["RS256"]
    assertion = signed(
        key, claims_for(holder.client_id), {"alg": header_alg, "kid": key.kid}, alg=signing_alg
    )
    with unchanged():
        response = present(client, assertion)
    unproven(response, auth_log, NOT_VERIFIED)


@pytest.mark.parametrize("alg", ["ES384", "ES512", "ES256K", "PS384", "PS512", "RS384", "RS512"])
def test_algorithms_the_server_does_not_support_are_refused(
    client, holder, keys, foreign_curves, unchanged, alg
):
    private_key = foreign_curves.get(alg, keys["RS256"].private_key)
    kid = keys["ES256" if alg.startswith("ES") else "RS256"].kid
    assertion = sign_with(private_key, alg, {"alg": alg, "kid": kid}, json_text(claims_for(holder.client_id)))
    with unchanged():
        response = present(client, assertion)
    refused(response, f'alg "{alg}" is not accepted')


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("es256", id="lower-case"),
        pytest.param("Es256", id="mixed-case"),
        pytest.param("ES256 ", id="trailing-space"),
        pytest.param(" ES256", id="leading-space"),
        pytest.param("ES-256", id="hyphen"),
        pytest.param("ECDSA", id="family-name"),
    ],
)
def test_alg_is_case_and_space_sensitive(client, holder, keys, unchanged, spelling):
    key = keys["ES256"]
    assertion = signed(key, claims_for(holder.client_id), {"alg": spelling, "kid": key.kid}, alg="ES256")
    with unchanged():
        response = present(client, assertion)
    refused(response, f'alg "{spelling}" is not accepted')


@pytest.mark.parametrize(
    "alg",
    [["ES256"], ["none"], {"name": "ES256"}, 256, 1.0, None, True],
    ids=["list", "list-none", "object", "number", "float", "null", "boolean"],
)
def test_non_string_alg_is_refused(client, holder, keys, unchanged, alg):
    key = keys["ES256"]
    assertion = signed(key, claims_for(holder.client_id), {"alg": alg, "kid": key.kid}, alg="ES256")
    with unchanged():
        response = present(client, assertion)
    refused(response, 'header "alg" is not a string')


def test_missing_alg_is_refused(client, holder, keys, unchanged):
    key = keys["ES256"]
    assertion = signed(key, claims_for(holder.client_id), {"kid": key.kid, "typ": "JWT"}, alg="ES256")
    with unchanged():
        response = present(client, assertion)
    refused(response, 'header has no "alg"')


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


_SHAPE_ALGORITHMS = {"es256": "ES256", "rs256": "RS256", "eddsa": "EdDSA"}


def _reshaped(keys: dict[str, ClientKey], holder_id: str, shape: str) -> str:
    """A genuine header and payload with a signature that is right in substance, wrong in form."""
    alg = _SHAPE_ALGORITHMS[shape.split("-", 1)[0]]
    key = keys[alg]
    genuine = signed(key, claims_for(holder_id))
    header, payload, signature = genuine.split(".")
    raw = b64url_decode(signature)
    signing_input = f"{header}.{payload}".encode("ascii")
    reshaped = {
        "es256-der-encoded": lambda: key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())),
        "es256-trailing-zero-bytes": lambda: raw + b"\x00\x00",
        "es256-leading-zero-byte": lambda: b"\x00" + raw,
        "rs256-leading-zero-byte": lambda: b"\x00" + raw,
        "rs256-last-byte-cut": lambda: raw[:-1],
        "eddsa-trailing-bytes": lambda: raw + b"\x00",
    }[shape]()
    return f"{header}.{payload}.{b64(reshaped)}"


@pytest.mark.parametrize(
    "shape",
    [
        "es256-der-encoded",
        "es256-trailing-zero-bytes",
        "es256-leading-zero-byte",
        "rs256-leading-zero-byte",
        "rs256-last-byte-cut",
        "eddsa-trailing-bytes",
    ],
)
def test_signature_of_the_wrong_length_or_encoding_is_refused(
    client, holder, keys, unchanged, shape, auth_log
):
    with unchanged():
        response = present(client, _reshaped(keys, holder.client_id, shape))
    unproven(response, auth_log, NOT_VERIFIED)


def test_tampered_claims_under_a_genuine_header_and_signature_are_refused(
    client, holder, keys, unchanged, auth_log
):
    header, _, signature = signed(keys["ES256"], claims_for(holder.client_id)).split(".")
    forged = b64(json_text(claims_for(holder.client_id, jti="forged")))
    with unchanged():
        response = present(client, f"{header}.{forged}.{signature}")
    unproven(response, auth_log, NOT_VERIFIED)


# == Keys carried in the token (RFC 8725 §2.9, §3.10; RFC 7515 §4.1.2-§4.1.6) =======================


@pytest.mark.parametrize("kid", ["intruder", "registered-kid", "no-kid"])
def test_assertion_with_an_embedded_jwk_is_refused(client, holder, keys, intruder, unchanged, kid):
    header = {"alg": "ES256", "jwk": intruder.public_jwk()}
    if kid == "intruder":
        header["kid"] = intruder.kid
    elif kid == "registered-kid":
        header["kid"] = header["jwk"]["kid"] = keys["ES256"].kid
    assertion = signed(intruder, claims_for(holder.client_id), header)
    with unchanged():
        response = present(client, assertion)
    refused(response, '"jwk", which carries its own key')


@pytest.mark.parametrize("member", ["jku", "x5u"])
@pytest.mark.parametrize("signer", ["intruder", "genuine-client-key"])
def test_assertion_with_jku_or_x5u_header_is_refused_without_fetching(
    client, holder, keys, intruder, unchanged, member, signer
):
    key = intruder if signer == "intruder" else keys["ES256"]
    with KeyBait(jwks_of(intruder)) as bait:
        assertion = signed(key, claims_for(holder.client_id), header_for(key, **{member: bait.url}))
        with unchanged():
            response = present(client, assertion)
    reason = {"jku": '"jku", which points at a key URL', "x5u": '"x5u", which points at a certificate URL'}
    refused(response, reason[member])
    assert bait.hits == 0, "the server fetched a URL named by the assertion"


def test_assertion_with_a_self_signed_x5c_is_refused(client, holder, intruder, unchanged):
    header = {"alg": "ES256", "kid": intruder.kid, "x5c": [self_signed_certificate(intruder.private_key)]}
    assertion = signed(intruder, claims_for(holder.client_id), header)
    with unchanged():
        response = present(client, assertion)
    refused(response, '"x5c", which carries its own certificate')


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("../../../../etc/passwd", id="path-traversal"),
        pytest.param("..\\..\\windows\\win.ini", id="backslash-traversal"),
        pytest.param("' OR '1'='1' --", id="sql-or"),
        pytest.param("x'; DROP TABLE oauth_cc_usedassertion; --", id="sql-drop"),
        pytest.param("%", id="like-wildcard"),
        pytest.param("*", id="glob"),
        pytest.param("http://127.0.0.1:1/jwks.json", id="url"),
        pytest.param("k" * 1500, id="1500-characters"),
        pytest.param("intruder-key", id="the-attackers-kid"),
    ],
)
def test_injected_kid_finds_no_key(client, holder, keys, unchanged, kid, auth_log):
    key = keys["ES256"]
    assertion = signed(key, claims_for(holder.client_id), header_for(key, kid=kid))
    # Echoed at most 100 characters long, with anything but printable ASCII (and "\\") as "?".
    shown = (kid if len(kid) <= 100 else kid[:100] + "...").replace("\\", "?")
    with unchanged():
        response = present(client, assertion)
    unproven(response, auth_log, f'No key with kid "{shown}" is registered for this client.')


def test_site_signing_kid_names_no_client_key(client, holder, keys, unchanged, auth_log):
    site_kid, _, _ = site_key()
    key = keys["ES256"]
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), header_for(key, kid=site_kid)))
    unproven(response, auth_log, f'No key with kid "{site_kid}"')


@pytest.mark.parametrize(
    "kid",
    [7, 1.5, ["kid"], {"kid": "x"}, None, True],
    ids=["int", "float", "list", "object", "null", "boolean"],
)
def test_non_string_kid_is_refused(client, holder, keys, unchanged, kid):
    key = keys["ES256"]
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), header_for(key, kid=kid)))
    refused(response, 'header "kid" is not a string')


def test_empty_kid_is_refused(client, holder, keys, unchanged):
    key = keys["ES256"]
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), header_for(key, kid="")))
    refused(response, 'header "kid" is empty')


# == Cross-JWT confusion: an access token is not a client assertion (RFC 8725 §3.11, §2.8) ==========


def test_site_access_token_presented_as_client_assertion_is_refused_for_its_typ(
    client, make_client, unchanged
):
    # A client whose client_id is the issuer and whose registered JWKS is the site's own: one of
    # its access tokens then has iss = sub = client_id and aud = the issuer, and is signed by a
    # registered key. Only its type tells it apart from a client assertion.
    application, secret = make_client("site-as-client", scopes=["reports:read"], lifetime=120)
    application.client_id = ISSUER
    application.save()
    # RFC 6749 §2.3.1: the client_id (with its ":") is form-urlencoded before Basic encoding.
    credentials = f"{quote_plus(ISSUER)}:{quote_plus(secret)}".encode()
    response = form_post(
        client,
        TOKEN,
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(credentials).decode(),
    )
    access_token = accepted(response)["access_token"]
    application.token_endpoint_auth_method = "private_key_jwt"
    application.client_jwks = client.get("/.well-known/jwks.json").json()
    application.save()
    payload = b64url_decode(access_token.split(".")[1])
    claims = json.loads(payload)
    assert claims["iss"] == claims["sub"] == claims["client_id"] == claims["aud"] == ISSUER

    with unchanged():
        response = present(client, access_token)
    refused(response, 'client_assertion has typ "at+jwt": an access token is not a client assertion.')

    # The control: the same claims, signed by the same key without typ, authenticate. So the
    # typ alone refused the token, and the refusal did not use up its jti.
    kid, alg, private_key = site_key()
    resigned = sign_with(private_key, alg, {"alg": alg, "kid": kid}, payload)
    accepted(present(client, resigned, scope="reports:read"))


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "Application/AT+JWT"])
def test_assertion_typed_as_an_access_token_is_refused(client, holder, keys, unchanged, typ):
    key = keys["ES256"]
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), header_for(key, typ=typ)))
    refused(response, f'has typ "{typ}": an access token is not a client assertion')


# == Claims behind a genuine client signature (RFC 7523 §3; RFC 8725 §3.8-§3.10) ====================

CLAIM_CASES = [
    # -- iss / sub (RFC 7523 §3 items 1-2)
    pytest.param(
        lambda c: {"iss": c.other}, {}, '"iss" claim must be the client_id', id="iss-another-client"
    ),
    pytest.param(
        lambda c: {"iss": "https://evil.example"}, {}, '"iss" claim must be the client_id', id="iss-url"
    ),
    pytest.param(
        lambda c: {"iss": c.me + " "}, {}, '"iss" claim must be the client_id', id="iss-trailing-space"
    ),
    pytest.param(
        lambda c: {"iss": c.me + "\x00"}, {}, '"iss" claim must be the client_id', id="iss-with-NUL"
    ),
    pytest.param(lambda c: {"iss": OMIT}, {}, '"iss" claim is missing', id="iss-missing"),
    pytest.param(lambda c: {"iss": 1}, {}, '"iss" claim is not a string', id="iss-number"),
    pytest.param(lambda c: {"iss": [c.me]}, {}, '"iss" claim is not a string', id="iss-list"),
    pytest.param(lambda c: {"sub": OMIT}, {}, '"sub" claim is missing', id="sub-missing"),
    pytest.param(
        lambda c: {"sub": OMIT},
        {"client_id": "me"},
        '"sub" claim is missing',
        id="sub-missing-with-client_id",
    ),
    pytest.param(
        lambda c: {"sub": c.other},
        {"client_id": "me"},
        '"sub" claim must be the client_id',
        id="sub-of-another-client-with-client_id-of-the-signer",
    ),
    pytest.param(
        lambda c: {"sub": c.me + "\x00"},
        {"client_id": "me"},
        '"sub" claim must be the client_id',
        id="sub-with-NUL-and-client_id",
    ),
    pytest.param(lambda c: {"sub": ["x"]}, {}, '"sub" claim is not a string', id="sub-list"),
    pytest.param(lambda c: {"sub": None}, {}, '"sub" claim is not a string', id="sub-null"),
    pytest.param(lambda c: {"sub": ""}, {}, '"sub" claim is empty', id="sub-empty"),
    # -- aud (item 3)
    pytest.param(lambda c: {"aud": OMIT}, {}, '"aud" claim is missing', id="aud-missing"),
    pytest.param(
        lambda c: {"aud": "https://other-server.example/oauth/token/"},
        {},
        '"aud" claim must contain the endpoint URL (http://testserver/oauth/token/) or the issuer',
        id="aud-another-server",
    ),
    pytest.param(
        lambda c: {"aud": INTROSPECT_URL}, {}, '"aud" claim must contain', id="aud-another-endpoint"
    ),
    pytest.param(
        lambda c: {"aud": ISSUER + "/"}, {}, '"aud" claim must contain', id="aud-issuer-trailing-slash"
    ),
    pytest.param(lambda c: {"aud": TOKEN_URL.upper()}, {}, '"aud" claim must contain', id="aud-upper-case"),
    pytest.param(
        lambda c: {"aud": ISSUER + ".evil.example"}, {}, '"aud" claim must contain', id="aud-issuer-prefix"
    ),
    pytest.param(
        lambda c: {"aud": [TOKEN_URL, 1]},
        {},
        '"aud" claim must be a string or a list of strings',
        id="aud-list-with-a-number",
    ),
    pytest.param(
        lambda c: {"aud": [TOKEN_URL, None]},
        {},
        '"aud" claim must be a string or a list of strings',
        id="aud-list-with-null",
    ),
    pytest.param(
        lambda c: {"aud": [TOKEN_URL, [TOKEN_URL]]},
        {},
        '"aud" claim must be a string or a list of strings',
        id="aud-list-with-a-list",
    ),
    pytest.param(
        lambda c: {"aud": []}, {}, '"aud" claim must be a string or a list of strings', id="aud-empty-list"
    ),
    pytest.param(
        lambda c: {"aud": ""}, {}, '"aud" claim must be a string or a list of strings', id="aud-empty-string"
    ),
    pytest.param(
        lambda c: {"aud": {"url": TOKEN_URL}},
        {},
        '"aud" claim must be a string or a list of strings',
        id="aud-object",
    ),
    # -- exp (item 4)
    pytest.param(lambda c: {"exp": OMIT}, {}, '"exp" claim is missing', id="exp-missing"),
    pytest.param(lambda c: {"exp": c.now - 3600}, {}, '"exp" claim has passed', id="exp-expired"),
    # With an iat the age bounds the assertion and exp may be an hour ahead; without, 300 s.
    pytest.param(
        lambda c: {"exp": c.now + 3700}, {}, '"exp" claim is more than 3600 seconds ahead', id="exp-too-far"
    ),
    pytest.param(
        lambda c: {"iat": OMIT, "exp": c.now + 3600},
        {},
        '"exp" claim is more than 300 seconds ahead; use short-lived assertions, or add an "iat" claim',
        id="exp-too-far-without-iat",
    ),
    pytest.param(
        lambda c: {"exp": 253_402_300_799},
        {},
        '"exp" claim is more than 3600 seconds ahead',
        id="exp-year-9999",
    ),
    pytest.param(lambda c: {"exp": 2**53}, {}, '"exp" claim is out of range', id="exp-2**53"),
    pytest.param(lambda c: {"exp": Raw("NaN")}, {}, "NaN is not a JSON number", id="exp-NaN"),
    pytest.param(lambda c: {"exp": Raw("Infinity")}, {}, "Infinity is not a JSON number", id="exp-Infinity"),
    pytest.param(
        lambda c: {"exp": Raw("-Infinity")}, {}, "-Infinity is not a JSON number", id="exp-minus-Infinity"
    ),
    pytest.param(lambda c: {"exp": Raw("1e400")}, {}, '"exp" claim is not a finite number', id="exp-1e400"),
    pytest.param(lambda c: {"exp": 2**64}, {}, '"exp" claim is out of range', id="exp-2**64"),
    pytest.param(lambda c: {"exp": -1}, {}, '"exp" claim is out of range', id="exp-before-the-epoch"),
    pytest.param(
        lambda c: {"exp": Raw("9" * 5000)},
        {},
        "client_assertion's claims is not valid JSON",
        id="exp-5000-digits",
    ),
    pytest.param(lambda c: {"exp": str(c.now + 60)}, {}, '"exp" claim is not a number', id="exp-string"),
    pytest.param(lambda c: {"exp": True}, {}, '"exp" claim is not a number', id="exp-boolean"),
    pytest.param(lambda c: {"exp": None}, {}, '"exp" claim is not a number', id="exp-null"),
    pytest.param(lambda c: {"exp": [c.now + 60]}, {}, '"exp" claim is not a number', id="exp-list"),
    # -- nbf, iat (items 5-6)
    pytest.param(lambda c: {"nbf": c.now + 3600}, {}, '"nbf" claim is in the future', id="nbf-in-the-future"),
    pytest.param(lambda c: {"nbf": Raw("NaN")}, {}, "NaN is not a JSON number", id="nbf-NaN"),
    pytest.param(
        lambda c: {"nbf": Raw("-1e400")}, {}, '"nbf" claim is not a finite number', id="nbf-minus-1e400"
    ),
    pytest.param(lambda c: {"nbf": "0"}, {}, '"nbf" claim is not a number', id="nbf-string"),
    pytest.param(lambda c: {"iat": c.now + 3600}, {}, '"iat" claim is in the future', id="iat-in-the-future"),
    pytest.param(
        lambda c: {"iat": c.now - 3600}, {}, '"iat" claim says it was issued more than', id="iat-long-ago"
    ),
    pytest.param(lambda c: {"iat": Raw("1e400")}, {}, '"iat" claim is not a finite number', id="iat-1e400"),
    pytest.param(lambda c: {"iat": False}, {}, '"iat" claim is not a number', id="iat-boolean"),
    # -- jti (item 7)
    pytest.param(lambda c: {"jti": OMIT}, {}, '"jti" claim is missing', id="jti-missing"),
    pytest.param(lambda c: {"jti": 12345}, {}, '"jti" claim is not a string', id="jti-number"),
    pytest.param(lambda c: {"jti": ["a"]}, {}, '"jti" claim is not a string', id="jti-list"),
    pytest.param(lambda c: {"jti": None}, {}, '"jti" claim is not a string', id="jti-null"),
    pytest.param(lambda c: {"jti": ""}, {}, '"jti" claim is empty', id="jti-empty"),
    pytest.param(
        lambda c: {"jti": "j" * 256}, {}, '"jti" claim is longer than 255 characters', id="jti-256-chars"
    ),
    pytest.param(lambda c: {"jti": "a\x00b"}, {}, '"jti" claim contains control characters', id="jti-NUL"),
    pytest.param(lambda c: {"jti": "\x00"}, {}, '"jti" claim contains control characters', id="jti-only-NUL"),
    pytest.param(
        lambda c: {"jti": "\x1b[2J"}, {}, '"jti" claim contains control characters', id="jti-escape"
    ),
    pytest.param(lambda c: {"jti": "a\nb"}, {}, '"jti" claim contains control characters', id="jti-newline"),
    pytest.param(lambda c: {"jti": "a\x7fb"}, {}, '"jti" claim contains control characters', id="jti-DEL"),
    pytest.param(
        lambda c: {"jti": "a\u2028b"}, {}, '"jti" claim contains control characters', id="jti-line-separator"
    ),
    pytest.param(
        lambda c: {"jti": "a\u200bb"}, {}, '"jti" claim contains control characters', id="jti-zero-width"
    ),
    pytest.param(
        lambda c: {"jti": Raw('"\\ud800"')}, {}, "unpaired UTF-16 surrogate", id="jti-lone-surrogate"
    ),
]


@pytest.mark.parametrize(("overrides", "params", "reason"), CLAIM_CASES)
def test_claims_behind_a_genuine_signature_are_checked(
    client, holder, rival, keys, unchanged, overrides, params, reason
):
    context = SimpleNamespace(me=holder.client_id, other=rival.client_id, now=int(time.time()))
    claims = claims_for(holder.client_id, **overrides(context))
    form = {name: holder.client_id if value == "me" else value for name, value in params.items()}
    with unchanged():
        response = present(client, signed(keys["ES256"], claims), **form)
    refused(response, reason)


@pytest.mark.parametrize("name", ["sub", "iss", "aud", "exp", "jti"])
def test_duplicate_claim_names_are_refused(client, holder, rival, keys, unchanged, name):
    claims = claims_for(holder.client_id)
    decoy = {"sub": rival.client_id, "iss": rival.client_id, "aud": ISSUER, "exp": 2**40, "jti": "decoy"}[
        name
    ]
    text = json_text(claims).decode("utf-8")
    # The decoy first and the valid value last, then the other way round: neither is taken.
    for payload in (
        "{" + json.dumps(name) + ":" + json.dumps(decoy) + "," + text[1:],
        text[:-1] + "," + json.dumps(name) + ":" + json.dumps(decoy) + "}",
    ):
        with unchanged():
            response = present(client, signed(keys["ES256"], payload.encode("utf-8")))
        refused(response, f'the member "{name}" appears more than once')


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('{{"alg":"none","alg":"ES256","kid":"{kid}"}}', id="alg-none-then-ES256"),
        pytest.param('{{"alg":"ES256","alg":"HS256","kid":"{kid}"}}', id="alg-ES256-then-HS256"),
        pytest.param('{{"alg":"ES256","kid":"intruder-key","kid":"{kid}"}}', id="kid-twice"),
        pytest.param('{{"typ":"at+jwt","alg":"ES256","kid":"{kid}","typ":"JWT"}}', id="typ-twice"),
    ],
)
def test_duplicate_header_members_are_refused(client, holder, keys, unchanged, header):
    key = keys["ES256"]
    text = header.format(kid=key.kid)
    member = json.loads(text.replace('","', '", "'), object_pairs_hook=lambda pairs: [n for n, _ in pairs])
    duplicated = next(name for name in member if member.count(name) > 1)
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), text.encode("utf-8")))
    refused(response, f'the member "{duplicated}" appears more than once')


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        pytest.param({"crit": ["exp"], "exp": 1}, '"crit", which demands extensions', id="crit"),
        pytest.param({"crit": []}, '"crit", which demands extensions', id="crit-empty"),
        pytest.param({"crit": ["b64"], "b64": False}, '"crit", which demands extensions', id="crit-b64"),
        pytest.param({"b64": False}, '"b64", which changes how the payload is encoded', id="b64-false"),
        pytest.param({"zip": "DEF"}, '"zip", which asks for compression', id="zip"),
        pytest.param({"enc": "A256GCM"}, '"enc", which is a JWE header', id="enc"),
    ],
)
def test_header_members_that_change_processing_are_refused(client, holder, keys, unchanged, members, reason):
    key = keys["ES256"]
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), header_for(key, **members)))
    refused(response, reason)


@pytest.mark.parametrize(
    ("member", "value"),
    [("typ", 1), ("typ", None), ("cty", {"a": 1}), ("x5t", ["x"]), ("x5t#S256", 5)],
    ids=["typ-number", "typ-null", "cty-object", "x5t-list", "x5t#S256-number"],
)
def test_known_header_members_of_the_wrong_type_are_refused(client, holder, keys, unchanged, member, value):
    key = keys["ES256"]
    with unchanged():
        response = present(
            client, signed(key, claims_for(holder.client_id), header_for(key, **{member: value}))
        )
    refused(response, f'header "{member}" is not a string')


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(b"[]", "client_assertion's header is not a JSON object", id="list"),
        pytest.param(b'"ES256"', "client_assertion's header is not a JSON object", id="string"),
        pytest.param(b"null", "client_assertion's header is not a JSON object", id="null"),
        pytest.param(b"alg=ES256", "client_assertion's header is not valid JSON", id="not-json"),
        pytest.param(
            b'{"alg":"ES256"} {}', "client_assertion's header is not valid JSON", id="trailing-data"
        ),
        pytest.param(b'\xef\xbb\xbf{"alg":"ES256"}', "header starts with a byte order mark", id="utf-8-bom"),
        pytest.param(
            '{"alg":"ES256"}'.encode("utf-16"), "client_assertion's header is not UTF-8", id="utf-16"
        ),
        pytest.param(b'{"alg":"ES256","kid":"\xe9"}', "client_assertion's header is not UTF-8", id="latin-1"),
        pytest.param(
            b'{"alg":"ES256","kid":"\xed\xa0\x80"}', "client_assertion's header is not UTF-8", id="cesu-8"
        ),
        pytest.param(b'{"alg":"ES256","kid":"\\udfff"}', "unpaired UTF-16 surrogate", id="lone-surrogate"),
        pytest.param(b'{"alg":"ES256","x":NaN}', "NaN is not a JSON number", id="NaN"),
    ],
)
def test_header_that_is_not_a_strict_json_object_is_refused(client, holder, keys, unchanged, header, reason):
    with unchanged():
        response = present(client, signed(keys["ES256"], claims_for(holder.client_id), header))
    refused(response, reason)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"[]", "client_assertion's claims are not a JSON object", id="list"),
        pytest.param(b"null", "client_assertion's claims are not a JSON object", id="null"),
        pytest.param(b"true", "client_assertion's claims are not a JSON object", id="boolean"),
        pytest.param(b"{}{}", "client_assertion's claims is not valid JSON", id="two-objects"),
        pytest.param(b"", "client_assertion's claims is not valid JSON", id="empty"),
        pytest.param(b"\xef\xbb\xbf{}", "claims starts with a byte order mark", id="utf-8-bom"),
        pytest.param("{}".encode("utf-16"), "client_assertion's claims is not UTF-8", id="utf-16"),
        pytest.param("{}".encode("utf-32"), "client_assertion's claims is not UTF-8", id="utf-32"),
    ],
)
def test_claims_that_are_not_a_strict_json_object_are_refused(
    client, holder, keys, unchanged, payload, reason
):
    if payload == b"":
        # An empty payload segment is "not a well-formed JWT"; a signed empty object is not.
        payload, reason = b" ", "client_assertion's claims is not valid JSON"
    with unchanged():
        response = present(client, signed(keys["ES256"], payload))
    refused(response, reason)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda cid: cid + "\x00", id="trailing-NUL"),
        pytest.param(lambda cid: "\x00", id="only-NUL"),
        pytest.param(lambda cid: cid + "\n", id="trailing-newline"),
        pytest.param(lambda cid: "\x1b" + cid, id="leading-ESC"),
        pytest.param(lambda cid: "c" * 256, id="256-characters"),
    ],
)
def test_assertion_naming_a_client_id_that_cannot_exist_is_refused_before_any_query(
    client, holder, keys, django_assert_num_queries, spoil
):
    # iss = sub = a client_id no client can have, and no client_id parameter: sub names the client.
    assertion = signed(keys["ES256"], claims_for(spoil(holder.client_id)))
    with django_assert_num_queries(0):
        response = present(client, assertion)
    refused(response, "Client authentication failed.")


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text)


@pytest.mark.parametrize("where", ["kid", "alg", "duplicate-claim-name", "duplicate-header-name"])
def test_error_description_does_not_echo_control_characters_from_the_assertion(
    client, holder, keys, unchanged, where
):
    # RFC 6749 §5.2: error_description is printable ASCII; an attacker-chosen escape sequence
    # echoed into it reaches logs, terminals and client UIs.
    key = keys["ES256"]
    evil = "\x1b[2J\x1b]0;owned\x07"
    claims = claims_for(holder.client_id)
    if where == "kid":
        assertion = signed(key, claims, header_for(key, kid=evil))
    elif where == "alg":
        assertion = signed(key, claims, header_for(key, alg=evil[:6]), alg="ES256")
    elif where == "duplicate-claim-name":
        text = json_text(claims).decode()
        assertion = signed(
            key, ("{" + json.dumps(evil) + ":1," + json.dumps(evil) + ":2," + text[1:]).encode()
        )
    else:
        header = dumps(header_for(key)).decode()
        duplicated = "{" + json.dumps(evil) + ":1," + json.dumps(evil) + ":2," + header[1:]
        assertion = signed(key, claims, duplicated.encode())
    with unchanged():
        response = present(client, assertion)
    expect.invalid_client(response, "")
    description = response.json()["error_description"]
    assert not _has_control_characters(description), repr(description)


def test_disabled_clients_assertion_is_refused_without_being_recorded(client, holder, keys):
    # A client is disabled because its key leaked, say: the key's holder must not keep the
    # database writing a row per request. (The jti is not needed for replay protection: the
    # assertion is refused anyway, and expires within ASSERTION_MAX_LIFETIME.)
    set_active(holder, False)
    response = present(client, signed(keys["ES256"], claims_for(holder.client_id)))
    refused(response, "This client is disabled.")


# == Oversized and deeply nested input (bounded parsing) ===========================================


def _assertion_of_length(key: ClientKey, client_id: str, target: int) -> str:
    """A genuine assertion whose length is ``target`` or just under it."""
    base = len(signed(key, claims_for(client_id, padding="")))
    size = (target - base) * 3 // 4
    while True:
        assertion = signed(key, claims_for(client_id, padding="p" * size))
        if len(assertion) <= target:
            return assertion
        size -= 1


def test_assertion_just_under_8_kib_is_accepted(client, holder, keys):
    assertion = _assertion_of_length(keys["ES256"], holder.client_id, 8192)
    assert len(assertion) > 8180
    accepted(present(client, assertion))


@pytest.mark.parametrize("size", [8193, 9 * 1024, 60 * 1024], ids=["8193-bytes", "9-KiB", "60-KiB-in-a-form"])
def test_assertion_over_8_kib_is_refused(client, holder, keys, unchanged, size):
    assertion = _assertion_of_length(keys["ES256"], holder.client_id, size)
    assert 8192 < len(assertion) <= size
    with unchanged():
        response = present(client, assertion)
    refused(response, "client_assertion is longer than 8192 bytes.")


def _deep_header(key: ClientKey, inner: str) -> bytes:
    return b'{"alg":"ES256","kid":"' + key.kid.encode() + b'","x":' + inner.encode() + b"}"


@pytest.mark.parametrize(
    ("inner", "reason"),
    [
        pytest.param(nested(4), "client_assertion's header is nested more than 4 levels deep", id="5-levels"),
        pytest.param(
            nested(900), "client_assertion's header is nested more than 4 levels deep", id="900-levels"
        ),
        pytest.param(
            "[" * 1900, "client_assertion's header is nested more than 4 levels deep", id="1900-unclosed"
        ),
        pytest.param(nested(1500), "client_assertion's header is larger than 2048 bytes", id="1500-levels"),
    ],
)
def test_deeply_nested_header_is_refused(client, holder, keys, unchanged, inner, reason):
    key = keys["ES256"]
    with unchanged():
        response = present(client, signed(key, claims_for(holder.client_id), _deep_header(key, inner)))
    refused(response, reason)


@pytest.mark.parametrize(
    ("payload", "signature"),
    [
        pytest.param("depth-17", "genuine", id="17-levels-signed"),
        pytest.param("depth-2500", "genuine", id="2500-levels-signed"),
        pytest.param("depth-2500", "garbage", id="2500-levels-unsigned"),
        pytest.param("unclosed-5000", "genuine", id="5000-unclosed-signed"),
        pytest.param("unclosed-5000", "none", id="5000-unclosed-alg-none"),
    ],
)
def test_deeply_nested_claims_are_refused(client, holder, keys, unchanged, payload, signature):
    key = keys["ES256"]
    if payload == "depth-17":
        body = json_text(claims_for(holder.client_id, deep=Raw(nested(16))))
    elif payload == "depth-2500":
        body = json_text(claims_for(holder.client_id, deep=Raw(nested(2500))))
    else:
        body = b"{" * 5000
    if signature == "genuine":
        assertion = signed(key, body)
    elif signature == "garbage":
        assertion = unsigned(header_for(key), body, b"\x01" * 64)
    else:
        assertion = unsigned({"alg": "none"}, body)
    with unchanged():
        response = present(client, assertion)
    refused(response, "client_assertion's claims is nested more than 16 levels deep.")


# == Replay and single use (RFC 7523 §3 item 7) ===================================================


@pytest.mark.parametrize(
    "refusal",
    [
        "unsupported-grant-type",
        "repeated-parameter",
        "two-authentication-methods",
        "tampered-signature",
        "unknown-kid",
        "wrong-audience",
        "client_id-of-another-client",
    ],
)
def test_refused_assertion_does_not_use_up_its_jti(client, holder, rival, keys, unchanged, refusal, auth_log):
    key = keys["ES256"]
    jti = f"kept-{uuid.uuid4().hex}"
    genuine = signed(key, claims_for(holder.client_id, jti=jti))
    with unchanged():
        if refusal == "unsupported-grant-type":
            response = present(client, genuine, grant_type="password")
            expect.oauth_error(response, 400, "unsupported_grant_type", "Only grant_type=client_credentials")
        elif refusal == "repeated-parameter":
            data = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", genuine),
                ("client_assertion", genuine),
            ]
            expect.invalid_request(
                form_post(client, TOKEN, data), 'The parameter "client_assertion" was sent more'
            )
        elif refusal == "two-authentication-methods":
            response = present_with_basic(
                client, genuine, HTTP_AUTHORIZATION=basic_auth(holder.client_id, "guess")
            )
            expect.invalid_request(response, "Use exactly one client authentication method")
        elif refusal == "tampered-signature":
            header, payload, signature = genuine.split(".")
            tampered = b64(bytes([b64url_decode(signature)[0] ^ 1]) + b64url_decode(signature)[1:])
            unproven(present(client, f"{header}.{payload}.{tampered}"), auth_log, NOT_VERIFIED)
        elif refusal == "unknown-kid":
            same_jti = signed(key, claims_for(holder.client_id, jti=jti), header_for(key, kid="gone"))
            unproven(present(client, same_jti), auth_log, 'No key with kid "gone"')
        elif refusal == "wrong-audience":
            same_jti = signed(key, claims_for(holder.client_id, jti=jti, aud="https://elsewhere.example"))
            refused(present(client, same_jti), '"aud" claim must contain')
        else:
            unproven(
                present(client, genuine, client_id=rival.client_id), auth_log, f'No key with kid "{key.kid}"'
            )
    accepted(present(client, genuine))
    assert UsedAssertion.objects.filter(client_id=holder.client_id, jti=jti).count() == 1


def present_with_basic(client: Any, assertion: str, **extra: Any) -> Any:
    return form_post(
        client,
        TOKEN,
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        **extra,
    )


def test_assertion_that_authenticated_is_used_up_even_when_the_request_is_refused(client, holder, keys):
    assertion = signed(keys["ES256"], claims_for(holder.client_id))
    response = present(client, assertion, scope="reports:write")
    expect.oauth_error(response, 400, "invalid_scope", "Scope not allowed for this client: reports:write.")
    # The client proved who it is with this assertion; it cannot be spent a second time.
    refused(present(client, assertion, scope="reports:read"), "already been used", used=1)


@pytest.mark.parametrize(
    ("first", "second"),
    [(INTROSPECT, TOKEN), (TOKEN, REVOKE), (REVOKE, INTROSPECT)],
    ids=["introspect-then-token", "token-then-revoke", "revoke-then-introspect"],
)
def test_assertion_for_the_issuer_cannot_be_replayed_at_another_endpoint(client, holder, keys, first, second):
    assertion = signed(keys["EdDSA"], claims_for(holder.client_id, aud=ISSUER))
    assert present(client, assertion, first, token="x").status_code == 200
    with_token = {"token": "x"} if second != TOKEN else {}
    refused(present(client, assertion, second, **with_token), "already been used", used=1)


def test_respelled_ecdsa_signature_of_a_used_assertion_is_refused_as_a_replay(client, holder, keys):
    # (r, n - s) is a second valid ECDSA signature of the same input: the bytes differ, the jti
    # does not, and the jti is what is single-use.
    genuine = signed(keys["ES256"], claims_for(holder.client_id))
    accepted(present(client, genuine))
    header, payload, signature = genuine.split(".")
    raw = b64url_decode(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    respelled = f"{header}.{payload}.{b64(r + (_P256_ORDER - s).to_bytes(32, 'big'))}"
    assert respelled != genuine
    refused(present(client, respelled), "already been used", used=1)


def test_attacker_cannot_use_up_a_jti_of_another_client(client, holder, rival, keys, intruder):
    # jti values are unique per client (RFC 7523 §3: "unique ... for this issuer"): the rival
    # spending "shared" first does not block the holder's assertion with the same jti.
    accepted(present(client, signed(intruder, claims_for(rival.client_id, jti="shared"))))
    accepted(present(client, signed(keys["ES256"], claims_for(holder.client_id, jti="shared"))))
    assert sorted(UsedAssertion.objects.values_list("client_id", flat=True)) == sorted(
        [holder.client_id, rival.client_id]
    )


# == The same attacks at introspection and revocation ===============================================


DOOR_ATTACKS = [
    "alg-none",
    "hmac-with-the-public-key",
    "jwk-header",
    "jku-header",
    "another-clients-key",
    "access-token-as-assertion",
    "json-serialization",
    "aud-of-the-token-endpoint",
    "aud-of-the-other-endpoint",
    "replayed",
]


@pytest.mark.parametrize("path", [INTROSPECT, REVOKE], ids=["introspect", "revoke"])
@pytest.mark.parametrize("attack", DOOR_ATTACKS)
def test_forged_assertions_are_refused_at_introspection_and_revocation(
    client, holder, keys, intruder, unchanged, path, attack, auth_log
):
    # The holder's own token is the target: introspected, or revoked, by someone posing as it.
    first = signed(keys["ES256"], claims_for(holder.client_id, aud=ISSUER + path))
    target = accepted(present(client, signed(keys["ES256"], claims_for(holder.client_id))))["access_token"]
    used = 1
    audience = ISSUER + path
    other_door = REVOKE_URL if path == INTROSPECT else INTROSPECT_URL
    claims = claims_for(holder.client_id, aud=audience)
    key = keys["ES256"]
    bait = KeyBait(jwks_of(intruder))
    if attack == "alg-none":
        assertion, reason = unsigned({"alg": "none"}, claims), 'alg "none" is not accepted'
    elif attack == "hmac-with-the-public-key":
        secret = key.public_pem()
        assertion = hmac_signed(secret, {"alg": "HS256", "kid": key.kid}, claims)
        reason = 'alg "HS256" is not accepted'
    elif attack == "jwk-header":
        header = {"alg": "ES256", "kid": intruder.kid, "jwk": intruder.public_jwk()}
        assertion, reason = signed(intruder, claims, header), '"jwk", which carries its own key'
    elif attack == "jku-header":
        assertion = signed(intruder, claims, header_for(intruder, jku=bait.url))
        reason = '"jku", which points at a key URL'
    elif attack == "another-clients-key":
        assertion, reason = signed(intruder, claims, {"alg": "ES256"}), NOT_VERIFIED
    elif attack == "access-token-as-assertion":
        assertion, reason = target, 'typ "at+jwt": an access token is not a client assertion'
    elif attack == "json-serialization":
        header, payload, signature = signed(key, claims).split(".")
        assertion = json.dumps({"protected": header, "payload": payload, "signature": signature})
        reason = NOT_COMPACT
    elif attack == "aud-of-the-token-endpoint":
        assertion = signed(key, claims_for(holder.client_id, aud=TOKEN_URL))
        reason = f'"aud" claim must contain the endpoint URL ({audience})'
    elif attack == "aud-of-the-other-endpoint":
        assertion = signed(key, claims_for(holder.client_id, aud=other_door))
        reason = f'"aud" claim must contain the endpoint URL ({audience})'
    else:
        assert present(client, first, path, token="unrelated").status_code == 200
        assertion, reason, used = first, "already been used", 2
    with bait, unchanged():
        response = present(client, assertion, path, token=target)
    if reason == NOT_VERIFIED:  # the one refusal that depends on the client's keys
        unproven(response, auth_log, reason, used=used)
    else:
        refused(response, reason, used=used)
    assert bait.hits == 0
    assert not RevokedToken.objects.exists()
    # The token is still good, and the holder still gets in with a genuine assertion.
    introspection = present(
        client, signed(key, claims_for(holder.client_id, aud=ISSUER)), INTROSPECT, token=target
    )
    assert introspection.status_code == 200
    assert introspection.json()["active"] is True
