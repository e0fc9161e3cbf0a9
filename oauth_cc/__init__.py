"""Both sides: oauth_cc, an OAuth 2.0 client-credentials provider and resource-server checks for Django."""

__version__ = "0.1.0"
