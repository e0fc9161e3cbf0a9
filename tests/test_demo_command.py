"""``manage.py demo``: idempotent set-up of the example project, with credentials that work."""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
import tempfile
from io import StringIO
from pathlib import Path
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from example_project.demo.management.commands import demo as demo_command
from oauth_cc.models import Application, Scope

from .conftest import basic_auth, form_post


def demo(*args: str) -> str:
    out = StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def demo_json() -> dict[str, Any]:
    return json.loads(demo("--json"))


def test_demo_is_idempotent(db):
    first = demo_json()
    second = demo_json()

    assert Application.objects.filter(name="demo-client").count() == 1
    assert first["client_id"] == second["client_id"]
    assert first["client_secret"] != second["client_secret"]
    assert dict(Scope.objects.values_list("name", "is_default")) == {
        "reports:read": True,
        "reports:write": False,
    }
    application = Application.objects.get(name="demo-client")
    assert sorted(application.scopes.values_list("name", flat=True)) == ["reports:read", "reports:write"]
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_demo_credentials_work_and_a_rerun_retires_the_previous_secret(db, client, token_for):
    first = demo_json()
    second = demo_json()
    application = Application.objects.get(client_id=second["client_id"])

    token = token_for(application, second["client_secret"], scope="reports:read reports:write")[
        "access_token"
    ]
    stale = form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(first["client_id"], first["client_secret"]),
    )

    assert stale.json()["error"] == "invalid_client"
    whoami = client.get("/api/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert whoami.json() == {"client_id": application.client_id, "scopes": ["reports:read", "reports:write"]}
    created = client.post(
        "/api/reports/",
        {"title": "t", "body": "b"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert created.status_code == 201


def test_demo_text_output_gives_a_working_walkthrough(db, client, token_for):
    output = demo()

    values = dict(re.findall(r"^(ISSUER|CLIENT_ID|CLIENT_SECRET)=(\S+)$", output, re.MULTILINE))
    application = Application.objects.get(client_id=values["CLIENT_ID"])
    assert values["ISSUER"] == "http://testserver"
    assert token_for(application, values["CLIENT_SECRET"])["scope"] == "reports:read"
    for path in (
        "/oauth/token/",
        "/api/whoami/",
        "/api/reports/",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ):
        assert f"$ISSUER{path}" in output
    assert "scope=reports:read reports:write" in output


def test_demo_creates_an_admin_only_when_no_superuser_exists(db, client):
    output = demo()
    password = re.search(r"user: admin  password: (\S+)", output).group(1)
    assert client.login(username="admin", password=password)

    again = demo_json()

    assert again["admin_password"] is None
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


@pytest.mark.parametrize(
    "changed", [{"is_active": False}, {"token_endpoint_auth_method": "client_secret_post"}]
)
def test_demo_restores_a_demo_client_changed_in_the_admin(db, token_for, changed):
    demo_json()
    Application.objects.filter(name="demo-client").update(**changed)

    credentials = demo_json()

    application = Application.objects.get(client_id=credentials["client_id"])
    assert token_for(application, credentials["client_secret"])


def test_demo_records_its_credential_changes_in_the_audit_trail(db):
    from oauth_cc.models import AuditAction, AuditEvent

    first = demo_json()
    demo_json()

    events = list(AuditEvent.objects.filter(object_id=first["client_id"]).order_by("id"))
    assert [event.action for event in events] == [AuditAction.CLIENT_CREATED, AuditAction.SECRET_ROTATED]
    assert all(event.actor.startswith("cli:") for event in events)
    assert first["client_secret"] not in json.dumps([event.changes for event in events])


# --- The resource-only service's client and audience -------------------------------------------

FEED = "/oauth/revocation-feed/"
RESOURCE = "http://127.0.0.1:8001"


def feed(client, client_id: str, secret: str):
    return client.get(FEED, HTTP_AUTHORIZATION=basic_auth(client_id, secret))


def token_request(client, credentials: dict[str, Any], **params: str):
    return form_post(
        client,
        "/oauth/token/",
        {"grant_type": "client_credentials", **params},
        HTTP_AUTHORIZATION=basic_auth(credentials["client_id"], credentials["client_secret"]),
    )


def audience(response) -> str:
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})["aud"]


def sourced(path: Path, *names: str) -> list[str]:
    """The values ``sh`` gets from ``. path``, as make demo reads the file."""
    script = '. "$1"; shift; for name; do eval "printf \'%s\\0\' \\"\\$$name\\""; done'
    done = subprocess.run(
        ["sh", "-c", script, "sh", str(path), *names], capture_output=True, check=True, timeout=30
    )
    return done.stdout.decode().split("\0")[:-1]


def test_demo_creates_a_resource_service_client_that_may_read_the_revocation_feed(db, client):
    service = demo_json()["resource_service"]

    application = Application.objects.get(client_id=service["client_id"])
    assert (application.name, application.can_introspect) == ("resource-service", True)
    assert service["url"] == RESOURCE
    answer = feed(client, service["client_id"], service["client_secret"])
    assert answer.status_code == 200
    assert answer.json()["issuer"] == "http://testserver"


def test_demo_reuses_the_resource_service_client_and_retires_its_previous_secret(db, client):
    first = demo_json()["resource_service"]
    second = demo_json()["resource_service"]

    assert Application.objects.filter(name="resource-service").count() == 1
    assert first["client_id"] == second["client_id"]
    assert first["client_secret"] != second["client_secret"]
    stale = feed(client, first["client_id"], first["client_secret"])
    assert (stale.status_code, stale.json()["error"]) == (401, "invalid_client")
    assert feed(client, second["client_id"], second["client_secret"]).status_code == 200


@pytest.mark.parametrize(
    "changed",
    [{"is_active": False}, {"can_introspect": False}, {"token_endpoint_auth_method": "client_secret_post"}],
)
def test_demo_restores_a_resource_service_client_changed_in_the_admin(db, client, changed):
    demo_json()
    Application.objects.filter(name="resource-service").update(**changed)

    service = demo_json()["resource_service"]

    assert feed(client, service["client_id"], service["client_secret"]).status_code == 200


def test_demo_client_may_ask_for_the_resource_service_and_keeps_the_issuer_as_default(db, client):
    credentials = demo_json()

    assert credentials["audiences"] == ["http://testserver", RESOURCE]
    assert audience(token_request(client, credentials, resource=RESOURCE)) == RESOURCE
    assert audience(token_request(client, credentials)) == "http://testserver"
    other = token_request(client, credentials, resource="http://127.0.0.1:8002")
    assert (other.status_code, other.json()) == (
        400,
        {
            "error": "invalid_target",
            "error_description": "This client may not request tokens for that resource.",
        },
    )


def test_demo_takes_the_resource_url_and_restores_the_audiences_on_a_rerun(db, client):
    demo_json()
    Application.objects.filter(name="demo-client").update(audiences=["https://elsewhere.example"])

    credentials = json.loads(demo("--json", "--resource-url", "https://reports.example"))

    assert credentials["resource_service"]["url"] == "https://reports.example"
    assert audience(token_request(client, credentials, resource="https://reports.example")) == (
        "https://reports.example"
    )
    assert audience(token_request(client, credentials)) == "http://testserver"


@pytest.mark.parametrize("url", ["127.0.0.1:8001", "http://127.0.0.1:8001/#top", "", "http://a b"])
def test_demo_refuses_a_resource_url_that_is_no_absolute_uri_and_changes_nothing(db, url):
    with pytest.raises(CommandError) as raised:
        demo("--resource-url", url)

    assert str(raised.value) == (
        f'--resource-url "{url}" is not an absolute URI without a fragment; '
        "give the resource service's URL, such as http://127.0.0.1:8001."
    )
    assert not Application.objects.exists()


def test_demo_text_output_walks_through_the_resource_service(db, client):
    output = demo()

    assert re.search(rf"^RESOURCE={re.escape(RESOURCE)}$", output, re.MULTILINE)
    assert '--data-urlencode "resource=$RESOURCE" "$ISSUER/oauth/token/"' in output
    assert '"Authorization: Bearer $RTOKEN" "$RESOURCE/api/whoami/"' in output
    assert '"Authorization: Bearer $RTOKEN" "$RESOURCE/api/reports/"' in output
    # Without --resource-env the service's secret is printed, once, ready to paste.
    values = dict(re.findall(r"^export (OAUTH_CC_\w+)=(\S+)$", output, re.MULTILINE))
    assert values["OAUTH_CC_RESOURCE_IDENTIFIER"] == RESOURCE
    answer = feed(client, values["OAUTH_CC_RESOURCE_CLIENT_ID"], values["OAUTH_CC_RESOURCE_CLIENT_SECRET"])
    assert answer.status_code == 200
    assert "runserver 127.0.0.1:8001" in output


def test_demo_resource_env_writes_the_secret_to_a_private_file_only(db, client, tmp_path):
    env_file = tmp_path / "resource.env"
    env_file.write_text("stale\n")
    env_file.chmod(0o644)

    output = demo("--resource-env", str(env_file))
    credentials = json.loads(demo("--json", "--resource-env", str(env_file)))

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    names = (
        "OAUTH_CC_ISSUER",
        "OAUTH_CC_RESOURCE_IDENTIFIER",
        "OAUTH_CC_RESOURCE_CLIENT_ID",
        "OAUTH_CC_RESOURCE_CLIENT_SECRET",
    )
    issuer, identifier, client_id, secret = sourced(env_file, *names)
    assert (issuer, identifier) == ("http://testserver", RESOURCE)
    service = credentials["resource_service"]
    assert (service["client_id"], service["client_secret"], service["env_file"]) == (
        client_id,
        None,
        str(env_file),
    )
    assert feed(client, client_id, secret).status_code == 200  # the second run's secret
    assert "OAUTH_CC_RESOURCE_CLIENT_SECRET" not in output
    assert f"are in {env_file} (mode 0600)" in output
    assert [p.name for p in tmp_path.iterdir()] == ["resource.env"]  # no temporary file left


def test_demo_resource_env_in_a_missing_directory_is_refused_before_any_change(db, tmp_path):
    with pytest.raises(CommandError) as raised:
        demo("--resource-env", str(tmp_path / "missing" / "resource.env"))

    assert str(raised.value) == (
        f"--resource-env: the directory {tmp_path / 'missing'} does not exist; create it or give "
        "a file in an existing directory."
    )
    assert not Application.objects.exists()


def test_demo_keeps_the_previous_secrets_when_the_resource_env_cannot_be_written(
    db, client, tmp_path, monkeypatch
):
    before = demo_json()

    def refuse(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(demo_command, "write_private_file", refuse)
    with pytest.raises(CommandError) as raised:
        demo("--resource-env", str(tmp_path / "resource.env"))

    assert str(raised.value) == (
        f"Could not write {tmp_path / 'resource.env'}: Permission denied. Give a file in a "
        "directory you may write to."
    )
    service = before["resource_service"]
    assert feed(client, service["client_id"], service["client_secret"]).status_code == 200
    assert audience(token_request(client, before)) == "http://testserver"


#: A URL the demo accepts (no $, quote, backquote or backslash) that runs commands in an unquoted
#: shell word: each ``touch>pwned`` creates the file ``pwned`` through its redirection.
SHELL_URL = "http://127.0.0.1:8001/a;touch>pwned&(touch>pwned)|touch>pwned"


def test_demo_resource_env_quotes_a_hostile_resource_url_so_sourcing_runs_nothing(db, tmp_path):
    # Attack class: shell injection through a value written into a file that sh sources.
    env_file = tmp_path / "resource.env"

    demo("--resource-url", SHELL_URL, "--resource-env", str(env_file))

    assert sourced(env_file, "OAUTH_CC_RESOURCE_IDENTIFIER") == [SHELL_URL]
    assert not (tmp_path / "pwned").exists()
    assert not Path("pwned").exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001/$(touch${IFS}pwned)",
        "http://127.0.0.1:8001/`touch${IFS}pwned`",
        "http://127.0.0.1:8001/';touch>pwned;'",
        'http://127.0.0.1:8001/";touch>pwned;"',
        "http://127.0.0.1:8001/\\",
    ],
)
def test_demo_refuses_a_resource_url_with_shell_quoting_characters_and_changes_nothing(db, url):
    with pytest.raises(CommandError) as raised:
        demo("--resource-url", url)

    assert str(raised.value) == (
        f'--resource-url "{url}" contains $, a backquote, a quote or a backslash; give the resource '
        "service's plain URL, such as http://127.0.0.1:8001."
    )
    assert not Application.objects.exists()


