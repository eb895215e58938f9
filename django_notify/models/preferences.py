"""What each user wants: channel, category and type switches, quiet hours, digests."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class AbstractUserPreferences(models.Model):
    """Per-user settings that are not per channel: time zone and quiet hours."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="%(app_label)s_%(class)s",
        verbose_name=_("user"),
    )
    timezone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        help_text=_("IANA name, e.g. Europe/Berlin."),
    )
    quiet_hours_start = models.TimeField(_("quiet hours start"), null=True, blank=True)
    quiet_hours_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True
        verbose_name = _("user preferences")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return f"preferences of user {self.user_id}"

    def clean(self) -> None:
        from django_notify.preferences import is_valid_zone

        errors: dict[str, Any] = {}
        if self.timezone and not is_valid_zone(self.timezone):
            errors["timezone"] = _("%(value)s is not an IANA time zone name.") % {"value": self.timezone}
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            errors["quiet_hours_end"] = _("Quiet hours need both a start and an end.")
        elif self.quiet_hours_start is not None and self.quiet_hours_start == self.quiet_hours_end:
            errors["quiet_hours_end"] = _("Quiet hours cannot start and end at the same time.")
        if errors:
            raise ValidationError(errors)


class DigestFrequency(models.TextChoices):
    IMMEDIATE = "immediate", _("immediately")
    DAILY = "daily", _("daily digest")
    WEEKLY = "weekly", _("weekly digest")


class AbstractPreference(models.Model):
    """A rule for a channel (or all), a category (or all), a type (or all).

    Blank ``channel``, ``category`` or ``type`` mean "any". A rule sets the switch
    (``enabled``), the digest ``frequency``, or both; a blank one inherits. Each is
    resolved on its own: the most specific rule that sets it wins.
    """

    Frequency = DigestFrequency

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="%(app_label)s_%(class)ss",
        # The unique constraint below starts with the user.
        db_index=False,
        verbose_name=_("user"),
    )
    channel = models.CharField(_("channel"), max_length=50, blank=True)
    category = models.CharField(_("category"), max_length=50, blank=True)
    type = models.CharField(_("type"), max_length=100, blank=True)
    enabled = models.BooleanField(
        _("enabled"), null=True, blank=True, default=None, help_text=_("Blank: as a less specific rule says.")
    )
    frequency = models.CharField(
        _("frequency"),
        max_length=10,
        choices=DigestFrequency.choices,
        blank=True,
        default="",
        help_text=_("Blank: as a less specific rule says."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True
        verbose_name = _("preference")
        verbose_name_plural = _("preferences")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "channel", "category", "type"],
                name="dn_%(class)s_scope",
            ),
        ]

    def __str__(self) -> str:
        scope = "/".join(part or "*" for part in (self.channel, self.category, self.type))
        settings = [{True: "on", False: "off"}[self.enabled]] if self.enabled is not None else []
        if self.frequency:
            settings.append(str(self.frequency))
        return f"{scope}: {', '.join(settings) or 'inherit'}"


class UserPreferences(AbstractUserPreferences):
    pass


class Preference(AbstractPreference):
    pass
