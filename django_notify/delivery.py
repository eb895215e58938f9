"""The delivery engine: claim due outbox rows, send them, record what happened.

One batch goes through three steps, and only the first holds a transaction:

1. :func:`claim` takes up to ``BATCH_SIZE`` due rows for this worker alone:
   ``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it, then a
   compare-and-set ``UPDATE … WHERE status = 'pending'`` that also protects SQLite.
   Each claimed row gets a lease (``lease_id``, ``leased_until``) and one more
   attempt; the transaction commits before any network I/O.
2. :func:`process` decides each row with the recipient's preferences, quiet hours
   and digest choice (loaded for the whole batch in two queries), then hands the
   rest to the channel backends, each ``send_batch`` bounded by half the lease.
3. The results are written in bulk, only to rows this worker still holds.

A worker that dies leaves rows ``sending``; :func:`release_expired_leases` (run by
the sweeper) puts them back once their lease has run out. Delivery is therefore
at-least-once: a crash between a provider's "accepted" and step 3 sends again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction
from django.db.models import F, Field, Min
from django.utils import timezone

from django_notify.backends.base import BaseChannelBackend, DeliveryResult, Outcome
from django_notify.channels import channels
from django_notify.conf import notify_settings
from django_notify.models import Delivery, DeliveryStatus, PushSubscription
from django_notify.preferences import RecipientPreferences, load_recipients, next_digest_time, subscription_allows
from django_notify.registry import NotificationType, registry
from django_notify.signals import delivery_failed, delivery_sent, push_subscription_expired

logger = logging.getLogger(__name__)

#: Fields a batch may change; written back in one bulk update.
RESULT_FIELDS = (
    "status",
    "attempts",
    "next_attempt_at",
    "leased_until",
    "lease_id",
    "expires_at",
    "sent_at",
    "finished_at",
    "last_error",
    "provider_response",
    "destination",
    "digest",
)


@dataclass
class BatchReport:
    """What one batch (or one sweep) did, by final state."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    deferred: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0
    next_due: dt.datetime | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchReport) -> None:
        for name in ("claimed", "sent", "retried", "deferred", "failed", "expired", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.next_due = _earliest(self.next_due, other.next_due)


def _earliest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else min(a, b)


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before the next try after failed attempt number ``attempt`` (1-based).

    Full jitter: uniform in ``[0, min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**(attempt-1))]``.
    """
    ceiling = min(notify_settings.RETRY_MAX_SECONDS, notify_settings.RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling)


def _db() -> str:
    return router.db_for_write(Delivery)


# -- step 1: claim -------------------------------------------------------------------


def claim(limit: int, *, now: dt.datetime | None = None, digests: bool = False) -> tuple[uuid.UUID, list[Delivery]]:
    """Lease up to ``limit`` due rows to this caller; return the lease and the rows.

    ``digests`` claims the rows held for digests instead of the ordinary ones.
    """
    using = _db()
    now = now or timezone.now()
    lease = uuid.uuid4()
    due = Delivery.objects.using(using).filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    due = due.exclude(digest="") if digests else due.filter(digest="")
    with transaction.atomic(using=using):
        if connections[using].features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
        if not ids:
            return lease, []
        # The status condition is the compare-and-set: a row another worker took
        # between our SELECT and this UPDATE (SQLite has no row locks) is not ours.
        Delivery.objects.using(using).filter(pk__in=ids, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.SENDING,
            lease_id=lease,
            leased_until=now + dt.timedelta(seconds=notify_settings.LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    # By key (indexed), and the lease: rows the compare-and-set gave to another worker drop out.
    rows = (
        Delivery.objects.using(using).filter(pk__in=ids, lease_id=lease).select_related("notification", "subscription")
    )
    return lease, list(rows.order_by("pk"))


# -- step 2: decide and send -------------------------------------------------------


class _Batch:
    """The decisions for one claimed batch, applied to the rows in memory."""

    def __init__(self, rows: Sequence[Delivery], lease: uuid.UUID, now: dt.datetime) -> None:
        self.rows = {row.pk: row for row in rows}
        self.lease = lease
        self.now = now
        self.report = BatchReport(claimed=len(rows))
        self.sent: list[tuple[Delivery, DeliveryResult, type[BaseChannelBackend]]] = []
        self.failed: list[tuple[Delivery, DeliveryResult | None, type[BaseChannelBackend] | None]] = []
        self.touched_subscriptions: dict[str, set[int]] = defaultdict(set)
        #: Subscriptions a push service called gone: id -> (endpoint digest sent to, reason).
        self.gone_subscriptions: dict[int, tuple[str, str]] = {}

    # Each method below moves one row to its next state.

    def finish(self, row: Delivery, status: str, reason: str = "") -> None:
        row.status = status
        row.finished_at = self.now
        row.last_error = reason[:2000]
        self._release(row)

    def _release(self, row: Delivery) -> None:
        row.lease_id = None
        row.leased_until = None

    def defer(self, row: Delivery, until: dt.datetime | None, reason: str, *, digest: str = "") -> None:
        row.status = DeliveryStatus.PENDING
        row.attempts = max(row.attempts - 1, 0)  # not an attempt
        row.next_attempt_at = max(until or self.now, self.now)
        row.last_error = reason
        if digest:
            row.digest = digest
            row.expires_at = None  # a digest item waits for its digest, whatever the TTL
        self._release(row)
        self.report.deferred += 1
        self.report.next_due = _earliest(self.report.next_due, row.next_attempt_at)

    def skip(self, row: Delivery, reason: str) -> None:
        self.finish(row, DeliveryStatus.SKIPPED, reason)
        self.report.skipped += 1

    def expire(self, row: Delivery, reason: str = "past its expiry time") -> None:
        self.finish(row, DeliveryStatus.EXPIRED, reason)
        self.report.expired += 1
        self.failed.append((row, None, None))

    def fail(
        self,
        row: Delivery,
        reason: str,
        result: DeliveryResult | None = None,
        backend: type[BaseChannelBackend] | None = None,
    ) -> None:
        self.finish(row, DeliveryStatus.FAILED, reason)
        self.report.failed += 1
        self.failed.append((row, result, backend))

    def apply(
        self, row: Delivery, result: DeliveryResult, backend: type[BaseChannelBackend], at: dt.datetime | None = None
    ) -> None:
        """Record a backend's result for ``row``; ``at`` is when its channel answered."""
        if result.response is not None:
            row.provider_response = result.response
        subscription = row.subscription_id
        if result.outcome is Outcome.SENT:
            if result.destination:
                row.destination = result.destination[:255]
            self.finish(row, DeliveryStatus.SENT)
            row.sent_at = row.finished_at = at or self.now
            self.report.sent += 1
            self.sent.append((row, result, backend))
            if subscription:
                self.touched_subscriptions["ok"].add(subscription)
        elif result.outcome is Outcome.DEFERRED:
            self.defer(row, result.retry_at, result.reason)
        elif result.outcome is Outcome.RETRY:
            self.retry(row, result, backend, at or self.now)
            if subscription:
                self.touched_subscriptions["failed"].add(subscription)
        elif result.outcome is Outcome.GONE:
            self.fail(row, f"gone: {result.reason}", result, backend)
            if subscription and row.subscription is not None:
                # The endpoint as claimed, which the backend sent to: a browser may have moved
                # the subscription to a new endpoint since, and a late 410 must not end that.
                sent_to = row.subscription.endpoint_sha256
                self.gone_subscriptions[subscription] = (sent_to, result.reason[:100] or "gone")
        else:
            self.fail(row, result.reason or "failed", result, backend)
            if subscription:
                self.touched_subscriptions["failed"].add(subscription)

    def retry(
        self, row: Delivery, result: DeliveryResult, backend: type[BaseChannelBackend], failed_at: dt.datetime
    ) -> None:
        if row.attempts >= notify_settings.MAX_ATTEMPTS:
            self.fail(row, f"gave up after {row.attempts} attempts: {result.reason}", result, backend)
            return
        # From when the attempt failed, not when the batch was claimed: a slow or timed-out
        # call would otherwise use up the backoff and be retried at once.
        at = failed_at + dt.timedelta(seconds=backoff_delay(row.attempts))
        if result.retry_at is not None:
            # Retry-After is a floor; never wait longer than the backoff cap for it.
            ceiling = failed_at + dt.timedelta(seconds=notify_settings.RETRY_MAX_SECONDS)
            at = max(at, min(result.retry_at, ceiling))
        if row.expires_at is not None and at > row.expires_at:
            self.expire(row, f"expired before its next attempt: {result.reason}")
            return
        row.status = DeliveryStatus.PENDING
        row.next_attempt_at = at
        row.last_error = result.reason[:2000]
        self._release(row)
        self.report.retried += 1
        self.report.next_due = _earliest(self.report.next_due, at)


