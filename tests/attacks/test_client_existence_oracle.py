"""Client-existence and key oracles before authentication (RFC 6749 §5.2, RFC 9700 §2.5, RFC 8725 §3.10).

An outsider holds no client's credentials, but can send credentials that name any client_id:
an assertion signed by its own key with the victim's client_id in ``iss``/``sub`` and any
``kid``, or any self-signed TLS certificate beside the victim's client_id. Until the client's
key has verified the signature (or the certificate is the registered one, or the secret
matched), the caller has proved nothing, so its answer must not depend on the client's
registration: for each refusal below, a registered client_id and an unknown one get the same
status, the same body and the same headers, at the token endpoint, introspection, revocation
and the revocation feed. Otherwise the answer tells the outsider which client_ids exist, how
they authenticate, which kids they hold, what type their keys are, and whose jwks_uri is down.
The reason goes only to the operator's log (``oauth_cc.client_auth``), checked here too.

Refusals that do not depend on the client (a malformed assertion, an algorithm outside the
table) keep their specific descriptions: they are the same for every client_id, checked here.

Probing a client whose jwks_uri fails, or naming kids or certificate keys its set lacks, must
not make the issuer fetch that URL more often than the fetcher's limits allow
(``FAILURE_RETRY_AFTER`` after a failure, one ``KID_MISS_REFETCH_INTERVAL`` re-fetch per URL),
site-wide: probes spread over workers do not multiply the fetches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest

from oauth_cc.common.bounded import BoundedMap
from oauth_cc.issuer import client_jwks_fetch
from oauth_cc.models import UsedAssertion
from tests.assertion_helpers import ASSERTION_TYPE, ClientKey, assertion_claims, generate_key, jwks_of
from tests.conftest import GENERIC_INVALID_CLIENT, refused_unproven
from tests.mtls_helpers import HEADER, Cert, issue, make_ca
from tests.test_jwks_uri import KeyServer, _cold_key_caches, key_server  # noqa: F401 - fixtures

from . import expect
from .conftest import INTROSPECT, REVOKE, TOKEN

FEED = "/oauth/revocation-feed/"
ISSUER = "http://testserver"
UNKNOWN = "no-such-client-0123456789abcdef"

#: Each door with what a request there needs besides client authentication.
DOORS: dict[str, tuple[str, dict[str, str]]] = {
    "token": (TOKEN, {"grant_type": "client_credentials"}),
    "introspect": (INTROSPECT, {"token": "some-token"}),
    "revoke": (REVOKE, {"token": "some-token"}),
    "feed": (FEED, {}),
}


@dataclass(frozen=True)
class Probe:
    """Credentials naming a client_id: form parameters and request.META entries."""

    params: dict[str, str]
    meta: dict[str, str] = field(default_factory=dict)


def send(client: Any, door: str, probe: Probe) -> Any:
    path, params = DOORS[door]
    body = urlencode({**params, **probe.params})
    return client.post(path, body, content_type="application/x-www-form-urlencoded", **probe.meta)


def answer(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything a caller sees: status, body and every header."""
    return response.status_code, response.content, sorted(response.items())


# -- the attacker's material ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def victim_key() -> ClientKey:
    return generate_key("ES256", kid="victim-key")


@pytest.fixture(scope="module")
def intruder() -> ClientKey:
    return generate_key("ES256", kid="intruder-key")


@pytest.fixture(scope="module")
def intruder_rsa() -> ClientKey:
    return generate_key("RS256", kid="intruder-rsa")


@pytest.fixture(scope="module")
def ca() -> Cert:
    return make_ca()


@pytest.fixture(scope="module")
def any_certificate() -> Cert:
    """A self-signed certificate anyone can make."""
    return issue(None, "anyone")


@pytest.fixture(scope="module")
def other_name(ca: Cert) -> Cert:
    """A certificate from the CA the proxy trusts, for another name than the client's."""
    return issue(ca, "someone-else")


