"""The contract every channel backend fulfils.

A backend receives a batch of claimed deliveries and returns one
:class:`DeliveryResult` per delivery; it never raises for an expected failure.
:meth:`BaseChannelBackend.send_batch` runs the whole flow (``open`` → ``send`` for
each delivery → ``close``) and turns an exception from one delivery into a result
for that delivery only, so one bad destination never affects the others.

Write your own by subclassing and filling in :meth:`~BaseChannelBackend.send`::

    class SmsBackend(BaseChannelBackend):
        default_options = {"api_key": None, "timeout": 5.0}

        def send(self, delivery):
            ...
            return DeliveryResult.sent(delivery, response={"status": 200})
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django_notify.exceptions import InvalidBackendError

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

    from django_notify.models import Delivery


class Outcome(enum.Enum):
    """How one delivery attempt ended."""

    SENT = "sent"  #: accepted by the provider
    RETRY = "retry"  #: transient failure; try again later
    FAILED = "failed"  #: permanent failure; do not try again
    GONE = "gone"  #: the destination no longer exists (e.g. push 404/410)
    DEFERRED = "deferred"  #: not attempted (out of time, quiet hours): pending again, no attempt counted


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt, as recorded on the outbox row."""

    delivery_id: int
    outcome: Outcome
    reason: str = ""
    retry_at: datetime | None = None
    response: dict[str, Any] | None = field(default=None)
    destination: str = ""

    @classmethod
    def sent(
        cls,
        delivery: Delivery,
        *,
        response: dict[str, Any] | None = None,
        destination: str = "",
    ) -> DeliveryResult:
        return cls(delivery.pk, Outcome.SENT, response=response, destination=destination)

    @classmethod
    def retry(
        cls,
        delivery: Delivery,
        reason: str,
        *,
        retry_at: datetime | None = None,
        response: dict[str, Any] | None = None,
    ) -> DeliveryResult:
        return cls(
            delivery.pk,
            Outcome.RETRY,
            reason=reason,
            retry_at=retry_at,
            response=response,
        )

    @classmethod
    def failed(cls, delivery: Delivery, reason: str, *, response: dict[str, Any] | None = None) -> DeliveryResult:
        return cls(delivery.pk, Outcome.FAILED, reason=reason, response=response)

    @classmethod
    def gone(cls, delivery: Delivery, reason: str, *, response: dict[str, Any] | None = None) -> DeliveryResult:
        return cls(delivery.pk, Outcome.GONE, reason=reason, response=response)

    @classmethod
    def deferred(cls, delivery: Delivery, reason: str, *, retry_at: datetime | None = None) -> DeliveryResult:
        return cls(delivery.pk, Outcome.DEFERRED, reason=reason, retry_at=retry_at)


#: A header name (an RFC 9110 token, which RFC 5322 field names also allow).
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: What a header value (or anything that ends up in a header) may not contain.
CONTROL_CHARACTERS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def headers_problem(headers: Any, reserved: frozenset[str]) -> str | None:
    """What is wrong with extra headers from ``OPTIONS["headers"]``, or ``None``.

    Names must be tokens and not among ``reserved`` (lowercase); values strings
    without CR, LF or other control characters. Values are never quoted back: they
    are often credentials.
    """
    if not isinstance(headers, Mapping):
        return f"must be a dict of header names to values, not {type(headers).__name__}"
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            return f"has an invalid header name {name!r}"
        if name.lower() in reserved:
            return f"cannot set {name}: the backend sets it"
        if not isinstance(value, str):
            return f"value of {name} must be a string, not {type(value).__name__}"
        if CONTROL_CHARACTERS_RE.search(value):
            return f"value of {name} must not contain CR, LF or other control characters"
    return None


