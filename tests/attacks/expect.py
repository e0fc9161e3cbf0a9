"""What a refusal must look like, per surface: the status, the error code and the reason.

Each helper checks all three, so a test cannot pass because some earlier check refused the
request for another reason than the one the test is about.
"""

from __future__ import annotations

import re
from typing import Any

_CHALLENGE = re.compile(r'^Bearer realm="api", error="(?P<error>[a-z_]+)", error_description="(?P<d>.*)"$')


def invalid_token(response: Any, reason: str) -> None:
    """RFC 6750 §3.1 at a DRF view: 401, ``invalid_token`` in the challenge, ``reason`` in its description."""
    assert response.status_code == 401, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    match = _CHALLENGE.match(response["WWW-Authenticate"])
    assert match is not None, response["WWW-Authenticate"]
    assert match["error"] == "invalid_token"
    description = match["d"].replace('\\"', '"')
    assert reason in description, description
    assert response.json()["detail"] == description


def oauth_error(response: Any, status: int, error: str, reason: str) -> dict[str, Any]:
    """RFC 6749 §5.2 JSON from an OAuth endpoint."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert reason in body.get("error_description", ""), body
    return body


def invalid_client(response: Any, reason: str) -> None:
    oauth_error(response, 401, "invalid_client", reason)


def invalid_request(response: Any, reason: str) -> None:
    oauth_error(response, 400, "invalid_request", reason)


def inactive(response: Any) -> None:
    """RFC 7662 §2.2: an introspected token that is not valid is just ``{"active": false}``."""
    assert response.status_code == 200, response.content
    assert response.json() == {"active": False}


def revocation_ignored(response: Any) -> None:
    """RFC 7009 §2.2: an invalid token at the revocation endpoint is answered 200, empty."""
    assert response.status_code == 200, response.content
    assert response.content == b""


def refused_everywhere(responses: dict[str, Any], reason: str) -> None:
    """The token from ``at_every_door`` was refused at every surface, for ``reason``."""
    invalid_token(responses["read"], reason)
    invalid_token(responses["write"], reason)
    inactive(responses["introspect"])
    revocation_ignored(responses["revoke"])
