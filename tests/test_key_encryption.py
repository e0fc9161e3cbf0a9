"""Signing keys encrypted at rest: the stored format, key rotation, wrong keys, the migration."""

from __future__ import annotations

import base64
import json
import logging
from io import StringIO
from typing import Any

import jwt
import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from oauth_cc.checks import check_key_encryption_deploy, check_settings, check_stored_keys
from oauth_cc.issuer import key_encryption, keys, state
from oauth_cc.issuer.key_encryption import PREFIX, KeyDecryptionError, Storage
from oauth_cc.models import AuditAction, AuditEvent, SigningKey
from tests.conftest import basic_auth, form_post
from tests.helpers import clear_shared_cache

PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
KEY_C = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    clear_shared_cache()


@pytest.fixture
def svc(make_client):
    return make_client("svc", scopes=["reports:read"])


def encryption_keys(*entries: Any) -> override_settings:
    """The test settings with ``KEY_ENCRYPTION_KEYS`` set (``None``: the default derivation).

    Changing ``OAUTH_CC`` resets the per-worker state, so each block is a freshly started worker.
    """
    return override_settings(OAUTH_CC={**settings.OAUTH_CC, "KEY_ENCRYPTION_KEYS": list(entries) or None})


def new_worker() -> None:
    state.reset_all()
    clear_shared_cache()


