"""Exceptions raised by django_notify.

Configuration errors derive from :class:`~django.core.exceptions.ImproperlyConfigured`
and stay outside the :class:`NotifyError` tree, so code that handles delivery or
usage errors never swallows a broken setup by accident.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured


class NotifyError(Exception):
    """Base class of the errors a caller of django_notify can expect."""


class UnknownNotificationType(NotifyError, LookupError):
    """A notification type key is not registered."""

    def __init__(self, key: str, known: Iterable[str]) -> None:
        self.key = key
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "none are registered"
        super().__init__(f"Unknown notification type {key!r}. Known types: {listing}.")


class AlreadyRegistered(NotifyError):
    """A notification type key is registered twice."""


class MissingContextError(NotifyError, ValueError):
    """A template uses a variable that the context passed to ``notify()`` lacks."""

    def __init__(self, type_key: str, part: str, missing: Iterable[str], given: Iterable[str]) -> None:
        self.type_key = type_key
        self.part = part
        self.missing = sorted(set(missing))
        self.given = sorted(given)
        names = ", ".join(f"{{{{ {name} }}}}" for name in self.missing)
        super().__init__(
            f"Notification type {type_key!r}: the {part} template uses {names}, which the "
            f"context does not provide (context keys: {', '.join(self.given) or 'none'}). "
            "Pass it in context=, give it a value in the type's defaults=, or guard it "
            "with {% if %} if it is optional."
        )


class InvalidRecipients(NotifyError, TypeError):
    """``recipients`` is not a user, a user id, an iterable of those, or a queryset."""


class UnknownChannel(NotifyError, LookupError):
    """A channel alias is not configured in ``DJANGO_NOTIFY["CHANNELS"]``."""

    def __init__(self, alias: str, known: Iterable[str]) -> None:
        self.alias = alias
        self.known = sorted(known)
        super().__init__(
            f"Unknown channel {alias!r}. Configured channels: {', '.join(self.known) or 'none'}. "
            'Add it to DJANGO_NOTIFY["CHANNELS"].'
        )


class ForbiddenChannel(NotifyError, ValueError):
    """``notify(channels=...)`` names a channel the type forbids."""

    def __init__(self, type_key: str, channels: Iterable[str]) -> None:
        self.type_key = type_key
        self.channels = sorted(channels)
        super().__init__(f"Notification type {type_key!r} is never sent on {', '.join(self.channels)}.")


class BadEventToken(NotifyError, ValueError):
    """An engagement event token is malformed, tampered with, or ``expired``."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        self.expired = expired
        super().__init__(message)


class BadUnsubscribeToken(NotifyError, ValueError):
    """An unsubscribe link's token is malformed, tampered with, or ``expired``."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        self.expired = expired
        super().__init__(message)


class NotifyConfigurationError(ImproperlyConfigured):
    """django_notify is set up wrongly; the message names the setting to fix."""


class InvalidBackendError(NotifyConfigurationError):
    """A channel's ``BACKEND`` cannot be imported or its ``OPTIONS`` are wrong.

    ``check_id`` and ``hint`` let a backend give ``manage.py check`` a more precise
    message id (e.g. ``django_notify.E040``) and hint than the generic E006.
    """

    def __init__(self, message: str, *, check_id: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.check_id = check_id
        self.hint = hint
