"""Issuer side: the protocol modules of the ``oauth_cc`` app (token endpoint, client
authentication, keys, revocation, bookkeeping). A resource-only service never imports them
(tests/test_package_structure.py).
"""
