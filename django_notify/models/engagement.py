"""What recipients did with a notification: delivered, displayed, clicked, dismissed."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class EngagementKind(models.TextChoices):
    DELIVERED = "delivered", _("delivered")
    DISPLAYED = "displayed", _("displayed")
    CLICKED = "clicked", _("clicked")
    DISMISSED = "dismissed", _("dismissed")
    ACTION = "action", _("action")
    UNSUBSCRIBED = "unsubscribed", _("unsubscribed")


class AbstractEngagementEvent(models.Model):
    """One event reported by the page or the service worker."""

    Kind = EngagementKind

    notification = models.ForeignKey(
        "django_notify.Notification",
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("notification"),
    )
    # Events outlive their delivery (kept EVENT_RETENTION_DAYS, deliveries less); the
    # channel is copied below, so statistics need nothing from the delivery.
    delivery = models.ForeignKey(
        "django_notify.Delivery",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("delivery"),
    )
    # Copied from the notification so statistics need no join.
    type = models.CharField(_("type"), max_length=100)
    channel = models.CharField(_("channel"), max_length=50, blank=True)
    kind = models.CharField(_("event"), max_length=16, choices=EngagementKind.choices)
    action = models.CharField(_("action"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        abstract = True
        verbose_name = _("engagement event")
        verbose_name_plural = _("engagement events")
        indexes = [models.Index(fields=["created_at", "type", "channel"], name="dn_%(class)s_stats")]

    def __str__(self) -> str:
        return f"{self.kind} on notification {self.notification_id}"


class EngagementEvent(AbstractEngagementEvent):
    pass
