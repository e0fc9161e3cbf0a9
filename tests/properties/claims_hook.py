"""A claims hook (``OAUTH_CC["CLAIMS_HOOK"]``) whose extra claims each Hypothesis example sets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What the hook returns; an example sets it before its token request.
extra: dict[str, Any] = {}


def add_extra_claims(client: Any, claims: Mapping[str, Any]) -> dict[str, Any]:
    return dict(extra)
