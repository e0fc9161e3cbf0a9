"""System checks of a resource-only service (oauth_cc.resource.apps) and where it records DPoP proofs.

One test per check id a resource-only service can get, each asserting the id and the sentence.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from oauth_cc.common import dpop
from oauth_cc.common.setting_checks import NUMERIC_SETTINGS, RESOURCE_NUMERIC_SETTINGS
from oauth_cc.conf import DEFAULTS, oauth_cc_settings
from oauth_cc.resource.apps import check_resource_settings

RESOURCE = {
    "ISSUER": "https://auth.example.com",
    "RESOURCE_IDENTIFIER": "https://reports.example.com",
    "RESOURCE_CLIENT_ID": "reader",
    "RESOURCE_CLIENT_SECRET": "secret",
}


def problems(**extra: Any) -> list[tuple[str, str]]:
    with override_settings(OAUTH_CC={**RESOURCE, **extra}):
        # E101 ("oauth_cc" installed too) is the test settings' doing, not the checked settings'.
        return [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]


def test_valid_resource_settings_have_no_problem() -> None:
    assert problems() == []
    assert problems(DPOP_REPLAY_STORE="cache", CLIENT_CERT_HEADER="HTTP_X_SSL_CLIENT_CERT") == []


def test_e101_the_issuer_app_installed_beside_the_resource_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from oauth_cc.resource import apps as resource_apps

    with override_settings(OAUTH_CC=RESOURCE):
        found = [e for e in check_resource_settings() if e.id == "oauth_cc.E101"]
        assert [(e.msg, e.hint) for e in found] == [
            (
                '"oauth_cc" and "oauth_cc.resource" are both in INSTALLED_APPS.',
                'An issuer checks its own tokens: keep "oauth_cc" only.',
            )
        ]
        # The test settings install both; a resource-only project installs "oauth_cc.resource" alone.
        monkeypatch.setattr(resource_apps.apps, "is_installed", lambda name: name != "oauth_cc")
        assert check_resource_settings() == []


@pytest.mark.parametrize("value", ["drop", "Keep", None, True])
def test_e103_an_unknown_revocation_feed_unreachable_choice(value: Any) -> None:
    assert problems(REVOCATION_FEED_UNREACHABLE=value) == [
        ("oauth_cc.E103", 'OAUTH_CC[\'REVOCATION_FEED_UNREACHABLE\'] must be "keep" or "refuse".')
    ]


@pytest.mark.parametrize("value", ["keep", "refuse"])
def test_e103_keep_and_refuse_are_accepted(value: str) -> None:
    assert problems(REVOCATION_FEED_UNREACHABLE=value) == []


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_replay_store_other_than_the_cache_is_refused(store: str) -> None:
    assert problems(DPOP_REPLAY_STORE=store) == [
        (
            "oauth_cc.E104",
            f"OAUTH_CC['DPOP_REPLAY_STORE'] is {store!r}; a resource-only service has no oauth_cc tables, "
            'so DPoP proof ids are recorded in the cache: leave it unset or set "cache".',
        )
    ]


def test_client_certificate_settings_are_checked_on_a_resource_service() -> None:
    assert problems(CLIENT_CERT_HEADER="X-SSL-Client-Cert", CLIENT_CERT_HEADER_FORMAT="pem") == [
        (
            "oauth_cc.E014",
            "OAUTH_CC['CLIENT_CERT_HEADER'] must be None or a request.META header name "
            'like "HTTP_X_SSL_CLIENT_CERT".',
        ),
        (
            "oauth_cc.E014",
            "OAUTH_CC['CLIENT_CERT_HEADER_FORMAT'] must be one of: nginx-escaped-pem, rfc9440.",
        ),
    ]


def test_resource_only_service_records_proofs_in_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dpop.replay_store() == "database"  # the issuer: the default
    monkeypatch.setitem(oauth_cc_settings._cached, "_resource_only", True)
    assert dpop.replay_store() == "cache"
    with override_settings(OAUTH_CC={**RESOURCE, "DPOP_REPLAY_STORE": "database"}):
        monkeypatch.setitem(oauth_cc_settings._cached, "_resource_only", True)
        assert dpop.replay_store() == "cache"  # even when E104 is silenced


def test_a_proof_is_recorded_once_in_the_cache_on_a_resource_service(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setitem(oauth_cc_settings._cached, "_resource_only", True)
    verified = dpop.VerifiedProof(jkt="thumb", jti="proof-1", accepted_until=time.time() + 60)
    dpop.record_use(verified)  # no database access: the test has no db fixture
    with pytest.raises(dpop.InvalidDPoPProof, match="has already been used"):
        dpop.record_use(verified)


@pytest.mark.parametrize(
    ("backend", "warned"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", True),
        ("django.core.cache.backends.dummy.DummyCache", True),
        ("django.core.cache.backends.redis.RedisCache", False),
    ],
)
def test_w109_a_per_process_cache_on_a_resource_only_service(backend: str, warned: bool) -> None:
    from oauth_cc.resource.apps import check_resource_deployment

    caches = {"default": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:6379/0"}}
    if "redis" not in backend:
        caches["default"].pop("LOCATION")
    with override_settings(OAUTH_CC=RESOURCE, CACHES=caches):
        found = check_resource_deployment()
    assert [w.id for w in found] == (["oauth_cc.W109"] if warned else [])
    if warned:
        assert "a proof used on one worker can be replayed on another" in found[0].hint


def test_w109_looks_at_the_cache_oauth_cc_uses() -> None:
    from oauth_cc.resource.apps import check_resource_deployment

    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
        },
    }
    with override_settings(OAUTH_CC={**RESOURCE, "CACHE_ALIAS": "shared"}, CACHES=caches):
        assert check_resource_deployment() == []


def test_check_deploy_on_the_example_resource_service_says_w109(tmp_path) -> None:
    """The warning is registered by the resource app itself: ``manage.py check --deploy`` of the
    example's resource-only service, on its default per-process cache, prints it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.resource_settings",
        RESOURCE_DATABASE_URL=f"sqlite:///{tmp_path / 'resource.sqlite3'}",
        OAUTH_CC_RESOURCE_CLIENT_ID="resource-service",
        OAUTH_CC_RESOURCE_CLIENT_SECRET="not-used-here",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "oauth_cc.W109" in done.stdout + done.stderr, done.stdout + done.stderr


