"""Issuer side: resource identifiers (RFC 8707 §2): what a token's audience may be.

One rule for the ``resource`` parameter of a token request and for the audiences an operator
allows a client: an absolute URI (it has a scheme: ``https://api.example.com`` or
``urn:example:api``) without a fragment, and without whitespace or control characters. A fragment is
refused whenever a ``#`` appears, empty or not, since ``urlsplit`` reports an empty fragment
the same as none.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def is_resource_identifier(value: object) -> bool:
    """Whether ``value`` is an absolute URI without a fragment, as RFC 8707 §2 requires."""
    if not isinstance(value, str) or not value or "#" in value or not value.isprintable() or " " in value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # an unbalanced "[" in the host, for example
        return False
    return bool(parts.scheme)
