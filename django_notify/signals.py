"""Signals sent by django_notify. Receivers must accept ``**kwargs``.

Each signal's arguments are listed in its ``#:`` comment and in the signals
reference page of the docs.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent after ``notify()`` inserted a chunk of notifications, inside its transaction
#: (use ``transaction.on_commit`` in the receiver for side effects).
#: sender: the :class:`~django_notify.NotificationType`.
#: provides args: notification_type, notifications (a queryset of the chunk's new rows)
notification_created = Signal()

#: Sent when notifications are marked read by ``Notification.mark_read()`` or by the
#: API's ``read/`` and ``mark-all-read/`` (not by the bulk ``queryset.mark_read()``).
#: sender: the notification model.
#: provides args: user (who read them, or None if unknown),
#: notifications (a queryset of the rows that changed state)
notification_read = Signal()

#: Sent after a delivery was accepted by its channel.
#: sender: the channel backend class. provides args: delivery, result
delivery_sent = Signal()

#: Sent when a delivery reached ``failed`` or ``expired`` (no more attempts).
#: sender: the channel backend class. provides args: delivery, result
delivery_failed = Signal()

#: Sent when a push service said a subscription is gone (404/410) and it was deactivated.
#: sender: the subscription model. provides args: subscription, status_code
push_subscription_expired = Signal()

#: Sent after ``POST events/`` recorded an engagement event (and its effect on the
#: notification's ``seen_at`` / ``read_at``) and the transaction committed.
#: sender: the engagement event model. provides args: event, user (the logged-in
#: caller, or None for a service worker's token)
engagement_recorded = Signal()