# -- the issuer's rules for the settings a resource-only service reads (oauth_cc.common.setting_checks) --


def test_oauth_cc_that_is_not_a_dict_is_e003() -> None:
    with override_settings(OAUTH_CC=[("ISSUER", "https://auth.example.com")]):
        found = [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert found == [("oauth_cc.E003", "OAUTH_CC must be a dict.")]


def test_an_unknown_setting_name_is_e004() -> None:
    assert problems(RESOURCE_CLIENT_AUTH_METHODS="client_secret_post") == [
        ("oauth_cc.E004", "Unknown OAUTH_CC setting(s): RESOURCE_CLIENT_AUTH_METHODS.")
    ]


@pytest.mark.parametrize("issuer", ["auth.example.com", "https://auth.example.com/?tenant=1", 42])
def test_an_issuer_that_is_not_a_base_url_is_e005(issuer: Any) -> None:
    assert problems(ISSUER=issuer) == [
        (
            "oauth_cc.E005",
            "OAUTH_CC['ISSUER'] must be the site's base URL, like \"https://auth.example.com\".",
        )
    ]


def test_an_http_issuer_for_a_remote_host_is_w001() -> None:
    assert problems(ISSUER="http://auth.example.com") == [
        ("oauth_cc.W001", "OAUTH_CC['ISSUER'] uses http:// for a host that is not local.")
    ]
    assert problems(ISSUER="http://127.0.0.1:8000") == []


def _below(minimum: float) -> float:
    return minimum - 1 if minimum >= 1 else minimum - 0.0005 if minimum > 0 else -1


@pytest.mark.parametrize("name", RESOURCE_NUMERIC_SETTINGS)
def test_e007_each_numeric_setting_the_resource_side_reads_is_checked(name: str) -> None:
    kind, minimum = NUMERIC_SETTINGS[name]
    expected = "a whole number" if kind is int else "a number"
    sentence = f"OAUTH_CC['{name}'] must be {expected} of at least {minimum:g}."
    assert problems(**{name: kind(_below(minimum))}) == [("oauth_cc.E007", sentence)]
    assert problems(**{name: "10"}) == [("oauth_cc.E007", sentence)]
    assert problems(**{name: float("nan")}) == [
        ("oauth_cc.E007", f"OAUTH_CC['{name}'] must be a finite {expected[2:]}.")
    ]
    assert problems(**{name: kind(minimum) if minimum else 0}) == []
    assert problems(**{name: DEFAULTS[name]}) == []


#: The smallest value each numeric setting of the resource side accepts, and the largest it
#: refuses, written out here (not read from NUMERIC_SETTINGS, whose own values a mistake would move).
RESOURCE_BOUNDS = [
    ("LEEWAY", 0, -0.001),
    ("VERIFIED_TOKEN_CACHE_SIZE", 1, 0),
    ("VERIFIED_TOKEN_CACHE_BYTES", 1, 0),
    ("REVOCATION_FEED_POLL_SECONDS", 0.1, 0.099),
    ("REVOCATION_FEED_STALE_SECONDS", 1, 0.999),
    ("REVOCATION_FEED_MAX_BYTES", 1024, 1023),
    ("ISSUER_FETCH_TIMEOUT", 0.001, 0.0009),
    ("ISSUER_FETCH_MAX_BYTES", 1024, 1023),
    ("ISSUER_KEYS_MAX_STALE_SECONDS", 0, -0.001),
    ("ISSUER_UNKNOWN_KID_REFETCH_SECONDS", 0.1, 0.099),
    ("DPOP_PROOF_MAX_AGE", 1, 0.999),
    ("DPOP_NONCE_LIFETIME", 1, 0.999),
    ("TRUSTED_PROXY_COUNT", 1, 0),
]


def test_the_resource_bounds_cover_every_numeric_setting_it_reads() -> None:
    assert [name for name, _, _ in RESOURCE_BOUNDS] == list(RESOURCE_NUMERIC_SETTINGS)


@pytest.mark.parametrize(("name", "smallest", "refused"), RESOURCE_BOUNDS)
def test_e007_the_smallest_value_of_each_resource_setting(name: str, smallest: float, refused: float) -> None:
    assert problems(**{name: smallest}) == []
    assert [found for found, _ in problems(**{name: refused})] == ["oauth_cc.E007"]


def test_e007_hint_names_the_default() -> None:
    with override_settings(OAUTH_CC={**RESOURCE, "ISSUER_FETCH_TIMEOUT": 0}):
        (error,) = [e for e in check_resource_settings() if e.id == "oauth_cc.E007"]
    assert error.hint == "The default is 3.0; see the README's Settings table."


def test_issuer_only_numeric_settings_are_not_checked_on_a_resource_service() -> None:
    """A resource-only service never reads them: a value there changes nothing, so it is no error."""
    assert problems(ACCESS_TOKEN_LIFETIME=0, CLIENT_CACHE_SIZE=None) == []


def test_every_numeric_setting_a_resource_module_reads_is_checked() -> None:
    """A guard: a numeric setting newly read by the resource side must join the checked ones."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "oauth_cc"
    # The resource app and every module both sides share (setting_checks only lists the names).
    shared = [path for path in package.joinpath("common").glob("*.py") if path.name != "setting_checks.py"]
    sources = [*package.joinpath("resource").glob("*.py"), *shared]
    assert package / "common" / "verification.py" in sources
    read = {
        name for path in sources for name in NUMERIC_SETTINGS if re.search(rf"\b{name}\b", path.read_text())
    }
    assert read - set(RESOURCE_NUMERIC_SETTINGS) == set()
    assert set(RESOURCE_NUMERIC_SETTINGS) <= set(NUMERIC_SETTINGS)


def test_a_cache_alias_not_in_caches_is_e009() -> None:
    with override_settings(OAUTH_CC={**RESOURCE, "CACHE_ALIAS": "shared"}):
        found = [e for e in check_resource_settings() if e.id == "oauth_cc.E009"]
    assert [(e.msg, e.hint) for e in found] == [
        (
            "OAUTH_CC['CACHE_ALIAS'] names the cache 'shared', which is not in CACHES.",
            "Name one of the caches in CACHES, or add it there.",
        )
    ]
    assert problems(CACHE_ALIAS=["default"])[0][0] == "oauth_cc.E009"  # not a name: no TypeError


# -- how the service authenticates to the revocation feed (E102, E105, E106) --------------------


@pytest.fixture(scope="module")
def private_pem() -> str:
    from tests.assertion_helpers import generate_key

    return generate_key("ES256").private_pem().decode()


def without(name: str) -> dict[str, Any]:
    return {key: value for key, value in RESOURCE.items() if key != name}


@pytest.mark.parametrize(
    "name", ["ISSUER", "RESOURCE_IDENTIFIER", "RESOURCE_CLIENT_ID", "RESOURCE_CLIENT_SECRET"]
)
def test_e102_a_required_setting_is_missing(name: str) -> None:
    with override_settings(OAUTH_CC=without(name)):
        found = [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    needed_by = ' whose RESOURCE_CLIENT_AUTH_METHOD is "client_secret_basic"' if "SECRET" in name else ""
    assert found == [
        ("oauth_cc.E102", f"OAUTH_CC['{name}'] is required on a resource-only service{needed_by}.")
    ]


def test_client_secret_post_needs_the_secret_too() -> None:
    with override_settings(
        OAUTH_CC={**without("RESOURCE_CLIENT_SECRET"), "RESOURCE_CLIENT_AUTH_METHOD": "client_secret_post"}
    ):
        found = [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert found == [
        (
            "oauth_cc.E102",
            "OAUTH_CC['RESOURCE_CLIENT_SECRET'] is required on a resource-only service whose "
            'RESOURCE_CLIENT_AUTH_METHOD is "client_secret_post".',
        )
    ]


def test_private_key_jwt_needs_a_key_and_no_secret(private_pem: str) -> None:
    jwt_settings = {**without("RESOURCE_CLIENT_SECRET"), "RESOURCE_CLIENT_AUTH_METHOD": "private_key_jwt"}
    with override_settings(OAUTH_CC=jwt_settings):
        found = [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert found == [
        (
            "oauth_cc.E102",
            "OAUTH_CC['RESOURCE_CLIENT_PRIVATE_KEY'] is required on a resource-only service whose "
            'RESOURCE_CLIENT_AUTH_METHOD is "private_key_jwt".',
        )
    ]
    with override_settings(OAUTH_CC={**jwt_settings, "RESOURCE_CLIENT_PRIVATE_KEY": private_pem}):
        assert [e.id for e in check_resource_settings() if e.id != "oauth_cc.E101"] == []


@pytest.mark.parametrize("method", ["client_secret_jwt", "tls_client_auth", None, "CLIENT_SECRET_BASIC"])
def test_e105_an_unknown_feed_authentication_method(method: Any) -> None:
    with override_settings(OAUTH_CC={**RESOURCE, "RESOURCE_CLIENT_AUTH_METHOD": method}):
        found = [e for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert [(e.id, e.msg) for e in found] == [
        (
            "oauth_cc.E105",
            "OAUTH_CC['RESOURCE_CLIENT_AUTH_METHOD'] must be one of \"client_secret_basic\", "
            '"client_secret_post", "private_key_jwt".',
        )
    ]
    assert found[0].hint == "Use the method the service's client is registered with on the issuer."


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (
            {"RESOURCE_CLIENT_PRIVATE_KEY": "not a key"},
            "OAUTH_CC['RESOURCE_CLIENT_PRIVATE_KEY'] is neither a PEM key (\"-----BEGIN PRIVATE KEY-----\") "
            "nor a JWK in JSON.",
        ),
        (
            {"RESOURCE_CLIENT_KEY_ALG": "RS256"},
            "OAUTH_CC['RESOURCE_CLIENT_KEY_ALG'] cannot be used for RS256: the key is EC on P-256.",
        ),
        (
            {"RESOURCE_CLIENT_KEY_ID": ""},
            "OAUTH_CC['RESOURCE_CLIENT_KEY_ID'] must be the key's kid as registered on the issuer "
            "(a non-empty string).",
        ),
    ],
)
def test_e106_a_private_key_that_cannot_be_used(
    private_pem: str, extra: dict[str, Any], sentence: str
) -> None:
    jwt_settings = {
        **without("RESOURCE_CLIENT_SECRET"),
        "RESOURCE_CLIENT_AUTH_METHOD": "private_key_jwt",
        "RESOURCE_CLIENT_PRIVATE_KEY": private_pem,
        **extra,
    }
    with override_settings(OAUTH_CC=jwt_settings):
        found = [e for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert [(e.id, e.msg) for e in found] == [("oauth_cc.E106", sentence)]
    assert "registered for the service's client on the issuer" in found[0].hint
    assert "PRIVATE KEY-----\n" not in found[0].msg + found[0].hint  # never the key itself


def _ec_private_jwk() -> dict[str, str]:
    import json

    from jwcrypto.jwk import JWK

    return json.loads(JWK.generate(kty="EC", crv="P-256").export_private())


EC_PRIVATE = _ec_private_jwk()
KEY = "OAUTH_CC['RESOURCE_CLIENT_PRIVATE_KEY']"


@pytest.mark.parametrize(
    ("key", "sentence"),
    [
        (
            # jwcrypto parses lazily: cryptography's "e must be >= 3 and < n." escaped `check`.
            '{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}',
            f"{KEY} is not a valid RSA private key: its members (n, e, d, p, q, dp, dq and qi) do not "
            "make one; check that it was copied whole.",
        ),
        (
            {**EC_PRIVATE, "x": EC_PRIVATE["y"]},  # a point off the curve
            f"{KEY} is not a valid EC private key: its members do not make one; check that it was "
            "copied whole.",
        ),
        (
            {**EC_PRIVATE, "use": "enc"},
            f'{KEY} has a "use" other than "sig"; give "use": "sig" or leave "use" out.',
        ),
        (
            {**EC_PRIVATE, "key_ops": ["verify"]},
            f'{KEY} has a "key_ops" that is not a list with "sign"; add "sign" or leave "key_ops" out.',
        ),
        (
            # A string, not a list: "sign" in "sign" would hold as a substring test.
            {**EC_PRIVATE, "key_ops": "sign"},
            f'{KEY} has a "key_ops" that is not a list with "sign"; add "sign" or leave "key_ops" out.',
        ),
    ],
)
def test_e106_a_jwk_that_cannot_sign(key: Any, sentence: str) -> None:
    jwt_settings = {
        **without("RESOURCE_CLIENT_SECRET"),
        "RESOURCE_CLIENT_AUTH_METHOD": "private_key_jwt",
        "RESOURCE_CLIENT_PRIVATE_KEY": key,
    }
    with override_settings(OAUTH_CC=jwt_settings):
        found = [e for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert [(e.id, e.msg) for e in found] == [("oauth_cc.E106", sentence)]
    shown = found[0].msg + found[0].hint
    assert EC_PRIVATE["d"] not in shown and EC_PRIVATE["x"] not in shown and "AQAB" not in shown


def test_e106_a_library_error_while_loading_the_key_is_named_by_its_type(
    private_pem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oauth_cc.resource import feed_auth

    def refuse(value: Any, **options: Any) -> Any:
        raise RuntimeError(f"cannot use {value}")  # a message quoting the key

    monkeypatch.setattr(feed_auth, "load_signing_key", refuse)
    jwt_settings = {
        **without("RESOURCE_CLIENT_SECRET"),
        "RESOURCE_CLIENT_AUTH_METHOD": "private_key_jwt",
        "RESOURCE_CLIENT_PRIVATE_KEY": private_pem,
    }
    with override_settings(OAUTH_CC=jwt_settings):
        found = [(e.id, e.msg) for e in check_resource_settings() if e.id != "oauth_cc.E101"]
    assert found == [
        (
            "oauth_cc.E106",
            f"{KEY} could not be loaded (RuntimeError); check that it was copied whole.",
        )
    ]


def test_a_key_is_not_loaded_for_a_secret_method() -> None:
    assert problems(RESOURCE_CLIENT_PRIVATE_KEY="not a key") == []


def test_e015_the_client_throttle_rate_is_checked_on_a_resource_service() -> None:
    # ClientRateThrottle serves resource-only services too; the same rule, the same words.
    from django.conf import settings

    rates = {"oauth_cc_client": "10/fortnight"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        found = problems()
    assert found == [
        (
            "oauth_cc.E015",
            'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["oauth_cc_client"] is not a rate: "10/fortnight" is '
            'not a rate. Enter a rate like "100/hour": a whole number from 1, a slash, and second, minute, '
            "hour or day.",
        )
    ]
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}):
        assert problems() == []
