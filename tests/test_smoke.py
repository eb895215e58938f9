from __future__ import annotations

from django_notify import notify
from django_notify.models import Notification


def test_notify_one_user_creates_one_row(user):
    result = notify("low_stock", user, context={"item": "Flour", "quantity": 3})
    assert result.created == 1
    row = Notification.objects.get()
    assert (row.recipient_id, row.title, row.body) == (user.pk, "Low stock: Flour", "Only 3 left.")