def request_token(client, application, secret) -> Any:
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "reports:read"},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def issued(client, svc) -> str:
    response = request_token(client, *svc)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def accepted(client, token: str) -> bool:
    return client.get("/api/ping/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def raw_rows() -> dict[str, str]:
    """``kid -> private_jwk`` exactly as a database dump would show it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT kid, private_jwk FROM oauth_cc_signingkey")
        return dict(cursor.fetchall())


def storages() -> dict[str, Storage]:
    return {kid: key_encryption.storage(stored) for kid, stored in raw_rows().items()}


def run(*args: str) -> str:
    out = StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


def hkdf_fernet(secret: str) -> Fernet:
    """The documented derivation, written out independently of the module."""
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"oauth_cc.issuer.key_encryption",
        info=b"oauth_cc signing-key encryption v1",
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet_token(stored: str) -> bytes:
    assert stored.startswith(PREFIX)
    return stored[len(PREFIX) :].encode()


# -- what a dump shows ----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_a_database_dump_holds_no_private_key_material(db, algorithm):
    keys.rotate(algorithm)
    keys.rotate(algorithm)  # current, next and retired rows

    dump = raw_rows()

    assert len(dump) == 3
    for kid, stored in dump.items():
        assert stored.startswith(PREFIX)
        private = json.loads(key_encryption.decrypt(stored, kid))
        secret_members = [name for name in PRIVATE_JWK_MEMBERS if name in private]
        assert secret_members  # the row does hold a private key...
        for name in secret_members:
            assert private[name] not in stored  # ...but none of its secret values in the clear
        assert '"d"' not in stored and "kty" not in stored


def test_default_key_is_hkdf_of_secret_key_never_secret_key_itself(db):
    kid = keys.ensure_current_key().kid
    stored = raw_rows()[kid]

    assert json.loads(hkdf_fernet(settings.SECRET_KEY).decrypt(fernet_token(stored)))["kty"] == "EC"
    raw_key = base64.urlsafe_b64encode(settings.SECRET_KEY.encode()[:32])
    with pytest.raises(InvalidToken):
        Fernet(raw_key).decrypt(fernet_token(stored))


def test_first_configured_key_encrypts_and_secret_key_does_not(db):
    with encryption_keys(KEY_A, KEY_B):
        kid = keys.ensure_current_key().kid
        stored = raw_rows()[kid]

    assert json.loads(Fernet(KEY_A).decrypt(fernet_token(stored)))["kty"] == "EC"
    for other in (Fernet(KEY_B), hkdf_fernet(settings.SECRET_KEY)):
        with pytest.raises(InvalidToken):
            other.decrypt(fernet_token(stored))


def test_two_encryptions_of_the_same_key_differ(db):
    # Fernet uses a random IV: equal private keys cannot be spotted in a dump.
    text = json.dumps({"kty": "oct", "k": "AAAA"})
    assert key_encryption.encrypt(text) != key_encryption.encrypt(text)


# -- the hot path -----------------------------------------------------------------------------------


def test_the_private_key_is_decrypted_once_per_kid_not_per_request(
    client, svc, monkeypatch, django_assert_num_queries
):
    calls: list[str] = []
    real = key_encryption.load_private_key
    monkeypatch.setattr(key_encryption, "load_private_key", lambda *a: calls.append(a[1]) or real(*a))
    issued(client, svc)
    assert len(calls) == 1

    with django_assert_num_queries(0):
        for _ in range(3):
            issued(client, svc)
    keys.key_store._signing_loaded_at = float("-inf")  # the refresh interval has passed
    with django_assert_num_queries(1):  # which key is current; the same kid, so no decryption
        issued(client, svc)
    assert len(calls) == 1

    keys.rotate()
    keys.key_store._signing_loaded_at = float("-inf")
    issued(client, svc)
    assert calls[1] == keys.ensure_current_key().kid


# -- rotating KEY_ENCRYPTION_KEYS -------------------------------------------------------------------


def test_rolling_rotation_of_key_encryption_keys_never_stops_issuing_or_verifying(client, svc):
    with encryption_keys(KEY_A):
        first = issued(client, svc)
    # Step 1: the new key is added second on every worker; A still encrypts.
    with encryption_keys(KEY_A, KEY_B):
        assert accepted(client, issued(client, svc))
    # Step 2: B moves first. A key created now is encrypted with B (the second rotation
    # promotes the first next key made under B)...
    with encryption_keys(KEY_B, KEY_A):
        keys.rotate()
        keys.rotate()
        new_kid = keys.ensure_current_key().kid
        assert storages()[new_kid] is Storage.ENCRYPTED
    # ...and a worker still on step 1's list reads it, B being second there.
    with encryption_keys(KEY_A, KEY_B):
        token = issued(client, svc)
        assert jwt.get_unverified_header(token)["kid"] == new_kid
        assert accepted(client, token)
    # Step 3: reencrypt moves every row to B.
    with encryption_keys(KEY_B, KEY_A):
        assert set(storages().values()) == {Storage.ENCRYPTED, Storage.OLDER_KEY}
        assert "Re-encrypted 2 of 4 signing key(s) under the first key; 2 already were." in run(
            "key", "reencrypt"
        )
        assert set(storages().values()) == {Storage.ENCRYPTED}
    # Step 4: A is removed.
    with encryption_keys(KEY_B):
        assert accepted(client, issued(client, svc))
        assert accepted(client, first)
        keys.rotate()  # the retired rows decrypt as well
        keys.key_store._signing_loaded_at = float("-inf")
        assert accepted(client, issued(client, svc))
        for kid, stored in raw_rows().items():
            assert key_encryption.load_private_key(stored, kid, SigningKey.objects.get(kid=kid).public_jwk)


def test_reencrypt_twice_changes_nothing_the_second_time(db):
    with encryption_keys(KEY_A):
        keys.rotate()
    with encryption_keys(KEY_B, KEY_A):
        run("key", "reencrypt")
        before = raw_rows()
        events = AuditEvent.objects.filter(action=AuditAction.KEYS_REENCRYPTED)
        assert [sorted(e.changes["reencrypted"]) for e in events] == [sorted(before)]
        assert all(e.actor.startswith("cli:") for e in events)
        assert "Re-encrypted 0 of 2 signing key(s) under the first key; 2 already were." in run(
            "key", "reencrypt"
        )
        assert raw_rows() == before
        assert events.count() == 1  # nothing re-encrypted, nothing recorded


def test_moving_from_the_default_to_explicit_keys_needs_no_outage(client, svc):
    issued(client, svc)  # encrypted with the key derived from SECRET_KEY
    with encryption_keys(KEY_A):
        assert accepted(client, issued(client, svc))
        assert set(storages().values()) == {Storage.OLDER_KEY}
        run("key", "reencrypt")
        assert set(storages().values()) == {Storage.ENCRYPTED}
    with override_settings(SECRET_KEY="an entirely different secret key, 50 characters or so"):
        with encryption_keys(KEY_A):
            assert accepted(client, issued(client, svc))


# -- SECRET_KEY rotation ------------------------------------------------------------------------------


def test_secret_key_rotation_with_fallbacks_keeps_keys_readable_and_reencrypt_moves_them(client, svc):
    old_secret = settings.SECRET_KEY
    issued(client, svc)
    new_secret = "the rotated secret key " + "x" * 40

    with override_settings(SECRET_KEY=new_secret, SECRET_KEY_FALLBACKS=[old_secret]):
        new_worker()
        assert accepted(client, issued(client, svc))
        assert set(storages().values()) == {Storage.OLDER_KEY}
        assert "Re-encrypted 2 of 2" in run("key", "reencrypt")
        assert set(storages().values()) == {Storage.ENCRYPTED}
    with override_settings(SECRET_KEY=new_secret, SECRET_KEY_FALLBACKS=[]):
        new_worker()
        assert accepted(client, issued(client, svc))


def test_secret_key_rotation_without_the_fallback_makes_the_keys_unreadable(client, svc):
    issued(client, svc)
    with override_settings(SECRET_KEY="the rotated secret key " + "x" * 40, SECRET_KEY_FALLBACKS=[]):
        new_worker()
        response = request_token(client, *svc)
    assert_cannot_issue(response)


def test_a_bytes_secret_key_derives_the_same_key_as_its_text(db):
    # Django accepts a bytes SECRET_KEY (it runs it through force_bytes), so the derivation
    # takes bytes as they are: the same secret spelled as bytes opens the same rows.
    secret = "the secret key as text and as bytes " + "x" * 30
    with override_settings(SECRET_KEY=secret):
        stored = key_encryption.encrypt('{"kty": "oct"}')
    other = "another secret key " + "y" * 40
    with override_settings(SECRET_KEY=other, SECRET_KEY_FALLBACKS=[secret.encode()]):
        assert key_encryption.decrypt(stored, "kid1") == '{"kty": "oct"}'
        assert key_encryption.storage(stored) is Storage.OLDER_KEY
    with override_settings(SECRET_KEY=secret.encode(), SECRET_KEY_FALLBACKS=[]):
        assert key_encryption.storage(stored) is Storage.ENCRYPTED


def assert_cannot_issue(response: Any) -> None:
    """The token endpoint's 503 for a signing key it cannot use: the reason stays in the log."""
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "30"
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The server cannot issue tokens right now; try again later.",
    }


