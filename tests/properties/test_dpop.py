"""Properties of ``oauth_cc.common.dpop.check_proof``: the DPoP proof parser on attacker bytes.

No database: ``check_proof`` does everything but single use, which is a separate call.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote_to_bytes

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import event, given
from hypothesis import strategies as st

from oauth_cc.common import dpop
from tests import dpop_helpers as dh
from tests.attacks import forge

from .strategies import ALG_VALUES, any_values, depth, header_dicts, is_standard_json, json_values, jws_shaped

URL = "http://testserver/api/whoami/"
TOKEN = "header.payload.signature"
#: One key for every example: generating keys is slow and the key is not what varies.
KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = dh.public_jwk(KEY)
PRIVATE = dh.private_jwk(KEY)


def check(proof: Any, now: float | None = None) -> dpop.VerifiedProof | None:
    """The proof's check: a result, or a refusal with a showable reason; never anything else."""
    try:
        return dpop.check_proof(proof, method="GET", url=URL, access_token=TOKEN, now=now)
    except dpop.InvalidDPoPProof as exc:
        assert exc.error in ("invalid_dpop_proof", "use_dpop_nonce")
        assert exc.status == 400
        assert exc.description and exc.description.isprintable()
        return None


@given(st.one_of(jws_shaped, st.text(max_size=300), any_values))
def test_arbitrary_input_is_refused_cleanly(proof: Any) -> None:
    assert check(proof) is None


def genuine_claims(now: int) -> dict[str, Any]:
    return {"htm": "GET", "htu": URL, "iat": now, "jti": "j-1", "ath": dh.ath(TOKEN)}


proof_headers = st.fixed_dictionaries(
    {
        "alg": st.one_of(st.just("ES256"), st.sampled_from(ALG_VALUES), json_values(2)),
        "typ": st.one_of(
            st.just("dpop+jwt"), st.sampled_from(["DPoP+JWT", "JWT", "at+jwt", ""]), json_values(2)
        ),
    },
    optional={"kid": st.one_of(st.text(max_size=4), json_values(2))},
)


@given(
    header=proof_headers,
    extra=st.one_of(st.just({}), header_dicts),
    jwk=st.one_of(
        st.just(PUBLIC), st.just(PRIVATE), json_values(6), st.builds(dict, st.just(PUBLIC), d=st.text())
    ),
)
def test_signed_proofs_with_any_header(header: dict[str, Any], extra: dict[str, Any], jwk: Any) -> None:
    # A genuine signature by KEY over any header: accepted only with typ dpop+jwt, alg ES256
    # and KEY's public JWK (any member beside those is ignored unless it brings a key).
    header = {**extra, **header, "jwk": jwk}
    now = int(time.time())
    result = check(forge.sign_with(KEY, "ES256", header, genuine_claims(now)))
    accepted = (
        header.get("alg") == "ES256"
        and isinstance(header.get("typ"), str)
        and header["typ"].lower() == "dpop+jwt"
        and jwk == PUBLIC
        and not {"jku", "x5u", "x5c", "crit", "b64", "zip", "enc"} & set(header)
        and all(isinstance(header[name], str) for name in ("kid",) if name in header)
        and header.get("kid") != ""
        and is_standard_json(header)
        and depth(header) <= 4
    )
    event("accepted" if accepted else "refused")
    assert (result is not None) == accepted, (header, result)
    if result is not None:
        assert result.jkt == dh.jkt(KEY)


claim_names = st.sampled_from(["htm", "htu", "iat", "jti", "ath", "nonce", "exp"])


@given(changes=st.dictionaries(claim_names, json_values(4), min_size=1, max_size=3))
def test_changed_claims_refused_unless_equivalent(changes: dict[str, Any]) -> None:
    now = int(time.time())
    claims = {**genuine_claims(now), **changes}
    result = check(dh.proof(KEY, **{"htm": claims.pop("htm"), "htu": claims.pop("htu")}, **claims), now=now)
    still_valid = (
        changes.get("htm", "GET") == "GET"
        and changes.get("htu", URL) == URL
        and changes.get("ath", dh.ath(TOKEN)) == dh.ath(TOKEN)
        and isinstance(changes.get("jti", "j"), str)
        and changes.get("jti", "j") != ""
        and str(changes.get("jti", "j")).isprintable()
        and len(str(changes.get("jti", "j"))) <= 255
        and is_standard_json(changes)
        and (
            "iat" not in changes
            or (
                not isinstance(changes["iat"], bool)
                and isinstance(changes["iat"], (int, float))
                and now - 90 <= changes["iat"] <= now + 30
            )
        )
    )
    event("still valid" if still_valid else "refused")
    assert (result is not None) == still_valid, (changes, result)


def _verdict(call: Any) -> str:
    """The thumbprint of an accepted key, or the reason it was refused."""
    try:
        return str(call()[1])
    except dpop.InvalidDPoPProof as exc:
        return exc.description


def _cold(jwk: Any, alg: str) -> tuple[Any, str]:
    key = dpop.public_key(jwk, alg)
    return key, dpop.thumbprint(key)


@given(
    member=st.sampled_from(["kty", "crv", "x", "y", "alg", "kid", "use", "d", "key_ops", "n", "e"]),
    value=st.one_of(
        st.sampled_from([PUBLIC["x"], PUBLIC["y"], "EC", "P-256", "ES256", "ES384"]), json_values(2)
    ),
    alg=st.sampled_from(["ES256", "RS256", "EdDSA"]),
)
def test_the_key_memo_never_changes_a_verdict(member: str, value: Any, alg: str) -> None:
    # The memo is warm with KEY's public JWK (and whatever earlier examples left); a jwk that
    # differs in one member gets the verdict a cold, full check gives it.
    dpop.verified_key(PUBLIC, "ES256")
    jwk = {**PUBLIC, member: value}
    cold = _verdict(lambda: _cold(jwk, alg))
    warm = _verdict(lambda: dpop.verified_key(jwk, alg))
    event("accepted" if cold == dh.jkt(KEY) else "refused")
    assert warm == cold, (jwk, alg)
    assert _verdict(lambda: dpop.verified_key(jwk, alg)) == cold  # and again, now remembered if it passed


#: Paths rich in percent signs, hex digits and unreserved characters: the normalization's input.
url_paths = st.text(st.sampled_from(list("%%%4143aAfF2/~-é")), max_size=16).map(lambda path: "/" + path)


@given(path=url_paths)
def test_htu_normalization_never_changes_the_resource_named(path: str) -> None:
    # RFC 3986 §6.2.2: a normalized path decodes to the same bytes as the path, so two paths
    # that normalize alike name the same resource; a path may be refused (None), never merged
    # with another. A path without "%" is always usable.
    normalized = dpop._normalized_url("http://testserver" + path)
    event("refused" if normalized is None else "normalized")
    if normalized is None:
        assert "%" in path
    else:
        assert unquote_to_bytes(normalized[3]) == unquote_to_bytes(path), (path, normalized)
