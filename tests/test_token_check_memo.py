"""``check_access_token``: the per-request check, its memo, and what is re-checked on every hit.

A token is verified (signature and claims) once per worker and memoised; on every later request
its expiry is checked against the clock with ``LEEWAY``, and the revocation snapshot is consulted,
so a memoised token still stops working when it expires or is revoked.
"""

from __future__ import annotations

from typing import Any

import pytest

from oauth_cc.common import tokens, verification
from oauth_cc.common.tokens import InvalidToken
from oauth_cc.common.verification import AccessToken, check_access_token, verified_tokens
from oauth_cc.issuer.revocation import Snapshot, revocation_state


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def issued(make_client: Any, token_for: Any) -> dict[str, Any]:
    application, secret = make_client("memo", scopes=["reports:read", "reports:write"])
    return token_for(application, secret, scope="reports:read reports:write")


def test_a_verified_token_gives_its_access_token(issued):
    info = check_access_token(issued["access_token"])

    assert info.scopes == frozenset({"reports:read", "reports:write"})
    assert info.scope == "reports:read reports:write"
    assert info.jti == info.claims["jti"]
    assert info.exp == float(info.claims["exp"])
    assert info.iat == float(info.claims["iat"])
    assert info.client_id == info.claims["client_id"]


def test_a_token_is_verified_once_and_then_served_from_the_memo(issued, monkeypatch):
    token = issued["access_token"]
    calls: list[str] = []
    real_verify = tokens.verify

    def counting_verify(value: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(value)
        return real_verify(value, **kwargs)

    monkeypatch.setattr(verification, "verify", counting_verify)
    first = check_access_token(token)
    second = check_access_token(token)

    assert calls == [token]
    assert second is first
    assert verified_tokens.get(token) is first


def test_a_memoised_token_expires_with_the_leeway(issued, settings, monkeypatch):
    token = issued["access_token"]
    info = check_access_token(token)
    leeway = settings.OAUTH_CC.get("LEEWAY", 30)
    clock = Clock(info.exp + leeway - 0.5)
    monkeypatch.setattr(verification, "time", clock)

    assert check_access_token(token) is info

    clock.now = info.exp + leeway
    with pytest.raises(InvalidToken) as raised:
        check_access_token(token)
    assert str(raised.value) == "The access token has expired."


def test_a_memoised_token_with_a_leeway_of_zero_expires_at_exp(issued, settings, monkeypatch):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "LEEWAY": 0}
    token = issued["access_token"]
    info = check_access_token(token)
    monkeypatch.setattr(verification, "time", Clock(info.exp - 0.001))
    assert check_access_token(token) is info
    monkeypatch.setattr(verification, "time", Clock(info.exp))
    with pytest.raises(InvalidToken, match=r"^The access token has expired\.$"):
        check_access_token(token)


def test_the_clock_is_passed_to_the_first_verification(issued, monkeypatch):
    token = issued["access_token"]
    import jwt

    exp = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    monkeypatch.setattr(verification, "time", Clock(exp + 3600))

    with pytest.raises(InvalidToken, match=r"^The access token has expired\.$"):
        check_access_token(token)
    assert verified_tokens.get(token) is None


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        (lambda info: Snapshot(revoked_jtis=frozenset({info.jti})), "The access token has been revoked."),
        (
            lambda info: Snapshot(disabled_clients=frozenset({info.client_id})),
            "The client of this access token is disabled.",
        ),
        (
            lambda info: Snapshot(deleted_clients=frozenset({info.client_id})),
            "The client of this access token has been deleted.",
        ),
        (
            lambda info: Snapshot(valid_after={info.client_id: info.iat + 1}),
            "The access token was issued before its client's tokens were invalidated.",
        ),
    ],
)
def test_a_memoised_token_is_refused_once_the_revocation_snapshot_refuses_it(issued, snapshot, reason):
    token = issued["access_token"]
    info = check_access_token(token)
    revocation_state.set(snapshot(info))

    with pytest.raises(InvalidToken) as raised:
        check_access_token(token)
    assert str(raised.value) == reason


def test_the_memo_holds_only_verified_tokens(db):
    with pytest.raises(InvalidToken):
        check_access_token("a.b.c")
    assert verified_tokens.get("a.b.c") is None


def test_memo_entries_weigh_the_token_plus_a_fixed_overhead():
    info = AccessToken.from_claims({"client_id": "c", "jti": "j", "exp": 1, "iat": 1})
    assert verification._memo_weight("x" * 100, info) == 100 + verification.MEMO_ENTRY_OVERHEAD
    assert verification.MEMO_ENTRY_OVERHEAD == 1024


def test_the_memo_is_bounded_by_the_configured_bytes(settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "VERIFIED_TOKEN_CACHE_BYTES": 3 * (1024 + 10)}
    memo = verification.VerifiedTokens()
    info = AccessToken.from_claims({"client_id": "c", "jti": "j", "exp": 1, "iat": 1})
    for n in range(4):
        memo.put(f"token-{n:04d}", info)  # 10 characters each

    assert memo.get("token-0000") is None
    assert all(memo.get(f"token-{n:04d}") is info for n in (1, 2, 3))


def test_the_memo_is_bounded_by_the_configured_count(settings):
    settings.OAUTH_CC = {**settings.OAUTH_CC, "VERIFIED_TOKEN_CACHE_SIZE": 2}
    memo = verification.VerifiedTokens()
    info = AccessToken.from_claims({"client_id": "c", "jti": "j", "exp": 1, "iat": 1})
    for n in range(3):
        memo.put(f"t{n}", info)

    assert memo.get("t0") is None
    assert memo.get("t1") is info and memo.get("t2") is info


def test_access_token_claims_are_read_only():
    info = AccessToken.from_claims({"client_id": "c", "jti": "j", "exp": 5, "iat": 2, "scope": "a"})
    with pytest.raises(TypeError):
        info.claims["scope"] = "admin"  # type: ignore[index]
    assert (info.exp, info.iat) == (5.0, 2.0)
