"""App configuration."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoSSOConfig(AppConfig):
    name = "django_sso"
    verbose_name = _("Single sign-on")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, the receiver that takes back a deleted source's grants, the
        # one that clears the in-process source cache when a source changes, and the one that
        # forgets the records of sessions signed out locally.
        from django_sso import checks, roles, sessions  # noqa: F401
        from django_sso.internal import source_cache  # noqa: F401

        self.connect_bearer_caches()

    def connect_bearer_caches(self) -> None:
        """Drop what resource-server mode keeps in memory when what it was derived from changes.

        Sources need nothing here: the bearer source map follows the source cache.
        """
        from django.contrib.auth.models import Permission
        from django.core.signals import setting_changed
        from django.db.models.signals import post_delete, post_save

        from django_sso.internal import scope_permissions, token_cache

        for name, signal in (("saved", post_save), ("deleted", post_delete)):
            signal.connect(
                scope_permissions.clear, sender=Permission, dispatch_uid=f"django_sso.permission_{name}"
            )
        for receiver in (token_cache.clear, scope_permissions.clear):
            setting_changed.connect(receiver, dispatch_uid=f"django_sso.settings.{receiver.__module__}")
