"""What the back office keeps track of: stock in the kitchen and guests' orders."""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class InventoryItem(models.Model):
    name = models.CharField(max_length=100, unique=True)
    quantity = models.PositiveIntegerField(default=0)
    reorder_level = models.PositiveIntegerField(default=0, help_text="Reorder when the quantity falls to this level.")
    expires_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:restaurant_inventoryitem_change", args=[self.pk])

    @property
    def is_low(self) -> bool:
        return self.quantity <= self.reorder_level


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        PREPARING = "preparing", "Preparing"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    number = models.CharField(max_length=20, unique=True)
    total = models.DecimalField(max_digits=8, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"Order {self.number}"

    def get_absolute_url(self) -> str:
        return reverse("admin:restaurant_order_change", args=[self.pk])
