"""Template overrides edited by admins, per type, channel and language."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AbstractTemplateOverride(models.Model):
    """Replaces a type's templates on one channel (and optionally one language)."""

    type = models.CharField(_("type"), max_length=100)
    channel = models.CharField(_("channel"), max_length=50)
    language = models.CharField(_("language"), max_length=15, blank=True, help_text=_("Blank: every language."))
    title = models.TextField(_("title / subject"), blank=True)
    body = models.TextField(_("body (plain text)"), blank=True)
    html = models.TextField(_("body (HTML)"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True
        verbose_name = _("template override")
        verbose_name_plural = _("template overrides")
        constraints = [
            models.UniqueConstraint(fields=["type", "channel", "language"], name="dn_%(class)s_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.type} / {self.channel} / {self.language or '*'}"


class TemplateOverride(AbstractTemplateOverride):
    pass
