"""Template overrides edited by admins, per type, channel and language."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
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

    def clean(self) -> None:
        """Refuse a scope that would never match and a template that cannot be used.

        Blank fields are left to ``clean_fields()``, which reports them once.
        """
        from django_notify.conf import notify_settings
        from django_notify.content import PARTS, override_problems
        from django_notify.registry import registry

        errors: dict[str, list[ValidationError]] = {}
        if self.type and self.type not in registry:
            errors["type"] = [
                ValidationError(
                    _("%(value)s is not a registered notification type. Registered: %(known)s."),
                    code="unknown",
                    params={"value": self.type, "known": ", ".join(registry.keys()) or "-"},
                )
            ]
        if self.channel and self.channel not in notify_settings.CHANNELS:
            errors["channel"] = [
                ValidationError(
                    _('%(value)s is not a channel of DJANGO_NOTIFY["CHANNELS"]. Channels: %(known)s.'),
                    code="unknown",
                    params={"value": self.channel, "known": ", ".join(notify_settings.CHANNELS) or "-"},
                )
            ]
        if self.language:
            codes = {code.lower(): code for code, _name in settings.LANGUAGES}
            if self.language.lower() in codes:
                self.language = codes[self.language.lower()]
            else:
                errors["language"] = [
                    ValidationError(
                        _("%(value)s is not a language of the LANGUAGES setting. Languages: %(known)s."),
                        code="unknown",
                        params={"value": self.language, "known": ", ".join(codes.values())},
                    )
                ]
        for part, html in PARTS.items():
            problems = override_problems(getattr(self, part), html=html)
            if problems:
                errors[part] = [ValidationError(problem, code="template") for problem in problems]
        if errors:
            raise ValidationError(errors)


class TemplateOverride(AbstractTemplateOverride):
    pass
