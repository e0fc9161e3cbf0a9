"""The rules of ``oauth_cc.common.dpop`` one by one, each at its boundary, with its exact sentence.

``tests/test_dpop.py`` tells the story over HTTP; here :func:`dpop.check_proof` is called at a
fixed time (``now``) so a boundary (``iat``, the ``htu`` length, a nonce window) is hit to the
second, and every refusal is compared with the whole description a client gets. The replay
records are checked in both stores: how long they are kept, and what a client and the operator
see when the store is down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from django.core.cache import caches
from django.db import OperationalError, connection
from django.http import HttpRequest
from django.test import override_settings

from oauth_cc.common import dpop
from oauth_cc.common.errors import TemporarilyUnavailable
from oauth_cc.models import UsedAssertion
from tests import dpop_helpers as dh
from tests.attacks import forge
from tests.conftest import basic_auth, form_post

URL = "http://testserver/api/whoami/"
TOKEN = "header.payload.signature"
#: A fixed time, far from the real clock: a check that read the clock instead would refuse.
T = 1_000_000_000.0
#: One key for the module: generating keys is slow and the key is not what varies.
KEY = dh.new_ec_key()
SCOPE = "reports:read"


def oauth_cc(**extra: Any) -> Any:
    from django.conf import settings

    return override_settings(OAUTH_CC={**settings.OAUTH_CC, **extra})


def check(
    *, url: str = URL, now: float = T, htu: str = URL, access_token: str = TOKEN, **claims: Any
) -> dpop.VerifiedProof:
    """``check_proof`` of a GET proof by KEY for ``url`` at ``now`` (``iat`` = ``now`` unless given)."""
    claims.setdefault("iat", now)
    proof = dh.proof(KEY, htm="GET", htu=htu, token=TOKEN, **claims)
    return dpop.check_proof(proof, method="GET", url=url, access_token=access_token, now=now)


def refusal(proof: Any = None, **kwargs: Any) -> str:
    """The description of the ``invalid_dpop_proof`` refusal of ``proof`` (or of ``check(**kwargs)``)."""
    with pytest.raises(dpop.InvalidDPoPProof) as info:
        if proof is None:
            check(**kwargs)
        else:
            dpop.check_proof(proof, method="GET", url=URL, access_token=TOKEN, now=T)
    assert info.value.error == "invalid_dpop_proof"
    assert info.value.status == 400
    return info.value.description


def htu_refused(url: str) -> str:
    return f"The DPoP proof's \"htu\" claim is not the request's URL ({url})."


# -- form, typ and alg -----------------------------------------------------------------------


def test_a_malformed_proof_is_named_in_the_refusal() -> None:
    assert refusal("not-a-jwt") == (
        "The DPoP proof is not a well-formed JWT: it must be a JWS in compact serialization, "
        "three base64url segments separated by dots."
    )


def test_claims_that_are_not_an_object_are_refused() -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dh.public_jwk(KEY)}
    assert refusal(forge.sign_with(KEY, "ES256", header, b"[1]")) == (
        "The DPoP proof's claims are not a JSON object."
    )


def test_an_unknown_alg_is_shown_cut_to_20_characters_with_the_accepted_ones() -> None:
    header = {"typ": "dpop+jwt", "alg": "A" * 30, "jwk": dh.public_jwk(KEY)}
    proof = forge.sign_with(KEY, "ES256", header, {"htm": "GET", "htu": URL, "iat": T, "jti": "j"})
    assert refusal(proof) == (
        f'The DPoP proof\'s alg "{"A" * 20}..." is not accepted; sign with one of RS256, PS256, ES256, EdDSA.'
    )


# -- iat ---------------------------------------------------------------------------------------


def test_the_proof_is_checked_at_the_time_given_and_accepted_for_max_age() -> None:
    # iat = T is fresh at T (and 31 years old by the real clock).
    assert check(now=T).accepted_until == T + 60  # DPOP_PROOF_MAX_AGE


def test_iat_is_accepted_up_to_leeway_ahead_and_max_age_plus_leeway_behind() -> None:
    # LEEWAY 30, DPOP_PROOF_MAX_AGE 60: both ends are inclusive.
    assert check(iat=T + 30).jti
    assert refusal(iat=T + 30.5) == (
        "The DPoP proof's \"iat\" claim is in the future; check the client's clock."
    )
    assert check(iat=T - 90).accepted_until == T - 30
    assert refusal(iat=T - 90.5) == (
        'The DPoP proof\'s "iat" claim is more than 60 seconds ago; make a new proof for each request.'
    )


def test_iat_is_required() -> None:
    assert refusal(omit=("iat",)) == 'The DPoP proof\'s "iat" claim is missing.'


# -- htu ---------------------------------------------------------------------------------------

ROOT = "http://testserver/"

#: (htu, the request's URL): the same resource after RFC 3986 §6.2.2-6.2.3 normalization.
SAME_URL = {
    "percent-encoded unreserved character": ("http://testserver/api/%77hoami/", URL),
    "percent-encoding in lower case": ("http://testserver/api/a%2fb/", "http://testserver/api/a%2Fb/"),
    "empty path": ("http://testserver", ROOT),
    "scheme and host case, default port": ("HTTP://TestServer:80/api/whoami/", URL),
}

#: (htu, the request's URL): another resource, or no usable URL.
OTHER_URL = {
    "an encoded slash is not a slash": ("http://testserver/api%2Fwhoami/", URL),
    "another port": ("http://testserver:8080/api/whoami/", URL),
    "a port out of range": ("http://testserver:99999/api/whoami/", URL),
    "another scheme": ("ftp://testserver/api/whoami/", URL),
    "no host": ("http:///api/whoami/", URL),
    # "%%43%33%A9" is no URI; decoded once, the stray "%" and "C3" would make it "%C3%A9" ("é").
    "a stray % that decoding would complete": ("http://testserver/%%43%33%A9/", "http://testserver/%C3%A9/"),
    # "ß".upper() is "SS": hosts are compared in lower case, where they stay apart.
    "a host that only upper case would merge": ("http://ß.example/api/", "http://ss.example/api/"),
}


@pytest.mark.parametrize("name", sorted(SAME_URL))
def test_htu_matches_the_same_url_written_another_way(name: str) -> None:
    htu, url = SAME_URL[name]
    assert check(htu=htu, url=url).jti


@pytest.mark.parametrize("name", sorted(OTHER_URL))
def test_htu_of_another_url_is_refused(name: str) -> None:
    htu, url = OTHER_URL[name]
    assert refusal(htu=htu, url=url) == htu_refused(url)


def test_htu_is_compared_up_to_2048_characters() -> None:
    longest = ROOT + "a" * (2048 - len(ROOT))
    assert check(htu=longest, url=longest).jti
    # One more character and it is refused even when it is the request's very URL.
    assert refusal(htu=longest + "a", url=longest + "a") == htu_refused(longest + "a")


# -- ath ---------------------------------------------------------------------------------------


def test_ath_of_another_token_is_refused() -> None:
    assert refusal(access_token=TOKEN + "x") == (
        'The DPoP proof\'s "ath" claim is not the hash of the access token sent.'
    )


def test_ath_of_a_token_that_is_not_ascii_is_computed_not_raised() -> None:
    # An access token is ASCII (RFC 6750 token68); any other character counts as "?".
    assert dpop.access_token_hash("tökén") == dh.ath("t?k?n")


# -- nonces ------------------------------------------------------------------------------------


def test_a_missing_nonce_is_answered_with_the_nonce_of_the_time_given() -> None:
    with oauth_cc(DPOP_REQUIRE_NONCE=True):
        with pytest.raises(dpop.UseDPoPNonce) as info:
            check(now=T)
        assert info.value.error == "use_dpop_nonce"
        assert info.value.description == (
            'The DPoP proof must carry the "nonce" this server gave in the DPoP-Nonce header.'
        )
        assert info.value.nonce == dpop.current_nonce(T)
        assert check(now=T, nonce=info.value.nonce).jti


def test_nonce_value_is_an_hmac_of_its_window_under_a_key_of_its_own(settings: Any) -> None:
    # Every host and every version must compute the same nonce for a window (a nonce given by
    # one worker is checked by another), and its key must be SECRET_KEY's for this use only:
    # HMAC-SHA256 under SHA-256("oauth_cc.common.dpop.nonce" + SECRET_KEY), Django's
    # salted_hmac, cut to 24 bytes.
    key = hashlib.sha256(b"oauth_cc.common.dpop.nonce" + settings.SECRET_KEY.encode()).digest()
    window = int(T // 300)  # DPOP_NONCE_LIFETIME
    mac = hmac.new(key, str(window).encode(), hashlib.sha256).digest()[:24]
    assert dpop.current_nonce(T) == base64.urlsafe_b64encode(mac).decode().rstrip("=")


def test_nonce_windows_are_floored_even_where_float_division_rounds_up() -> None:
    # 5.5 / 1.1 rounds to 5.0, but 5.5 is below 5 * 1.1 (1.1 is stored a little above 1.1):
    # 5.5 is in window 4. Issuing and checking must agree on that.
    with oauth_cc(DPOP_NONCE_LIFETIME=1.1):
        assert dpop.nonce_is_valid(dpop.current_nonce(5.5), 5.5)  # given now, valid now
        assert dpop.nonce_is_valid(dpop.current_nonce(4.0), 5.5)  # window 3: the previous one
        assert not dpop.nonce_is_valid(dpop.current_nonce(3.0), 5.5)  # window 2: too old


def test_dpop_nonce_header_is_spelled_as_rfc_9449_does(client: Any, make_client: Any) -> None:
    application, secret = make_client("svc", scopes=[SCOPE])
    with oauth_cc(DPOP_REQUIRE_NONCE=True):
        response = form_post(
            client,
            "/oauth/token/",
            {"grant_type": "client_credentials", "scope": SCOPE},
            HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
            HTTP_DPOP=dh.proof(dh.new_ec_key()),
        )
    assert response.status_code == 400
    assert response.json()["error"] == "use_dpop_nonce"
    # The name as sent on the wire (the test client's lookups ignore case).
    assert ("DPoP-Nonce", dpop.current_nonce()) in list(response.items())


# -- protected requests ------------------------------------------------------------------------


@pytest.fixture
def bound(client: Any, make_client: Any) -> tuple[Any, str]:
    """``(key, token)``: an access token bound to a new key."""
    application, secret = make_client("svc", scopes=[SCOPE])
    key = dh.new_ec_key()
    response = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": SCOPE},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
        HTTP_DPOP=dh.proof(key),
    )
    assert response.status_code == 200, response.content
    return key, response.json()["access_token"]


def assert_refused(response: Any, description: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json() == {"detail": description}
    quoted = description.replace('"', '\\"')
    challenge = response["WWW-Authenticate"]
    assert challenge.endswith(f'error="invalid_dpop_proof", error_description="{quoted}"'), challenge


def test_htu_refusal_names_the_request_url_without_its_query(client: Any, bound: Any) -> None:
    key, token = bound
    proof = dh.proof(key, htm="GET", htu="http://testserver/api/reports/", token=token)
    response = client.get("/api/whoami/?page=2", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
    assert_refused(response, htu_refused("http://testserver/api/whoami/"))


def test_protected_request_refusals_say_what_is_missing(client: Any, bound: Any) -> None:
    _, token = bound
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"DPoP {token}")
    assert_refused(response, "A DPoP proof (DPoP header) must come with Authorization: DPoP.")
    other = dh.proof(dh.new_ec_key(), htm="GET", htu=URL, token=token)
    response = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=other)
    assert_refused(response, "The DPoP proof is not signed by the key the access token is bound to.")


def test_a_request_without_a_method_matches_no_htm() -> None:
    # A hand-built HttpRequest has no method: it is the empty string, which no htm can be.
    request = HttpRequest()
    request.path = "/api/whoami/"
    request.META = {"SERVER_NAME": "testserver", "SERVER_PORT": "80"}
    request.META["HTTP_DPOP"] = dh.proof(KEY, htm="XXXX", htu=URL, token=TOKEN)
    with pytest.raises(dpop.InvalidDPoPProof) as info:
        dpop.verify_request_proof(request, access_token=TOKEN, expected_jkt=dh.jkt(KEY))
    assert info.value.description == "The DPoP proof's \"htm\" claim is not the request's method ()."


# -- single use --------------------------------------------------------------------------------


def verified(accepted_until: float) -> dpop.VerifiedProof:
    return dpop.VerifiedProof(jkt=dh.jkt(KEY), jti="proof-1", accepted_until=accepted_until)


def test_database_record_is_kept_while_the_proof_could_be_accepted(db: Any) -> None:
    dpop.record_use(verified(T + 60))
    row = UsedAssertion.objects.get()
    assert row.client_id == "dpop#" + dh.jkt(KEY)
    # iat + DPOP_PROOF_MAX_AGE, plus LEEWAY (the proof's iat may be that far behind the clock).
    assert row.expires_at == datetime.fromtimestamp(T + 90, tz=timezone.utc)


def test_database_outage_is_logged_as_the_proofs_record(db: Any, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="oauth_cc.outage")

    def refuse(*args: Any) -> Any:
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse), pytest.raises(TemporarilyUnavailable):
        dpop.record_use(verified(time.time() + 60))
    messages = [r.getMessage() for r in caplog.records if r.name == "oauth_cc.outage"]
    assert len(messages) == 1, messages
    assert "while loading a DPoP proof's single-use record)" in messages[0]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall clock (``time.time``, which the cache reads too), moved by hand."""
    now = [T]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


