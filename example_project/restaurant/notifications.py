"""The restaurant's notification types, found by django_notify at start-up.

Titles and bodies are Django templates, rendered with the ``context`` given to
``notify()`` plus ``actor``, ``target`` and ``recipient``.
"""

from __future__ import annotations

import datetime

from django_notify import NotificationType, registry

registry.register(
    NotificationType(
        key="low_stock_alert",
        category="inventory",
        verbose_name="Low stock",
        description="An inventory item fell to its reorder level.",
        title="Low stock: {{ item_name }}",
        body="Only {{ quantity }} left (reorder at {{ reorder_level }}).",
        channels=["in_app", "email"],
        priority="high",
        sample_context={"item_name": "Flour", "quantity": 4, "reorder_level": 10},
    )
)

registry.register(
    NotificationType(
        key="item_expiring",
        category="inventory",
        verbose_name="Item expiring",
        description="An inventory item expires within a few days.",
        title="Expiring soon: {{ item_name }}",
        body='{{ quantity }} left, use by {{ expires_on|date:"D j M" }}.',
        channels=["in_app"],
        sample_context={"item_name": "Mozzarella", "quantity": 8, "expires_on": datetime.date(2030, 1, 1)},
    )
)


@registry.register
class NewOrder(NotificationType):
    key = "new_order"
    category = "orders"
    verbose_name = "New order"
    description = "A guest's order was taken; the kitchen should start on it."
    title = "New order {{ order_number }}"
    body = "{{ actor|default:'A guest' }} placed order {{ order_number }} ({{ total }})."
    channels = ("in_app", "email")
    sample_context = {"order_number": "A-1001", "total": "42.50"}


@registry.register
class OrderCompleted(NotificationType):
    key = "order_completed"
    category = "orders"
    verbose_name = "Order ready"
    description = "The kitchen finished an order; it can be served."
    title = "Order {{ order_number }} is ready"
    body = "{{ actor|default:'The kitchen' }} finished order {{ order_number }}. Please serve it."
    channels = ("in_app",)
    priority = "high"
    sample_context = {"order_number": "A-1003"}