# -- a key no configured key can decrypt --------------------------------------------------------------


def test_unreadable_current_key_gives_503_json_and_one_log_line_without_key_material(
    client, svc, caplog, django_assert_num_queries
):
    with encryption_keys(KEY_A):
        issued(client, svc)
        kid = keys.ensure_current_key().kid
        private_d = json.loads(key_encryption.decrypt(raw_rows()[kid], kid))["d"]
    with encryption_keys(KEY_C), caplog.at_level(logging.DEBUG):
        first = request_token(client, *svc)
        with django_assert_num_queries(0):  # fails fast until the refresh interval has passed
            second = request_token(client, *svc)

    for response in (first, second):
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        assert response["Retry-After"] == "30"
        assert response.json() == {
            "error": "temporarily_unavailable",
            "error_description": "The server cannot issue tokens right now; try again later.",
        }
    # django.request also logs each 503, without a traceback.
    assert all(r.exc_info is None for r in caplog.records)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name != "django.request"]
    assert len(errors) == 1
    assert errors[0].name == "oauth_cc.keys"
    line = errors[0].getMessage()
    assert f"decrypts the private key of signing key {kid}" in line
    assert "Add the key it was encrypted with to OAUTH_CC['KEY_ENCRYPTION_KEYS']" in line
    everything = caplog.text + first.content.decode()
    for secret in (KEY_A, KEY_C, private_d, raw_rows()[kid]):
        assert secret not in everything


