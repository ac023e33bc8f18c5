"""Secrets at rest: encrypted in the row, readable across key rotation, a clear error without the key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from django_sso.internal import crypto
from django_sso.models import Source
from tests.conftest import make_source
from tests.fakeop import CLIENT_SECRET

KEY_A = "first-encryption-key-0123456789-abcdefghijklmnop"
KEY_B = "second-encryption-key-0123456789-abcdefghijklmno"


def raw_secret(source: Source) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT client_secret FROM {Source._meta.db_table} WHERE id = %s",
            [source.pk],
        )
        return cursor.fetchone()[0]


def reread(source: Source) -> str:
    return Source.objects.get(pk=source.pk).client_secret


def test_the_client_secret_is_not_readable_in_the_raw_row(db, op):
    source = make_source(op, "honest")
    raw = raw_secret(source)
    assert raw.startswith("fernet:")
    assert CLIENT_SECRET not in raw
    assert reread(source) == CLIENT_SECRET


def test_each_write_uses_a_fresh_token(db, op):
    first = make_source(op, "one", issuer="https://op.example/one")
    second = make_source(op, "two", issuer="https://op.example/two")
    assert raw_secret(first) != raw_secret(second)


def test_an_empty_secret_stays_empty(db, op):
    source = make_source(op, "public", client_secret="")
    assert raw_secret(source) == ""
    assert reread(source) == ""


def test_a_secret_written_under_key_a_is_readable_with_keys_b_then_a(db, op, settings):
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_A]
    source = make_source(op, "honest")
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert reread(source) == CLIENT_SECRET
    # Saving again writes with the newest key, after which key A may go.
    Source.objects.get(pk=source.pk).save()
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_B]
    assert reread(source) == CLIENT_SECRET


def test_the_default_keys_follow_secret_key_and_its_fallbacks(db, op, settings):
    settings.DJANGO_SSO_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = KEY_A
    settings.SECRET_KEY_FALLBACKS = []
    source = make_source(op, "honest")
    settings.SECRET_KEY = KEY_B
    settings.SECRET_KEY_FALLBACKS = [KEY_A]
    assert reread(source) == CLIENT_SECRET


def test_secret_key_material_moves_over_to_explicit_encryption_keys(db, op, settings):
    settings.DJANGO_SSO_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = KEY_A
    source = make_source(op, "honest")
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert reread(source) == CLIENT_SECRET


@pytest.mark.parametrize(
    "removed",
    [
        {"DJANGO_SSO_ENCRYPTION_KEYS": [KEY_B]},
        {"DJANGO_SSO_ENCRYPTION_KEYS": [], "SECRET_KEY": KEY_B, "SECRET_KEY_FALLBACKS": []},
    ],
)
def test_a_removed_key_gives_a_clear_error(db, op, settings, removed):
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_A]
    settings.SECRET_KEY = KEY_A
    source = make_source(op, "honest")
    ciphertext = raw_secret(source)
    for name, value in removed.items():
        setattr(settings, name, value)
    with pytest.raises(ValueError, match="cannot be decrypted with the configured keys") as caught:
        reread(source)
    assert ciphertext.removeprefix("fernet:") not in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)


def test_a_tampered_value_gives_the_same_clear_error(db, op):
    source = make_source(op, "honest")
    raw = raw_secret(source)
    tampered = raw[:-6] + ("A" if raw[-6] != "A" else "B") + raw[-5:]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Source._meta.db_table} SET client_secret = %s WHERE id = %s",
            [tampered, source.pk],
        )
    with pytest.raises(ValueError, match="cannot be decrypted"):
        reread(source)


def test_a_generated_fernet_key_is_used_as_is(settings):
    key = Fernet.generate_key().decode()
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [key]
    token = crypto.encrypt("s3cret")
    assert Fernet(key.encode()).decrypt(token.encode()) == b"s3cret"


def test_rotate_re_encrypts_with_the_newest_key(settings):
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_A]
    old = crypto.encrypt("s3cret")
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    new = crypto.rotate(old)
    settings.DJANGO_SSO_ENCRYPTION_KEYS = [KEY_B]
    assert crypto.decrypt(new) == "s3cret"
    with pytest.raises(ValueError):
        crypto.decrypt(old)
