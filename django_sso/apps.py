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