def test_unreadable_key_recovers_as_soon_as_the_key_is_configured_again(client, svc):
    with encryption_keys(KEY_A):
        issued(client, svc)
    with encryption_keys(KEY_C):
        assert_cannot_issue(request_token(client, *svc))
    with encryption_keys(KEY_C, KEY_A):
        assert accepted(client, issued(client, svc))


def test_unreadable_key_is_retried_after_the_refresh_interval(client, svc):
    with encryption_keys(KEY_A):
        issued(client, svc)
        kid = keys.ensure_current_key().kid
        plain = key_encryption.decrypt(raw_rows()[kid], kid)
    with encryption_keys(KEY_C):
        assert_cannot_issue(request_token(client, *svc))
        # The operator fixes the row (here: re-encrypted under C) without a settings change.
        SigningKey.objects.filter(kid=kid).update(private_jwk=key_encryption.encrypt(plain))
        assert_cannot_issue(request_token(client, *svc))  # still within the interval
        keys.key_store._signing_loaded_at = float("-inf")
        assert request_token(client, *svc).status_code == 200


def test_verification_keeps_working_while_the_signing_key_is_unreadable(client, svc):
    with encryption_keys(KEY_A):
        token = issued(client, svc)
    with encryption_keys(KEY_C):
        assert_cannot_issue(request_token(client, *svc))
        assert accepted(client, token)  # public keys are not encrypted


def test_invalid_key_setting_at_the_token_endpoint_gives_503_not_500(client, svc):
    issued(client, svc)
    with encryption_keys("not a key"):
        response = request_token(client, *svc)
    assert_cannot_issue(response)


def test_key_list_reports_each_keys_storage(db):
    with encryption_keys(KEY_A):
        keys.rotate()
    with encryption_keys(KEY_B, KEY_A):
        keys.rotate()
        SigningKey.objects.filter(state="retired").update(
            private_jwk=key_encryption.decrypt(SigningKey.objects.get(state="retired").private_jwk, "x")
        )
        by_kid = {row["kid"]: row["storage"] for row in json.loads(run("key", "list", "--json"))}
        expected = {
            SigningKey.objects.get(state="retired").kid: "plaintext",
            SigningKey.objects.get(state="current").kid: "encrypted with an older key",
            SigningKey.objects.get(state="next").kid: "encrypted",
        }
        assert by_kid == expected
        assert "Run: manage.py oauth_cc key reencrypt" in run("key", "list")
    with encryption_keys(KEY_B):
        text = run("key", "list")
    assert f"{SigningKey.objects.get(state='current').kid}  ES256  current" in text
    assert "private key: undecryptable" in text
    assert "No configured key decrypts the undecryptable keys" in text


def test_reencrypt_names_the_keys_it_cannot_decrypt_and_changes_nothing(db):
    with encryption_keys(KEY_A):
        keys.rotate()
    with encryption_keys(KEY_B):
        keys.rotate()  # one more row, readable under B
        before = raw_rows()
        unreadable = sorted(kid for kid, s in storages().items() if s is Storage.UNREADABLE)
        assert len(unreadable) == 2
        with pytest.raises(CommandError) as raised:
            run("key", "reencrypt")
    message = str(raised.value)
    assert message.startswith("No configured key decrypts signing key(s) ")
    assert all(kid in message for kid in unreadable)
    assert "nothing was changed" in message
    assert raw_rows() == before
    assert not AuditEvent.objects.filter(action=AuditAction.KEYS_REENCRYPTED).exists()


def test_reencrypt_with_an_invalid_setting_is_a_sentence(db):
    keys.ensure_current_key()
    with encryption_keys(12), pytest.raises(CommandError, match=r"KEY_ENCRYPTION_KEYS'\] entry 0 is a int"):
        run("key", "reencrypt")