def _type_of(row: Delivery) -> NotificationType | None:
    key = row.notification.type
    return registry.get(key) if key in registry else None


def process(
    rows: Sequence[Delivery], lease: uuid.UUID, *, now: dt.datetime | None = None, deadline: float | None = None
) -> BatchReport:
    """Decide, send and record one claimed batch; never raises for a delivery's failure.

    Sending stops at ``deadline`` (a ``time.monotonic()`` value), and at half the
    lease in any case; the rows not started by then are deferred, not attempted.
    """
    now = now or timezone.now()
    batch = _Batch(rows, lease, now)
    if not rows:
        return batch.report
    lease_deadline = time.monotonic() + notify_settings.LEASE_SECONDS / 2
    deadline = lease_deadline if deadline is None else min(deadline, lease_deadline)
    recipients = load_recipients({row.notification.recipient_id for row in rows}, using=_db())
    to_send: dict[str, list[Delivery]] = defaultdict(list)
    for row in rows:
        if _decide(batch, row, recipients[row.notification.recipient_id]):
            to_send[row.channel].append(row)
    for alias, group in to_send.items():
        backend = channels[alias]
        try:
            results = backend.send_batch(group, deadline=deadline)
        except Exception as exc:  # a bug in a backend must not lose the batch
            logger.exception("Channel %r failed a whole batch", alias)
            results = [DeliveryResult.retry(row, f"backend error: {type(exc).__name__}: {exc}") for row in group]
        # One time per channel batch, so its rows share one UPDATE; never before the claim
        # (``now`` may be a caller's clock).
        answered = max(timezone.now(), now)
        by_id = {result.delivery_id: result for result in results}
        for row in group:
            result = by_id.get(row.pk) or DeliveryResult.retry(row, "the backend returned no result for it")
            batch.apply(row, result, type(backend), answered)
    _record(batch)
    return batch.report


