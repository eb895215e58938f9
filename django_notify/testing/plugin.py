"""pytest fixtures for projects using django_notify (registered as a pytest plugin).

* ``notify_outbox``: the locmem outbox, emptied before and after the test.
* ``notification_capture``: a :func:`~django_notify.testing.capture_notifications` list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_notify.testing import Capture, OutboxMessage


@pytest.fixture(autouse=True)
def _notify_template_caches() -> Iterator[None]:
    """Each test reads template overrides afresh: a rolled-back override must not outlive its test."""
    from django_notify import content

    content.clear_caches()
    yield
    content.clear_caches()


@pytest.fixture
def notify_outbox() -> Iterator[list[OutboxMessage]]:
    from django_notify import testing

    testing.outbox.clear()
    yield testing.outbox
    testing.outbox.clear()


@pytest.fixture
def notification_capture() -> Iterator[Capture]:
    from django_notify.testing import capture_notifications

    with capture_notifications() as captured:
        yield captured
