"""Building blocks of the HTTP fuzz (tests/test_http_fuzz.py): valid requests and their mutations.

Every fuzzed request starts as a *valid* request of one surface of the example site (a real
client with its real secret, a real access token, a freshly signed private_key_jwt assertion,
a real CSRF token) and then gets one to three mutations. A :class:`Req` keeps the request in a
structured form (form pairs, JSON value, headers) so mutations can change one part while the
rest stays valid; it is turned into bytes only when sent, in process through Django's test
``Client`` (:func:`send_in_process`) or over a socket (:func:`raw_parts`, :func:`raw_mutate`).

Each mutation returns a short description; the list of them is what a failure report shows.
Randomness comes only from the ``random.Random`` passed in, so a seed replays a run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.http import HttpRequest
from django.test import Client

from example_project.middleware import malformed, refusal
from tests.assertion_helpers import ASSERTION_TYPE, ClientKey
from tests.attacks.forge import b64, dumps, json_smuggled, nested, sign_with, site_key, site_signed

ISSUER = "http://testserver"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
TOKEN_PATH = "/oauth/token/"
INTROSPECT_PATH = "/oauth/introspect/"
REVOKE_PATH = "/oauth/revoke/"
FEED_PATH = "/oauth/revocation-feed/"
OAUTH_PATHS = {
    TOKEN_PATH: "token",
    INTROSPECT_PATH: "introspect",
    REVOKE_PATH: "revoke",
    FEED_PATH: "feed",
}
#: DRF views that need a valid access token (all but /api/health/).
TOKEN_API_PATHS = ("/api/reports/", "/api/whoami/", "/api/ping/")
API_PATHS = (*TOKEN_API_PATHS, "/api/health/")
ADMIN_LOGIN = "/admin/login/"


class Raw(bytes):
    """Form bytes inserted literally, not percent-encoded (``%FF``, a lone ``%``, raw UTF-8)."""


AUTO: Any = object()  # content_length: computed from the body


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of a mutation's value, cut so a failure report stays readable."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = len(value) if hasattr(value, "__len__") else len(text)
    return f"{text[: limit - 12]}…(len {length})"


# -- the request ------------------------------------------------------------------------------


@dataclass
class Req:
    """One request, kept structured until it is sent."""

    surface: str
    method: str
    path: str
    query: str = ""
    #: WSGI ``META`` names (``HTTP_AUTHORIZATION``...) to values; content headers are separate.
    headers: dict[str, str] = field(default_factory=dict)
    #: Cookies sent; None for no Cookie header (``HTTP_COOKIE`` in ``headers`` overrides).
    cookies: dict[str, str] | None = None
    #: How the body is made: "none", "form", "json", "multipart" or "raw".
    kind: str = "none"
    form: list[list[Any]] = field(default_factory=list)
    form_sep: bytes = b"&"
    json_obj: Any = None
    raw: bytes = b""
    boundary: str = "fuzzboundary"
    content_type: str | None = None
    content_length: Any = AUTO
    #: Raw-HTTP only: extra header lines (bytes, no CRLF) and request-line changes.
    raw_lines: list[bytes] = field(default_factory=list)
    mutations: list[str] = field(default_factory=list)
    #: A mutation used the site's private signing key (a forged but genuinely signed token).
    needs_site_key: bool = False

    # -- body --
    def body(self) -> bytes:
        if self.kind == "none":
            return b""
        if self.kind == "form":
            return self.form_sep.join(_encode_pair(pair) for pair in self.form)
        if self.kind == "json":
            return json.dumps(self.json_obj).encode("utf-8", "surrogatepass")
        if self.kind == "multipart":
            return _multipart(self.form, self.boundary)
        return self.raw

    def to_raw(self) -> bytes:
        """Freeze the body into bytes, for mutations that work on bytes."""
        data = self.body()
        self.kind, self.raw = "raw", data
        return data

    def declared_length(self, body: bytes) -> str | None:
        if self.content_length is AUTO:
            if body or self.method not in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"):
                return str(len(body))
            return None
        return self.content_length

    # -- form helpers --
    def form_names(self) -> list[str]:
        return [pair[0] for pair in self.form if isinstance(pair[0], str)]

    def form_value(self, name: str) -> Any:
        for pair in self.form:
            if pair[0] == name:
                return pair[1]
        return None

    def form_set(self, name: str, value: Any) -> None:
        for pair in self.form:
            if pair[0] == name:
                pair[1] = value
                return
        self.form.append([name, value])

    # -- what the server will see --
    def cookie_header(self) -> str:
        if "HTTP_COOKIE" in self.headers:
            return self.headers["HTTP_COOKIE"]
        if not self.cookies:
            return ""
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def describe(self) -> str:
        query = "?" + (self.query if len(self.query) <= 60 else self.query[:50] + f"…(len {len(self.query)})")
        return (
            f"{short(self.method, 20)[1:-1]} {self.path}{query if self.query else ''} [{self.surface}] "
            + (" + ".join(self.mutations) or "(unmutated)")
        )


def _encode_part(part: Any) -> bytes:
    if isinstance(part, Raw):
        return bytes(part)
    if isinstance(part, str):
        part = part.encode("utf-8", "surrogatepass")
    return quote_plus(part, safe="").encode("ascii")


def _encode_pair(pair: list[Any]) -> bytes:
    name, value = pair
    if value is None:
        return _encode_part(name)
    return _encode_part(name) + b"=" + _encode_part(value)


def _as_bytes(part: Any) -> bytes:
    if isinstance(part, bytes):
        return bytes(part)
    if part is None:
        return b""
    return str(part).encode("utf-8", "surrogatepass")


def _multipart(form: list[list[Any]], boundary: str) -> bytes:
    out = []
    for name, value in form:
        out.append(
            b"--"
            + boundary.encode()
            + b'\r\nContent-Disposition: form-data; name="'
            + _as_bytes(name)
            + b'"\r\n\r\n'
            + _as_bytes(value)
            + b"\r\n"
        )
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


def latin1(value: str) -> str:
    """A header value as a WSGI server hands it over: the bytes on the wire decoded as latin-1."""
    if all(ord(char) < 256 for char in value):
        return value
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


def parsed_form(body: bytes) -> dict[str, str] | None:
    """The form as oauth_cc parses it (strict), or None if it would refuse it."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


def presented_bearer(headers: dict[str, str]) -> str | None:
    """The access token the DRF authentication class would check, or None (same parsing)."""
    header = headers.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token or len(token.split()) != 1:
        return None
    return token


# -- the world: clients, secrets, tokens, keys ------------------------------------------------


@dataclass
class Party:
    client_id: str
    secret: str = ""
    key: ClientKey | None = None

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()


