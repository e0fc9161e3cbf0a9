"""Django REST framework integration: authenticate JWT access tokens and check their scopes."""

from .authentication import JWTAccessTokenAuthentication
from .permissions import HasScope

__all__ = ["HasScope", "JWTAccessTokenAuthentication"]