# -- tampering -----------------------------------------------------------------------------------------


def tampered(stored: str, position: int) -> str:
    token = bytearray(base64.urlsafe_b64decode(fernet_token(stored)))
    token[position] ^= 0x01
    return PREFIX + base64.urlsafe_b64encode(bytes(token)).decode()


@pytest.mark.parametrize("position", [0, 1, 9, 30, -33, -1])  # version, time, IV, body, MAC
def test_tampered_ciphertext_is_refused(db, position):
    row = keys.ensure_current_key()

    with pytest.raises(KeyDecryptionError, match=f"signing key {row.kid}, or it was altered"):
        key_encryption.load_private_key(tampered(row.private_jwk, position), row.kid, row.public_jwk)
    assert key_encryption.storage(tampered(row.private_jwk, position)) is Storage.UNREADABLE


def test_tampered_current_key_gives_503(client, svc):
    row = keys.ensure_current_key()
    SigningKey.objects.filter(kid=row.kid).update(private_jwk=tampered(row.private_jwk, 40))
    new_worker()
    assert_cannot_issue(request_token(client, *svc))


@pytest.mark.parametrize("algorithm", ["none", "HS256", "RS256", "EdDSA", "PS256", "ES384", ""])
def test_an_altered_algorithm_column_is_503_never_another_algorithm(client, svc, caplog, algorithm):
    row = keys.ensure_current_key()  # an ES256 key
    good = issued(client, svc)
    SigningKey.objects.filter(kid=row.kid).update(algorithm=algorithm)
    new_worker()

    response = request_token(client, *svc)

    assert_cannot_issue(response)
    assert f"Signing key {row.kid} is stored with algorithm {algorithm!r}" in caplog.text
    assert accepted(client, good)  # verification uses the public key, unaffected


def test_a_ciphertext_copied_from_another_row_is_refused(db):
    keys.rotate()
    current = SigningKey.objects.get(state="current")
    upcoming = SigningKey.objects.get(state="next")

    with pytest.raises(KeyDecryptionError) as raised:
        key_encryption.load_private_key(current.private_jwk, upcoming.kid, upcoming.public_jwk)
    assert str(raised.value) == (
        f"The private key stored for signing key {upcoming.kid} does not match its public key; "
        "the row was altered. Rotate the signing keys."
    )
    # Same kid claimed but another public key (the public half was swapped).
    with pytest.raises(KeyDecryptionError, match="does not match its public key"):
        key_encryption.load_private_key(current.private_jwk, current.kid, upcoming.public_jwk)


@pytest.mark.parametrize("text", ["not json", "[]", '{"kty": "EC"}'])
def test_a_decrypted_value_that_is_no_jwk_is_refused_by_kid(text):
    with pytest.raises(KeyDecryptionError) as raised:
        key_encryption.load_private_key(key_encryption.encrypt(text), "kid1", {})
    assert str(raised.value) == "The private key of signing key kid1 is not a valid JWK."


def test_an_undecryptable_value_says_which_keys_to_restore(db):
    with pytest.raises(KeyDecryptionError) as raised:
        key_encryption.decrypt("fernet:v1:" + "A" * 100, "kid1")
    assert str(raised.value) == (
        "No key in OAUTH_CC['KEY_ENCRYPTION_KEYS'] (or derived from SECRET_KEY and "
        "SECRET_KEY_FALLBACKS) decrypts the private key of signing key kid1, or it was altered. "
        "Add the key it was encrypted with to OAUTH_CC['KEY_ENCRYPTION_KEYS'] (or restore the "
        "SECRET_KEY to SECRET_KEY_FALLBACKS), or rotate the signing keys."
    )


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("fernet:v1:" + "A" * 100, "decrypts the private key of signing key kid1, or it was altered"),
        ("fernet:v2:" + "A" * 100, "signing key kid1 is in an unknown format"),
    ],
)
def test_reencrypt_of_an_unreadable_value_names_its_kid(stored, reason):
    with pytest.raises(KeyDecryptionError, match=reason):
        key_encryption.reencrypt(stored, "kid1")