@dataclass
class World:
    """Everything a valid request needs; made once per test by the fixture."""

    reader: Party  # client_secret_basic, reports:read (default), reports:write, other:scope
    poster: Party  # client_secret_post, may introspect (reads the revocation feed by POST)
    jwt: Party  # private_key_jwt (ES256 key), may introspect
    gateway: Party  # client_secret_basic, may introspect
    revoker: Party  # client_secret_basic; its tokens are the ones revoked
    reader_audiences: tuple[str, ...]
    #: The reader's tokens by scope set: "read", "write" (read+write), "other" (other:scope).
    api_tokens: dict[str, str]
    revocable: list[str]  # the revoker's tokens
    jwt_tokens: list[str]  # the jwt client's tokens
    csrf_cookie: str
    csrf_token: str
    admin_username: str
    admin_password: str
    forger: Forger
    #: Every token the site issued at its token endpoint (grown by the fuzz's own 200s).
    genuine: set[str] = field(default_factory=set)
    #: Tokens signed with the site key whose claims follow every rule: the site cannot tell
    #: them from its own, so they may be accepted.
    site_valid: dict[str, str] = field(default_factory=dict)  # token -> variant
    accepted_assertions: list[str] = field(default_factory=list)
    _revocable_next: itertools.count = field(default_factory=itertools.count)

    def parties(self) -> list[Party]:
        return [self.reader, self.poster, self.jwt, self.gateway, self.revoker]

    def acceptable(self, token: str | None) -> bool:
        return token is not None and (token in self.genuine or token in self.site_valid)

    def forge_site_valid(self, rng: Any, client_id: str) -> tuple[str, str]:
        """A site-signed, rule-abiding but extreme token (remembered as acceptable)."""
        desc, token = self.forger.site_valid(rng, client_id)
        self.site_valid[token] = desc
        return desc, token

    def next_revocable(self) -> str:
        return self.revocable[next(self._revocable_next) % len(self.revocable)]

    def assertion(self, audience: Any, *, raw: bool = False, **overrides: Any) -> str:
        """A fresh, valid client assertion of the jwt client (new jti each time).

        ``raw`` signs the claims as they are, without PyJWT's checks (a list as ``iss``).
        """
        now = int(time.time())
        claims = {
            "iss": self.jwt.client_id,
            "sub": self.jwt.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 120,
            "jti": f"a{time.monotonic_ns()}",
            **overrides,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        assert self.jwt.key is not None
        if raw:
            header = {"alg": "ES256", "kid": self.jwt.key.kid}
            return sign_with(self.jwt.key.private_key, "ES256", header, claims)
        return self.jwt.key.sign(claims)


# -- forged tokens, genuinely signed --------------------------------------------------------------

_jti_counter = itertools.count()


def _payload(claims: dict[str, Any], raw: dict[str, str] | None = None) -> bytes:
    """Compact JSON of ``claims`` with some members' values written as raw JSON text."""
    claims = dict(claims)
    for name in raw or {}:
        claims[name] = f"__RAW_{name}__"
    text = json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
    for name, literal in (raw or {}).items():
        text = text.replace(f'"__RAW_{name}__"', literal)
    return text.encode("utf-8", "surrogatepass")


class Forger:
    """Tokens with hostile headers or claims, most of them genuinely signed by the site's key.

    :meth:`refused` makes tokens that break a rule of oauth_cc.common.tokens.verify, which must refuse
    them; :meth:`site_valid` makes tokens signed by the site with extreme claims that break none
    of its rules (a huge ``exp``, a long ``jti``, a NUL in ``client_id``): the verifier accepts
    them today, so they count as acceptable, but nothing may answer them with a 5xx.
    """

    def __init__(self) -> None:
        # One DB read and one key parse, instead of one per token (forge.site_signed's way).
        self.kid, self.alg, self.key = site_key()
        public = self.key.public_key()
        self.public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
        self.other_key = ec.generate_private_key(ec.SECP256R1())

    def header(self, **overrides: Any) -> dict[str, Any]:
        header = {"alg": self.alg, "typ": "at+jwt", "kid": self.kid, **overrides}
        return {name: value for name, value in header.items() if value is not None}

    def claims(self, cid: str, /, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": cid,
            "client_id": cid,
            "aud": ISSUER,
            "exp": now + 600,
            "iat": now,
            "jti": f"fz{next(_jti_counter)}",
            "scope": "reports:read reports:write",
            **overrides,
        }
        return {name: value for name, value in claims.items() if value is not None}

    def sign(self, payload: bytes | dict[str, Any] | str, header: Any = None) -> str:
        return sign_with(self.key, self.alg, self.header() if header is None else header, payload)

    def refused(self, rng: Any, client_id: str, genuine: str) -> tuple[str, str]:
        """One of :data:`REFUSED_VARIANTS`; ``genuine`` is a real token some variants wrap."""
        name, make = rng.choice(REFUSED_VARIANTS)
        return f"forged[{name}]", make(self, client_id, genuine)

    def site_valid(self, rng: Any, client_id: str) -> tuple[str, str]:
        name, make = rng.choice(SITE_VALID_VARIANTS)
        return f"site-valid[{name}]", make(self, client_id)


def _raw_claim(name: str, literal: str) -> Callable[[Forger, str, str], str]:
    return lambda f, cid, g: f.sign(_payload(f.claims(cid), {name: literal}))


def _claim(**overrides: Any) -> Callable[[Forger, str, str], str]:
    return lambda f, cid, g: f.sign(f.claims(cid, **overrides))


def _drop(name: str) -> Callable[[Forger, str, str], str]:
    def make(f: Forger, cid: str, g: str) -> str:
        claims = f.claims(cid)
        del claims[name]
        return f.sign(claims)

    return make


def _header(**overrides: Any) -> Callable[[Forger, str, str], str]:
    return lambda f, cid, g: f.sign(f.claims(cid), f.header(**overrides))


def _now() -> int:
    return int(time.time())


def _hmac_with_public_key(f: Forger, cid: str, g: str) -> str:
    header = f.header(alg="HS256")
    signing_input = f"{b64(dumps(header))}.{b64(dumps(f.claims(cid)))}"
    signature = hmac.new(f.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _wrong_key(f: Forger, cid: str, g: str) -> str:
    return sign_with(f.other_key, "ES256", f.header(), f.claims(cid))


def _der_signature(f: Forger, cid: str, g: str) -> str:
    signing_input = f"{b64(dumps(f.header()))}.{b64(dumps(f.claims(cid)))}".encode()
    der = f.key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    return f"{signing_input.decode()}.{b64(der)}"


def _signature_changed(delta: int) -> Callable[[Forger, str, str], str]:
    def make(f: Forger, cid: str, g: str) -> str:
        head, payload, sig = f.sign(f.claims(cid)).split(".")
        raw = base64.urlsafe_b64decode(sig + "==")
        raw = raw + b"\0" * delta if delta > 0 else raw[:delta]
        return f"{head}.{payload}.{b64(raw)}"

    return make


def _smuggled(f: Forger, cid: str, g: str) -> str:
    return json_smuggled(g, f.claims(cid, scope="reports:read reports:write other:scope"))


def _alg_none(f: Forger, cid: str, g: str) -> str:
    return f"{b64(dumps(f.header(alg='none')))}.{b64(dumps(f.claims(cid)))}."


def _header_raw(text: str) -> Callable[[Forger, str, str], str]:
    return lambda f, cid, g: f.sign(f.claims(cid), text.replace("KID", f.kid).encode())


def _claims_raw(text: str) -> Callable[[Forger, str, str], str]:
    """A payload of literal text (``CID`` and ``EXP`` are filled in)."""
    return lambda f, cid, g: f.sign(
        text.replace("CID", cid)
        .replace("EXP", str(_now() + 600))
        .replace("IAT", str(_now()))
        .encode("utf-8", "surrogatepass")
    )


_FULL = (
    '"iss":"http://testserver","sub":"CID","client_id":"CID","aud":"http://testserver","iat":IAT,"jti":"dupe"'
)

REFUSED_VARIANTS: list[tuple[str, Callable[[Forger, str, str], str]]] = [
    ("exp NaN", _raw_claim("exp", "NaN")),
    ("exp Infinity", _raw_claim("exp", "Infinity")),
    ("exp -Infinity", _raw_claim("exp", "-Infinity")),
    ("exp 1e400", _raw_claim("exp", "1e400")),
    ("exp 2**53+1", _claim(exp=2**53 + 1)),
    ("exp 10**30", _claim(exp=10**30)),
    ("exp 4000 digits", _raw_claim("exp", "9" * 4000)),
    ("exp 1e308", _claim(exp=1e308)),
    ("exp string", lambda f, c, g: f.sign(f.claims(c, exp=str(_now() + 600)))),
    ("exp true", _claim(exp=True)),
    ("exp null", _raw_claim("exp", "null")),
    ("exp list", lambda f, c, g: f.sign(f.claims(c, exp=[_now() + 600]))),
    ("exp object", lambda f, c, g: f.sign(f.claims(c, exp={"$date": _now() + 600}))),
    ("exp past", lambda f, c, g: f.sign(f.claims(c, exp=_now() - 3600))),
    ("exp just past leeway", lambda f, c, g: f.sign(f.claims(c, exp=_now() - 31))),
    ("exp 0", _claim(exp=0)),
    ("exp -2**60", _claim(exp=-(2**60))),
    ("exp missing", _drop("exp")),
    ("iat future", lambda f, c, g: f.sign(f.claims(c, iat=_now() + 3600))),
    ("iat NaN", _raw_claim("iat", "NaN")),
    ("iat string", _claim(iat="now")),
    ("iat 2**60", _claim(iat=2**60)),
    ("iat missing", _drop("iat")),
    ("nbf future", lambda f, c, g: f.sign(f.claims(c, nbf=_now() + 3600))),
    ("nbf NaN", _raw_claim("nbf", "NaN")),
    ("nbf string", _claim(nbf="0")),
    ("iss other", _claim(iss="http://evil.example")),
    ("iss trailing slash", _claim(iss="http://testserver/")),
    ("iss list", _claim(iss=[ISSUER])),
    ("iss upper", _claim(iss="HTTP://TESTSERVER")),
    ("iss missing", _drop("iss")),
    ("aud other", _claim(aud="https://reports.example.com")),
    ("aud empty list", _claim(aud=[])),
    ('aud [""]', _claim(aud=[""])),
    ("aud [1]", _claim(aud=[1])),
    ("aud nested list", _claim(aud=[[ISSUER]])),
    ("aud object", _claim(aud={"0": ISSUER})),
    ("aud empty", _claim(aud="")),
    ("aud missing", _drop("aud")),
    ("client_id int", _claim(client_id=1)),
    ("client_id empty", _claim(client_id="")),
    ("client_id list", lambda f, c, g: f.sign(f.claims(c, client_id=[c]))),
    ("client_id missing", _drop("client_id")),
    ("sub missing", _drop("sub")),
    ("sub int", _claim(sub=7)),
    ("jti missing", _drop("jti")),
    ("jti int", _claim(jti=12345)),
    ("jti empty", _claim(jti="")),
    ("scope list", _claim(scope=["reports:read", "reports:write"])),
    ("scope int", _claim(scope=1)),
    ("scope null", _raw_claim("scope", "null")),
    ("scope object", _claim(scope={"reports:write": True})),
    ("duplicate exp", _claims_raw('{"exp":1,' + _FULL + ',"exp":EXP,"scope":"reports:write"}')),
    ("duplicate scope", _claims_raw('{"scope":"x","exp":EXP,' + _FULL + ',"scope":"reports:write"}')),
    ("deep nesting 17", lambda f, c, g: f.sign(_payload(f.claims(c), {"x": nested(17)}))),
    ("deep nesting 2000", lambda f, c, g: f.sign(_payload(f.claims(c), {"x": nested(2000)}))),
    ("deep nesting unbalanced", lambda f, c, g: f.sign(_payload(f.claims(c), {"x": "[" * 3000}))),
    ("claims too big", lambda f, c, g: f.sign(f.claims(c, pad="A" * 9000))),
    ("payload array", lambda f, c, g: f.sign(b"[]")),
    ("payload null", lambda f, c, g: f.sign(b"null")),
    ("payload number", lambda f, c, g: f.sign(b"1")),
    ("payload string", lambda f, c, g: f.sign(b'"claims"')),
    ("payload not utf-8", lambda f, c, g: f.sign(b'{"iss":"\xff\xfe"}')),
    ("payload BOM", lambda f, c, g: f.sign(b"\xef\xbb\xbf" + dumps(f.claims(c)))),
    ("payload utf-16", lambda f, c, g: f.sign(json.dumps(f.claims(c)).encode("utf-16"))),
    ("payload lone surrogate", lambda f, c, g: f.sign(_payload(f.claims(c), {"jti": '"\\ud800"'}))),
    ("payload trailing garbage", lambda f, c, g: f.sign(dumps(f.claims(c)) + b"x")),
    ("payload two objects", lambda f, c, g: f.sign(dumps(f.claims(c)) + dumps(f.claims(c)))),
    ("payload empty", lambda f, c, g: f.sign(b"")),
    ("typ JWT", _header(typ="JWT")),
    ("typ missing", _header(typ=None)),
    ("typ int", _header(typ=1)),
    ("alg none", _alg_none),
    ("alg HS256 with public key", _hmac_with_public_key),
    ("alg RS256 label", _header(alg="RS256")),
    ("alg EdDSA label", _header(alg="EdDSA")),
    ("alg ES384 label", _header(alg="ES384")),
    ("alg lowercase", _header(alg="es256")),
    ("alg list", _header(alg=["ES256"])),
    ("alg missing", _header(alg=None)),
    ("kid unknown", _header(kid="0" * 32)),
    ("kid empty", _header(kid="")),
    ("kid int", _header(kid=1)),
    ("kid missing", _header(kid=None)),
    ("kid NUL", _header(kid="\x00")),
    ("kid long", _header(kid="k" * 1500)),
    ("jku", _header(jku="https://evil.example/jwks.json")),
    ("jwk", lambda f, c, g: f.sign(f.claims(c), f.header(jwk=f.public_jwk))),
    ("x5u", _header(x5u="https://evil.example/cert.pem")),
    ("x5c", _header(x5c=["MIIB"])),
    ("crit", _header(crit=["exp"])),
    ("b64 false", _header(b64=False)),
    ("zip", _header(zip="DEF")),
    ("enc", _header(enc="A256GCM")),
    ("cty", _header(cty="JWT")),
    ("unknown header member", _header(foo="bar")),
    ("header deep", lambda f, c, g: f.sign(f.claims(c), _payload(f.header(), {"x": nested(50)}))),
    ("duplicate alg", _header_raw('{"alg":"none","typ":"at+jwt","kid":"KID","alg":"ES256"}')),
    ("header array", lambda f, c, g: f.sign(f.claims(c), b"[]")),
    ("header not json", lambda f, c, g: f.sign(f.claims(c), b"alg=ES256")),
    ("wrong key", _wrong_key),
    ("DER signature", _der_signature),
    ("signature +1 byte", _signature_changed(1)),
    ("signature -1 byte", _signature_changed(-1)),
    ("JSON serialization smuggling", _smuggled),
]


def _valid(**overrides: Any) -> Callable[[Forger, str], str]:
    return lambda f, cid: f.sign(f.claims(cid, **overrides))


SITE_VALID_VARIANTS: list[tuple[str, Callable[[Forger, str], str]]] = [
    ("exp 2**53", _valid(exp=2**53)),
    ("exp 2**53-1", _valid(exp=2**53 - 1)),
    ("exp year 10000", _valid(exp=253402300800)),
    ("exp last second of 9999", _valid(exp=253402300799)),
    ("exp +10**9", lambda f, cid: f.sign(f.claims(cid, exp=_now() + 10**9))),
    ("exp float", lambda f, cid: f.sign(f.claims(cid, exp=_now() + 600.5))),
    ("iat -2**53", _valid(iat=-(2**53))),
    ("iat 0", _valid(iat=0)),
    ("iat float", lambda f, cid: f.sign(f.claims(cid, iat=_now() - 0.25))),
    ("nbf past", lambda f, cid: f.sign(f.claims(cid, nbf=_now() - 10))),
    ("typ AT+JWT", lambda f, cid: f.sign(f.claims(cid), f.header(typ="AT+JWT"))),
    ("typ application/at+jwt", lambda f, cid: f.sign(f.claims(cid), f.header(typ="application/at+jwt"))),
    ("aud list", _valid(aud=["https://other.example", ISSUER])),
    ("extra nested claim", lambda f, cid: f.sign(_payload(f.claims(cid), {"x": nested(12)}))),
    ("extra long claim", _valid(pad="p" * 5000)),
    ("extra unicode claims", _valid(**{"ü\u202e": "\u0000\ufeff", "admin": True})),
    ("jti 100 chars", _valid(jti="j" * 100)),
    ("jti 3000 chars", _valid(jti="j" * 3000)),
    ("jti NUL", lambda f, cid: f.sign(f.claims(cid, jti=f"nul\x00{next(_jti_counter)}"))),
    ("jti unicode", lambda f, cid: f.sign(f.claims(cid, jti=f"\U0001f600{next(_jti_counter)}\u202e"))),
    ("client_id 300 chars", lambda f, cid: f.sign(f.claims("c" * 300))),
    ("client_id NUL", lambda f, cid: f.sign(f.claims(cid + "\x00"))),
    ("client_id unicode", lambda f, cid: f.sign(f.claims("ćlient\u202e😀"))),
    ("sub differs", _valid(sub="someone-else")),
    ("scope with odd names", _valid(scope="reports:read reports:write \x00 \u202e " + "s" * 500)),
    ("scope empty", _valid(scope="")),
    ("forge.site_signed", lambda f, cid: site_signed(f.claims(cid))),
]


# -- hostile values ---------------------------------------------------------------------------

# fmt: off
UNICODE = [
    "é", "ß", "İ", "\u0131", "ﬁ", "Ω", "中文", "😀", "\U0001d518", "\u0301", "\u200b", "\u200f", "\u202e",
    "\ufeff", "\uffff", "\ufffd", "\u2028", "\u0085", "\u00a0", "\U0010ffff", "٣", "\uff11", "²", "ǅ", "ǰ",
    "\u1680",
]
# fmt: on
# fmt: off
CONTROL = [
    "\x00", "\x01", "\x07", "\x08", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1b", "\x7f",
]
# fmt: on
# fmt: off
LONG_SIZES = [
    101, 256, 1025, 4097, 8193, 66_000,
]
# fmt: on
# fmt: off
RAW_ESCAPES = [
    b"%", b"%%", b"%G", b"%ZZ", b"%0", b"%00", b"%FF", b"%C3%28", b"%C0%AF", b"%E2%82", b"%ED%A0%80",
    b"%F4%90%80%80", b"%C3%A9", b"%F0%9F%98%80", b"%EF%BB%BF", b"%2B", b"%26", b"%3D", b"+", b"&", b"=",
    b";", "é".encode(), b"\xff", b"\x00", b" ", b"\r\n", b"%u00e9", b"%25", b"%252F",
]
# fmt: on
# fmt: off
PLAIN = [
    "", " ", "0", "-1", "1e309", "NaN", "null", "true", "[]", "{}", '{"a":1}', "' OR '1'='1' --",
    "%s%n{0}{{", "../../etc/passwd", "*", "\\", '"', "<script>", "a" * 3, "${jndi:ldap://x}",
]
# fmt: on


def random_unicode(rng: Any, length: int) -> str:
    out = []
    for _ in range(length):
        if rng.random() < 0.5:
            out.append(rng.choice(UNICODE))
        else:
            code = rng.randrange(0x80, 0x110000)
            out.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "\ufffd")
    return "".join(out)


def hostile_value(rng: Any) -> tuple[str, Any]:
    """A value to put somewhere a string is expected: (description, str | bytes | Raw)."""
    kind = rng.randrange(10)
    if kind == 0:
        value: Any = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        return f"random bytes {short(value)}", value
    if kind == 1:
        value = random_unicode(rng, rng.randrange(1, 12))
        return f"unicode {short(value)}", value
    if kind == 2:
        value = rng.choice(["", "a", "reports:read"]) + rng.choice(CONTROL) + rng.choice(["", "b"])
        return f"control {short(value)}", value
    if kind == 3:
        size = rng.choice(LONG_SIZES)
        value = rng.choice(["A", "é", "%", "😀", "a b"]) * size
        return f"long {short(value[:4])}*{size}", value
    if kind == 4:
        value = Raw(b"".join(rng.choice(RAW_ESCAPES) for _ in range(rng.randrange(1, 4))))
        return f"raw {short(bytes(value))}", value
    if kind == 5:
        value = "\ud800".encode("utf-8", "surrogatepass") if rng.random() < 0.5 else b"\xc0\xaf"
        return f"invalid utf-8 {short(value)}", value
    if kind == 6:
        value = "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 30)))
        return f"ascii {short(value)}", value
    value = rng.choice(PLAIN)
    return f"plain {short(value)}", value


# -- token transformations (access tokens, client assertions) ---------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _flip(rng: Any, token: str) -> tuple[str, str]:
    position = rng.randrange(len(token))
    old = token[position]
    new = rng.choice([char for char in B64URL + "." if char != old])
    return f"char {position} {old!r}->{new!r}", token[:position] + new + token[position + 1 :]


def _noncanonical(rng: Any, token: str) -> tuple[str, str]:
    # Same bytes, another spelling: change the unused low bits of a segment's last character.
    parts = token.split(".")
    index = rng.randrange(len(parts))
    segment = parts[index]
    if len(segment) % 4 in (0, 1) or segment[-1] not in B64URL:
        return "non-canonical (no spare bits, appended '=')", token + "="
    value = B64URL.index(segment[-1])
    spare = 0b1111 if len(segment) % 4 == 2 else 0b11
    changed = B64URL[(value & ~spare) | (rng.randrange(1, spare + 1))]
    parts[index] = segment[:-1] + changed
    return f"non-canonical base64url in segment {index}", ".".join(parts)


def transform_token(rng: Any, token: str, world: World, client_id: str) -> tuple[str, str, bool]:
    """A variant of ``token``: (description, new token, used the site key)."""
    kind = rng.randrange(22)
    if kind <= 3:
        desc, new = _flip(rng, token)
        return desc, new, False
    if kind == 4:
        cut = rng.randrange(len(token))
        return f"truncated to {cut}", token[:cut], False
    if kind == 5:
        extra = rng.choice(["A", "AA", "AAAA", "=", "==", ".", "..", "x" * 50, "\x00", "é", "%2E"])
        return f"extended by {short(extra)}", token + extra, False
    if kind == 6:
        extra = rng.choice([".e30", ".", ".AAAA.AAAA", "." + token.split(".")[0], ".." + token])
        return f"extra segments {short(extra)}", token + extra, False
    if kind == 7:
        head, payload, _ = token.split(".") if token.count(".") == 2 else (token, "", "")
        new = rng.choice(
            [
                json.dumps({"protected": head, "payload": payload, "signature": ""}),
                json.dumps({"alg": "none"}),
                '{"access_token": "' + token + '"}',
                "[" + json.dumps(token) + "]",
                json_smuggled(token, {"client_id": client_id, "scope": "reports:write"})
                if token.count(".") == 2
                else "{}",
            ]
        )
        return f"JSON instead of a JWT {short(new)}", new, False
    if kind == 8:
        where = rng.choice(["lead", "trail", "inside", "newline", "tab", "both"])
        ws = rng.choice([" ", "  ", "\t", "\n", "\r\n", "\x0b", "\u00a0"])
        position = rng.randrange(1, len(token)) if len(token) > 1 else 0
        new = {
            "lead": ws + token,
            "trail": token + ws,
            "inside": token[:position] + ws + token[position:],
            "newline": token[:position] + "\n" + token[position:],
            "tab": "\t" + token,
            "both": ws + token + ws,
        }[where]
        return f"whitespace {where} {ws!r}", new, False
    if kind == 9:
        pad = rng.choice(["=", "==", "==="])
        parts = token.split(".")
        index = rng.randrange(len(parts))
        parts[index] += pad
        return f"padding {pad!r} on segment {index}", ".".join(parts), False
    if kind == 10:
        new = token.replace("-", "+").replace("_", "/")
        if new == token:
            new = token[:-1] + "+"
        return "standard base64 alphabet", new, False
    if kind == 11:
        desc, new = _noncanonical(rng, token)
        return desc, new, False
    if kind == 12:
        position = rng.randrange(len(token))
        return (
            f"case swapped at {position}",
            token[:position] + token[position].swapcase() + token[position + 1 :],
            False,
        )
    if kind == 13:
        return "two tokens", f"{token} {token}", False
    if kind == 14:
        return "very long", token + "." + "A" * rng.choice([9000, 70_000]), False
    if kind == 15:
        parts = token.split(".")
        other = rng.choice(sorted(world.genuine)).split(".")
        if len(parts) == 3 and len(other) == 3:
            return "payload of another token", f"{parts[0]}.{other[1]}.{parts[2]}", False
        return "payload of another token (n/a)", token + ".", False
    if kind == 16:
        parts = token.split(".")
        if len(parts) == 3:
            try:
                claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=="))
            except ValueError:
                claims = None
            if isinstance(claims, dict):
                claims["scope"] = "reports:read reports:write other:scope"
                return "claims changed, old signature", f"{parts[0]}.{b64(dumps(claims))}.{parts[2]}", False
        return "claims changed (n/a)", token + "A", False
    if kind == 17:
        return "another genuine token", rng.choice(sorted(world.api_tokens.values())), False
    if kind in (18, 19):
        desc, new = world.forger.refused(
            rng, client_id, token if token.count(".") == 2 else world.api_tokens["read"]
        )
        return desc, new, True
    if kind == 20:
        desc, new = world.forge_site_valid(rng, client_id)
        return desc, new, True
    value = rng.choice(["", ".", "..", "...", "a.b.c", "null", "undefined", "Bearer", token[:20]])
    return f"junk {value!r}", value, False


# -- the surfaces: one valid request each -------------------------------------------------------


def _scope(rng: Any) -> str | None:
    return rng.choice([None, "reports:read", "reports:read reports:write", "reports:write", "other:scope"])


def base_token_basic(rng: Any, w: World) -> Req:
    form = [["grant_type", "client_credentials"]]
    scope = _scope(rng)
    if scope:
        form.append(["scope", scope])
    if rng.random() < 0.25:
        form.append(["resource", rng.choice(w.reader_audiences)])
    return Req(
        "token/basic",
        "POST",
        TOKEN_PATH,
        headers={"HTTP_AUTHORIZATION": w.reader.basic()},
        kind="form",
        form=form,
        content_type=FORM,
    )


def base_token_post(rng: Any, w: World) -> Req:
    form = [
        ["grant_type", "client_credentials"],
        ["client_id", w.poster.client_id],
        ["client_secret", w.poster.secret],
        ["scope", "reports:read"],
    ]
    rng.shuffle(form)
    return Req("token/post", "POST", TOKEN_PATH, kind="form", form=form, content_type=FORM)


def base_token_jwt(rng: Any, w: World) -> Req:
    audience = rng.choice([f"{ISSUER}{TOKEN_PATH}", ISSUER, ["https://other.example", ISSUER]])
    form = [
        ["grant_type", "client_credentials"],
        ["client_assertion_type", ASSERTION_TYPE],
        ["client_assertion", w.assertion(audience)],
    ]
    if rng.random() < 0.5:
        form.append(["scope", "reports:read"])
    if rng.random() < 0.3:
        form.append(["client_id", w.jwt.client_id])
    return Req("token/jwt", "POST", TOKEN_PATH, kind="form", form=form, content_type=FORM)


def _any_genuine(rng: Any, w: World) -> str:
    return rng.choice([*w.api_tokens.values(), w.jwt_tokens[0], w.revocable[0]])


def base_introspect_basic(rng: Any, w: World) -> Req:
    form = [["token", _any_genuine(rng, w)]]
    if rng.random() < 0.3:
        form.append(["token_type_hint", "access_token"])
    return Req(
        "introspect/basic",
        "POST",
        INTROSPECT_PATH,
        headers={"HTTP_AUTHORIZATION": w.gateway.basic()},
        kind="form",
        form=form,
        content_type=FORM,
    )


def base_introspect_jwt(rng: Any, w: World) -> Req:
    form = [
        ["client_assertion_type", ASSERTION_TYPE],
        ["client_assertion", w.assertion(rng.choice([f"{ISSUER}{INTROSPECT_PATH}", ISSUER]))],
        ["token", _any_genuine(rng, w)],
    ]
    return Req("introspect/jwt", "POST", INTROSPECT_PATH, kind="form", form=form, content_type=FORM)


def base_revoke_basic(rng: Any, w: World) -> Req:
    form = [["token", w.next_revocable()]]
    if rng.random() < 0.3:
        form.append(["token_type_hint", "access_token"])
    return Req(
        "revoke/basic",
        "POST",
        REVOKE_PATH,
        headers={"HTTP_AUTHORIZATION": w.revoker.basic()},
        kind="form",
        form=form,
        content_type=FORM,
    )


def base_revoke_jwt(rng: Any, w: World) -> Req:
    form = [
        ["client_assertion_type", ASSERTION_TYPE],
        ["client_assertion", w.assertion(rng.choice([f"{ISSUER}{REVOKE_PATH}", ISSUER]))],
        ["token", rng.choice(w.jwt_tokens)],
    ]
    return Req("revoke/jwt", "POST", REVOKE_PATH, kind="form", form=form, content_type=FORM)


def _if_none_match(rng: Any) -> dict[str, str]:
    """Mostly none; else "*" (a 304 whatever the ETag), a weak or strong tag that matches nothing."""
    value = rng.choice([None, None, None, "*", '"0000"', 'W/"0000", "1111"'])
    return {} if value is None else {"HTTP_IF_NONE_MATCH": value}


def base_feed_basic(rng: Any, w: World) -> Req:
    headers = {"HTTP_AUTHORIZATION": w.gateway.basic(), **_if_none_match(rng)}
    return Req("feed/basic", "GET", FEED_PATH, headers=headers)


def base_feed_post(rng: Any, w: World) -> Req:
    form = [["client_id", w.poster.client_id], ["client_secret", w.poster.secret]]
    rng.shuffle(form)
    return Req(
        "feed/post",
        "POST",
        FEED_PATH,
        headers=_if_none_match(rng),
        kind="form",
        form=form,
        content_type=FORM,
    )


def base_feed_jwt(rng: Any, w: World) -> Req:
    form = [
        ["client_assertion_type", ASSERTION_TYPE],
        ["client_assertion", w.assertion(rng.choice([f"{ISSUER}{FEED_PATH}", ISSUER]))],
    ]
    if rng.random() < 0.3:
        form.append(["client_id", w.jwt.client_id])
    return Req(
        "feed/jwt", "POST", FEED_PATH, headers=_if_none_match(rng), kind="form", form=form, content_type=FORM
    )


def base_jwks(rng: Any, w: World) -> Req:
    return Req("jwks", "GET", "/.well-known/jwks.json")


def base_metadata(rng: Any, w: World) -> Req:
    return Req("metadata", "GET", "/.well-known/oauth-authorization-server")


def _bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def base_reports_get(rng: Any, w: World) -> Req:
    token = w.api_tokens[rng.choice(["read", "write"])]
    return Req("reports/get", "GET", "/api/reports/", headers=_bearer(token))


def base_reports_post(rng: Any, w: World) -> Req:
    data = {"title": f"report {rng.randrange(10**6)}", "body": rng.choice(["", "text", "ünïcode ✓"])}
    return Req(
        "reports/post",
        "POST",
        "/api/reports/",
        headers=_bearer(w.api_tokens["write"]),
        kind="json",
        json_obj=data,
        content_type=JSON,
    )


def base_whoami(rng: Any, w: World) -> Req:
    return Req("whoami", "GET", "/api/whoami/", headers=_bearer(rng.choice(list(w.api_tokens.values()))))


def base_ping(rng: Any, w: World) -> Req:
    return Req("ping", "GET", "/api/ping/", headers=_bearer(w.api_tokens[rng.choice(["read", "write"])]))


def base_health(rng: Any, w: World) -> Req:
    return Req("health", "GET", "/api/health/")


def base_admin_get(rng: Any, w: World) -> Req:
    return Req("admin/get", "GET", ADMIN_LOGIN, query="next=/admin/")


def base_admin_post(rng: Any, w: World) -> Req:
    form = [
        ["csrfmiddlewaretoken", w.csrf_token],
        ["username", w.admin_username],
        ["password", w.admin_password],
        ["next", "/admin/"],
    ]
    return Req(
        "admin/post",
        "POST",
        ADMIN_LOGIN,
        query="next=/admin/",
        cookies={"csrftoken": w.csrf_cookie},
        kind="form",
        form=form,
        content_type=FORM,
    )


#: (base, weight): the OAuth endpoints and the token-checking API views get most requests.
SURFACES: list[tuple[Callable[[Any, World], Req], int]] = [
    (base_token_basic, 10),
    (base_token_post, 7),
    (base_token_jwt, 8),
    (base_introspect_basic, 7),
    (base_introspect_jwt, 5),
    (base_revoke_basic, 7),
    (base_revoke_jwt, 5),
    (base_feed_basic, 4),
    (base_feed_post, 4),
    (base_feed_jwt, 3),
    (base_jwks, 3),
    (base_metadata, 3),
    (base_reports_get, 6),
    (base_reports_post, 8),
    (base_whoami, 6),
    (base_ping, 6),
    (base_health, 3),
    (base_admin_get, 3),
    (base_admin_post, 4),
]


# -- mutations ---------------------------------------------------------------------------------
# Each: fn(rng, req, world) -> description. The table at the end gives weights and guards.


def m_form_value(rng: Any, req: Req, w: World) -> str:
    pair = rng.choice(req.form)
    desc, value = hostile_value(rng)
    pair[1] = value
    return f"form {pair[0]!s}={desc}"


# fmt: off
KNOWN_VALUES: dict[str, list[Any]] = {
    "grant_type": [
        "client_credentials ", " client_credentials", "CLIENT_CREDENTIALS", "password",
        "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer", "",
        "client_credentials\x00", "client%5Fcredentials", Raw(b"client%5Fcredentials"),
    ],
    "scope": [
        "reports:read reports:write other:scope", "reports:read  reports:write", " reports:read",
        "reports:read ", "reports:read\treports:write", "REPORTS:READ", "reports:write reports:write", "",
        "admin", "reports:read admin", "reports:read\x00", "reports:read\u00a0reports:write",
        "reports:read+reports:write", Raw(b"reports:read+reports:write"), "other:scope",
    ],
    "resource": [
        "http://testserver", "https://reports.example.com", "https://reports.example.com#x", "http://[::1",
        "relative/path", "https://evil.example", "http://testserver/", "", "urn:x", "//testserver",
        "http://testserver\x00", "HTTP://TESTSERVER",
    ],
    "client_assertion_type": [
        ASSERTION_TYPE + " ", ASSERTION_TYPE.upper(), "jwt-bearer", "",
        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    ],
    "token_type_hint": [
        "access_token", "refresh_token", "bogus", "", "\x00",
    ],
    "next": [
        "/admin/", "//evil.example", "https://evil.example/", "javascript:alert(1)", "/\\evil", "\x00",
        "/admin/\r\nSet-Cookie: x=1", "%0d%0a", "/" + "a" * 3000,
    ],
    "username": [
        "admin", "ADMIN", "admin ", "", "a" * 151, "admin\x00", "nobody", "admin' --",
    ],
    "password": [
        "", "wrong", "a" * 5000, "\x00", "ü",
    ],
    "csrfmiddlewaretoken": [
        "", "x", "A" * 64, "A" * 32, "!" * 64,
    ],
}
# fmt: on


def m_form_known(rng: Any, req: Req, w: World) -> str:
    names = [
        name for name in req.form_names() if name in KNOWN_VALUES or name in ("client_id", "client_secret")
    ]
    name = rng.choice(names or ["scope"])
    if name == "client_id":
        party = rng.choice(w.parties())
        value: Any = rng.choice(
            [party.client_id, party.client_id + " ", party.client_id.upper(), "", "x" * 300]
        )
    elif name == "client_secret":
        party = rng.choice(w.parties())
        value = rng.choice([party.secret, w.poster.secret + "x", w.poster.secret[:-1], "", w.reader.secret])
    else:
        value = rng.choice(KNOWN_VALUES[name])
    req.form_set(name, value)
    return f"form {name}={short(value)}"


def m_form_duplicate(rng: Any, req: Req, w: World) -> str:
    pair = rng.choice(req.form)
    copy = [pair[0], pair[1] if rng.random() < 0.5 else hostile_value(rng)[1]]
    req.form.insert(rng.randrange(len(req.form) + 1), copy)
    return f"form duplicate {pair[0]!s}"


def m_form_drop(rng: Any, req: Req, w: World) -> str:
    pair = req.form.pop(rng.randrange(len(req.form)))
    return f"form drop {pair[0]!s}"


def m_form_reorder(rng: Any, req: Req, w: World) -> str:
    rng.shuffle(req.form)
    return "form reorder"


def m_form_add(rng: Any, req: Req, w: World) -> str:
    # fmt: off
    name = rng.choice(
        [
            "foo", "", "scope[]", "Grant_Type", "grant_type ", "client_id\x00", "a" * 500, "é", Raw(b"%FF"),
            "token", "client_secret", "client_assertion", "resource", "csrfmiddlewaretoken", "audience",
        ]
    )
    # fmt: on
    value = hostile_value(rng)[1] if rng.random() < 0.7 else None
    req.form.insert(rng.randrange(len(req.form) + 1), [name, value])
    return f"form add {short(name)}={short(value)}"


def m_form_rename(rng: Any, req: Req, w: World) -> str:
    pair = rng.choice(req.form)
    old = pair[0]
    if not isinstance(old, str) or not old:
        return "form rename (n/a)"
    # fmt: off
    new = rng.choice(
        [
            old.upper(), old + " ", " " + old, old.replace("_", "-"), old + "\x00",
            Raw(quote(old, safe="").replace("_", "%5F").encode()), old[:-1],
        ]
    )
    # fmt: on
    pair[0] = new
    return f"form rename {old}->{short(new)}"


def m_form_escape(rng: Any, req: Req, w: World) -> str:
    pair = rng.choice(req.form)
    value = pair[1]
    escape = Raw(rng.choice(RAW_ESCAPES))
    encoded = _encode_part(value if value is not None else "")
    position = rng.randrange(len(encoded) + 1)
    pair[1] = Raw(encoded[:position] + escape + encoded[position:])
    return f"form {pair[0]!s} escape {short(bytes(escape))} at {position}"


def m_form_separator(rng: Any, req: Req, w: World) -> str:
    sep = rng.choice([b";", b"&&", b"&amp;", b"\n", b"&;", b"%26"])
    req.form_sep = sep
    return f"form separator {sep!r}"


def m_form_many(rng: Any, req: Req, w: World) -> str:
    count = rng.choice([45, 49, 51, 60, 200, 1100])
    for index in range(count):
        req.form.append([f"f{index}", "x"])
    return f"form +{count} fields"


def m_form_noequals(rng: Any, req: Req, w: World) -> str:
    pair = rng.choice(req.form)
    pair[1] = None
    return f"form {pair[0]!s} without '='"


def m_json_field(rng: Any, req: Req, w: World) -> str:
    if not isinstance(req.json_obj, dict):
        req.json_obj = {}
    name = rng.choice(["title", "body", "title", "submitted_by", "id", "created"])
    # fmt: off
    value = rng.choice(
        [
            None, True, 0, -1, 10**100, 1e308, -0.0, float("nan"), float("inf"), [], {}, ["a"], {"a": "b"},
            "", "x" * 200, "x" * 201, "x" * 100_000, "a\x00b", "\ud800", "\udfff x", "\U0001f600" * 200,
            "\u202e" * 10, random_unicode(rng, 20), hostile_value(rng)[1] if rng.random() < 0.2 else "t",
        ]
    )
    # fmt: on
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    req.json_obj[name] = value
    return f"json {name}={short(value)}"


# fmt: off
JSON_RAW = [
    b'{"title": NaN}', b'{"title": "t", "body": Infinity}', b'{"title": 1e999}', b'{"title": -Infinity}',
    b'{"title": "a", "title": "b"}', b'{"title": "t",}', b'{"title": "t"} x', b'{"title": "t"}{}',
    b"\xef\xbb\xbf" + b'{"title": "bom"}', '{"title": "utf16"}'.encode("utf-16"),
    '{"title": "utf32"}'.encode("utf-32"), b"", b"null", b"[]", b'"str"', b"1", b"{", b"}",
    b'{"title": "\\ud800"}', b'{"title": "\\u0000"}', b'{"title": "' + b"\xff\xfe" + b'"}',
    b'{"title": ' + b"9" * 5000 + b"}", b'{"title": "' + b"\\" * 3 + b'"}', b"{'title': 'single quotes'}",
    b'{"title": "t", "body": "\x00"}',
]
# fmt: on


def m_json_raw(rng: Any, req: Req, w: World) -> str:
    choice = rng.randrange(len(JSON_RAW) + 4)
    if choice < len(JSON_RAW):
        data = JSON_RAW[choice]
    else:
        depth = rng.choice([50, 999, 1500, 5000, 100_000])
        data = ('{"title": "t", "body": ' + nested(depth) + "}").encode()
    req.kind, req.raw = "raw", data
    return f"json raw {short(data)}"


def m_json_drop(rng: Any, req: Req, w: World) -> str:
    if isinstance(req.json_obj, dict) and req.json_obj:
        name = rng.choice(sorted(req.json_obj))
        del req.json_obj[name]
        return f"json drop {name}"
    return "json drop (n/a)"


def m_body_bytes(rng: Any, req: Req, w: World) -> str:
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    req.kind, req.raw = "raw", data
    return f"body random bytes {short(data)}"


def m_body_truncate(rng: Any, req: Req, w: World) -> str:
    data = req.to_raw()
    cut = rng.randrange(len(data) + 1)
    req.raw = data[:cut]
    return f"body truncated to {cut}/{len(data)}"


def m_body_append(rng: Any, req: Req, w: World) -> str:
    data = req.to_raw()
    # fmt: off
    extra = rng.choice(
        [
            b"&", b"=", b"\x00", b"\r\n\r\n", b"%", b"\xff", b"&grant_type=password", b" " * 10, b"&" * 100,
            b"\n--fuzzboundary--",
        ]
    )
    # fmt: on
    req.raw = data + extra
    return f"body append {short(extra)}"


def m_body_empty(rng: Any, req: Req, w: World) -> str:
    req.kind, req.raw = "raw", b""
    return "body empty"


def m_body_huge(rng: Any, req: Req, w: World) -> str:
    data = req.to_raw()
    size = rng.choice([64 * 1024 + 1, 200_000, 3_000_000])
    filler = b"&pad=" + b"A" * size if req.content_type == FORM else b" " * size
    req.raw = data + filler
    return f"body +{len(filler)} bytes"


def m_body_to_json(rng: Any, req: Req, w: World) -> str:
    obj: dict[str, Any] = {}
    for name, value in req.form:
        if isinstance(name, str) and isinstance(value, str):
            obj[name] = value if rng.random() < 0.8 else [value]
    req.kind, req.json_obj = "json", obj
    if rng.random() < 0.7:
        req.content_type = JSON
    return f"body as JSON ({req.content_type})"


def m_body_to_form(rng: Any, req: Req, w: World) -> str:
    obj = req.json_obj if isinstance(req.json_obj, dict) else {"title": "t"}
    req.kind = "form"
    req.form = [[str(k), v if isinstance(v, str) else json.dumps(v)] for k, v in obj.items()]
    if rng.random() < 0.7:
        req.content_type = FORM
    return f"body as form ({req.content_type})"


def m_body_multipart(rng: Any, req: Req, w: World) -> str:
    if req.kind == "json" and isinstance(req.json_obj, dict):
        req.form = [[k, v if isinstance(v, str) else json.dumps(v)] for k, v in req.json_obj.items()]
    req.kind = "multipart"
    req.boundary = rng.choice(["fuzzboundary", "x" * 80, "b"])
    req.content_type = rng.choice(
        [
            f"multipart/form-data; boundary={req.boundary}",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=other",
            f"multipart/mixed; boundary={req.boundary}",
        ]
    )
    return f"body multipart ({req.content_type})"


def m_body_encoding(rng: Any, req: Req, w: World) -> str:
    data = req.to_raw()
    encoding = rng.choice(["utf-16", "utf-16-be", "utf-32", "bom", "latin-1"])
    if encoding == "bom":
        req.raw = b"\xef\xbb\xbf" + data
    else:
        req.raw = data.decode("utf-8", "replace").encode(encoding, "replace")
    return f"body re-encoded {encoding}"


# fmt: off
CONTENT_TYPES = [
    None, "", JSON, "text/plain", "application/octet-stream", "multipart/form-data; boundary=x",
    FORM.upper(), FORM + ";", FORM + "; charset=utf-8", FORM + "; charset=UTF-16",
    FORM + "; charset=latin-1", FORM + "; charset=rot13", FORM + "; charset=base64",
    FORM + "; charset=bogus", FORM + "; charset=", FORM + "; charset=zlib_codec",
    FORM + ", application/json", FORM + "x", " " + FORM, FORM + "\x00", JSON + "; charset=utf-16",
    JSON + "; charset=rot13", JSON + "; charset=hex", JSON + "; charset=bogus",
    "application/json-patch+json", "*/*",
    "application/x-www-form-urlencoded; boundary=x; charset=utf-8; q=1", "text/html; charset=utf-8",
    "application/jwt", "\u00e9", FORM + "; charset=" + "x" * 500,
]
# fmt: on


def m_content_type(rng: Any, req: Req, w: World) -> str:
    req.content_type = rng.choice(CONTENT_TYPES)
    return f"content-type {short(req.content_type)}"


# fmt: off
CONTENT_LENGTHS = [
    None, "", "abc", "-1", "-100", "-0", "0", "+5", " 12", "12 ", "0x10", "1_0", "1e3", "NaN",
    "\uff11\uff12", "²", "٣", "99999999999999999999", "9" * 50, "9" * 4301, "9" * 5000, "1" * 10_000,
    "65537", "2147483648", "5,5",
]
# fmt: on


def m_content_length(rng: Any, req: Req, w: World) -> str:
    body = req.body()
    if rng.random() < 0.35:
        value = str(max(0, len(body) + rng.choice([-50, -5, -1, 1, 5, 100, 10_000])))
    else:
        value = rng.choice(CONTENT_LENGTHS)
    req.content_length = value
    return f"content-length {short(value)}"


# fmt: off
METHODS = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO",
    "get", "post", "", "G\x00T", "POST ", "M" * 300,
]
# fmt: on


