"""App configuration."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoSSOConfig(AppConfig):
    name = "django_sso"
    verbose_name = _("Single sign-on")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_sso import checks  # noqa: F401  (registers the system checks)
