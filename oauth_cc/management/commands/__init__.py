"""Issuer side: management commands of the issuer."""