def m_method(rng: Any, req: Req, w: World) -> str:
    req.method = rng.choice([m for m in METHODS if m != req.method])
    return f"method {req.method!r}"


def m_path(rng: Any, req: Req, w: World) -> str:
    path = req.path
    # fmt: off
    new = rng.choice(
        [
            path.rstrip("/"), path + "/", "/" + path, path.upper(), path + ";x=1", path + "%2e",
            path.replace("/", "%2F", 2), path + "extra/", path.replace("o", "%6F", 1), path + "%00",
            path + "%FF/", path + "..%2F", path + "\u00e9",
        ]
    )
    # fmt: on
    req.path = new
    return f"path {short(new)}"


def m_query(rng: Any, req: Req, w: World) -> str:
    # fmt: off
    options = [
        "grant_type=password", "scope=reports:write", "token=x", "client_id=x&client_secret=y",
        "next=//evil.example", "next=%0d%0aX:1", "a=%FF%FE", "a=" + "b" * 5000, "&&&", "=", "%", "a=1&a=2",
        "format=api", "format=json", "access_token=" + w.api_tokens["write"], "x=\u00e9", "a[]=1",
        "&".join(f"k{i}=v" for i in range(1200)),
    ]
    # fmt: on
    value = rng.choice(options)
    req.query = (req.query + "&" if req.query and rng.random() < 0.5 else "") + value
    return f"query {short(value)}"


