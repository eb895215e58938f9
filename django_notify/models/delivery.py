"""The outbox: one delivery per notification, channel and destination."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    SKIPPED = "skipped", _("skipped")
    EXPIRED = "expired", _("expired")


#: States a delivery never leaves.
TERMINAL_STATUSES: frozenset[str] = frozenset({"sent", "failed", "skipped", "expired"})


class AbstractDelivery(models.Model):
    """One message to send on an external channel, with its retry state.

    A worker claims a pending row by setting ``status`` to ``sending`` with a lease
    (``lease_id``, ``leased_until``); the row is due again if the lease runs out.
    ``attempts`` counts the claims that tried to send it; a deferral (quiet hours,
    a digest, a batch out of time) does not count.
    """

    Status = DeliveryStatus

    # Deliveries are only ever written by notify(), in the same transaction as their
    # notification, and deleted through the ORM's cascade; a database constraint
    # would add a check per row at COMMIT (about a third of fan-out time on PostgreSQL).
    notification = models.ForeignKey(
        "django_notify.Notification",
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_constraint=False,
        verbose_name=_("notification"),
    )
    channel = models.CharField(_("channel"), max_length=50)
    subscription = models.ForeignKey(
        "django_notify.PushSubscription",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        db_constraint=False,
        verbose_name=_("push subscription"),
    )
    destination = models.CharField(_("destination"), max_length=255, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    leased_until = models.DateTimeField(_("leased until"), null=True, blank=True)
    lease_id = models.UUIDField(_("lease"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    finished_at = models.DateTimeField(
        _("finished"), null=True, blank=True, help_text=_("When it reached its final state.")
    )
    digest = models.CharField(
        _("digest"),
        max_length=10,
        blank=True,
        choices=[("daily", _("daily digest")), ("weekly", _("weekly digest"))],
        help_text=_("Held for this digest of the recipient; sent with it at next_attempt_at."),
    )
    last_error = models.TextField(_("last error"), blank=True)
    provider_response = models.JSONField(_("provider response"), null=True, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        abstract = True
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            # Due rows (pending by next_attempt_at) and leased rows (status='sending').
            models.Index(fields=["status", "next_attempt_at"], name="dn_%(class)s_due"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Delivery(AbstractDelivery):
    pass


class EngineState(models.Model):
    """Small named timestamps the delivery engine shares between processes.

    ``sweeper`` and ``worker`` are heartbeats (for ``health/``); ``kick`` is set
    while a delivery task is queued but not started, so bursts of ``notify()``
    calls enqueue one task, not one each.
    """

    key = models.CharField(max_length=32, primary_key=True)
    value = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("engine state")
        verbose_name_plural = _("engine state")

    def __str__(self) -> str:
        return f"{self.key}: {self.value}"
