"""Resource side: the resource-only app, a Django service that checks oauth_cc tokens without issuing them.

Install ``"oauth_cc.resource"`` instead of ``"oauth_cc"`` (and without ``"oauth2_provider"``):
no models, no migrations. Keys come from the issuer's JWKS (:mod:`.issuer_keys`), revocation
from the issuer's revocation feed (:mod:`.feed`), both kept fresh by one background thread per
worker (:mod:`.sync`), so a protected request makes no query and no network call.
"""