UNKNOWN_FORMAT = "signing key kid1 is in an unknown format"
NOT_DECRYPTED = "decrypts the private key of signing key kid1, or it was altered"


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("fernet:v2:" + "A" * 100, UNKNOWN_FORMAT),
        ("fernet:v1:", NOT_DECRYPTED),
        ("fernet:v1:not base64!", NOT_DECRYPTED),
        ("gAAAAABk", UNKNOWN_FORMAT),
        ("", UNKNOWN_FORMAT),
        ("null", UNKNOWN_FORMAT),
    ],
)
def test_values_in_no_known_format_are_refused(db, stored, reason):
    with pytest.raises(KeyDecryptionError, match=reason):
        key_encryption.decrypt(stored, "kid1")
    assert key_encryption.storage(stored) is Storage.UNREADABLE


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.text(max_size=200).map(lambda s: PREFIX + s))
def test_any_stored_value_either_decrypts_or_is_refused_cleanly(stored):
    try:
        key_encryption.decrypt(stored, "kid1")
    except KeyDecryptionError as exc:
        assert "kid1" in str(exc)
    key_encryption.storage(stored)  # never raises


@hypothesis_settings(max_examples=50, deadline=None)
@given(st.text(max_size=500))
def test_encryption_round_trips_any_text(text):
    stored = key_encryption.encrypt("{" + text)
    assert stored.startswith(PREFIX)
    assert key_encryption.decrypt(stored, "kid1") == "{" + text


# -- plaintext rows left over ----------------------------------------------------------------------------


@pytest.mark.parametrize("lead", [" ", "\n", "\t \r\n"])
def test_a_plaintext_row_with_leading_whitespace_is_still_plaintext(db, lead):
    # A JSON value edited by hand or by a tool may start with whitespace; it is still
    # plain JSON, readable and reported as such, not an "unknown format".
    text = lead + '{"kty": "oct", "k": "AAAA"}'
    assert key_encryption.is_plaintext(text)
    assert key_encryption.decrypt(text, "kid1") == text
    assert key_encryption.storage(text) is Storage.PLAINTEXT


def make_plaintext(kid: str) -> None:
    row = SigningKey.objects.get(kid=kid)
    SigningKey.objects.filter(kid=kid).update(private_jwk=key_encryption.decrypt(row.private_jwk, kid))


def test_a_plaintext_row_still_signs_and_is_reported(client, svc, caplog):
    kid = keys.ensure_current_key().kid
    make_plaintext(kid)
    new_worker()

    with caplog.at_level(logging.WARNING, logger="oauth_cc.keys"):
        assert accepted(client, issued(client, svc))
    assert f"Signing key {kid} is stored unencrypted; run: manage.py oauth_cc key reencrypt" in caplog.text
    assert storages()[kid] is Storage.PLAINTEXT
    warning = [m for m in check_stored_keys(databases=["default"]) if m.id == "oauth_cc.W006"]
    assert len(warning) == 1 and kid in warning[0].msg

    assert "Re-encrypted 1 of 2" in run("key", "reencrypt")
    assert storages()[kid] is Storage.ENCRYPTED
    assert check_stored_keys(databases=["default"]) == []


# -- checks ----------------------------------------------------------------------------------------------


