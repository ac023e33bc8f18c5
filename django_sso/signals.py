"""Signals: past-tense notifications for auditing. They must not steer; use the adapter for that.

``sign_in_succeeded(sender=Source, request, user, source, identity, created)``
    A person signed in through ``source``; ``created`` is True when the identity is new.
``sign_in_failed(sender=Source | None, request, source, error)``
    A sign-in stopped; ``error`` is the :class:`~django_sso.exceptions.SSOError` with its ``code``.
``roles_synced(sender=Source, request, user, source, added, removed)``
    A sign-in applied ``source``'s role mapping to ``user`` (sent at every sign-in, after the
    transaction, even when nothing changed). ``added`` and ``removed`` are
    :class:`~django_sso.roles.RoleChanges`: ``permissions`` (``app_label.codename``), ``groups``
    (names) and ``flags`` (``is_staff``, ``is_superuser``) that changed on the user.
"""

from __future__ import annotations

from django.dispatch import Signal

sign_in_succeeded = Signal()
sign_in_failed = Signal()
roles_synced = Signal()
