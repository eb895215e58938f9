"""Channel backends: one module per channel, all built on :mod:`.base`."""

from __future__ import annotations

from django_notify.backends.base import BaseChannelBackend, DeliveryResult, Outcome

__all__ = ["BaseChannelBackend", "DeliveryResult", "Outcome"]
