"""Issuer side: signals sent by oauth_cc."""

from django.dispatch import Signal

#: Sent after an access token is issued. Keyword arguments: ``client_id``, ``jti``,
#: ``scopes`` (list), ``audience``, ``expires_at`` (epoch seconds), ``request``.
#: Tokens are not stored; connect here to keep an audit trail of issuance.
token_issued = Signal()

#: Sent after an access token is revoked. Keyword arguments: ``client_id``, ``jti``.
token_revoked = Signal()