def m_auth_scheme(rng: Any, req: Req, w: World) -> str:
    header = req.headers.get("HTTP_AUTHORIZATION", "Basic " + w.reader.basic().split(" ", 1)[1])
    scheme, _, value = header.partition(" ")
    # fmt: off
    choice = rng.choice(
        [
            "lower", "upper", "Bearer", "Basic", "Digest", "", "tab", "double space", "none value",
            "scheme only", "token68 prefix", "NTLM", "MAC", "junk",
        ]
    )
    # fmt: on
    new = {
        "lower": scheme.lower() + " " + value,
        "upper": scheme.upper() + " " + value,
        "Bearer": "Bearer " + value,
        "Basic": "Basic " + value,
        "Digest": 'Digest username="x", realm="y", response="z"',
        "": " " + value,
        "tab": scheme + "\t" + value,
        "double space": scheme + "  " + value,
        "none value": scheme + " ",
        "scheme only": scheme,
        "token68 prefix": scheme + " " + scheme + " " + value,
        "NTLM": "NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=",
        "MAC": 'MAC id="x", nonce="y", mac="z"',
        "junk": hostile_value(rng)[0],
    }[choice]
    req.headers["HTTP_AUTHORIZATION"] = new
    return f"authorization scheme {choice}"


def _basic_of(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def m_auth_basic(rng: Any, req: Req, w: World) -> str:
    party = rng.choice(w.parties())
    cid, secret = party.client_id, party.secret or "nosecret"
    choice = rng.randrange(20)
    if choice == 0:
        header = _basic_of(f"{cid}{secret}".encode())
        desc = "no colon"
    elif choice == 1:
        header, desc = _basic_of(f":{secret}".encode()), "empty client id"
    elif choice == 2:
        header, desc = _basic_of(f"{cid}:".encode()), "empty secret"
    elif choice == 3:
        # fmt: off
        odd = rng.choice(
            [
                "x" * 256, "x" * 10_000, "\x00", cid + "\x00", "\x1b[31m", "%00", "%41", "+", "a+b", "%",
                "%ZZ", "%C3%28", "ü", "😀", "\u202e", " ", cid + " ", cid.upper(), "' OR 1=1 --", "*", "%2A",
                "a%3Ab",
            ]
        )
        # fmt: on
        header, desc = _basic_of(f"{odd}:{secret}".encode()), f"odd client id {short(odd)}"
    elif choice == 4:
        other = rng.choice(w.parties())
        header, desc = _basic_of(f"{other.client_id}:{secret}".encode()), "another client's id"
    elif choice == 5:
        header, desc = _basic_of(f"{cid}:{secret}x".encode()), "wrong secret"
    elif choice == 6:
        header, desc = _basic_of(cid.encode() + b":" + bytes([0xFF, 0xFE])), "non-UTF-8 secret"
    elif choice == 7:
        header, desc = _basic_of(b"\xff\xfe:" + secret.encode()), "non-UTF-8 client id"
    elif choice == 8:
        header = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode().rstrip("=")
        desc = "missing padding"
    elif choice == 9:
        header, desc = (
            "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode() + "==",
            "extra padding",
        )
    elif choice == 10:
        header = "Basic " + base64.urlsafe_b64encode(f"{cid}:{secret}\xff".encode()).decode()
        desc = "urlsafe alphabet"
    elif choice == 11:
        encoded = base64.b64encode(f"{cid}:{secret}".encode()).decode()
        cut = rng.randrange(1, len(encoded))
        header, desc = f"Basic {encoded[:cut]} {encoded[cut:]}", "space inside base64"
    elif choice == 12:
        header, desc = "Basic " + "!" * 12, "not base64"
    elif choice == 13:
        header, desc = "Basic é" + base64.b64encode(b"a:b").decode(), "non-ASCII in base64"
    elif choice == 14:
        header = _basic_of(quote_plus(cid).encode() + b":" + quote_plus(secret + "+%").encode())
        desc = "form-encoded parts"
    elif choice == 15:
        header, desc = _basic_of(f"{cid}:{secret}:{secret}".encode()), "two colons"
    elif choice == 16:
        header, desc = _basic_of(("A" * 70_000).encode()), "very long"
    elif choice == 17:
        header, desc = (
            "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode() + "\x00",
            "trailing NUL",
        )
    elif choice == 18:
        header, desc = (
            _basic_of(f"{w.reader.client_id}:{w.poster.secret}".encode()),
            "reader id, poster secret",
        )
    else:
        header, desc = (
            party.basic(),
            "valid credentials of "
            + ["reader", "poster", "jwt", "gateway", "revoker"][w.parties().index(party)],
        )
    req.headers["HTTP_AUTHORIZATION"] = header
    return f"basic {desc}"


def m_auth_bearer(rng: Any, req: Req, w: World) -> str:
    current = presented_bearer(req.headers) or w.api_tokens["read"]
    if rng.random() < 0.1:  # genuinely signed, rule-abiding, extreme: reaches the views
        desc, token = w.forge_site_valid(rng, w.reader.client_id)
        site = True
    else:
        desc, token, site = transform_token(rng, current, w, w.reader.client_id)
    req.needs_site_key |= site
    req.headers["HTTP_AUTHORIZATION"] = "Bearer " + token
    return f"bearer {desc}"


def m_auth_drop(rng: Any, req: Req, w: World) -> str:
    req.headers.pop("HTTP_AUTHORIZATION", None)
    return "authorization dropped"


def m_auth_swap(rng: Any, req: Req, w: World) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        req.headers["HTTP_AUTHORIZATION"] = "Bearer " + rng.choice(list(w.api_tokens.values()))
        return "authorization: a genuine Bearer token"
    if choice == 1:
        req.headers["HTTP_AUTHORIZATION"] = rng.choice(w.parties()).basic()
        return "authorization: Basic of a real client"
    if choice == 2:
        value = hostile_value(rng)
        req.headers["HTTP_AUTHORIZATION"] = (
            value[1] if isinstance(value[1], str) else value[1].decode("latin-1")
        )
        return f"authorization: {value[0]}"
    req.headers["HTTP_AUTHORIZATION"] = rng.choice(
        ["Bearer", "Basic", "", " ", "Bearer \x00", "Basic \r\nX: y"]
    )
    return f"authorization: {short(req.headers['HTTP_AUTHORIZATION'])}"


def m_token_param(rng: Any, req: Req, w: World) -> str:
    current = req.form_value("token")
    current = current if isinstance(current, str) and current.count(".") == 2 else w.revocable[0]
    owner = w.revoker.client_id if req.path == REVOKE_PATH else rng.choice(w.parties()).client_id
    if rng.random() < 0.25:  # genuinely signed, rule-abiding, extreme: reaches revoke_jti()
        desc, token = w.forge_site_valid(rng, owner)
        site = True
    else:
        desc, token, site = transform_token(rng, current, w, owner)
    if req.path == REVOKE_PATH and token in w.api_tokens.values():
        token = w.revocable[-1]  # never let a revocation hit the tokens the API requests use
        desc = "another revocable token"
    req.needs_site_key |= site
    req.form_set("token", token)
    return f"token {desc}"


def m_assertion(rng: Any, req: Req, w: World) -> str:
    audience = f"{ISSUER}{req.path}"
    cid = w.jwt.client_id
    assert w.jwt.key is not None
    choice = rng.randrange(16)
    key = w.jwt.key
    now = int(time.time())
    if choice == 0:
        desc, token, _ = transform_token(rng, w.assertion(audience), w, cid)
    elif choice == 1 and w.accepted_assertions:
        token, desc = rng.choice(w.accepted_assertions), "replayed"
    elif choice == 2:
        token, desc = w.api_tokens["read"], "an access token"
    elif choice == 3:
        # fmt: off
        name, literal = rng.choice(
            [
                ("exp", "NaN"), ("exp", "1e400"), ("exp", "9" * 400), ("iat", "Infinity"), ("nbf", "NaN"),
                ("jti", '"\\ud800"'), ("x", nested(40)), ("exp", "null"),
            ]
        )
        # fmt: on
        claims = {
            "iss": cid,
            "sub": cid,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": f"x{now}{rng.random()}",
        }
        token = sign_with(
            key.private_key, "ES256", {"alg": "ES256", "kid": key.kid}, _payload(claims, {name: literal})
        )
        desc = f"claim {name}={short(literal)}"
    elif choice == 4:
        # fmt: off
        override = rng.choice(
            [
                {"exp": now + 10**6}, {"exp": now - 100}, {"exp": 2**53}, {"exp": 2**53 + 1},
                {"exp": "soon"}, {"iat": now + 3600}, {"iat": now - 10**6}, {"iat": -(2**53)},
                {"nbf": now + 3600}, {"jti": None}, {"jti": "j" * 256}, {"jti": "j" * 255}, {"jti": "\x00"},
                {"jti": "\u202e😀"}, {"jti": 5}, {"jti": ""}, {"iss": "other"}, {"sub": "other"},
                {"sub": None}, {"iss": [cid]}, {"aud": "http://evil"}, {"aud": []},
                {"aud": [audience] * 1000}, {"aud": None}, {"aud": {"a": audience}}, {"exp": None},
                {"exp": True},
            ]
        )
        # fmt: on
        token, desc = w.assertion(audience, raw=True, **override), f"claims {short(override)}"
    elif choice == 5:
        # fmt: off
        header = rng.choice(
            [
                {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"},
                {"alg": "ES256", "kid": key.kid, "jwk": key.public_jwk()},
                {"alg": "ES256", "kid": key.kid, "x5c": ["MII"]},
                {"alg": "ES256", "kid": key.kid, "crit": ["b64"]}, {"alg": "ES256", "kid": "nope"},
                {"alg": "ES256"}, {"alg": "ES256", "kid": ""}, {"alg": "ES256", "kid": 1},
                {"alg": "RS256", "kid": key.kid}, {"alg": "HS256", "kid": key.kid},
                {"alg": "none", "kid": key.kid}, {"alg": "ES256", "kid": key.kid, "typ": 7},
                {"alg": "ES256", "kid": key.kid, "foo": nested(3)},
                {"alg": "ES256", "kid": key.kid, "x5t": "abc", "cty": "JWT"},
                {"alg": "ES256", "kid": key.kid * 200},
            ]
        )
        # fmt: on
        claims = {
            "iss": cid,
            "sub": cid,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": f"h{time.monotonic_ns()}",
        }
        token = sign_with(key.private_key, "ES256", header, claims)
        desc = f"header {short(header)}"
    elif choice == 6:
        claims = {"iss": cid, "sub": cid, "aud": audience, "exp": now + 60, "jti": f"k{time.monotonic_ns()}"}
        token, desc = key.sign(claims, kid=None), "no kid"
    elif choice == 7:
        desc, token = w.forger.refused(rng, cid, w.api_tokens["read"])
        req.needs_site_key = True
    else:
        desc, token, _ = transform_token(rng, w.assertion(audience), w, cid)
    req.form_set("client_assertion", token)
    return f"assertion {desc}"


def m_cookie(rng: Any, req: Req, w: World) -> str:
    choice = rng.randrange(8)
    cookies = dict(req.cookies or {})
    if choice == 0:
        cookies.pop("csrftoken", None)
        desc = "drop csrftoken"
    elif choice == 1:
        cookies["csrftoken"] = rng.choice(
            ["", "x", "A" * 32, "A" * 64, "!" * 64, w.csrf_cookie[:-1] + "A", "é"]
        )
        desc = f"csrftoken={short(cookies['csrftoken'])}"
    elif choice == 2:
        cookies["sessionid"] = rng.choice(["", "x" * 32, "junk", "a" * 5000, '"quoted"', "\x00"])
        desc = f"sessionid={short(cookies['sessionid'])}"
    elif choice == 3:
        # fmt: off
        req.headers["HTTP_COOKIE"] = rng.choice(
            [
                "csrftoken", "=;=;", "csrftoken=a; csrftoken=b", "a=" + "b" * 10_000, "\x00=\x00",
                'csrftoken="x\\"y"', "; ; ;", "é=ü", f"csrftoken={w.csrf_cookie}; csrftoken=x",
            ]
        )
        # fmt: on
        return f"cookie header {short(req.headers['HTTP_COOKIE'])}"
    elif choice == 4:
        req.form_set("csrfmiddlewaretoken", rng.choice(KNOWN_VALUES["csrfmiddlewaretoken"]))
        desc = "csrfmiddlewaretoken changed"
    elif choice == 5:
        req.headers["HTTP_X_CSRFTOKEN"] = rng.choice([w.csrf_token, "x", ""])
        desc = "X-CSRFToken header"
    elif choice == 6:
        cookies = {f"c{index}": "v" for index in range(300)}
        desc = "300 cookies"
    else:
        cookies["csrftoken"] = w.csrf_cookie
        desc = "csrftoken cookie added"
    req.cookies = cookies
    return f"cookie {desc}"


# fmt: off
HOSTS = [
    "evil.example", "testserver:8080", "testserver:abc", "", "testserver.", "user@testserver", "[::1",
    "x" * 300, "testserver\x00", "TESTSERVER", "127.0.0.1", "localhost:0", "ü.example", "testserver, evil",
]
# fmt: on


def m_header(rng: Any, req: Req, w: World) -> str:
    choice = rng.randrange(9)
    if choice == 0:
        value = rng.choice(HOSTS)
        req.headers["HTTP_HOST"] = value
        return f"Host {short(value)}"
    if choice == 1:
        # fmt: off
        value = rng.choice(
            [
                "text/html", "application/xml", "*/*;q=abc", "application/json; version=\x00", "",
                "application/json;q=0", "image/png", "x" * 3000, "text/*, application/json;q=0.1",
            ]
        )
        # fmt: on
        req.headers["HTTP_ACCEPT"] = value
        return f"Accept {short(value)}"
    if choice == 2:
        req.headers["HTTP_X_FORWARDED_FOR"] = rng.choice(["1.2.3.4", "\x00", "a" * 1000, "::1, evil"])
        req.headers["HTTP_X_FORWARDED_PROTO"] = rng.choice(["https", "gopher", ""])
        return "X-Forwarded-*"
    if choice == 3:
        req.headers["HTTP_ORIGIN"] = rng.choice(["http://evil.example", "null", "http://testserver", "\x00"])
        req.headers["HTTP_REFERER"] = rng.choice(
            ["http://evil.example/", "", "not a url", "http://testserver/x"]
        )
        return "Origin/Referer"
    if choice == 4:
        req.headers["HTTP_TRANSFER_ENCODING"] = rng.choice(["chunked", "gzip, chunked", "identity", "x"])
        return f"Transfer-Encoding {req.headers['HTTP_TRANSFER_ENCODING']}"
    if choice == 5:
        req.headers["HTTP_CONTENT_ENCODING"] = rng.choice(["gzip", "br", "x"])
        return "Content-Encoding"
    if choice == 6:
        # fmt: off
        name = "HTTP_" + rng.choice(
            [
                "X", "X_HTTP_METHOD_OVERRIDE", "ACCEPT_LANGUAGE", "USER_AGENT", "IF_NONE_MATCH", "RANGE",
                "ACCEPT_CHARSET", "EXPECT",
            ]
        )
        # fmt: on
        req.headers[name] = rng.choice(
            ["DELETE", "\x00", "en-US;q=x", "bytes=0-1,2-3", "100-continue", "ü" * 50, "*"]
        )
        return f"header {name}"
    if choice == 7:
        req.headers["HTTP_AUTHORIZATION"] = req.headers.get("HTTP_AUTHORIZATION", "") + rng.choice(
            ["\r\nX-Injected: 1", "\nBearer x", ", Basic eDp5", "\x00"]
        )
        return "authorization with a line break / NUL"
    req.headers["HTTP_X_FORWARDED_HOST"] = rng.choice(["evil.example", "testserver"])
    return "X-Forwarded-Host"


@dataclass(frozen=True)
class Mutation:
    name: str
    weight: int
    fn: Callable[[Any, Req, World], str]
    applies: Callable[[Req], bool] = lambda req: True


def _has_form(req: Req) -> bool:
    return req.kind in ("form", "multipart") and bool(req.form)


MUTATIONS: list[Mutation] = [
    Mutation("form_value", 12, m_form_value, _has_form),
    Mutation("form_known", 12, m_form_known, _has_form),
    Mutation("form_duplicate", 4, m_form_duplicate, _has_form),
    Mutation("form_drop", 4, m_form_drop, _has_form),
    Mutation("form_reorder", 2, m_form_reorder, _has_form),
    Mutation("form_add", 4, m_form_add, lambda req: req.kind in ("form", "multipart")),
    Mutation("form_rename", 3, m_form_rename, _has_form),
    Mutation("form_escape", 6, m_form_escape, lambda req: req.kind == "form" and bool(req.form)),
    Mutation("form_separator", 2, m_form_separator, lambda req: req.kind == "form"),
    Mutation("form_many", 2, m_form_many, lambda req: req.kind in ("form", "multipart")),
    Mutation("form_noequals", 2, m_form_noequals, _has_form),
    Mutation("json_field", 12, m_json_field, lambda req: req.kind == "json"),
    Mutation("json_raw", 8, m_json_raw, lambda req: req.kind == "json"),
    Mutation("json_drop", 2, m_json_drop, lambda req: req.kind == "json"),
    Mutation("body_bytes", 2, m_body_bytes),
    Mutation("body_truncate", 2, m_body_truncate, lambda req: req.kind != "none"),
    Mutation("body_append", 2, m_body_append, lambda req: req.kind != "none"),
    Mutation("body_empty", 1, m_body_empty, lambda req: req.kind != "none"),
    Mutation("body_huge", 1, m_body_huge, lambda req: req.kind != "none"),
    Mutation("body_to_json", 3, m_body_to_json, lambda req: req.kind == "form"),
    Mutation("body_to_form", 4, m_body_to_form, lambda req: req.kind == "json"),
    Mutation("body_multipart", 2, m_body_multipart, lambda req: req.kind in ("form", "json")),
    Mutation("body_encoding", 1, m_body_encoding, lambda req: req.kind != "none"),
    Mutation("content_type", 4, m_content_type),
    Mutation("content_length", 4, m_content_length),
    Mutation("method", 3, m_method),
    Mutation("path", 1, m_path),
    Mutation("query", 2, m_query),
    Mutation("auth_scheme", 3, m_auth_scheme),
    Mutation("auth_basic", 10, m_auth_basic, lambda req: req.path in OAUTH_PATHS),
    Mutation("auth_basic_elsewhere", 1, m_auth_basic, lambda req: req.path not in OAUTH_PATHS),
    Mutation("auth_bearer", 24, m_auth_bearer, lambda req: req.path in API_PATHS),
    Mutation("auth_drop", 2, m_auth_drop, lambda req: "HTTP_AUTHORIZATION" in req.headers),
    Mutation("auth_swap", 3, m_auth_swap),
    Mutation(
        "token_param", 45, m_token_param, lambda req: req.kind == "form" and "token" in req.form_names()
    ),
    Mutation(
        "assertion",
        35,
        m_assertion,
        lambda req: req.kind == "form" and "client_assertion" in req.form_names(),
    ),
    Mutation("cookie", 10, m_cookie, lambda req: req.path == ADMIN_LOGIN),
    Mutation("cookie_elsewhere", 1, m_cookie, lambda req: req.path != ADMIN_LOGIN),
    Mutation("header", 3, m_header),
]


def mutate(rng: Any, req: Req, world: World) -> Req:
    """Apply one to three mutations (mostly one, so most requests stay close to valid)."""
    count = rng.choices([1, 2, 3], weights=[60, 28, 12])[0]
    for _ in range(count):
        candidates = [m for m in MUTATIONS if m.applies(req)]
        mutation = rng.choices(candidates, weights=[m.weight for m in candidates])[0]
        req.mutations.append(mutation.fn(rng, req, world))
    return req


def make_request(rng: Any, world: World) -> Req:
    base = rng.choices([s for s, _ in SURFACES], weights=[w for _, w in SURFACES])[0]
    return mutate(rng, base(rng, world), world)


# -- sending -----------------------------------------------------------------------------------


def wsgi_extra(req: Req) -> dict[str, Any]:
    """The WSGI environ entries for ``req`` (what a server would hand Django)."""
    body = req.body()
    extra: dict[str, Any] = {name: latin1(value) for name, value in req.headers.items()}
    extra["HTTP_COOKIE"] = latin1(req.cookie_header())
    # A real server's input stream: reading past the end returns fewer bytes, as at EOF.
    extra["wsgi.input"] = io.BytesIO(body)
    length = req.declared_length(body)
    if length is not None:
        extra["CONTENT_LENGTH"] = latin1(length)
    if req.content_type is not None:
        extra["CONTENT_TYPE"] = latin1(req.content_type)
    extra["QUERY_STRING"] = latin1(req.query)
    return extra


def send_in_process(client: Any, req: Req) -> Any:
    path = req.path
    if any(ord(char) > 127 for char in path):
        path = quote(path, safe="/%;=")
    return client.generic(req.method, path, b"", **wsgi_extra(req))


_HEADER_NAMES = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


def _header_name(meta_name: str) -> str:
    if meta_name in _HEADER_NAMES:
        return _HEADER_NAMES[meta_name]
    return "-".join(part.capitalize() for part in meta_name.removeprefix("HTTP_").split("_"))


@dataclass
class RawParts:
    """A request as it goes on the wire, for mutations of the HTTP framing itself."""

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    line_end: bytes = b"\r\n"
    request_line: bytes | None = None

    def encode(self) -> bytes:
        line = self.request_line
        if line is None:
            line = self.method + b" " + self.target + (b" " + self.version if self.version else b"")
        lines = [line] + [name + b": " + value if name else value for name, value in self.headers]
        return self.line_end.join(lines) + self.line_end + self.line_end + self.body


def raw_parts(req: Req, host: str) -> RawParts:
    body = req.body()
    target = quote(req.path, safe="/%;=:@!$&'()*+,~").encode() + (
        b"?" + latin1(req.query).encode("latin-1") if req.query else b""
    )
    headers: list[tuple[bytes, bytes]] = []
    if "HTTP_HOST" not in req.headers:
        headers.append((b"Host", host.encode()))
    for name, value in req.headers.items():
        headers.append((_header_name(name).encode(), latin1(value).encode("latin-1")))
    cookie = req.cookie_header()
    if cookie and "HTTP_COOKIE" not in req.headers:
        headers.append((b"Cookie", latin1(cookie).encode("latin-1")))
    if req.content_type is not None:
        headers.append((b"Content-Type", latin1(req.content_type).encode("latin-1")))
    length = req.declared_length(body)
    if length is not None:
        headers.append((b"Content-Length", latin1(length).encode("latin-1")))
    headers.append((b"Connection", b"close"))
    method = latin1(req.method).encode("latin-1") or b"GET"
    return RawParts(method=method, target=target, version=b"HTTP/1.1", headers=headers, body=body)


def _chunked(body: bytes) -> bytes:
    size = 7 if len(body) < 10_000 else 65_536
    out = []
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        out.append(f"{len(piece):x}".encode() + b"\r\n" + piece + b"\r\n")
    return b"".join(out) + b"0\r\n\r\n"


def _set_header(parts: RawParts, name: bytes, value: bytes | None) -> None:
    parts.headers = [(n, v) for n, v in parts.headers if n.lower() != name.lower()]
    if value is not None:
        parts.headers.append((name, value))


def raw_mutate(rng: Any, parts: RawParts) -> str:
    """One change to the HTTP framing (what only a socket can send)."""
    choice = rng.randrange(24)
    body = parts.body
    if choice == 0:
        value = rng.choice(
            [b"abc", b"-1", b"-100", b"", b"9" * 5000, b"1e3", b" 5", b"0x10", b"+3", b"\xef\xbc\x91"]
        )
        _set_header(parts, b"Content-Length", value)
        return f"raw Content-Length {short(value)}"
    if choice == 1:
        _set_header(parts, b"Content-Length", str(len(body) + rng.choice([1, 10, 1000])).encode())
        return "raw Content-Length longer than the body (then EOF)"
    if choice == 2:
        _set_header(parts, b"Content-Length", str(max(0, len(body) - rng.randrange(1, 20))).encode())
        return "raw Content-Length shorter than the body (rest read as a next request)"
    if choice == 3:
        parts.headers.append((b"Content-Length", str(len(body) + 3).encode()))
        return "raw two Content-Length headers"
    if choice == 4:
        _set_header(parts, b"Host", None)
        return "raw no Host"
    if choice == 5:
        parts.headers.append((b"Host", b"evil.example"))
        return "raw two Host headers"
    if choice == 6:
        _set_header(
            parts, b"Host", rng.choice([b"evil.example", b"", b"localhost:99999", b"\xff", b"a b", b"[::1"])
        )
        return "raw odd Host"
    if choice == 7:
        _set_header(parts, b"Content-Length", None)
        _set_header(parts, b"Transfer-Encoding", b"chunked")
        parts.body = _chunked(body)
        return "raw chunked body"
    if choice == 8:
        _set_header(
            parts, b"Transfer-Encoding", rng.choice([b"chunked", b"gzip, chunked", b"xchunked", b"chunked "])
        )
        parts.body = _chunked(body)
        return "raw chunked body and Content-Length"
    if choice == 9:
        parts.body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
        _set_header(parts, b"Transfer-Encoding", b"chunked")
        _set_header(parts, b"Content-Length", None)
        return "raw invalid chunk size"
    if choice == 10:
        parts.headers.append((b"X-Test", b"a\r\nX-Injected: 1"))
        return "raw header injection CRLF in a value"
    if choice == 11:
        parts.headers.append((b"X-Test", b"a\nAuthorization: Bearer x"))
        return "raw bare LF in a value"
    if choice == 12:
        parts.headers.append((b"X-Test", rng.choice([b"a\x00b", b"\xff\xfe", b"a\rb", "ü".encode()])))
        return "raw NUL / non-ASCII / CR in a header value"
    if choice == 13:
        parts.headers.append((b"", b" folded continuation"))
        return "raw obs-fold continuation line"
    if choice == 14:
        parts.headers.append(
            (rng.choice([b"Content-Length ", b"Bad Name", b"X\x00", b"Content_Length", b":x"]), b"5")
        )
        return "raw invalid header name"
    if choice == 15:
        parts.headers.append((b"X-Long", b"x" * rng.choice([8000, 70_000])))
        return "raw very long header"
    if choice == 16:
        parts.headers.extend((f"X-H{index}".encode(), b"v") for index in range(rng.choice([99, 150])))
        return "raw many headers"
    if choice == 17:
        # fmt: off
        parts.version = rng.choice(
            [
                b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b"HTTP/1", b"", b"FOO/1.1",
                b"HTTP/1.10", b"HTTP/3",
            ]
        )
        # fmt: on
        return f"raw version {parts.version!r}"
    if choice == 18:
        parts.method = rng.choice([b"get", b"G E T", b"\xff", b"", b"POST\x00"])
        return f"raw method {parts.method!r}"
    if choice == 19:
        # fmt: off
        parts.target = rng.choice(
            [
                b"http://evil.example" + parts.target, b"*", parts.target + b"#frag", parts.target + b" x",
                b"/\xff\xfe", parts.target.replace(b"/", b"\\"), b"/" + b"a" * 70_000,
            ]
        )
        # fmt: on
        return f"raw target {short(parts.target)}"
    if choice == 20:
        parts.line_end = b"\n"
        return "raw bare LF line endings"
    if choice == 21:
        parts.headers.append((b"Expect", b"100-continue"))
        return "raw Expect: 100-continue"
    if choice == 22:
        parts.request_line = rng.choice(
            [b"", b"GARBAGE", parts.method + b"  " + parts.target + b"  HTTP/1.1"]
        )
        return f"raw request line {short(parts.request_line)}"
    _set_header(parts, b"Connection", rng.choice([b"keep-alive", b"Upgrade", b"close, TE"]))
    parts.headers.append((b"Upgrade", b"h2c"))
    return "raw Connection/Upgrade"


_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")


def parse_raw_responses(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(status, header block, body head) of each response in ``data`` (a server may send several)."""
    responses = []
    while data:
        match = _STATUS.match(data)
        if not match:
            break
        head, sep, rest = data.partition(b"\r\n\r\n")
        length_match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        length = int(length_match.group(1)) if length_match else len(rest)
        status = int(match.group(1))
        if status < 200:  # 100 Continue: no body, the real response follows
            length = 0
        responses.append((status, head, rest[: min(length, 300)]))
        data = rest[length:] if sep else b""
    return responses


class SiteClient(Client):
    """Django's test client with the example site's WSGI guard in front of it.

    ``example_project/wsgi.py`` (what runserver and gunicorn load) wraps Django in
    :class:`example_project.middleware.RequestGuard`; the test client calls Django's handler
    directly, so the same check is put in front of it here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.handler

        def guarded(environ: dict[str, Any]) -> Any:
            problem = malformed(environ)
            if not problem:
                return inner(environ)
            response = refusal(problem)
            response.wsgi_request = HttpRequest()  # the test client reads it; Django never saw one
            return response

        self.handler = guarded
