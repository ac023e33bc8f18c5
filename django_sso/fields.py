"""Model fields that keep secrets encrypted in the database."""

from __future__ import annotations

from typing import Any

from django.db import models

from django_sso.internal import crypto

_PREFIX = "fernet:"


class EncryptedTextField(models.TextField):
    """A text field stored as a Fernet token; reads give the plaintext back.

    Encryption keys come from ``DJANGO_SSO_ENCRYPTION_KEYS`` (default: derived from
    ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``), newest first, so keys can be rotated.
    The column cannot be searched or ordered on meaningfully.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        if value.startswith(_PREFIX):
            return crypto.decrypt(value[len(_PREFIX) :])
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return _PREFIX + crypto.encrypt(value)