def _decide(batch: _Batch, row: Delivery, recipient: RecipientPreferences) -> bool:
    """Settle ``row`` without sending, or return True if it should be sent now."""
    if row.expires_at is not None and row.expires_at <= batch.now:
        batch.expire(row)
        return False
    notification_type = _type_of(row)
    if notification_type is None:
        batch.fail(row, f"notification type {row.notification.type!r} is no longer registered")
        return False
    if row.channel not in channels:
        batch.fail(row, f"channel {row.channel!r} is no longer configured")
        return False
    backend = channels[row.channel]
    if row.channel in notification_type.forbidden_channels:
        batch.skip(row, "the type is never sent on this channel")
        return False
    if backend.destination == "push_subscription":
        if row.subscription is None or not row.subscription.is_active:
            batch.skip(row, "the push subscription is no longer active")
            return False
        if not subscription_allows(row.subscription.preferences, notification_type):
            batch.skip(row, "muted on this browser (push subscription preferences)")
            return False
    if not recipient.allows(notification_type, row.channel):
        batch.skip(row, "muted by the recipient's preferences")
        return False
    digest = recipient.digest(notification_type, row.channel) if backend.supports_digest else ""
    if digest and not row.digest:
        batch.defer(
            row, next_digest_time(batch.now, recipient.zone, digest), f"held for the {digest} digest", digest=digest
        )
        return False
    if not notification_type.critical:
        until = recipient.quiet_until(batch.now)
        if until is not None:
            batch.defer(row, until, "deferred by quiet hours")
            return False
    return True


# -- step 3: record ------------------------------------------------------------------


