"""User notifications for Django: an in-app inbox, email and Web Push.

The names most projects need are importable from here::

    from django_notify import NotificationType, notify, registry
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_notify.registry import NotificationType, registry

if TYPE_CHECKING:
    from django_notify.service import NotifyResult, notify

__all__ = ["NotificationType", "NotifyResult", "notify", "registry"]
__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # notify() needs the models, which cannot load before the app registry does.
    if name in {"notify", "NotifyResult"}:
        from django_notify import service

        return getattr(service, name)
    raise AttributeError(f"module 'django_notify' has no attribute {name!r}")