def assertion_probe(key: ClientKey, *, kid: str | bool | None = True) -> Callable[[str], Probe]:
    def probe(client_id: str) -> Probe:
        assertion = key.sign(assertion_claims(client_id, ISSUER), kid=kid)
        return Probe({"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})

    return probe


def certificate_probe(certificate: Cert) -> Callable[[str], Probe]:
    return lambda client_id: Probe({"client_id": client_id}, {HEADER: certificate.nginx_header})


def secret_probe(client_id: str) -> Probe:
    return Probe({"client_id": client_id, "client_secret": "a-guessed-secret"})


@dataclass(frozen=True)
class Case:
    """A registered client (``make(fixtures) -> client_id``), a probe, and the reason logged."""

    register: Callable[[Any], str]
    probe: Callable[[Any], Callable[[str], Probe]]
    reason: str


@dataclass
class Fixtures:
    make_client: Any
    key_server: KeyServer
    victim_key: ClientKey
    intruder: ClientKey
    intruder_rsa: ClientKey
    any_certificate: Cert
    other_name: Cert
    ca: Cert

    def client(self, auth_method: str, **kwargs: Any) -> str:
        application, _ = self.make_client(
            "victim", scopes=["reports:read"], auth_method=auth_method, can_introspect=True, **kwargs
        )
        return str(application.client_id)


def _failing_uri(f: Fixtures) -> str:
    f.key_server.mode = "error"
    return f.key_server.url


CASES: dict[str, Case] = {
    # private_key_jwt: an assertion signed by the attacker's key, naming the victim.
    "private_key_jwt-unknown-kid": Case(
        lambda f: f.client("private_key_jwt", jwks=jwks_of(f.victim_key)),
        lambda f: assertion_probe(f.intruder, kid="zzz"),
        'No key with kid "zzz" is registered for this client.',
    ),
    "private_key_jwt-guessed-kid-another-key": Case(
        lambda f: f.client("private_key_jwt", jwks=jwks_of(f.victim_key)),
        lambda f: assertion_probe(f.intruder, kid="victim-key"),
        "The client_assertion signature does not verify with this client's registered keys.",
    ),
    "private_key_jwt-unfit-key-type": Case(
        lambda f: f.client("private_key_jwt", jwks=jwks_of(f.victim_key)),
        lambda f: assertion_probe(f.intruder_rsa, kid="victim-key"),
        'Key "victim-key" is an EC key and cannot verify RS256.',
    ),
    "private_key_jwt-no-key-fits-without-kid": Case(
        lambda f: f.client("private_key_jwt", jwks=jwks_of(f.victim_key)),
        lambda f: assertion_probe(f.intruder_rsa, kid=None),
        "None of this client's registered keys can verify RS256.",
    ),
    "private_key_jwt-jwks_uri-failing": Case(
        lambda f: f.client("private_key_jwt", jwks_uri=_failing_uri(f)),
        lambda f: assertion_probe(f.intruder),
        "Could not fetch the client's JWKS: the server answered HTTP 500.",
    ),
    "private_key_jwt-given-a-secret": Case(
        lambda f: f.client("private_key_jwt", jwks=jwks_of(f.victim_key)),
        lambda f: secret_probe,
        "presented client_secret_post but is registered for private_key_jwt",
    ),
    # self_signed_tls_client_auth: any self-signed certificate beside the victim's client_id.
    "self_signed-jwks_uri-failing": Case(
        lambda f: f.client("self_signed_tls_client_auth", jwks_uri=_failing_uri(f)),
        lambda f: certificate_probe(f.any_certificate),
        "could not be checked: could not fetch the client's JWKS: the server answered HTTP 500",
    ),
    "self_signed-key-not-in-the-set": Case(
        lambda f: f.client("self_signed_tls_client_auth", jwks=issue(None, "victim").jwks()),
        lambda f: certificate_probe(f.any_certificate),
        "does not hold a key of the registered JWKS",
    ),
    # tls_client_auth: a certificate the proxy accepted, for another name.
    "tls_client_auth-name-mismatch": Case(
        lambda f: f.client("tls_client_auth", tls_subject_dn="CN=billing,O=Example"),
        lambda f: certificate_probe(f.other_name),
        "does not carry the registered subject DN",
    ),
    "secret-client-given-a-certificate": Case(
        lambda f: f.client("client_secret_basic"),
        lambda f: certificate_probe(f.any_certificate),
        "presented tls_client_certificate but is registered for client_secret_basic",
    ),
}


@pytest.fixture
def fixtures(
    settings: Any,
    make_client: Any,
    key_server: KeyServer,  # noqa: F811
    victim_key: ClientKey,
    intruder: ClientKey,
    intruder_rsa: ClientKey,
    any_certificate: Cert,
    other_name: Cert,
    ca: Cert,
) -> Fixtures:
    settings.OAUTH_CC = {**settings.OAUTH_CC, "CLIENT_CERT_HEADER": HEADER}
    return Fixtures(
        make_client, key_server, victim_key, intruder, intruder_rsa, any_certificate, other_name, ca
    )


# == The oracle: a registered client_id and an unknown one get the same answer ======================


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("case", CASES)
def test_a_refusal_before_authentication_is_the_same_for_a_registered_and_an_unknown_client_id(
    client, fixtures, auth_log, unchanged, case, door
):
    spec = CASES[case]
    client_id = spec.register(fixtures)
    probe = spec.probe(fixtures)

    with unchanged():
        registered = send(client, door, probe(client_id))
        refused_unproven(registered, auth_log, spec.reason)  # the operator still learns why
        unknown = send(client, door, probe(UNKNOWN))

    assert unknown.json() == GENERIC_INVALID_CLIENT
    assert answer(registered) == answer(unknown)
    assert not UsedAssertion.objects.exists()


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param({"alg": "HS256"}, 'client_assertion alg "HS256" is not accepted', id="hmac"),
        pytest.param({"alg": "none"}, 'client_assertion alg "none" is not accepted', id="none"),
    ],
)
def test_a_refusal_that_does_not_depend_on_the_client_is_specific_and_the_same_for_every_client_id(
    client, fixtures, unchanged, door, header, reason
):
    import base64
    import json

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    client_id = fixtures.client("private_key_jwt", jwks=jwks_of(fixtures.victim_key))

    def probe(named: str) -> Probe:
        assertion = f"{b64({**header, 'kid': 'victim-key'})}.{b64(assertion_claims(named, ISSUER))}.c2ln"
        return Probe({"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})

    with unchanged():
        registered = send(client, door, probe(client_id))
        unknown = send(client, door, probe(UNKNOWN))

    expect.invalid_client(registered, reason)
    assert answer(registered) == answer(unknown)


# == Probing does not make the issuer fetch the victim's jwks_uri more than the limits allow ========


class _Clock:
    """A stand-in for the ``time`` module as client_jwks_fetch sees it: the wall clock moves with
    the monotonic one (a failure's site-wide pause ends at a wall-clock time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._wall_offset = time.time() - self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self._wall_offset + self.now


def _probe_every_door(client: Any, probes: list[Probe], rounds: int) -> None:
    for _ in range(rounds):
        for door in DOORS:
            for probe in probes:
                response = send(client, door, probe)
                assert response.json() == GENERIC_INVALID_CLIENT, response.content


@pytest.fixture
def no_failure_limits(settings: Any) -> None:
    """The failure limits would stop the flood first; here the fetcher's own limits are tested."""
    settings.OAUTH_CC = {
        **settings.OAUTH_CC,
        "FAILED_AUTH_RATE_PER_ADDRESS": None,
        "FAILED_AUTH_RATE_PER_CLIENT_ID": None,
    }


def test_probing_a_client_whose_jwks_uri_fails_fetches_it_once_per_failure_window(
    client,
    fixtures,
    no_failure_limits,
    monkeypatch,
    key_server,  # noqa: F811
):
    clock = _Clock()
    monkeypatch.setattr(client_jwks_fetch, "time", clock)
    key_server.mode = "error"
    by_assertion = fixtures.client("private_key_jwt", jwks_uri=key_server.url)
    by_certificate = fixtures.client("self_signed_tls_client_auth", jwks_uri=key_server.url)
    probes = [assertion_probe(fixtures.intruder, kid=f"guess-{n}")(by_assertion) for n in range(3)] + [
        certificate_probe(issue(None, f"junk-{n}"))(by_certificate) for n in range(3)
    ]

    _probe_every_door(client, probes, rounds=2)  # 48 probes
    assert key_server.hits == 1

    clock.now += client_jwks_fetch.FAILURE_RETRY_AFTER - 0.01
    _probe_every_door(client, probes, rounds=1)
    assert key_server.hits == 1

    clock.now += 0.01  # the window has passed: one more fetch, then the next window
    _probe_every_door(client, probes, rounds=2)
    assert key_server.hits == 2


@dataclass
class _Worker:
    """One worker process's own client_jwks_fetch state; the Django cache is shared, as Redis is."""

    failures: Any = field(default_factory=lambda: BoundedMap(lambda: 100))
    uri_cache: Any = field(default_factory=lambda: BoundedMap(lambda: 100))
    last_kid_refetch: Any = field(default_factory=lambda: BoundedMap(lambda: 100))

    @contextmanager
    def running(self) -> Iterator[None]:
        with mock.patch.multiple(
            client_jwks_fetch,
            _failures=self.failures,
            _uri_cache=self.uri_cache,
            _last_kid_refetch=self.last_kid_refetch,
            _inflight={},
        ):
            yield


def test_probing_through_two_workers_fetches_a_failing_jwks_uri_once_per_window_site_wide(
    client,
    fixtures,
    no_failure_limits,
    monkeypatch,
    key_server,  # noqa: F811
):
    # Per-worker pauses alone would let each of W workers fetch once per window.
    clock = _Clock()
    monkeypatch.setattr(client_jwks_fetch, "time", clock)
    key_server.mode = "error"
    victim = fixtures.client("private_key_jwt", jwks_uri=key_server.url)
    probes = [assertion_probe(fixtures.intruder, kid=f"guess-{n}")(victim) for n in range(2)]
    first, second = _Worker(), _Worker()

    for worker in (first, second, first, second):
        with worker.running():
            _probe_every_door(client, probes, rounds=1)
    assert key_server.hits == 1

    clock.now += client_jwks_fetch.FAILURE_RETRY_AFTER - 0.01
    with second.running():
        _probe_every_door(client, probes, rounds=1)
    assert key_server.hits == 1

    clock.now += 0.01  # the window has passed: the next probe, on either worker, fetches once
    for worker in (second, first, second, first):
        with worker.running():
            _probe_every_door(client, probes, rounds=1)
    assert key_server.hits == 2


def test_probing_with_unknown_kids_and_certificate_keys_refetches_a_served_set_once_per_interval(
    client,
    fixtures,
    no_failure_limits,
    key_server,  # noqa: F811
):
    key_server.document = jwks_of(fixtures.victim_key)
    by_assertion = fixtures.client("private_key_jwt", jwks_uri=key_server.url)
    by_certificate = fixtures.client("self_signed_tls_client_auth", jwks_uri=key_server.url)
    probes = [assertion_probe(fixtures.intruder, kid=f"guess-{n}")(by_assertion) for n in range(3)] + [
        certificate_probe(issue(None, f"junk-{n}"))(by_certificate) for n in range(3)
    ]

    _probe_every_door(client, probes, rounds=2)  # 48 probes

    # The first fetch, and one re-fetch for a kid or key the set lacks (a rollover, maybe);
    # no more within KID_MISS_REFETCH_INTERVAL.
    assert key_server.hits == 2
