"""App configuration."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoSSOConfig(AppConfig):
    name = "django_sso"
    verbose_name = _("Single sign-on")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, and the receiver that takes back a deleted source's grants.
        from django_sso import checks, roles  # noqa: F401
