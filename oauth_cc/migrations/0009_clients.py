"""Rename Application.jwks / jwks_uri to django-oauth-toolkit's names for the same fields.

DOT (PR #1762, after 3.x) adds ``token_endpoint_auth_method``, ``client_jwks`` and
``client_jwks_uri`` to ``AbstractApplication``. oauth_cc's Application already defines the
first; with the other two renamed, its own definitions override DOT's, so a DOT upgrade adds
no second set of columns. RenameField keeps the data (and is reversible).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("oauth_cc", "0008_stategeneration"),
    ]

    operations = [
        migrations.RenameField(model_name="application", old_name="jwks", new_name="client_jwks"),
        migrations.RenameField(model_name="application", old_name="jwks_uri", new_name="client_jwks_uri"),
    ]
