"""Properties of ``oauth_cc.common.verification.check_access_token``: the per-request check and its memo.

The memo (``verified_tokens``) must only ever hold tokens whose signature and claims were valid,
so junk cannot push memory up or evict real entries.

These tests use the function-scoped ``db`` (through ``access_token``/``site_key``) and suppress
Hypothesis's ``function_scoped_fixture`` health check: the fixtures create a client, a signing
key and one genuine token once per test, which the examples only read. The memo is the state an
example observes; each example compares the memo after its call with the memo just before it,
so what earlier examples left there does not matter.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import event, example, given, note
from hypothesis import strategies as st

from oauth_cc.common.tokens import InvalidToken
from oauth_cc.common.verification import AccessToken, check_access_token, verified_tokens

from .conftest import ISSUER, SiteKey, db_examples
from .strategies import (
    EDIT_KINDS,
    any_values,
    header_bytes,
    jws_shaped,
    one_character_edit,
    payload_bytes,
)


def claims_now(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "some-client",
        "client_id": "some-client",
        "aud": ISSUER,
        "exp": now + 600,
        "iat": now,
        "jti": f"jti-{time.monotonic_ns()}",
        "scope": "reports:read",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@st.composite
def presented_tokens(draw: st.DrawFn, genuine: str, site_key: SiteKey) -> Any:
    """Junk of every kind a client can send, plus signed tokens that may or may not be valid."""
    # Strings only: check_access_token takes the str that the DRF class and introspection read
    # from the request (tokens.verify, which also refuses non-strings, is tested with them).
    kind = draw(st.sampled_from(["text", "edit", "hostile bytes", "claims", "genuine", "valid claims"]))
    note(f"kind: {kind}")
    event(f"kind: {kind}")
    if kind == "text":
        return draw(jws_shaped)
    if kind == "genuine":
        return genuine
    if kind == "valid claims":
        return site_key.sign(site_key.header(), claims_now(extra=draw(st.integers())))
    if kind == "edit":
        return draw(one_character_edit(genuine, draw(st.sampled_from(EDIT_KINDS))))
    if kind == "hostile bytes":
        return site_key.sign(draw(st.one_of(header_bytes, st.just(site_key.header()))), draw(payload_bytes))
    if kind == "claims":
        # Valid claims with one replaced (or dropped): signed, so only the claim checks decide.
        name = draw(st.sampled_from(["iss", "aud", "exp", "iat", "nbf", "jti", "client_id", "sub", "scope"]))
        value = draw(st.one_of(st.none(), any_values.filter(lambda v: not isinstance(v, (bytes, complex)))))
        try:
            return site_key.sign(site_key.header(), claims_now(**{name: value}))
        except (TypeError, ValueError):  # not JSON-serialisable: present something else
            return draw(jws_shaped)
    return draw(st.text())


@db_examples
@given(data=st.data())
@example(data=None)
def test_check_access_token_raises_only_invalid_token_and_never_remembers_what_it_refused(
    access_token: str, site_key: SiteKey, data: st.DataObject | None
) -> None:
    presented = access_token + "x" if data is None else data.draw(presented_tokens(access_token, site_key))
    before = dict.fromkeys(verified_tokens)
    weight = verified_tokens.weight
    try:
        info = check_access_token(presented)
    except InvalidToken:
        event("refused")
        assert dict.fromkeys(verified_tokens) == before
        assert verified_tokens.weight == weight
        return
    event("accepted")
    # Accepted: then it was a valid token (the genuine one, or valid signed claims), remembered.
    assert isinstance(info, AccessToken)
    assert verified_tokens.get(presented) is info
    assert len(verified_tokens) in (len(before), len(before) + 1)


@db_examples
@given(st.lists(jws_shaped, min_size=1, max_size=20))
def test_junk_never_grows_the_memo_nor_evicts_a_verified_token(access_token: str, junk: list[str]) -> None:
    verified_tokens.clear()
    check_access_token(access_token)
    for token in junk:
        try:
            check_access_token(token)
        except InvalidToken:
            pass
    assert list(verified_tokens) == [access_token]