def _record(batch: _Batch) -> None:
    """Write the batch's results: only to rows this worker still holds.

    Rows whose results are identical (most of a batch: same status and times, and
    often the same response) share one ``UPDATE … WHERE id IN (…)``; rows with
    values of their own (a destination address, a provider's id) are written by one
    statement run per row, which psycopg pipelines. Django's ``bulk_update`` would
    build a ``CASE`` per row and field, milliseconds per row in Python.
    """
    using = _db()
    connection = connections[using]
    qn = connection.ops.quote_name
    fields = [_concrete_field(name) for name in RESULT_FIELDS]
    table = qn(Delivery._meta.db_table)
    assignments = ", ".join(f"{qn(str(field.column))} = %s" for field in fields)
    pk, lease_field = _concrete_field("id"), _concrete_field("lease_id")
    pk_column, lease_column = qn(str(pk.column)), qn(str(lease_field.column))
    lease = lease_field.get_db_prep_save(batch.lease, connection)

    def values(row: Delivery) -> list[Any]:
        return [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields]

    groups: dict[str, list[Delivery]] = defaultdict(list)
    for row in batch.rows.values():
        key = json.dumps([getattr(row, field.attname) for field in fields], cls=DjangoJSONEncoder, sort_keys=True)
        groups[key].append(row)
    written = 0
    singles = []
    in_list_size = max(1, (connection.features.max_query_params or 10_000) - len(fields) - 1)
    # One transaction for the batch: one commit (one fsync) instead of one per row.
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for rows in groups.values():
            if len(rows) == 1:
                singles.append(rows[0])
                continue
            shared = values(rows[0])
            for start in range(0, len(rows), in_list_size):
                ids = [row.pk for row in rows[start : start + in_list_size]]
                cursor.execute(
                    f"UPDATE {table} SET {assignments} WHERE {pk_column} IN ({', '.join(['%s'] * len(ids))}) "
                    f"AND {lease_column} = %s",
                    [*shared, *ids, lease],
                )
                written += cursor.rowcount
        if singles:
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s AND {lease_column} = %s",
                [[*values(row), row.pk, lease] for row in singles],
            )
            written += max(cursor.rowcount, 0)
        gone = _update_subscriptions(batch, using)
    if written < len(batch.rows):
        logger.warning(
            "Lost the lease on %d of %d deliveries; their results were not recorded.",
            len(batch.rows) - written,
            len(batch.rows),
        )
    _send_signals(batch, gone)


def _concrete_field(name: str) -> Field[Any, Any]:
    field = Delivery._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"Delivery.{name} is not a concrete field")
    return field


def _update_subscriptions(batch: _Batch, using: str) -> list[PushSubscription]:
    """Bookkeeping of the push subscriptions the batch used; return those now deactivated."""
    touched = batch.touched_subscriptions
    subscriptions = PushSubscription.objects.using(using)
    if touched["ok"]:
        subscriptions.filter(pk__in=touched["ok"]).update(last_success_at=batch.now, failure_count=0)
    if touched["failed"]:
        subscriptions.filter(pk__in=touched["failed"]).update(
            last_failure_at=batch.now, failure_count=F("failure_count") + 1
        )
    gone: list[PushSubscription] = []
    if batch.gone_subscriptions:
        candidates = subscriptions.filter(pk__in=batch.gone_subscriptions, is_active=True)
        gone = [s for s in candidates if batch.gone_subscriptions[s.pk][0] == s.endpoint_sha256]
        for subscription in gone:
            reason = batch.gone_subscriptions[subscription.pk][1]
            subscriptions.filter(pk=subscription.pk, endpoint_sha256=subscription.endpoint_sha256).update(
                is_active=False, deactivated_at=batch.now, deactivation_reason=reason, last_failure_at=batch.now
            )
    return gone


def _send_signals(batch: _Batch, gone: list[PushSubscription]) -> None:
    if delivery_sent.has_listeners():
        for row, result, backend in batch.sent:
            delivery_sent.send_robust(sender=backend, delivery=row, result=result)
    if delivery_failed.has_listeners():
        for row, failed_result, failed_backend in batch.failed:
            delivery_failed.send_robust(sender=failed_backend or Delivery, delivery=row, result=failed_result)
    codes = {
        row.subscription_id: (result.response or {}).get("status") for row, result, _backend in batch.failed if result
    }
    for subscription in gone:
        push_subscription_expired.send_robust(
            sender=type(subscription), subscription=subscription, status_code=codes.get(subscription.pk)
        )


# -- digests -------------------------------------------------------------------------


