"""A URLconf without django_notify.urls (check W051)."""

from __future__ import annotations

urlpatterns: list[object] = []