def pasted(output: str, directory: Path, *names: str) -> list[str]:
    """Paste the walkthrough's assignment lines into ``sh`` in ``directory``: the values it gets."""
    lines = [
        line for line in output.splitlines() if re.match(r"^(ISSUER|RESOURCE|CLIENT_ID|CLIENT_SECRET)=", line)
    ]
    assert len(lines) == 4, output
    script = "\n".join(lines) + "\n" + "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    done = subprocess.run(["sh", "-c", script], cwd=directory, capture_output=True, check=True, timeout=30)
    return done.stdout.decode().split("\0")[:-1]


def test_demo_walkthrough_quotes_the_resource_url_so_pasting_runs_nothing(db, tmp_path):
    # Attack class: shell injection through a value printed into lines a person pastes into sh.
    output = demo("--resource-url", SHELL_URL)

    assert pasted(output, tmp_path, "RESOURCE", "ISSUER") == [SHELL_URL, "http://testserver"]
    assert not (tmp_path / "pwned").exists()


def test_demo_walkthrough_quotes_the_issuer_so_pasting_runs_nothing(db, tmp_path, settings):
    issuer = "http://testserver/$(touch${IFS}pwned)`touch${IFS}pwned`'\""
    settings.OAUTH_CC = {**settings.OAUTH_CC, "ISSUER": issuer}

    output = demo()

    assert pasted(output, tmp_path, "ISSUER", "RESOURCE") == [issuer, RESOURCE]
    assert not (tmp_path / "pwned").exists()