def send_digests(*, now: dt.datetime | None = None, limit: int = 5000) -> BatchReport:
    """Send every due digest: one message per recipient and channel.

    Items read in the inbox meanwhile are skipped, as are items the recipient has
    since muted. Run by the sweeper alone, so a recipient's items are never split
    between two concurrent digests.
    """
    now = now or timezone.now()
    lease, rows = claim(limit, now=now, digests=True)
    batch = _Batch(rows, lease, now)
    if not rows:
        return batch.report
    recipients = load_recipients({row.notification.recipient_id for row in rows}, using=_db())
    groups: dict[tuple[Any, str], list[Delivery]] = defaultdict(list)
    for row in rows:
        notification_type = _type_of(row)
        if row.notification.read_at is not None:
            batch.skip(row, "read before the digest was sent")
        elif notification_type is None or row.channel not in channels:
            batch.fail(row, "its type or channel is no longer configured")
        elif not recipients[row.notification.recipient_id].allows(notification_type, row.channel):
            batch.skip(row, "muted by the recipient's preferences")
        else:
            groups[(row.notification.recipient_id, row.channel)].append(row)
    for (_recipient, alias), items in groups.items():
        backend = channels[alias]
        try:
            result = backend.send_digest(items)
        except Exception as exc:
            logger.exception("Channel %r failed a digest", alias)
            result = DeliveryResult.retry(items[0], f"backend error: {type(exc).__name__}: {exc}")
        for item in items:
            batch.apply(
                item,
                DeliveryResult(
                    item.pk, result.outcome, result.reason, result.retry_at, result.response, result.destination
                ),
                type(backend),
            )
    _record(batch)
    return batch.report


# -- upkeep run by the sweeper -----------------------------------------------------


def release_expired_leases(*, now: dt.datetime | None = None) -> int:
    """Put rows of dead workers back in the queue; fail those that keep dying."""
    now = now or timezone.now()
    stale = Delivery.objects.using(_db()).filter(status=DeliveryStatus.SENDING, leased_until__lt=now)
    reset = {"lease_id": None, "leased_until": None}
    failed = stale.filter(attempts__gte=notify_settings.MAX_ATTEMPTS).update(
        status=DeliveryStatus.FAILED,
        finished_at=now,
        last_error="its worker stopped during every attempt",
        **reset,
    )
    released = stale.update(status=DeliveryStatus.PENDING, next_attempt_at=now, **reset)
    return failed + released


def expire_overdue(*, now: dt.datetime | None = None) -> int:
    """Mark pending rows past their expiry time ``expired`` (they will not be claimed)."""
    now = now or timezone.now()
    overdue = Delivery.objects.using(_db()).filter(status=DeliveryStatus.PENDING, expires_at__lte=now)
    if not delivery_failed.has_listeners():
        return overdue.update(status=DeliveryStatus.EXPIRED, finished_at=now, last_error="past its expiry time")
    rows = list(overdue.select_related("notification")[:5000])
    Delivery.objects.using(_db()).filter(pk__in=[r.pk for r in rows], status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.EXPIRED, finished_at=now, last_error="past its expiry time"
    )
    for row in rows:
        row.status = DeliveryStatus.EXPIRED
        delivery_failed.send_robust(sender=Delivery, delivery=row, result=None)
    return len(rows)


def due_count(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    return (
        Delivery.objects.using(_db()).filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, digest="").count()
    )


def next_due_time() -> dt.datetime | None:
    """When the earliest pending row (ordinary or digest) becomes due."""
    found: dt.datetime | None = (
        Delivery.objects.using(_db()).filter(status=DeliveryStatus.PENDING).aggregate(at=Min("next_attempt_at"))["at"]
    )
    return found


def deliver_due(*, budget_seconds: float | None = None, now_func: Any = None) -> BatchReport:
    """Claim and process batches until nothing is due or the time budget is spent."""
    report = BatchReport()
    # The budget also bounds each batch: a slow channel must not keep a task past
    # django-q2's timeout, which would kill it mid-batch and send its rows twice.
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    while deadline is None or time.monotonic() < deadline:
        now = now_func() if now_func else timezone.now()
        lease, rows = claim(notify_settings.BATCH_SIZE, now=now)
        if not rows:
            break
        report.add(process(rows, lease, now=now, deadline=deadline))
    return report
