"""Web Push: VAPID (RFC 8292), encryption (RFC 8291), endpoint checks and the sender.

The channel backend is :class:`django_notify.backends.webpush.WebPushBackend`;
this package holds the parts it is built from, each usable on its own:

``vapid``      keys, the ``vapid t=…, k=…`` header, cached per audience
``crypto``     ``aes128gcm`` payload encryption and subscription key checks
``endpoints``  the SSRF rules for push endpoints (subscribe time and send time)
``payload``    the JSON the service worker receives, at most 3,000 bytes
``sender``     concurrent POSTs over reused connections (asyncio + aiohttp)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_notify.backends.webpush import WebPushBackend


def push_channel() -> WebPushBackend | None:
    """The configured Web Push channel's backend, or ``None`` when no channel uses one."""
    from django_notify.backends.webpush import WebPushBackend
    from django_notify.channels import channels

    for alias in channels:
        backend = channels[alias]
        if isinstance(backend, WebPushBackend):
            return backend
    return None
