"""Encryption of secrets at rest (client secrets, stored tokens) with MultiFernet."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from django_sso.app_settings import app_settings

_DERIVATION_SALT = b"django_sso.encryption.v1"


def _fernet_key(material: str) -> bytes:
    """Return a Fernet key: the material itself when it is one, else a SHA-256 derivation."""
    try:
        Fernet(material.encode())
    except (ValueError, TypeError):
        digest = hashlib.sha256(_DERIVATION_SALT + material.encode()).digest()
        return base64.urlsafe_b64encode(digest)
    return material.encode()


def key_material() -> tuple[str, ...]:
    """Return the configured keys, newest first (defaults to SECRET_KEY and its fallbacks)."""
    configured = app_settings.ENCRYPTION_KEYS
    if configured:
        return tuple(configured)
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
    return tuple(k for k in [settings.SECRET_KEY, *fallbacks] if k)


@lru_cache(maxsize=8)
def _multifernet(material: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(m)) for m in material])


def encrypt(plaintext: str) -> str:
    """Encrypt text with the newest key."""
    return _multifernet(key_material()).encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    """Decrypt text written with any configured key.

    Raise ``ValueError`` when no key fits (the key was removed, or the value was tampered with).
    """
    try:
        return _multifernet(key_material()).decrypt(ciphertext.encode("ascii")).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted with the configured keys") from exc


def rotate(ciphertext: str) -> str:
    """Re-encrypt a stored value with the newest key."""
    return _multifernet(key_material()).rotate(ciphertext.encode("ascii")).decode("ascii")
