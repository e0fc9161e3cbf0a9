"""Application.require_dpop: the client gets only DPoP-bound tokens (RFC 9449)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauth_cc", "0010_mtls"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="require_dpop",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Issue only DPoP-bound tokens (RFC 9449): a token request without a valid DPoP "
                    "proof is refused, so this client never gets a plain Bearer token."
                ),
                verbose_name="require DPoP",
            ),
        ),
    ]