#: A ``Retry-After`` further away than this is shortened to it.
MAX_RETRY_AFTER = timedelta(hours=1)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """When a ``Retry-After`` of delay-seconds or an HTTP-date says to retry, within an hour of ``now``."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):
        # Bounded before int(): a huge number needs no exact value, only the cap.
        delay = timedelta(seconds=int(value)) if len(value) <= 7 else MAX_RETRY_AFTER
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt_timezone.utc)  # "-0000": UTC, origin unknown
        delay = when - now
    return now + min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


class BaseChannelBackend:
    """Base class of channel backends; subclasses implement :meth:`send`.

    ``OPTIONS`` from the channel's settings are checked against
    :attr:`default_options`: an unknown key is a configuration error.
    """

    #: The OPTIONS this backend accepts, with their defaults.
    default_options: ClassVar[dict[str, Any]] = {}
    #: True for the inbox, whose notification row is its own delivery: no outbox rows.
    is_inbox: ClassVar[bool] = False
    #: True if the backend renders its own text when it sends (see :mod:`django_notify.content`),
    #: so ``notify()`` checks the channel's templates against the context up front.
    renders_own_text: ClassVar[bool] = False
    #: ``"user"``: one delivery per recipient; ``"push_subscription"``: one per
    #: active push subscription of the recipient.
    destination: ClassVar[str] = "user"
    #: Whether :meth:`send_digest` is implemented, so users may choose digests here.
    supports_digest: ClassVar[bool] = False

    def __init__(self, alias: str, **options: Any) -> None:
        unknown = set(options) - set(self.default_options)
        if unknown:
            known = ", ".join(sorted(self.default_options)) or "none"
            raise InvalidBackendError(
                f"Unknown OPTIONS {', '.join(sorted(unknown))} for channel {alias!r} "
                f"({type(self).__qualname__}). Valid options: {known}."
            )
        self.alias = alias
        self.options: dict[str, Any] = {**self.default_options, **options}
        self.validate_options()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.alias!r}>"

    def validate_options(self) -> None:
        """Raise :class:`InvalidBackendError` naming the option if a value cannot work."""

    def check(self) -> list[CheckMessage]:
        """Hook for ``manage.py check``: warnings about options that work but look wrong.

        Called once the options validated; return ``django.core.checks`` messages.
        """
        return []

    def send_batch(self, deliveries: Sequence[Delivery], *, deadline: float | None = None) -> list[DeliveryResult]:
        """Send every delivery; return one result per delivery, in order.

        ``deadline`` is a ``time.monotonic()`` value: deliveries not started by then
        come back ``DEFERRED``, so a slow destination cannot outlast the claim's lease.
        """
        try:
            self.open()
        except Exception as exc:
            return [self.result_for_exception(delivery, exc) for delivery in deliveries]
        try:
            results = []
            for delivery in deliveries:
                if deadline is not None and time.monotonic() >= deadline:
                    results.append(DeliveryResult.deferred(delivery, "the batch ran out of time"))
                    continue
                try:
                    results.append(self.send(delivery))
                except Exception as exc:
                    results.append(self.result_for_exception(delivery, exc))
            return results
        finally:
            self.close()

    def send_digest(self, deliveries: Sequence[Delivery]) -> DeliveryResult:
        """Send one message holding all ``deliveries`` (one recipient's digest).

        The result applies to every delivery of the digest; its ``delivery_id`` is
        the first one's. Only called if :attr:`supports_digest` is true.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not send digests")

    def open(self) -> None:
        """Hook: acquire what the batch shares (a connection, a session).

        One instance serves every batch of its alias in a process (and, in
        ``"inline"`` mode, possibly several threads): keep per-batch state in a
        ``threading.local`` rather than on ``self``. An exception here becomes a
        result for each delivery of the batch.
        """

    def close(self) -> None:
        """Hook: release what :meth:`open` acquired. Runs even if sending failed."""

    def send(self, delivery: Delivery) -> DeliveryResult:
        raise NotImplementedError(f"{type(self).__module__}.{type(self).__qualname__} must implement send()")

    def result_for_exception(self, delivery: Delivery, exc: Exception) -> DeliveryResult:
        """Classify an unexpected exception; by default it is worth a retry.

        The reason is stored on the delivery and shown in the admin: override this
        if your exceptions can carry secrets (tokens, URLs with credentials).
        """
        return DeliveryResult.retry(delivery, f"{type(exc).__name__}: {exc}")
