"""Both sides: DRF throttle keyed by the access token's client, counted atomically in the shared cache.

Add it to a view's ``throttle_classes`` (or ``DEFAULT_THROTTLE_CLASSES``) and give its scope
a rate, the DRF way::

    REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["oauth_cc.contrib.rest_framework.ClientRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"oauth_cc_client": "1000/hour"},
    }

It keys on the token's ``client_id``, not the address and not the token string, so a client
cannot reset its count by fetching a new token. Unlike DRF's ``SimpleRateThrottle`` (a
``get`` of a timestamp list, then a ``set``: concurrent requests on several workers all pass),
it counts with the cache's atomic ``incr`` (:mod:`oauth_cc.common.ratelimit`), in the
``OAUTH_CC["CACHE_ALIAS"]`` cache. Requests without an oauth_cc access token are not throttled
by it: pair it with DRF's ``AnonRateThrottle`` where anonymous requests reach a view.
Over the limit DRF answers 429 with ``Retry-After`` (``wait()``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from ...common import ratelimit
from ...common.verification import AccessToken
from .authentication import CheckUnavailable


class ClientRateThrottle(BaseThrottle):
    """At most ``DEFAULT_THROTTLE_RATES[scope]`` requests per token client; scope ``oauth_cc_client``.

    Subclass with another ``scope`` (and a rate for it) to give views their own budgets, or set
    ``rate`` on the subclass directly. A rate of ``None`` turns the throttle off, as in DRF.
    """

    scope = "oauth_cc_client"
    rate: str | None = None

    def __init__(self) -> None:
        rate = self.rate if self.rate is not None else self.get_rate()
        try:
            self.parsed = ratelimit.parse_optional_rate(rate)
        except ratelimit.RateError as exc:
            raise ImproperlyConfigured(f"The {self.scope!r} throttle rate is not valid: {exc}") from None
        self._wait: int | None = None

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(
                f"No throttle rate for the {self.scope!r} scope: set "
                f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["{self.scope}"], like "1000/hour".'
            )
        # djangorestframework-stubs types the rates as numbers; DRF's are "N/period" strings or None.
        return rates[self.scope]  # type: ignore[return-value]

    def allow_request(self, request: Request, view: Any) -> bool:
        token = request.auth
        if self.parsed is None or not isinstance(token, AccessToken):
            return True
        try:
            decision = ratelimit.hit(f"drf:{self.scope}", ratelimit.ident(token.client_id), self.parsed)
        except ratelimit.CacheUnavailable:
            raise CheckUnavailable(
                ratelimit.FAIL_CLOSED_RETRY_AFTER,
                "Requests cannot be counted right now; try again shortly.",
            ) from None
        if decision.allowed:
            return True
        self._wait = decision.reset
        return False

    def wait(self) -> float | None:
        return self._wait