def test_demo_runserver_line_quotes_the_resource_host(db):
    output = demo("--resource-url", "http://127.0.0.1:8001;touch>pwned/")

    line = next(line for line in output.splitlines() if "manage.py runserver" in line)
    # punctuation_chars: an unquoted ";" or ">" would end the word, as in sh.
    words = list(shlex.shlex(line, posix=True, punctuation_chars=True))
    assert words[-1] == "127.0.0.1:8001;touch>pwned"


def test_demo_resource_env_that_is_a_symbolic_link_is_refused_before_any_change(db, tmp_path):
    # Attack class: a link planted where the secret-bearing file goes, to replace its target.
    target = tmp_path / "important.txt"
    target.write_text("important\n")
    target.chmod(0o644)
    link = tmp_path / "resource.env"
    link.symlink_to(target)

    with pytest.raises(CommandError) as raised:
        demo("--resource-env", str(link))

    assert str(raised.value) == (
        f"--resource-env: {link} is a symbolic link; give the path of the file itself (the secret is "
        "never written through a link)."
    )
    assert target.read_text() == "important\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink()
    assert not Application.objects.exists()


def test_demo_resource_env_in_a_linked_directory_is_written_in_the_directory(db, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)

    demo("--resource-env", str(tmp_path / "linked" / "resource.env"))

    assert (real / "resource.env").is_file() and not (real / "resource.env").is_symlink()


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["A", "B_1", "OAUTH_CC_X"]),
        st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",))),
    )
)
def test_env_file_text_reads_back_exactly_in_sh(values):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "values.env"
        path.write_text(demo_command.env_file_text(values), encoding="utf-8")

        assert sourced(path, *values) == list(values.values())


