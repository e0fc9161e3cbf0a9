"""Encrypt the private halves of existing signing keys (see oauth_cc/issuer/key_encryption.py).

Reversible: backwards, every key is decrypted to plain JSON again, which needs the keys that
encrypted them; if one cannot be decrypted, nothing is changed and the migration says which.
Forwards is idempotent: rows that are already encrypted are left as they are.
"""

from django.db import migrations


def encrypt_keys(apps, schema_editor):
    from oauth_cc.issuer import key_encryption

    SigningKey = apps.get_model("oauth_cc", "SigningKey")
    for row in SigningKey.objects.using(schema_editor.connection.alias).all():
        if key_encryption.is_plaintext(row.private_jwk):
            row.private_jwk = key_encryption.encrypt(row.private_jwk)
            row.save(update_fields=["private_jwk"])


def decrypt_keys(apps, schema_editor):
    from oauth_cc.issuer import key_encryption

    SigningKey = apps.get_model("oauth_cc", "SigningKey")
    rows = list(SigningKey.objects.using(schema_editor.connection.alias).all())
    plain, unreadable = {}, []
    for row in rows:
        try:
            plain[row.pk] = key_encryption.decrypt(row.private_jwk, row.kid)
        except key_encryption.KeyDecryptionError:
            unreadable.append(row.kid)
    if unreadable:
        raise RuntimeError(
            f"Cannot decrypt signing key(s) {', '.join(unreadable)} to migrate backwards; nothing was "
            "changed. Add the key they were encrypted with to OAUTH_CC['KEY_ENCRYPTION_KEYS']."
        )
    for row in rows:
        if row.private_jwk != plain[row.pk]:
            row.private_jwk = plain[row.pk]
            row.save(update_fields=["private_jwk"])


class Migration(migrations.Migration):
    dependencies = [("oauth_cc", "0005_limits")]

    operations = [migrations.RunPython(encrypt_keys, decrypt_keys, elidable=False)]
