"""Both sides: what makes a validly signed access token no longer valid (revocation state).

The issuer builds it from its database (:mod:`oauth_cc.issuer.revocation`); a resource-only service from
the issuer's revocation feed (:mod:`oauth_cc.resource.feed`). The per-request check
(:mod:`oauth_cc.common.verification`) reads it the same way on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Snapshot:
    revoked_jtis: frozenset[str] = frozenset()
    disabled_clients: frozenset[str] = frozenset()
    deleted_clients: frozenset[str] = frozenset()
    # client_id -> epoch seconds; tokens with iat before it are invalid.
    valid_after: dict[str, float] = field(default_factory=dict)
    # The site's change token (oauth_cc.issuer.generation) read before the rows: the snapshot is at
    # least as new as the change that set it. None: not built from the database.
    generation: int | None = None

    def reason_refused(self, *, jti: str, client_id: str, iat: float) -> str | None:
        """Why a token with these claims is no longer valid, or None if it still is."""
        if jti in self.revoked_jtis:
            return "The access token has been revoked."
        if client_id in self.disabled_clients:
            return "The client of this access token is disabled."
        if client_id in self.deleted_clients:
            return "The client of this access token has been deleted."
        cutoff = self.valid_after.get(client_id)
        if cutoff is not None and iat < cutoff:
            return "The access token was issued before its client's tokens were invalidated."
        return None
