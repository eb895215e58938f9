from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotifyConfig(AppConfig):
    name = "django_notify"
    verbose_name = _("Notifications")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from django_notify import (
            checks,  # noqa: F401  (registers the system checks)
            content,
        )
        from django_notify.registry import TEST_TYPE, registry

        if TEST_TYPE.key not in registry:
            registry.register(TEST_TYPE)
        registry.autodiscover()
        content.connect_signals()
        post_migrate.connect(_ensure_schedules, sender=self, dispatch_uid="django_notify.ensure_schedules")


def _ensure_schedules(**kwargs: object) -> None:
    from django_notify.queue import ensure_schedules

    ensure_schedules(**kwargs)
