"""RFC 8725 §3.10 and §2.3: the verifying key comes from the site's own key registry only.

Header members that carry or point at a key (``jwk``, ``jku``, ``x5u``, ``x5c``) are refused,
never used and never fetched, even on a token genuinely signed by the site. ``kid`` is only
ever a dictionary key: path traversal, SQL and oversized values find nothing and cost at most
the rate-limited reload of the key registry. A DPoP proof, whose key is its embedded ``jwk``
(RFC 9449), is checked against that key on every request, even once the worker remembers it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import connection
from django.test.utils import CaptureQueriesContext
from jwt.algorithms import ECAlgorithm

from oauth_cc.common import dpop
from oauth_cc.issuer import keys
from oauth_cc.models import UsedAssertion
from tests import dpop_helpers as dh
from tests.helpers import token_claims

from . import expect
from .bait import KeyBait, self_signed_certificate
from .forge import sign_with, site_header, site_signed


@pytest.fixture
def attacker_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def attacker_jwk(key: Any, kid: str) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "ES256", "use": "sig"}


def test_embedded_jwk_is_refused(db, at_every_door, unchanged, attacker_key):
    header = site_header(kid="attacker", jwk=attacker_jwk(attacker_key, "attacker"))
    token = sign_with(attacker_key, "ES256", header, token_claims())
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, '"jwk", which carries its own key')


def test_embedded_jwk_is_refused_even_when_it_names_the_sites_kid(db, at_every_door, unchanged, attacker_key):
    kid = site_header()["kid"]
    header = site_header(jwk=attacker_jwk(attacker_key, kid))
    token = sign_with(attacker_key, "ES256", header, token_claims())
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, '"jwk", which carries its own key')


@pytest.mark.parametrize(
    ("member", "reason"), [("jku", "points at a key URL"), ("x5u", "points at a certificate URL")]
)
def test_key_urls_are_refused_and_never_fetched(db, at_every_door, unchanged, attacker_key, member, reason):
    with KeyBait({"keys": [attacker_jwk(attacker_key, "attacker")]}) as bait:
        token = sign_with(
            attacker_key, "ES256", site_header(kid="attacker", **{member: bait.url}), token_claims()
        )
        with unchanged():
            responses = at_every_door(token)
    expect.refused_everywhere(responses, reason)
    assert bait.hits == 0


def test_key_url_on_a_token_genuinely_signed_by_the_site_is_still_refused(db, at_every_door, unchanged):
    with KeyBait({"keys": []}) as bait:
        token = site_signed(token_claims(), header=site_header(jku=bait.url))
        with unchanged():
            responses = at_every_door(token)
    expect.refused_everywhere(responses, '"jku"')
    assert bait.hits == 0


def test_embedded_certificate_chain_is_refused(db, at_every_door, unchanged, attacker_key):
    header = site_header(kid="attacker", x5c=[self_signed_certificate(attacker_key)])
    token = sign_with(attacker_key, "ES256", header, token_claims())
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, '"x5c", which carries its own certificate')


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "' OR '1'='1",
        "x' UNION SELECT private_jwk FROM oauth_cc_signingkey --",
        "k" * 1500,
        "\u0000",
        "%s%s%s%n",
    ],
    ids=["path-traversal", "sql-or", "sql-union", "1500-chars", "nul", "format-string"],
)
def test_injected_kid_finds_no_key(db, at_every_door, unchanged, attacker_key, kid):
    token = sign_with(attacker_key, "ES256", site_header(kid=kid), token_claims())
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, "signed by an unknown key")


@pytest.mark.parametrize(
    "kid", [123, ["kid"], {"kid": "x"}, None, True], ids=["int", "list", "object", "null", "bool"]
)
def test_non_string_kid_is_refused(db, at_every_door, unchanged, kid):
    token = site_signed(token_claims(), header={**site_header(), "kid": kid})
    with unchanged():
        responses = at_every_door(token)
    expect.refused_everywhere(responses, '"kid" is not a string')


def test_empty_or_missing_kid_is_refused(db, at_every_door, unchanged):
    for header, reason in (
        (site_header(kid=""), '"kid" is empty'),
        (site_header(kid=None), "names no signing key"),
    ):
        with unchanged():
            responses = at_every_door(site_signed(token_claims(), header=header))
        expect.refused_everywhere(responses, reason)


def test_kid_of_another_site_key_with_a_signature_by_the_current_one_is_refused(db, client):
    """The signature is checked with the key the kid names, not with any key that fits."""
    next_kid = keys.ensure_current_key() and keys.load_public_keys()
    current = keys.ensure_current_key().kid
    other = next(kid for kid in next_kid if kid != current)
    token = site_signed(token_claims(), header=site_header(kid=other))
    expect.invalid_token(
        client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}"), "signature is invalid"
    )


def test_made_up_kids_cost_at_most_ten_reloads_a_second(db, client, attacker_key):
    assert client.get("/.well-known/jwks.json").status_code == 200  # keys known to this worker
    tokens = [
        sign_with(attacker_key, "ES256", site_header(kid=f"made-up-{number}"), token_claims())
        for number in range(50)
    ]
    assert client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {tokens[0]}").status_code == 401  # snapshot
    started = time.monotonic()
    with CaptureQueriesContext(connection) as captured:
        for token in tokens[1:]:
            response = client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}")
            expect.invalid_token(response, "unknown key")
    elapsed = time.monotonic() - started
    # One reload per UNKNOWN_KID_MIN_INTERVAL at most, however many kids are made up.
    assert len(captured) <= 1 + elapsed / keys.UNKNOWN_KID_MIN_INTERVAL, (len(captured), elapsed)
    assert len(captured) < len(tokens) - 1


# -- DPoP proofs: the embedded jwk is the proof's key, and a remembered one is no shortcut --------


@pytest.fixture
def bound(client: Any, make_client: Any) -> tuple[Any, str]:
    """A key, a token bound to it, and the key remembered by this worker after one good proof."""
    from tests.test_dpop import SCOPE, WHOAMI_URL, dpop_token, whoami

    key = dh.new_ec_key()
    token = dpop_token(client, make_client("dpop-holder", scopes=[SCOPE]), key)
    assert whoami(client, token, dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token)).status_code == 200
    assert len(dpop._verified_keys) == 1
    return key, token


def test_a_remembered_jwk_does_not_accept_a_proof_signed_by_another_key(client, bound):
    from tests.test_dpop import WHOAMI_URL, assert_dpop_refused, whoami

    key, token = bound
    recorded = UsedAssertion.objects.count()
    # The header carries the holder's public key exactly as before; the attacker signs.
    forged = dh.proof(dh.new_ec_key(), htm="GET", htu=WHOAMI_URL, token=token, jwk=dh.public_jwk(key))

    assert_dpop_refused(
        whoami(client, token, forged), "invalid_dpop_proof", 'signature does not verify with its "jwk"'
    )
    assert UsedAssertion.objects.count() == recorded


def test_an_attacker_key_under_the_holders_kid_is_its_own_key(client, bound):
    from tests.test_dpop import WHOAMI_URL, assert_dpop_refused, whoami

    key, token = bound
    attacker = dh.new_ec_key()
    kid = "holder"
    holder_jwk = {**dh.public_jwk(key), "kid": kid}
    assert (
        whoami(
            client, token, dh.proof(key, htm="GET", htu=WHOAMI_URL, token=token, jwk=holder_jwk)
        ).status_code
        == 200
    )
    recorded = UsedAssertion.objects.count()
    forged = dh.proof(
        attacker, htm="GET", htu=WHOAMI_URL, token=token, jwk={**dh.public_jwk(attacker), "kid": kid}
    )

    assert_dpop_refused(
        whoami(client, token, forged),
        "invalid_dpop_proof",
        "not signed by the key the access token is bound to",
    )
    assert UsedAssertion.objects.count() == recorded
