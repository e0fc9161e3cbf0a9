"""Both sides: the protocol modules an issuer and a resource-only service share.

Nothing here imports ``oauth_cc.issuer``, ``oauth_cc.models`` or django-oauth-toolkit
(tests/test_package_structure.py).
"""
