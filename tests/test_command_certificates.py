"""``oauth_cc client update`` for mutual TLS (RFC 8705): the registered certificate name and
certificate-bound tokens, audited, checked like the admin form, and shown by ``client show``."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from oauth_cc.models import Application, AuditEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("oauth_cc", *args, stdout=out)
    return out.getvalue()


def create(*args: str) -> str:
    return str(json.loads(run("client", "create", "svc", *args, "--json"))["client_id"])


def stored(client_id: str) -> tuple[str, str, bool, bool, str]:
    a = Application.objects.get(client_id=client_id)
    return (
        a.tls_client_auth_subject_dn,
        a.tls_client_auth_san_dns,
        a.tls_client_certificate_bound_access_tokens,
        a.require_dpop,
        a.token_limit,
    )


def last_change(client_id: str) -> Any:
    event = AuditEvent.objects.filter(object_id=client_id).order_by("pk").last()
    return event.action, event.changes


def test_update_switches_a_tls_client_auth_client_from_subject_dn_to_dns_name() -> None:
    client_id = create("--tls-subject-dn", "CN=billing,O=Example")
    out = run("client", "update", client_id, "--tls-san-dns", "Billing.Example.com")
    assert out == (
        f"Certificate of {client_id}: DNS name Billing.Example.com; certificate-bound tokens: no.\n"
    )
    assert stored(client_id) == ("", "Billing.Example.com", False, False, "")
    assert last_change(client_id) == (
        "client_changed",
        {
            "tls_client_auth_subject_dn": {"old": "CN=billing,O=Example", "new": ""},
            "tls_client_auth_san_dns": {"old": "", "new": "Billing.Example.com"},
        },
    )
    run("client", "update", client_id, "--tls-subject-dn", "CN=billing-2,O=Example")
    assert stored(client_id)[:2] == ("CN=billing-2,O=Example", "")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--tls-subject-dn", "billing"),
            'Not an RFC 4514 distinguished name; write it like "CN=billing,O=Example" '
            "(most specific first, no spaces around commas, known attribute names in capitals).",
        ),
        (
            ("--tls-subject-dn", ""),
            "A tls_client_auth client needs exactly one of: the certificate's subject DN, DNS "
            "name, URI, IP address or email address (RFC 8705, section 2.1.2).",
        ),
        (
            ("--tls-subject-dn", "CN=a", "--tls-san-dns", "a.example.com"),
            "A tls_client_auth client needs exactly one of: the certificate's subject DN, DNS "
            "name, URI, IP address or email address (RFC 8705, section 2.1.2).",
        ),
    ],
)
def test_a_refused_certificate_name_changes_nothing(options: tuple[str, ...], message: str) -> None:
    client_id = create("--tls-subject-dn", "CN=billing,O=Example")
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError) as raised:
        run("client", "update", client_id, *options, "--token-limit", "10/minute")
    assert str(raised.value) == message
    assert stored(client_id) == ("CN=billing,O=Example", "", False, False, "")
    assert AuditEvent.objects.count() == events


def test_a_secret_client_cannot_get_a_certificate_name() -> None:
    client_id = create()
    with pytest.raises(CommandError) as raised:
        run("client", "update", client_id, "--tls-san-dns", "svc.example.com")
    assert str(raised.value) == (
        "The certificate's subject DN, DNS name, URI, IP address or email address is only "
        "used by tls_client_auth clients; clear it or change the method."
    )
    assert stored(client_id) == ("", "", False, False, "")


def test_certificate_bound_tokens_on_and_off_are_audited_and_shown() -> None:
    client_id = create()
    out = run("client", "update", client_id, "--cert-bound-tokens")
    assert out.endswith("certificate-bound tokens: yes.\n")
    assert stored(client_id) == ("", "", True, False, "")
    assert last_change(client_id) == (
        "client_changed",
        {"tls_client_certificate_bound_access_tokens": {"old": False, "new": True}},
    )
    assert "cert-bound tokens:   True\n" in run("client", "show", client_id)
    run("client", "update", client_id, "--no-cert-bound-tokens")
    assert stored(client_id) == ("", "", False, False, "")
    assert last_change(client_id)[1] == {
        "tls_client_certificate_bound_access_tokens": {"old": True, "new": False}
    }
    events = AuditEvent.objects.count()
    run("client", "update", client_id, "--no-cert-bound-tokens")  # no change, no event
    assert AuditEvent.objects.count() == events


def test_certificate_bound_tokens_and_require_dpop_exclude_each_other() -> None:
    client_id = create("--require-dpop")
    with pytest.raises(CommandError) as raised:
        run("client", "update", client_id, "--cert-bound-tokens")
    assert str(raised.value) == (
        "This client requires DPoP-bound tokens, so its tokens cannot also be bound to its "
        "certificate; turn one off (--no-require-dpop or --no-cert-bound-tokens)."
    )
    assert stored(client_id) == ("", "", False, True, "")
    # Both in one call: DPoP off first, then the binding.
    run("client", "update", client_id, "--no-require-dpop", "--cert-bound-tokens")
    assert stored(client_id) == ("", "", True, False, "")
    with pytest.raises(CommandError) as raised:
        run("client", "update", client_id, "--require-dpop", "--token-limit", "5/minute")
    assert str(raised.value) == (
        "This client's tokens are bound to its certificate, so it cannot also require DPoP-bound "
        "tokens; turn one off (--no-cert-bound-tokens or --no-require-dpop)."
    )
    assert stored(client_id) == ("", "", True, False, "")  # the token limit was not applied either


def test_nothing_to_change_names_every_option() -> None:
    client_id = create()
    with pytest.raises(CommandError) as raised:
        run("client", "update", client_id)
    assert str(raised.value) == (
        "Nothing to change: give --token-limit RATE (or --token-limit none), "
        "--require-dpop / --no-require-dpop, --tls-subject-dn DN, --tls-san-dns NAME, "
        "--tls-san-uri URI, --tls-san-ip ADDRESS, --tls-san-email ADDRESS, "
        "or --cert-bound-tokens / --no-cert-bound-tokens."
    )


def test_show_lists_require_dpop_and_the_certificate_fields() -> None:
    client_id = create("--tls-subject-dn", "CN=billing,O=Example", "--cert-bound-tokens")
    text = run("client", "show", client_id)
    for line in (
        "auth method:         tls_client_auth",
        "require DPoP:        False",
        "certificate subject: CN=billing,O=Example",
        "certificate SAN DNS: -",
        "certificate SAN URI: -",
        "certificate SAN IP:  -",
        "cert SAN email:      -",
        "cert-bound tokens:   True",
    ):
        assert line + "\n" in text, text
    shown = json.loads(run("client", "show", client_id, "--json"))
    assert {k: shown[k] for k in shown if k.startswith(("tls_", "require_"))} == {
        "require_dpop": False,
        "tls_client_auth_subject_dn": "CN=billing,O=Example",
        "tls_client_auth_san_dns": None,
        "tls_client_auth_san_uri": None,
        "tls_client_auth_san_ip": None,
        "tls_client_auth_san_email": None,
        "tls_client_certificate_bound_access_tokens": True,
    }