def e010(value: Any) -> list[Any]:
    with override_settings(OAUTH_CC={"ISSUER": "https://auth.example.com", "KEY_ENCRYPTION_KEYS": value}):
        return [m for m in check_settings() if m.id == "oauth_cc.E012"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (KEY_A, "must be a list of keys, not a str"),
        ({"a": KEY_A}, "must be a list of keys, not a dict"),
        ([], "is an empty list"),
        ([KEY_A, 5], "entry 1 is a int, not a string"),
        ([KEY_A[:-4]], "entry 0 decodes to 30 bytes, not 32"),
        ([KEY_A[:43] + "AAAA="], "entry 0 decodes to 35 bytes, not 32"),
        (["*" * 44], "entry 0 is not urlsafe base64"),
        ([KEY_A[:-2] + " ="], "entry 0 is not urlsafe base64"),
        (["+" + KEY_A[1:]], "entry 0 is not urlsafe base64"),
        (["A" * 43], "entry 0 is not urlsafe base64"),  # the alphabet, but a length no base64 has
        ([b"\xff" * 44], "entry 0 is not ASCII"),
        ([settings.SECRET_KEY], "entry 0"),
    ],
)
def test_e010_says_what_is_wrong_without_showing_the_key(value, says):
    found = e010(value)
    assert len(found) == 1
    assert says in found[0].msg
    assert found[0].msg.startswith("OAUTH_CC['KEY_ENCRYPTION_KEYS'] ")
    assert "generate-encryption-key" in found[0].hint
    for entry in value if isinstance(value, list) else [value]:
        assert str(entry)[:20] not in found[0].msg + found[0].hint


@pytest.mark.parametrize("value", [None, [KEY_A], (KEY_A, KEY_B), [KEY_A.encode()]])
def test_e010_accepts_valid_settings(value):
    assert e010(value) == []


def test_w005_deploy_warning_only_with_the_default_derivation():
    assert check_key_encryption_deploy in registry.get_checks(include_deployment_checks=True)
    assert check_key_encryption_deploy not in registry.get_checks(include_deployment_checks=False)
    with encryption_keys():
        assert [m.id for m in check_key_encryption_deploy()] == ["oauth_cc.W107"]
        assert "derived from SECRET_KEY" in check_key_encryption_deploy()[0].msg
    with encryption_keys(KEY_A):
        assert check_key_encryption_deploy() == []


def test_w005_appears_in_check_deploy():
    out = StringIO()
    with encryption_keys():
        call_command("check", "--deploy", stdout=out, stderr=out, fail_level="CRITICAL")
    assert "oauth_cc.W107" in out.getvalue()


def test_e011_names_keys_no_configured_key_decrypts(db):
    with encryption_keys(KEY_A):
        keys.ensure_current_key()
        assert check_stored_keys(databases=["default"]) == []
    with encryption_keys(KEY_C):
        found = check_stored_keys(databases=["default"])
        assert check_stored_keys(databases=None) == []  # a database check: only when asked
    assert [m.id for m in found] == ["oauth_cc.E013"]
    for kid in SigningKey.objects.values_list("kid", flat=True):
        assert kid in found[0].msg
    assert "OAUTH_CC['KEY_ENCRYPTION_KEYS']" in found[0].hint
    assert KEY_A not in found[0].msg + found[0].hint


def test_unreadable_retired_keys_are_a_warning_not_an_error(db):
    with encryption_keys(KEY_A):
        keys.rotate()
    with encryption_keys(KEY_B):
        keys.rotate()
        keys.rotate()  # current and next now under B; the two A keys are retired
        retired = sorted(SigningKey.objects.filter(state="retired").values_list("kid", flat=True))
        found = check_stored_keys(databases=["default"])
    assert [m.id for m in found] == ["oauth_cc.W007"]
    assert found[0].msg == f"No configured key decrypts retired signing key(s) {', '.join(retired)}."


def test_database_check_leaves_an_invalid_setting_to_e010(db):
    keys.ensure_current_key()
    with encryption_keys("nonsense"):
        assert check_stored_keys(databases=["default"]) == []


def test_encrypting_with_an_invalid_setting_raises_a_sentence(db):
    bad = override_settings(OAUTH_CC={**settings.OAUTH_CC, "KEY_ENCRYPTION_KEYS": KEY_A})
    with bad, pytest.raises(ImproperlyConfigured, match="must be a list of keys, not a str"):
        keys.ensure_current_key()
    assert not SigningKey.objects.exists()


# -- generate-encryption-key ----------------------------------------------------------------------------


