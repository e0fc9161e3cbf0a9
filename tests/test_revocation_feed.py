"""The issuer's revocation feed (oauth_cc.views.revocation_feed) and the resource side's parsing of it,
its hardened fetcher's URL rules, and the issuer-key rules (oauth_cc.resource)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from oauth_cc.common import hardened_http
from oauth_cc.issuer.clients import set_active
from oauth_cc.issuer.keys import generate_jwk
from oauth_cc.issuer.revocation import Snapshot
from oauth_cc.resource import feed, issuer_keys
from tests.conftest import basic_auth, form_post
from tests.helpers import ISSUER, clear_shared_cache

FEED = "/oauth/revocation-feed/"


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def reader(make_client) -> tuple[Any, str]:
    return make_client("resource-service", can_introspect=True)


def get_feed(client, credentials: tuple[Any, str], **headers: str) -> Any:
    application, secret = credentials
    return client.get(FEED, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret), **headers)


def test_feed_without_credentials_is_invalid_client(client):
    response = client.get(FEED)
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication is required.",
    }
    assert response["WWW-Authenticate"] == 'Basic realm="oauth_cc", charset="UTF-8"'


def test_feed_refuses_a_client_not_allowed_to_introspect(client, make_client):
    response = get_feed(client, make_client("plain"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "unauthorized_client",
        "error_description": "This client is not allowed to read the revocation feed.",
    }


def test_feed_lists_revocations_and_an_unchanged_feed_is_a_304(client, reader, make_client, token_for):
    response = get_feed(client, reader)
    assert response.status_code == 200
    assert response.json() == {
        "issuer": ISSUER,
        "revoked_jtis": [],
        "disabled_clients": [],
        "deleted_clients": [],
        "tokens_valid_after": {},
    }
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    unchanged = get_feed(client, reader, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag

    application, secret = make_client("svc", scopes=["reports:read"])
    token = token_for(application, secret, scope="reports:read")["access_token"]
    payload = token.split(".")[1]
    jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    revoked = form_post(
        client,
        "/oauth/revoke/",
        {"token": token},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert revoked.status_code == 200
    set_active(application, False)

    changed = get_feed(client, reader, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    body = changed.json()
    assert body["revoked_jtis"] == [jti]
    assert body["disabled_clients"] == [application.client_id]
    assert application.client_id in body["tokens_valid_after"]
    assert (
        feed.parse(body).reason_refused(jti=jti, client_id="other", iat=0)
        == "The access token has been revoked."
    )


def test_the_etag_is_the_bodys_sha256_and_the_feed_is_private(client, reader):
    import hashlib

    response = get_feed(client, reader)
    assert response["ETag"] == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
    assert response["Cache-Control"] == "private, no-cache"  # per client: no shared cache keeps it
    unchanged = get_feed(client, reader, HTTP_IF_NONE_MATCH=response["ETag"])
    assert (unchanged.status_code, unchanged["Cache-Control"]) == (304, "private, no-cache")


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("*", 304),
        ("{etag}", 304),
        ("W/{etag}", 304),  # RFC 9110 §13.1.2: the weak comparison
        ('"other", {etag}', 304),
        ('"other",{etag}', 304),
        ('"other"', 200),
        ("{etag}x", 200),
        ("", 200),
    ],
)
def test_if_none_match_is_the_weak_comparison_over_a_list(client, reader, if_none_match, status):
    etag = get_feed(client, reader)["ETag"]
    response = get_feed(client, reader, HTTP_IF_NONE_MATCH=if_none_match.format(etag=etag))
    assert (response.status_code, response["ETag"]) == (status, etag)


def test_head_with_basic_answers_the_feeds_headers_without_its_body(client, reader):
    application, secret = reader
    full = get_feed(client, reader)
    response = client.head(FEED, HTTP_AUTHORIZATION=basic_auth(application.client_id, secret))
    assert response.status_code == 200
    assert response.content == b""
    assert response["ETag"] == full["ETag"]
    assert response["Content-Length"] == str(len(full.content))


@pytest.fixture
def encodings(monkeypatch) -> list[Snapshot]:
    """The snapshots whose feed body is built, in order (a spy on revocation.encode_feed)."""
    from oauth_cc.issuer import revocation

    built: list[Snapshot] = []
    encode = revocation.encode_feed

    def spy(snapshot: Snapshot, issuer: str) -> bytes:
        built.append(snapshot)
        return encode(snapshot, issuer)

    monkeypatch.setattr(revocation, "encode_feed", spy)
    return built


def test_an_unchanged_feed_is_built_once_and_a_304_builds_nothing(client, reader, make_client, encodings):
    first = get_feed(client, reader)
    again = get_feed(client, reader)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content and again["ETag"] == first["ETag"]
    assert len(encodings) == 1
    unchanged = get_feed(client, reader, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304 and unchanged["ETag"] == first["ETag"]
    assert len(encodings) == 1

    application, _ = make_client("svc")
    set_active(application, False)  # a change of the state: a new snapshot

    changed = get_feed(client, reader, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200
    assert changed.json()["disabled_clients"] == [application.client_id]
    assert changed["ETag"] != first["ETag"]
    assert len(encodings) == 2 and encodings[1] is not encodings[0]
    assert get_feed(client, reader, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 304
    assert len(encodings) == 2


def test_the_feed_memo_follows_the_snapshot_object_and_the_issuer(encodings):
    from oauth_cc.issuer.revocation import FeedMemo

    memo = FeedMemo()
    snapshot = Snapshot(revoked_jtis=frozenset({"j1"}))
    first = memo.document(snapshot, ISSUER)
    assert memo.document(snapshot, ISSUER) is first
    assert json.loads(first.body)["revoked_jtis"] == ["j1"]
    # An equal snapshot is another state read (it may hold jtis expired since): built again.
    equal = Snapshot(revoked_jtis=frozenset({"j1"}))
    assert memo.document(equal, ISSUER) == first
    assert len(encodings) == 2
    other_issuer = memo.document(equal, "https://other.example")
    assert json.loads(other_issuer.body)["issuer"] == "https://other.example"
    assert other_issuer.etag != first.etag
    memo.reset()
    memo.document(equal, "https://other.example")
    assert len(encodings) == 4
    assert "body" not in repr(first)  # a log line never holds 2.5 MB


NOT_TIMES = "the revocation feed's tokens_valid_after is not an object of times"
FEED_DOC = {
    "issuer": ISSUER,
    "revoked_jtis": ["j1"],
    "disabled_clients": ["c1"],
    "deleted_clients": ["c2"],
    "tokens_valid_after": {"c3": 100},
}


def test_parse_builds_the_snapshot():
    assert feed.parse(FEED_DOC) == Snapshot(
        revoked_jtis=frozenset({"j1"}),
        disabled_clients=frozenset({"c1"}),
        deleted_clients=frozenset({"c2"}),
        valid_after={"c3": 100.0},
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "https://other.example"}, "the revocation feed names another issuer"),
        ({"revoked_jtis": "j1"}, "the revocation feed's revoked_jtis is not a list of strings"),
        ({"disabled_clients": [1]}, "the revocation feed's disabled_clients is not a list of strings"),
        ({"deleted_clients": None}, "the revocation feed's deleted_clients is not a list of strings"),
        (
            {"tokens_valid_after": {"c3": True}},
            "the revocation feed's tokens_valid_after is not an object of times",
        ),
        ({"tokens_valid_after": []}, "the revocation feed's tokens_valid_after is not an object of times"),
    ],
)
def test_parse_refuses_a_malformed_feed(change, message):
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.parse({**FEED_DOC, **change})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"revoked_jtis": ["j" * 65]},
            "the revocation feed's revoked_jtis has an entry that is longer than 64 characters",
        ),
        ({"revoked_jtis": ["j1", ""]}, "the revocation feed's revoked_jtis has an entry that is empty"),
        (
            {"revoked_jtis": ["j\x1b[2J"]},
            "the revocation feed's revoked_jtis has an entry that contains control characters",
        ),
        (
            {"disabled_clients": ["c" * 256]},
            "the revocation feed's disabled_clients has an entry that is longer than 255 characters",
        ),
        (
            {"deleted_clients": ["c\x00"]},
            "the revocation feed's deleted_clients has an entry that contains control characters",
        ),
        ({"deleted_clients": [""]}, "the revocation feed's deleted_clients has an entry that is empty"),
        (
            {"tokens_valid_after": {"c" * 256: 1}},
            "the revocation feed's tokens_valid_after has an entry that is longer than 255 characters",
        ),
        (
            {"tokens_valid_after": {"": 1}},
            "the revocation feed's tokens_valid_after has an entry that is empty",
        ),
        (
            {"tokens_valid_after": {"c\n": 1}},
            "the revocation feed's tokens_valid_after has an entry that contains control characters",
        ),
    ],
)
def test_parse_refuses_an_entry_outside_the_identifier_bounds(change, message):
    # The bounds of a token's jti and client_id claims (tokens.MAX_JTI_LENGTH,
    # MAX_CLIENT_ID_LENGTH): an entry no token could carry is refused, not kept in memory.
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.parse({**FEED_DOC, **change})
    assert str(raised.value) == message


def test_parse_takes_entries_at_the_identifier_bounds():
    snapshot = feed.parse(
        {
            **FEED_DOC,
            "revoked_jtis": ["j" * 64, "é"],
            "disabled_clients": ["c" * 255],
            "deleted_clients": ["a b"],
            "tokens_valid_after": {"d" * 255: 1},
        }
    )
    assert snapshot.revoked_jtis == frozenset({"j" * 64, "é"})
    assert snapshot.disabled_clients == frozenset({"c" * 255})
    assert snapshot.valid_after == {"d" * 255: 1.0}


RESOURCE_FEED_SETTINGS = {
    "ISSUER": ISSUER,
    "RESOURCE_CLIENT_ID": "reader",
    "RESOURCE_CLIENT_SECRET": "s3cret",
    "ISSUER_ALLOW_INSECURE": True,
}


def serve_feed(monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    """Make the hardened fetcher answer ``body`` (a 200) to every feed request."""
    fetched = hardened_http.Fetched(status=200, headers={"etag": '"1"'}, body=body)
    monkeypatch.setattr(hardened_http, "get", lambda url, **kwargs: fetched)


def feed_with_cutoff(number: str) -> bytes:
    """A feed whose one cut-off is ``number``, written as JSON text exactly as given."""
    head = {**FEED_DOC, "revoked_jtis": [], "tokens_valid_after": {}}
    return (json.dumps(head, separators=(",", ":"))[: -len("{}}")] + '{"c":' + number + "}}").encode()


@pytest.mark.parametrize(
    "number",
    [
        "1" + "0" * 400,  # an int float() cannot convert (OverflowError)
        "1e400",  # inf to the JSON decoder
        "-1e400",
        "-1",
        "253402300800",  # past the end of year 9999
        "1e308",
        '"100"',
        "null",
    ],
)
@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_a_cutoff_that_is_not_a_numericdate_is_a_fetch_error(monkeypatch, number):
    serve_feed(monkeypatch, feed_with_cutoff(number))
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.fetch(None)
    assert str(raised.value) == NOT_TIMES


@pytest.mark.parametrize(("number", "seconds"), [("0", 0.0), ("253402300799", 253402300799.0), ("1.5", 1.5)])
@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_a_cutoff_within_the_numericdate_range_is_read(monkeypatch, number, seconds):
    serve_feed(monkeypatch, feed_with_cutoff(number))
    assert feed.fetch(None)["snapshot"].valid_after == {"c": seconds}


def broken_parse(document: Any) -> Snapshot:
    raise OverflowError("int too large to convert to float: 1000000000")


@override_settings(OAUTH_CC={**RESOURCE_FEED_SETTINGS, "REVOCATION_FEED_STALE_SECONDS": 3600})
def test_an_unexpected_error_in_a_poll_is_one_logged_failure_and_the_last_state_stays(monkeypatch, caplog):
    monkeypatch.setattr(feed, "claim", lambda key, seconds: True)  # every poll fetches
    serve_feed(monkeypatch, json.dumps(FEED_DOC).encode())
    state = feed.FeedState()
    state.poll()
    held = state.current()
    assert "j1" in held.revoked_jtis
    real_parse = feed.parse
    monkeypatch.setattr(feed, "parse", broken_parse)
    caplog.clear()
    state.poll()  # does not raise
    state.poll()
    failures = [r.getMessage() for r in caplog.records if "revocation feed" in r.getMessage()]
    assert failures == [
        "oauth_cc could not read the issuer's revocation feed: an unexpected OverflowError while reading it"
    ]
    assert state.current() is held  # "keep": the last state read
    monkeypatch.setattr(feed, "parse", real_parse)
    state.poll()
    assert caplog.records[-1].getMessage() == "oauth_cc reads the issuer's revocation feed again"


@pytest.mark.parametrize(
    "entry", [{}, {"checked_at": "x", "snapshot": None}, {"checked_at": 1e12, "snapshot": "not one"}, [1]]
)
@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_a_shared_entry_of_another_shape_is_not_adopted(monkeypatch, entry):
    from django.core.cache import caches

    caches["default"].set(feed._key("state"), entry)
    monkeypatch.setattr(feed, "claim", lambda key, seconds: False)  # another worker polls
    state = feed.FeedState()
    state._snapshot = held = Snapshot()
    state.poll()  # no KeyError, TypeError or ValueError
    assert state.current() is held


@override_settings(OAUTH_CC={**RESOURCE_FEED_SETTINGS, "REVOCATION_FEED_UNREACHABLE": "refuse"})
def test_an_unexpected_error_in_a_workers_first_poll_is_a_503_not_the_exception(monkeypatch, caplog):
    from oauth_cc.common.errors import TemporarilyUnavailable

    serve_feed(monkeypatch, json.dumps(FEED_DOC).encode())
    monkeypatch.setattr(feed, "parse", broken_parse)
    with pytest.raises(TemporarilyUnavailable) as raised:
        feed.FeedState().current()
    assert raised.value.description == ("The issuer's revocation state could not be read yet; retry shortly.")
    assert "1000000000" not in caplog.text  # the message may quote the document: only its type


@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_an_unexpected_error_while_fetching_the_keys_is_one_logged_failure(monkeypatch, caplog):
    from oauth_cc.common.errors import TemporarilyUnavailable

    def broken(url: str, *, what: str) -> Any:
        raise OverflowError("int too large to convert to float: 1000000000")

    monkeypatch.setattr(issuer_keys, "_get_json", broken)
    keys = issuer_keys.IssuerKeys()
    for _ in range(2):
        with pytest.raises(TemporarilyUnavailable) as raised:
            keys.verifier("k1")
        assert raised.value.description == "The issuer's signing keys could not be fetched; retry shortly."
    assert [r.getMessage() for r in caplog.records] == [
        "oauth_cc could not fetch the issuer's keys: an unexpected OverflowError while reading them"
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://issuer.example", "the URL must use https://"),
        ("https://localhost/x", "the URL must not point at this machine (localhost)"),
        (
            "https://127.0.0.1/x",
            "the URL points at 127.0.0.1, a private, loopback or link-local address; use a public https URL",
        ),
        (
            "https://10.0.0.1/x",
            "the URL points at 10.0.0.1, a private, loopback or link-local address; use a public https URL",
        ),
        ("https://user:pw@issuer.example/", "the URL must not contain a user name or password"),
        ("ftp://issuer.example/", "the URL must be an absolute https:// URL"),
    ],
)
def test_fetcher_refuses_insecure_urls_unless_allowed(url, message):
    with pytest.raises(hardened_http.FetchError) as raised:
        hardened_http.check_url(url, allow_insecure=False)
    assert str(raised.value) == message
    if "user name" not in message and "ftp" not in url:
        hardened_http.check_url(url, allow_insecure=True)


def test_fetcher_refuses_a_name_resolving_to_a_private_address(monkeypatch):
    monkeypatch.setattr(hardened_http, "resolve", lambda host, port: ["192.168.1.5"])
    with pytest.raises(hardened_http.FetchError) as raised:
        hardened_http.get("https://issuer.example/x", timeout=2, max_bytes=100, allow_insecure=False)
    assert str(raised.value) == "the host name resolves to a private, loopback or link-local address"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300),
        ("public, max-age=60", 60),
        ("max-age=0", 1),
        ("max-age=999999999", 86400),
        ("no-cache", 1),
        ("private", 300),
    ],
)
def test_max_age(header, seconds):
    assert issuer_keys.max_age(header) == seconds


def test_issuer_keys_keep_only_public_access_token_keys(db):
    key = generate_jwk("ES256")
    public = {**json.loads(key.export_public()), "alg": "ES256"}
    keys = issuer_keys.verifiers(
        {
            "keys": [
                public,
                {key: value for key, value in public.items() if key != "alg"} | {"kid": "no-alg"},
                {**public, "kid": "hmac", "kty": "oct", "k": "c2VjcmV0"},
                {**json.loads(key.export_private()), "kid": "private"},
                {**public, "kid": "wrong-alg", "alg": "RS256"},
            ]
        }
    )
    assert set(keys) == {public["kid"]}
    assert keys[public["kid"]][0] == public["alg"]
    with pytest.raises(hardened_http.FetchError) as raised:
        issuer_keys.verifiers({"keys": [{**public, "alg": "HS256"}]})
    assert str(raised.value) == "the issuer's JWKS holds no usable signing key"


@override_settings(OAUTH_CC={"ISSUER": ISSUER})
def test_discovery_refuses_metadata_naming_another_issuer(monkeypatch):
    monkeypatch.setattr(
        issuer_keys, "_get_json", lambda url, what: ({"issuer": "https://evil.example", "jwks_uri": "x"}, {})
    )
    with pytest.raises(hardened_http.FetchError) as raised:
        issuer_keys.fetch()
    assert str(raised.value) == "the issuer's metadata names another issuer"


RESOURCE_SETTINGS = {
    "ISSUER": ISSUER,
    "RESOURCE_CLIENT_ID": "reader",
    "RESOURCE_CLIENT_SECRET": "s3cret",
    "ISSUER_ALLOW_INSECURE": True,
}


@pytest.mark.parametrize(
    ("advertised", "used"),
    [
        (None, None),
        (f"{ISSUER}/feeds/revocations/", f"{ISSUER}/feeds/revocations/"),
        ("https://evil.example/oauth/revocation-feed/", None),  # the credentials would go there
        (ISSUER.replace("http://", "https://") + "/oauth/revocation-feed/", None),  # another scheme
        (f"{ISSUER}:8443/oauth/revocation-feed/", None),  # another port
        (ISSUER.replace("://", "://user@") + "/feed/", None),
        (["not", "a", "string"], None),
        (f"{ISSUER}:bad-port/x", None),
    ],
)
@override_settings(OAUTH_CC=RESOURCE_SETTINGS)
def test_feed_endpoint_is_taken_from_the_metadata_only_on_the_issuers_origin(advertised, used, caplog):
    metadata = {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/.well-known/jwks.json"}
    if advertised is not None:
        metadata[issuer_keys.FEED_ENDPOINT_MEMBER] = advertised
    assert issuer_keys.feed_endpoint(metadata) == used
    ignored = "Ignoring the issuer's oauth_cc_revocation_feed_endpoint" in caplog.text
    assert ignored == (advertised is not None and used is None)


@override_settings(OAUTH_CC=RESOURCE_SETTINGS)
def test_the_feed_is_read_where_the_metadata_says(monkeypatch, db):
    from oauth_cc.resource import sync

    key = generate_jwk("ES256")
    documents = {
        f"{ISSUER}/.well-known/oauth-authorization-server": {
            "issuer": ISSUER,
            "jwks_uri": f"{ISSUER}/keys.json",
            "oauth_cc_revocation_feed_endpoint": f"{ISSUER}/feeds/revocations/",
        },
        f"{ISSUER}/keys.json": {"keys": [{**json.loads(key.export_public()), "alg": "ES256"}]},
    }
    monkeypatch.setattr(issuer_keys, "_get_json", lambda url, what: (documents[url], {}))
    requested = []

    def get(url, **kwargs):
        requested.append((url, kwargs["headers"]["Authorization"]))
        body = json.dumps({**FEED_DOC, "revoked_jtis": []}).encode()
        return hardened_http.Fetched(status=200, headers={"etag": '"1"'}, body=body)

    monkeypatch.setattr(hardened_http, "get", get)
    sync.reset()
    assert feed.feed_url() == f"{ISSUER}/oauth/revocation-feed/"  # nothing discovered yet
    sync.issuer_keys.refresh()
    assert sync.issuer_keys.feed_endpoint == f"{ISSUER}/feeds/revocations/"
    # The poller asks the keys' reader for the advertised URL.
    assert feed.feed_url(sync.feed_state._advertised()) == f"{ISSUER}/feeds/revocations/"
    feed.fetch(None, feed.feed_url(sync.issuer_keys.feed_endpoint))
    basic = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert requested == [(f"{ISSUER}/feeds/revocations/", basic)]
    sync.reset()


class _Answers(BaseHTTPRequestHandler):
    """Answers every GET and POST with the server's ``status`` (a 304 with an ETag)."""

    def _answer(self) -> None:
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("ETag", '"1"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[Callable[[int], str]]:
    """``answering(status) -> base URL`` of a loopback server that answers only ``status``."""
    servers: list[ThreadingHTTPServer] = []

    def serve(status: int) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
        httpd.daemon_threads = True
        httpd.status = status  # type: ignore[attr-defined]
        httpd.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("shared", [None, {"snapshot": Snapshot(), "checked_at": 1.0, "etag": None}])
@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_a_304_to_a_feed_request_without_an_etag_is_a_fetch_error(answering, shared):
    # Without a shared ETag the request is unconditional: the fetcher itself refuses a 304, so
    # the feed never "keeps" an entry it does not have.
    with pytest.raises(hardened_http.FetchError) as raised:
        feed.fetch(shared, answering(304) + FEED)
    assert str(raised.value) == "the server answered HTTP 304"


@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_a_304_to_a_conditional_feed_request_keeps_the_shared_entry(answering):
    held = Snapshot(revoked_jtis=frozenset({"j1"}))
    entry = feed.fetch({"snapshot": held, "checked_at": 1.0, "etag": '"1"'}, answering(304) + FEED)
    assert entry["snapshot"] is held and entry["etag"] == '"1"' and entry["checked_at"] > 1.0


@pytest.mark.parametrize("status", [304, 404, 500])
@override_settings(OAUTH_CC=RESOURCE_FEED_SETTINGS)
def test_an_issuer_document_answered_with_another_status_is_a_fetch_error(answering, status):
    with pytest.raises(hardened_http.FetchError) as raised:
        issuer_keys._get_json(answering(status) + issuer_keys.METADATA_PATH, what="the issuer's metadata")
    assert str(raised.value) == f"the server answered HTTP {status}"
