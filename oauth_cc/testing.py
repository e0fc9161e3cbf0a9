"""Issuer side: pytest fixtures for sites that use oauth_cc: API clients and signed access tokens, no token
endpoint.

Registered as a pytest plugin (entry point ``pytest11`` named ``oauth_cc.testing``), so a project
with oauth-cc installed gets three fixtures; ``-p no:oauth_cc.testing`` turns them off:

- ``oauth_cc_client(scopes=[...], **fields) -> (application, secret)``
- ``oauth_cc_token(*scopes, client=None, resource=None, **extra_claims) -> str``
- ``oauth_cc_api_client(*scopes, client=None, resource=None, **extra_claims) -> APIClient``

A token is built the way the token endpoint builds it (:mod:`oauth_cc.issuer.issuance`'s scope and
audience rules, the client's lifetime, :func:`oauth_cc.common.tokens.build_claims`, the site's claims
hook) and signed by :func:`oauth_cc.common.tokens.sign` with the site's own current key, so it has the
site's ``iss``, ``aud``, ``typ`` and ``kid``, and the site's DRF classes judge it like any other.
What the token endpoint would refuse (a scope the client does not have, a disabled client, a
resource it may not ask for, a claims hook's refusal) raises :class:`KitError` instead of
producing a token.

``extra_claims`` add claims, as the claims hook does, or replace ``iss``, ``aud``, ``exp``,
``iat``, ``nbf`` or ``jti``: that is how a test gets a token the site must refuse (an expired
one, another issuer's); the token is still signed with the site's key, and the site's verifier
decides. ``client_id``, ``sub`` and ``scope`` cannot be replaced (pass ``client=`` and scopes).

This module imports nothing from Django or oauth_cc until a fixture is used: the plugin loads in
every pytest run where oauth-cc is installed, including projects without Django settings, and
only the fixtures, when used there, fail with a message saying what is missing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

#: Claims a test may replace to get a token the site refuses (or another valid audience).
REPLACEABLE_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti"})
#: Claims that name the client and what it may do: set through ``client=`` and the scopes.
FIXED_CLAIMS = frozenset({"client_id", "sub", "scope"})

_names = itertools.count(1)


class KitError(Exception):
    """The kit cannot make what was asked for: the token endpoint would refuse it too."""


class KitToken(str):
    """An access token (a ``str``), with the ``claims`` it carries and its ``application``."""

    claims: dict[str, Any]
    application: Any

    def __new__(cls, token: str, claims: dict[str, Any], application: Any) -> KitToken:
        value = super().__new__(cls, token)
        value.claims = claims
        value.application = application
        return value


def configuration_problem() -> str | None:
    """Why the fixtures cannot work in this project, or None when they can."""
    try:
        import pytest_django  # noqa: F401
    except ImportError:
        return "oauth_cc's pytest fixtures need pytest-django: pip install 'oauth-cc[testing]'."
    from django.conf import settings

    if not settings.configured:
        return (
            "oauth_cc's pytest fixtures need Django settings: set DJANGO_SETTINGS_MODULE "
            "(pytest-django's --ds option, or DJANGO_SETTINGS_MODULE in the pytest configuration)."
        )
    from django.apps import apps

    if not apps.is_installed("oauth_cc"):
        return 'oauth_cc\'s pytest fixtures need "oauth_cc" in INSTALLED_APPS.'
    from django.core.checks import ERROR

    from .checks import check_settings

    errors = [f"{message.id}: {message.msg}" for message in check_settings() if message.level >= ERROR]
    if errors:
        return "oauth_cc is not configured: " + " ".join(errors)
    return None


def _fresh_state() -> None:
    """Forget what this process holds about clients, keys and revocations (rolled back with the test)."""
    from django.core.cache import caches

    from .conf import oauth_cc_settings
    from .issuer import generation, state

    state.reset_all()
    caches[oauth_cc_settings.CACHE_ALIAS].delete_many(
        [generation.cache_key(generation.CLIENTS), generation.cache_key(generation.REVOCATION)]
    )


def _scope_names(scopes: Iterable[str] | str) -> list[str]:
    if isinstance(scopes, str):
        scopes = [scopes]
    names: list[str] = []
    for item in scopes:
        if not isinstance(item, str):
            raise KitError(f"A scope must be a string, not {item!r}.")
        names.extend(item.split())
    return list(dict.fromkeys(names))


class Kit:
    """What the three fixtures call; one per test."""

    CREATE_CLIENT_ARGS = frozenset(
        {
            "name",
            "lifetime",
            "description",
            "auth_method",
            "jwks",
            "jwks_uri",
            "audiences",
            "can_introspect",
            "token_limit",
        }
    )

    def client(self, scopes: Iterable[str] | str = (), **fields: Any) -> tuple[Any, str | None]:
        """Create an API client allowed ``scopes`` (created when missing); return it and its secret.

        ``fields``: the arguments of :func:`oauth_cc.issuer.clients.create_client` (``name``,
        ``lifetime``, ``audiences``, ``auth_method``, ``jwks``, ...) and any other field of the
        Application model (``user``: the run-as user, ``is_active``...). The secret is None for a
        ``private_key_jwt`` client.
        """
        from .issuer import clients
        from .models import Application, Scope

        names = _scope_names(scopes)
        create_args = {key: fields.pop(key) for key in list(fields) if key in self.CREATE_CLIENT_ARGS}
        model_fields = {field.name for field in Application._meta.get_fields() if field.concrete}
        unknown = sorted(set(fields) - model_fields)
        if unknown:
            raise KitError("Not a field of an API client: " + ", ".join(unknown) + ".")
        existing = set(Scope.objects.filter(name__in=names).values_list("name", flat=True))
        for name in names:
            if name not in existing:
                clients.create_scope(name)
        create_args.setdefault("name", f"test-client-{next(_names)}")
        application, issued = clients.create_client(scopes=names, **create_args)
        if fields:
            for key, value in fields.items():
                setattr(application, key, value)
            application.save()
        return application, issued.secret if issued is not None else None

    def token(
        self, *scopes: str, client: Any = None, resource: str | None = None, **extra_claims: Any
    ) -> KitToken:
        """A signed access token for ``client`` (a new client with exactly ``scopes`` when None).

        No scope with a given client means the client's default scopes, as at the token endpoint.
        """
        from django.core.exceptions import ImproperlyConfigured

        from .common import tokens
        from .common.errors import OAuthError
        from .conf import oauth_cc_settings
        from .issuer import hooks, issuance, state
        from .models import Application

        names = _scope_names(scopes)
        fixed = sorted(FIXED_CLAIMS.intersection(extra_claims))
        if fixed:
            raise KitError(
                "The kit does not replace " + ", ".join(fixed) + ": pass client= and the scopes instead."
            )
        if client is None:
            client, _ = self.client(scopes=names)
        client_id = client.client_id if isinstance(client, Application) else str(client)
        application = client if isinstance(client, Application) else None
        record = state.load_client(client_id)
        if record is None:
            raise KitError(f'No API client has the client_id "{client_id}".')
        if not record.is_active:
            raise KitError(f"The client {client_id} is disabled: the token endpoint refuses it.")
        if record.grant_type != Application.GRANT_CLIENT_CREDENTIALS:
            raise KitError(f"The client {client_id} may not use the client_credentials grant.")
        try:
            granted = issuance.resolve_scopes(record, " ".join(names) if names else None)
            audience = issuance.resolve_audience(record, resource)
        except OAuthError as exc:
            raise KitError(f"The token endpoint would refuse this ({exc.error}): {exc.description}") from None
        claims = tokens.build_claims(
            issuer=oauth_cc_settings.issuer,
            client_id=record.client_id,
            audience=audience,
            scopes=granted,
            lifetime=record.access_token_lifetime or int(oauth_cc_settings.ACCESS_TOKEN_LIFETIME),
            now=issuance.issued_at(record),
        )
        try:
            claims.update(hooks.extra_claims(record, claims))
        except hooks.DenyIssuance as exc:
            raise KitError(f"The claims hook refuses a token for {client_id}: {exc}") from None
        claims.update(_checked_claims(extra_claims))
        try:
            signed = tokens.sign(claims)
        except ImproperlyConfigured:
            raise KitError(
                f"The token would be longer than the {tokens.MAX_TOKEN_BYTES} bytes the site accepts."
            ) from None
        if application is None:
            application = Application.objects.get(client_id=client_id)
        return KitToken(signed, claims, application)

    def api_client(
        self, *scopes: str, client: Any = None, resource: str | None = None, **extra_claims: Any
    ) -> Any:
        """DRF's ``APIClient`` sending ``Authorization: Bearer <token>``; the token is ``.oauth_cc_token``."""
        from rest_framework.test import APIClient

        token = self.token(*scopes, client=client, resource=resource, **extra_claims)
        api_client = APIClient()
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        api_client.oauth_cc_token = token  # type: ignore[attr-defined]  # a marker of the kit on DRF's class
        return api_client


