"""Models of django_notify; each module holds an abstract base and its concrete model."""

from __future__ import annotations

from django_notify.models.delivery import TERMINAL_STATUSES, AbstractDelivery, Delivery, DeliveryStatus, EngineState
from django_notify.models.engagement import (
    AbstractEngagementEvent,
    EngagementEvent,
    EngagementKind,
)
from django_notify.models.notification import (
    AbstractNotification,
    Notification,
    NotificationQuerySet,
)
from django_notify.models.preferences import (
    AbstractPreference,
    AbstractUserPreferences,
    DigestFrequency,
    Preference,
    UserPreferences,
)
from django_notify.models.push import (
    AbstractPushSubscription,
    PushSubscription,
    endpoint_digest,
)
from django_notify.models.templates import AbstractTemplateOverride, TemplateOverride

__all__ = [
    "AbstractDelivery",
    "AbstractEngagementEvent",
    "AbstractNotification",
    "AbstractPreference",
    "AbstractPushSubscription",
    "AbstractTemplateOverride",
    "AbstractUserPreferences",
    "Delivery",
    "DeliveryStatus",
    "DigestFrequency",
    "EngagementEvent",
    "EngagementKind",
    "EngineState",
    "Notification",
    "NotificationQuerySet",
    "Preference",
    "PushSubscription",
    "TERMINAL_STATUSES",
    "TemplateOverride",
    "UserPreferences",
    "endpoint_digest",
]
