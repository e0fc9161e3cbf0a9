"""Both sides: Django REST framework integration: JWT access tokens, their scopes, a per-client throttle."""

from .authentication import JWTAccessTokenAuthentication
from .permissions import HasScope
from .throttling import ClientRateThrottle

__all__ = ["ClientRateThrottle", "HasScope", "JWTAccessTokenAuthentication"]
