"""A tiny shop whose permissions the provider's scopes can grant."""

from django.db import models


class Order(models.Model):
    reference = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [
            ("manage_orders", "Can manage orders"),
            ("manage_users", "Can manage shop users"),
        ]

    def __str__(self) -> str:
        return self.reference
