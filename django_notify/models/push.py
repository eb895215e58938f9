"""Web Push subscriptions, one row per browser endpoint."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


def endpoint_digest(endpoint: str) -> str:
    """The key a subscription is stored under: endpoints are too long to index."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


class AbstractPushSubscription(models.Model):
    """A browser's ``PushSubscription``. The endpoint and keys are secrets."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="%(app_label)s_%(class)ss",
        db_index=False,
        verbose_name=_("user"),
    )
    endpoint = models.TextField(_("endpoint"))
    endpoint_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    p256dh = models.CharField(_("p256dh key"), max_length=128)
    auth = models.CharField(_("auth secret"), max_length=64)
    vapid_key_id = models.CharField(
        _("VAPID key id"),
        max_length=64,
        blank=True,
        help_text=_("Fingerprint of the VAPID key it was created with."),
    )
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    preferences = models.JSONField(_("preferences"), default=dict, blank=True)
    expiration_time = models.DateTimeField(_("expires"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    deactivated_at = models.DateTimeField(_("deactivated"), null=True, blank=True)
    deactivation_reason = models.CharField(_("deactivation reason"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True)
    failure_count = models.PositiveIntegerField(_("failures"), default=0)

    class Meta:
        abstract = True
        verbose_name = _("push subscription")
        verbose_name_plural = _("push subscriptions")
        indexes = [models.Index(fields=["user", "is_active"], name="dn_%(class)s_user")]

    def __str__(self) -> str:
        # Never the endpoint: it is a bearer secret (RFC 8030 section 8.3).
        return f"push subscription #{self.pk} of user {self.user_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.endpoint_sha256 = endpoint_digest(self.endpoint)
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class PushSubscription(AbstractPushSubscription):
    pass
