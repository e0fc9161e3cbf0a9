"""The per-worker memo of DPoP proof keys (``oauth_cc.common.dpop.verified_key``).

A client signs every proof with one key, so the key's import and thumbprint are done once per
worker. The memo is keyed on the ``alg`` and every member of the ``jwk`` as sent: a key that
shares a ``kid`` with a remembered one, or differs from it in a single member, is checked in
full; only keys that passed are remembered; the memo is bounded by count and bytes and is
forgotten when the settings change.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from oauth_cc.common import dpop
from oauth_cc.common.dpop import InvalidDPoPProof, verified_key
from tests import dpop_helpers as dh


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every jwk that went through the full check (``public_key``)."""
    seen: list[dict[str, Any]] = []
    real = dpop.public_key

    def counting(jwk: dict[str, Any], alg: str) -> Any:
        seen.append(jwk)
        return real(jwk, alg)

    monkeypatch.setattr(dpop, "public_key", counting)
    return seen


def _jwk(key: Any, **members: Any) -> dict[str, Any]:
    return {**dh.public_jwk(key), **members}


def test_the_same_jwk_gives_the_same_key_and_is_checked_once(imports):
    key = dh.new_ec_key()

    first = verified_key(_jwk(key, kid="k1"), "ES256")
    again = verified_key(_jwk(key, kid="k1"), "ES256")

    assert again[0] is first[0]
    assert first[1] == again[1] == dh.jkt(key)
    assert len(imports) == 1


def test_the_member_order_of_the_jwk_does_not_matter(imports):
    jwk = _jwk(dh.new_ec_key())
    verified_key(jwk, "ES256")
    verified_key(dict(reversed(list(jwk.items()))), "ES256")
    assert len(imports) == 1


def test_another_key_with_the_same_kid_is_checked_and_kept_apart(imports):
    key_a, key_b = dh.new_ec_key(), dh.new_ec_key()

    a_key, a_jkt = verified_key(_jwk(key_a, kid="shared"), "ES256")
    b_key, b_jkt = verified_key(_jwk(key_b, kid="shared"), "ES256")

    assert len(imports) == 2
    assert b_key is not a_key
    assert (a_jkt, b_jkt) == (dh.jkt(key_a), dh.jkt(key_b))
    assert verified_key(_jwk(key_a, kid="shared"), "ES256")[1] == dh.jkt(key_a)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda k, jwk: {**jwk, "x": dh.public_jwk(dh.new_ec_key())["x"]}, "is not a valid public key"),
        (lambda k, jwk: {**jwk, "alg": "ES384"}, "cannot verify ES256"),
        (lambda k, jwk: {**jwk, "d": dh.private_jwk(k)["d"]}, 'holds private key material ("d")'),
        (lambda k, jwk: {**jwk, "kty": "RSA"}, "is not a EC key"),
    ],
    ids=["x of another key", "alg member", "private d", "kty"],
)
def test_a_jwk_differing_from_a_remembered_one_in_one_member_is_checked_in_full(change, reason):
    key = dh.new_ec_key()
    jwk = _jwk(key, kid="k1")
    verified_key(jwk, "ES256")

    with pytest.raises(InvalidDPoPProof) as raised:
        verified_key(change(key, jwk), "ES256")

    assert raised.value.error == "invalid_dpop_proof"
    assert reason in raised.value.description


def test_the_alg_is_part_of_what_is_remembered():
    jwk = _jwk(dh.new_ec_key())
    verified_key(jwk, "ES256")
    with pytest.raises(InvalidDPoPProof) as raised:
        verified_key(jwk, "RS256")
    assert raised.value.description == 'The DPoP proof\'s "jwk" is not a RSA key, as RS256 needs.'


def test_a_refused_key_is_not_remembered(imports):
    jwk = _jwk(dh.new_ec_key(), y="AAAA")  # off the curve
    for _ in range(2):
        with pytest.raises(InvalidDPoPProof, match="is not a valid public key"):
            verified_key(jwk, "ES256")
    assert len(imports) == 2
    assert len(dpop._verified_keys) == 0


def test_the_count_bound_drops_the_oldest_key(monkeypatch, imports):
    monkeypatch.setattr(dpop, "MAX_CACHED_KEYS", 2)
    jwks = [_jwk(dh.new_ec_key()) for _ in range(3)]
    for jwk in jwks:
        verified_key(jwk, "ES256")

    assert len(dpop._verified_keys) == 2
    verified_key(jwks[2], "ES256")
    assert len(imports) == 3  # the newest is still remembered
    verified_key(jwks[0], "ES256")
    assert len(imports) == 4  # the oldest was dropped


def test_the_byte_bound_holds_and_weighs_the_json_and_the_key_object(monkeypatch):
    jwk = _jwk(dh.new_ec_key())
    weight = len(dpop.json.dumps(jwk, sort_keys=True, separators=(",", ":"))) + dpop.KEY_ENTRY_OVERHEAD
    monkeypatch.setattr(dpop, "MAX_CACHED_KEY_BYTES", 2 * weight + 10)
    for jwk in [jwk] + [_jwk(dh.new_ec_key()) for _ in range(4)]:
        verified_key(jwk, "ES256")
    assert len(dpop._verified_keys) == 2
    assert dpop._verified_keys.weight == 2 * weight


def test_the_memo_is_forgotten_when_the_settings_change(settings, imports):
    jwk = _jwk(dh.new_ec_key())
    verified_key(jwk, "ES256")
    with override_settings(OAUTH_CC={**settings.OAUTH_CC, "LEEWAY": 5}):
        assert len(dpop._verified_keys) == 0
        verified_key(jwk, "ES256")
    assert len(imports) == 2


@pytest.mark.parametrize(("bits", "accepted"), [(2047, False), (2048, True)])
def test_an_rsa_proof_key_needs_2048_bits(bits: int, accepted: bool) -> None:
    """The bound itself: 2048 bits pass, one bit fewer is refused (and not remembered)."""
    jwk = dh.public_jwk(dh.new_rsa_key(bits))
    if accepted:
        key, _ = verified_key(jwk, "PS256")
        assert key.get("n") == jwk["n"]
    else:
        with pytest.raises(InvalidDPoPProof) as raised:
            verified_key(jwk, "PS256")
        assert str(raised.value) == 'The DPoP proof\'s "jwk" is an RSA key under 2048 bits.'
