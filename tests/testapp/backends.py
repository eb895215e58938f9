"""Channel backends used by the tests."""

from __future__ import annotations

from typing import ClassVar

from django_notify.backends.locmem import LocMemBackend


class PerSubscriptionBackend(LocMemBackend):
    """Like a push channel: one delivery per active push subscription."""

    destination: ClassVar[str] = "push_subscription"


class RendersOwnText(LocMemBackend):
    """Like an email backend: renders its own text when it sends, so notify() checks it up front."""

    renders_own_text: ClassVar[bool] = True
