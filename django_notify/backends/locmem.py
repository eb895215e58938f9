"""A backend for tests: collects messages in :data:`django_notify.testing.outbox`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django_notify import testing
from django_notify.backends.base import BaseChannelBackend, DeliveryResult, Outcome
from django_notify.exceptions import InvalidBackendError

if TYPE_CHECKING:
    from django_notify.models import Delivery


class LocMemBackend(BaseChannelBackend):
    """Append each delivery to ``django_notify.testing.outbox`` instead of sending it.

    ``OPTIONS={"outcome": "retry"}`` (or ``"failed"``, ``"gone"``) makes every send
    end that way, to test how an app copes with failures.
    """

    default_options: ClassVar[dict[str, Any]] = {"outcome": "sent"}
    supports_digest: ClassVar[bool] = True

    def validate_options(self) -> None:
        valid = {outcome.value for outcome in Outcome}
        if self.options["outcome"] not in valid:
            raise InvalidBackendError(
                f"OPTIONS['outcome'] of channel {self.alias!r} must be one of {', '.join(sorted(valid))}."
            )

    def send(self, delivery: Delivery) -> DeliveryResult:
        outcome = Outcome(self.options["outcome"])
        if outcome is not Outcome.SENT:
            return DeliveryResult(
                delivery.pk,
                outcome,
                reason=f"LocMemBackend configured to answer {outcome.value}",
            )
        testing.outbox.append(testing.OutboxMessage.from_delivery(delivery))
        return DeliveryResult.sent(delivery, destination=f"locmem:{delivery.notification.recipient_id}")

    def send_digest(self, deliveries: Sequence[Delivery]) -> DeliveryResult:
        first = deliveries[0]
        outcome = Outcome(self.options["outcome"])
        if outcome is not Outcome.SENT:
            return DeliveryResult(first.pk, outcome, reason=f"LocMemBackend configured to answer {outcome.value}")
        testing.outbox.append(testing.OutboxMessage.digest_of(deliveries))
        return DeliveryResult.sent(first, destination=f"locmem:{first.notification.recipient_id}")