@contextlib.contextmanager
def cache_store() -> Iterator[None]:
    with oauth_cc(DPOP_REPLAY_STORE="cache"):
        yield


def replayed(accepted_until: float) -> bool:
    """Whether recording the proof again is refused (it is still remembered)."""
    try:
        dpop.record_use(verified(accepted_until))
    except dpop.InvalidDPoPProof:
        return True
    return False


def test_cache_record_is_kept_while_the_proof_could_be_accepted(clock: list[float]) -> None:
    with cache_store():
        dpop.record_use(verified(T + 60))
        clock[0] = T + 89.5  # accepted_until + LEEWAY is T + 90
        assert replayed(T + 60)
        clock[0] = T + 90.5
        assert not replayed(T + 60)  # forgotten (and the proof too old by now)


def test_cache_record_is_kept_a_second_even_at_the_end_of_the_proofs_life(clock: list[float]) -> None:
    # A timeout of 0 or less would not store the record at all: at least one second.
    with cache_store():
        dpop.record_use(verified(T - 95))  # keep until T - 5: already past
        clock[0] = T + 0.9
        assert replayed(T - 95)
        clock[0] = T + 1.1
        assert not replayed(T - 95)


def test_cache_outage_is_a_503_asking_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(caches["default"], "add", down)
    with cache_store(), pytest.raises(TemporarilyUnavailable) as info:
        dpop.record_use(verified(time.time() + 60))
    assert info.value.status == 503
    assert info.value.error == "temporarily_unavailable"
    assert info.value.description == "DPoP proofs cannot be checked right now; retry shortly."