def test_demo_refuses_a_resource_url_with_only_a_backquote(db):
    url = "http://127.0.0.1:8001/`touch>pwned`"
    with pytest.raises(CommandError) as raised:
        demo("--resource-url", url)

    assert str(raised.value) == (
        f'--resource-url "{url}" contains $, a backquote, a quote or a backslash; give the resource '
        "service's plain URL, such as http://127.0.0.1:8001."
    )
    assert not Application.objects.exists()


def test_demo_walkthrough_quotes_a_client_id_changed_in_the_admin_and_the_secret(db, tmp_path, monkeypatch):
    # Attack class: shell injection through values the demo does not choose. The client_id is
    # free text an operator may edit, and is kept on a rerun; the secret's alphabet is the
    # generator's, which the quoting must not depend on.
    demo()
    hostile_id = "demo;touch>pwned$(touch${IFS}pwned)"
    Application.objects.filter(name=demo_command.CLIENT_NAME).update(client_id=hostile_id)
    from oauth_cc.issuer import clients

    issued: list[str] = []

    def hostile_secret() -> str:
        issued.append(f"s3cret{len(issued)};touch>pwned`touch${{IFS}}pwned`'\"")
        return issued[-1]

    monkeypatch.setattr(clients, "generate_secret", hostile_secret)

    output = demo()

    assert pasted(output, tmp_path, "CLIENT_ID", "CLIENT_SECRET") == [hostile_id, issued[0]]
    assert not (tmp_path / "pwned").exists()


def test_write_private_file_leaves_no_temporary_copy_of_the_secret_when_it_fails(tmp_path, monkeypatch):
    def refuse(source: str, destination: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(demo_command.os, "replace", refuse)
    with pytest.raises(PermissionError):
        demo_command.write_private_file(tmp_path / "resource.env", "export SECRET=s3cret\n")

    assert list(tmp_path.iterdir()) == []
