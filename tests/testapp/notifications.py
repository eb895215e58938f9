"""Discovered at start-up like a host app's notifications.py."""

from __future__ import annotations

from django_notify import NotificationType, registry

registry.register(
    NotificationType(
        key="order_placed",
        category="orders",
        verbose_name="Order placed",
        title="Order {{ order_number }} placed",
        body="Order {{ order_number }} for {{ total }}{% if actor %}, placed by {{ actor }}{% endif %}.",
        channels=["in_app", "email"],
        sample_context={"order_number": "A-1", "total": "12.50"},
    )
)


@registry.register
class LowStock(NotificationType):
    key = "low_stock"
    category = "inventory"
    title = "Low stock: {{ item }}"
    body = "Only {{ quantity }} left{% if note %} ({{ note }}){% endif %}."
    channels = ("in_app",)
    priority = "high"
