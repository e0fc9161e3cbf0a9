"""Issuer side: the claims hook: site code that adds claims to a client's tokens or refuses issuance.

Set ``OAUTH_CC["CLAIMS_HOOK"] = "myproject.auth.token_claims"``, a function::

    def token_claims(client: oauth_cc.issuer.state.ClientRecord, claims: Mapping[str, Any]) -> dict | None:
        if client.name.startswith("legacy-"):
            raise oauth_cc.issuer.hooks.DenyIssuance("Legacy clients must migrate first.")
        return {"tenant": "acme"}

It gets the client and a read-only copy of the registered claims, and returns extra claims
(or None). It cannot change or remove a registered claim (``iss, sub, client_id, aud, exp,
iat, nbf, jti, scope``, nor ``cnf``, the certificate binding): returning one is a configuration error. Raising
:class:`DenyIssuance` answers the token request with ``access_denied`` and the message given.
The hook runs on every token request: keep it fast, or cache what it reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..common import json_input
from ..common.tokens import REGISTERED_CLAIMS
from ..conf import oauth_cc_settings
from .state import ClientRecord


class DenyIssuance(Exception):
    """Raise from the claims hook to refuse a token; the message is shown to the client."""


def extra_claims(client: ClientRecord, claims: Mapping[str, Any]) -> dict[str, Any]:
    """Run the configured hook; return the claims it adds. May raise :class:`DenyIssuance`."""
    hook = oauth_cc_settings.CLAIMS_HOOK
    if hook is None:
        return {}
    added = hook(client, MappingProxyType(dict(claims)))
    if added is None:
        return {}
    if not isinstance(added, Mapping):
        raise ImproperlyConfigured("OAUTH_CC['CLAIMS_HOOK'] must return a dict of claims or None.")
    clashing = REGISTERED_CLAIMS.intersection(added)
    if clashing:
        raise ImproperlyConfigured(
            "OAUTH_CC['CLAIMS_HOOK'] may not set registered claims: " + ", ".join(sorted(clashing)) + "."
        )
    try:
        encoded = json.dumps(dict(added), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            "OAUTH_CC['CLAIMS_HOOK'] returned claims that are not JSON-serialisable (NaN and Infinity "
            "are not JSON)."
        ) from exc
    # The claims must pass the site's own verifier (oauth_cc.common.json_input): no lone surrogates,
    # not nested deeper than it accepts (they sit in the claims object at the same depth).
    try:
        json_input.loads(encoded, max_bytes=len(encoded), max_depth=json_input.MAX_DEPTH)
    except json_input.JSONInputError as exc:
        raise ImproperlyConfigured(
            f"OAUTH_CC['CLAIMS_HOOK'] returned claims the site's own token check would refuse: {exc}"
        ) from None
    return dict(added)