def _checked_claims(extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` if the site's token parser could read it back (JSON, no NaN, not too deep)."""
    if not extra:
        return {}
    from .common import json_input

    try:
        encoded = json.dumps(extra, allow_nan=False)
        json_input.loads(encoded, max_bytes=len(encoded), max_depth=json_input.MAX_DEPTH)
    except (TypeError, ValueError, json_input.JSONInputError) as exc:
        raise KitError(f"These claims cannot go in a token: {exc}") from None
    return dict(extra)


@pytest.fixture(scope="session")
def _oauth_cc_configured() -> None:
    """Fails every test using the kit, with what to fix, in a project the kit cannot work in.

    Session-scoped, so it runs before pytest-django's database set-up, which would otherwise
    skip such tests ("no Django settings") or fail them with less to go on.
    """
    problem = configuration_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def _oauth_cc_kit(_oauth_cc_configured: None, db: None) -> Iterator[Kit]:
    """Database access (pytest-django's ``db``: a transaction rolled back after the test) and a
    process that holds nothing about clients, keys or revocations from an earlier test."""
    _fresh_state()
    yield Kit()
    _fresh_state()


@pytest.fixture
def oauth_cc_client(_oauth_cc_kit: Kit) -> Any:
    """``oauth_cc_client(scopes=["reports:read"], **fields) -> (application, secret)``."""
    return _oauth_cc_kit.client


@pytest.fixture
def oauth_cc_token(_oauth_cc_kit: Kit) -> Any:
    """``oauth_cc_token("reports:read", client=None, resource=None, **extra_claims) -> token``."""
    return _oauth_cc_kit.token


@pytest.fixture
def oauth_cc_api_client(_oauth_cc_kit: Kit) -> Any:
    """``oauth_cc_api_client("reports:read", client=None, **extra_claims) -> APIClient`` (Bearer token)."""
    return _oauth_cc_kit.api_client
