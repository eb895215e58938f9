"""The configured channels: ``channels["email"]`` is the backend of that alias.

Modelled on Django's ``StorageHandler``: backends are built lazily from
``DJANGO_NOTIFY["CHANNELS"]`` and cached until the setting changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_notify.backends.base import BaseChannelBackend
from django_notify.conf import notify_settings
from django_notify.exceptions import InvalidBackendError, UnknownChannel


class ChannelHandler:
    def __init__(self) -> None:
        self._backends: dict[str, BaseChannelBackend] = {}

    def __getitem__(self, alias: str) -> BaseChannelBackend:
        try:
            return self._backends[alias]
        except KeyError:
            pass
        config = notify_settings.CHANNELS.get(alias)
        if config is None:
            raise UnknownChannel(alias, notify_settings.CHANNELS)
        backend = self.create_backend(alias, config)
        self._backends[alias] = backend
        return backend

    def __iter__(self) -> Iterator[str]:
        return iter(notify_settings.CHANNELS)

    def __contains__(self, alias: object) -> bool:
        return isinstance(alias, str) and alias in notify_settings.CHANNELS

    @staticmethod
    def backend_class(alias: str, path: Any) -> type[BaseChannelBackend]:
        """Import a ``BACKEND`` path; raise :class:`InvalidBackendError` saying why it fails."""
        if not isinstance(path, str):
            raise InvalidBackendError(f'DJANGO_NOTIFY["CHANNELS"][{alias!r}] needs a "BACKEND" dotted path.')
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise InvalidBackendError(f"Could not import backend {path!r} of channel {alias!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseChannelBackend)):
            raise InvalidBackendError(
                f"Backend {path!r} of channel {alias!r} is not a subclass of "
                "django_notify.backends.base.BaseChannelBackend."
            )
        return cls

    def create_backend(self, alias: str, config: Any) -> BaseChannelBackend:
        if not isinstance(config, dict):
            raise InvalidBackendError(f'DJANGO_NOTIFY["CHANNELS"][{alias!r}] must be a dict with "BACKEND".')
        cls = self.backend_class(alias, config.get("BACKEND"))
        options = config.get("OPTIONS", {})
        if not isinstance(options, dict):
            raise InvalidBackendError(f'DJANGO_NOTIFY["CHANNELS"][{alias!r}]["OPTIONS"] must be a dict.')
        return cls(alias, **options)

    def reset(self) -> None:
        self._backends.clear()


channels = ChannelHandler()


@receiver(setting_changed)
def _reset_channels(*, setting: str, **kwargs: Any) -> None:
    if setting == "DJANGO_NOTIFY":
        channels.reset()