def test_generate_encryption_key_prints_a_new_valid_key(db):
    first, second = (
        run("key", "generate-encryption-key").strip(),
        run("key", "generate-encryption-key").strip(),
    )

    assert first != second
    assert key_encryption.key_problem(first) == ""
    assert len(base64.urlsafe_b64decode(first)) == 32
    with encryption_keys(first):
        assert raw_rows() == {} and keys.ensure_current_key()
        assert set(storages().values()) == {Storage.ENCRYPTED}


# -- admin ---------------------------------------------------------------------------------------------


def test_admin_shows_storage_but_never_the_ciphertext_or_key(admin_client, db):
    row = keys.ensure_current_key()
    make_plaintext(row.kid)
    private_d = json.loads(SigningKey.objects.get(kid=row.kid).private_jwk)["d"]
    keys.rotate()

    page = admin_client.get("/admin/oauth_cc/signingkey/").content.decode()

    assert "plaintext" in page and "encrypted" in page
    assert private_d not in page
    for stored in raw_rows().values():
        assert stored[len(PREFIX) :][:40] not in page


# -- the data migration ----------------------------------------------------------------------------------


BEFORE = [("oauth_cc", "0005_limits")]
AFTER = [("oauth_cc", "0006_signing_key_encryption")]


def latest() -> list[tuple[str, str]]:
    """The app's newest migration: where every test must leave the schema for the next ones."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes("oauth_cc")


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.migrations
@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_plaintext_rows_and_is_reversible():
    plain_jwk = keys.generate_jwk("ES256")
    plaintext = plain_jwk.export_private()
    try:
        old_apps = migrate(BEFORE)
        OldKey = old_apps.get_model("oauth_cc", "SigningKey")
        OldKey.objects.create(
            kid=plain_jwk["kid"],
            algorithm="ES256",
            state="current",
            private_jwk=plaintext,
            public_jwk=json.loads(plain_jwk.export_public()),
        )

        migrate(AFTER)
        stored = raw_rows()[plain_jwk["kid"]]
        assert stored.startswith(PREFIX) and '"d"' not in stored
        new_worker()
        assert keys.key_store.signer().kid == plain_jwk["kid"]
        token = keys.key_store.signer().sign(b'{"a":1}')
        public = jwt.PyJWK(json.loads(plain_jwk.export_public())).key
        assert jwt.decode(token, public, algorithms=["ES256"]) == {"a": 1}

        migrate(AFTER)  # applying again (already applied) changes nothing
        assert raw_rows()[plain_jwk["kid"]] == stored

        migrate(BEFORE)
        assert json.loads(raw_rows()[plain_jwk["kid"]]) == json.loads(plaintext)
    finally:
        migrate(latest())
        new_worker()


@pytest.mark.migrations
@pytest.mark.django_db(transaction=True)
def test_migration_backwards_refuses_undecryptable_rows_and_changes_nothing():
    try:
        with encryption_keys(KEY_A):
            migrate(AFTER)
            keys.rotate()
        before = raw_rows()
        with encryption_keys(KEY_C), pytest.raises(RuntimeError, match="Cannot decrypt signing key"):
            migrate(BEFORE)
        assert raw_rows() == before
    finally:
        with encryption_keys(KEY_A):
            migrate(AFTER)
        new_worker()


@pytest.mark.migrations
@pytest.mark.django_db(transaction=True)
def test_migration_forwards_leaves_encrypted_rows_alone():
    try:
        migrate(BEFORE)
        with encryption_keys(KEY_A):
            # A row written by new code on a database whose migration record says 0002.
            apps_0002 = migrate(BEFORE)
            jwk_ = keys.generate_jwk("ES256")
            apps_0002.get_model("oauth_cc", "SigningKey").objects.create(
                kid=jwk_["kid"],
                algorithm="ES256",
                state="next",
                private_jwk=key_encryption.encrypt(jwk_.export_private()),
                public_jwk=json.loads(jwk_.export_public()),
            )
            before = raw_rows()
            migrate(AFTER)
            assert raw_rows() == before
    finally:
        migrate(latest())
        new_worker()
