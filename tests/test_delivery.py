from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_notify import NotificationType, delivery, notify, queue
from django_notify.backends.base import BaseChannelBackend, DeliveryResult, Outcome
from django_notify.backends.locmem import LocMemBackend
from django_notify.models import (
    Delivery,
    EngagementEvent,
    EngineState,
    Notification,
    Preference,
    PushSubscription,
    UserPreferences,
)
from django_notify.signals import delivery_failed, delivery_sent, push_subscription_expired
from django_notify.testing import registered

ORDER = {"order_number": "A-7", "total": "9.90"}
UTC = dt.timezone.utc


@pytest.fixture
def engine_settings(settings):
    """Channels for the engine tests, small retry numbers; returns a setter."""
    base = dict(settings.DJANGO_NOTIFY)
    base["CHANNELS"] = {
        **base["CHANNELS"],
        "push": {"BACKEND": "tests.testapp.backends.PerSubscriptionBackend"},
        "scripted": {"BACKEND": "tests.test_delivery.ScriptedBackend"},
    }
    base.update({"RETRY_BASE_SECONDS": 10, "RETRY_MAX_SECONDS": 100, "MAX_ATTEMPTS": 3, "DELIVERY_MODE": "manual"})
    settings.DJANGO_NOTIFY = base

    def update(**values):
        settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, **values}

    ScriptedBackend.script = []
    ScriptedBackend.sent = []
    return update


class ScriptedBackend(BaseChannelBackend):
    """Answers with the next outcome of ``script`` (then "sent"); records what it sent."""

    supports_digest = True
    script: list[DeliveryResult | str] = []
    sent: list[int] = []

    def send(self, delivery):
        step = self.script.pop(0) if self.script else "sent"
        if isinstance(step, DeliveryResult):
            return DeliveryResult(delivery.pk, step.outcome, step.reason, step.retry_at, step.response)
        self.sent.append(delivery.pk)
        return DeliveryResult.sent(delivery, destination=f"to:{delivery.notification.recipient_id}", response={"ok": 1})

    def send_digest(self, deliveries):
        self.sent.append(tuple(d.pk for d in deliveries))
        return DeliveryResult.sent(deliveries[0], destination="digest")


def make(users, channels=("in_app", "scripted"), **kwargs):
    notify("order_placed", users, context=ORDER, channels=list(channels), **kwargs)
    return list(Delivery.objects.order_by("pk"))


def run(now=None):
    lease, rows = delivery.claim(500, now=now)
    return delivery.process(rows, lease, now=now), rows


# -- claims --------------------------------------------------------------------------


def test_claim_takes_only_due_ordinary_rows(engine_settings, user_factory):
    users = [user_factory() for _ in range(4)]
    rows = make(users)
    now = timezone.now()
    Delivery.objects.filter(pk=rows[1].pk).update(next_attempt_at=now + dt.timedelta(hours=1))
    Delivery.objects.filter(pk=rows[2].pk).update(digest="daily")
    Delivery.objects.filter(pk=rows[3].pk).update(status="sent")
    lease, claimed = delivery.claim(10, now=now)
    assert [d.pk for d in claimed] == [rows[0].pk]
    claimed_row = claimed[0]
    assert (claimed_row.status, claimed_row.lease_id, claimed_row.attempts) == ("sending", lease, 1)
    assert claimed_row.leased_until == now + dt.timedelta(seconds=300)
    assert delivery.claim(10, now=now)[1] == []  # nothing left for a second worker


def test_claim_respects_the_limit_and_is_disjoint(engine_settings, user_factory):
    make([user_factory() for _ in range(5)])
    first = delivery.claim(2)[1]
    second = delivery.claim(10)[1]
    assert len(first) == 2 and len(second) == 3
    assert not {d.pk for d in first} & {d.pk for d in second}


def test_results_are_not_written_to_rows_whose_lease_was_lost(engine_settings, user):
    make([user])
    lease, rows = delivery.claim(10)
    Delivery.objects.update(lease_id=None)  # the lease ran out and another worker took it
    delivery.process(rows, lease)
    assert Delivery.objects.get().status == "sending"


# -- outcomes ------------------------------------------------------------------------


def test_sent(engine_settings, user):
    received = []
    delivery_sent.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t-sent")
    try:
        make([user])
        report, _rows = run()
    finally:
        delivery_sent.disconnect(dispatch_uid="t-sent")
    row = Delivery.objects.get()
    assert (report.claimed, report.sent) == (1, 1)
    assert (row.status, row.attempts, row.lease_id, row.destination) == ("sent", 1, None, f"to:{user.pk}")
    assert row.sent_at == row.finished_at and row.provider_response == {"ok": 1}
    assert len(received) == 1 and received[0]["sender"] is ScriptedBackend and received[0]["delivery"].pk == row.pk


def test_retry_backs_off_with_full_jitter_then_fails(engine_settings, user):
    failures = []
    delivery_failed.connect(lambda **kw: failures.append(kw), weak=False, dispatch_uid="t-fail")
    ScriptedBackend.script = [DeliveryResult(0, Outcome.RETRY, "503")] * 3
    try:
        make([user])
        now = timezone.now()
        for attempt in (1, 2):
            run(now)
            row = Delivery.objects.get()
            ceiling = min(100, 10 * 2 ** (attempt - 1))
            assert row.status == "pending" and row.attempts == attempt and row.last_error == "503"
            assert now <= row.next_attempt_at <= now + dt.timedelta(seconds=ceiling)
            now = row.next_attempt_at
        run(now)
    finally:
        delivery_failed.disconnect(dispatch_uid="t-fail")
    row = Delivery.objects.get()
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "gave up after 3 attempts: 503"
    assert [kw["delivery"].pk for kw in failures] == [row.pk]


def test_retry_after_is_a_floor(engine_settings, user):
    make([user])
    now = timezone.now()
    ScriptedBackend.script = [DeliveryResult(0, Outcome.RETRY, "429", retry_at=now + dt.timedelta(seconds=60))]
    run(now)
    assert Delivery.objects.get().next_attempt_at >= now + dt.timedelta(seconds=60)


def test_retry_after_is_capped(engine_settings, user):
    make([user])
    now = timezone.now()
    ScriptedBackend.script = [DeliveryResult(0, Outcome.RETRY, "429", retry_at=now + dt.timedelta(days=2))]
    run(now)
    assert Delivery.objects.get().next_attempt_at <= timezone.now() + dt.timedelta(seconds=100)


def test_backoff_counts_from_when_the_attempt_failed_not_from_the_claim(engine_settings, user, monkeypatch):
    make([user])
    claimed = timezone.now()
    slow = dt.timedelta(minutes=5)  # the call took longer than any backoff of attempt 1 (at most 10 s)
    monkeypatch.setattr(delivery.timezone, "now", lambda: claimed + slow)
    ScriptedBackend.script = [DeliveryResult(0, Outcome.RETRY, "timeout")]
    run(claimed)
    row = Delivery.objects.get()
    assert row.status == "pending"
    assert claimed + slow <= row.next_attempt_at <= claimed + slow + dt.timedelta(seconds=10)


def test_retry_past_the_expiry_expires(engine_settings, user):
    make([user], expires_at=timezone.now() + dt.timedelta(seconds=50))  # before the 100 s cap
    now = timezone.now()
    ScriptedBackend.script = [DeliveryResult(0, Outcome.RETRY, "503", retry_at=now + dt.timedelta(minutes=30))]
    run(now)
    row = Delivery.objects.get()
    assert row.status == "expired" and "503" in row.last_error


def test_permanent_failure(engine_settings, user):
    ScriptedBackend.script = [DeliveryResult(0, Outcome.FAILED, "550 no such user")]
    make([user])
    run()
    row = Delivery.objects.get()
    assert (row.status, row.last_error) == ("failed", "550 no such user")


def test_one_failure_does_not_affect_the_rest(engine_settings, user_factory):
    ScriptedBackend.script = ["sent", DeliveryResult(0, Outcome.FAILED, "bad"), "sent"]
    make([user_factory() for _ in range(3)])
    run()
    assert list(Delivery.objects.order_by("pk").values_list("status", flat=True)) == ["sent", "failed", "sent"]


def test_expired_before_sending(engine_settings, user):
    make([user], expires_at=timezone.now() + dt.timedelta(seconds=1))
    run(timezone.now() + dt.timedelta(seconds=5))
    assert Delivery.objects.get().status == "expired"
    assert ScriptedBackend.sent == []


def test_out_of_time_is_deferred_without_counting_an_attempt(engine_settings, user_factory):
    make([user_factory() for _ in range(2)])
    engine_settings(LEASE_SECONDS=0)  # the batch's deadline (half the lease) has passed at once
    report, _rows = run()
    assert report.deferred == 2
    assert list(Delivery.objects.values_list("status", "attempts")) == [("pending", 0), ("pending", 0)]


def test_a_backend_that_raises_retries_the_batch(engine_settings, user, monkeypatch):
    make([user])
    monkeypatch.setattr(ScriptedBackend, "send_batch", lambda self, rows, deadline=None: 1 / 0)
    run()
    row = Delivery.objects.get()
    assert row.status == "pending" and "ZeroDivisionError" in row.last_error


def test_unknown_type_or_channel_fails_visibly(engine_settings, user):
    make([user])
    Notification.objects.update(type="removed_type")
    run()
    assert "no longer registered" in Delivery.objects.get().last_error


# -- push subscriptions --------------------------------------------------------------


def subscribe(user, name, active=True):
    return PushSubscription.objects.create(
        user=user, endpoint=f"https://fcm.googleapis.com/{name}", p256dh="k", auth="a", is_active=active
    )


def test_gone_deactivates_only_that_subscription(engine_settings, user, monkeypatch):
    first, second = subscribe(user, "a"), subscribe(user, "b")
    expired = []
    push_subscription_expired.connect(lambda **kw: expired.append(kw), weak=False, dispatch_uid="t-gone")

    def send(self, row):
        if row.subscription_id == first.pk:
            return DeliveryResult.gone(row, "410 Gone", response={"status": 410})
        return DeliveryResult.sent(row)

    monkeypatch.setattr(LocMemBackend, "send", send)
    try:
        make([user], channels=("in_app", "push"))
        run()
    finally:
        push_subscription_expired.disconnect(dispatch_uid="t-gone")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.is_active, first.deactivation_reason) == (False, "410 Gone")
    assert second.is_active and second.last_success_at is not None and second.failure_count == 0
    assert [(kw["subscription"].pk, kw["status_code"]) for kw in expired] == [(first.pk, 410)]
    statuses = dict(Delivery.objects.values_list("subscription_id", "status"))
    assert statuses == {first.pk: "failed", second.pk: "sent"}


def test_delivery_to_an_inactive_subscription_is_skipped(engine_settings, user):
    subscription = subscribe(user, "a")
    make([user], channels=("in_app", "push"))
    PushSubscription.objects.filter(pk=subscription.pk).update(is_active=False)
    run()
    assert Delivery.objects.get().status == "skipped"


def test_a_late_gone_for_an_old_endpoint_keeps_the_moved_subscription(engine_settings, user, monkeypatch):
    """The browser replaced its endpoint (pushsubscriptionchange) while the old one was being sent to."""
    subscription = subscribe(user, "old")

    def send(self, row):
        moved = PushSubscription.objects.get(pk=subscription.pk)
        moved.endpoint = "https://fcm.googleapis.com/new"
        moved.save()
        return DeliveryResult.gone(row, "HTTP 410")

    monkeypatch.setattr(LocMemBackend, "send", send)
    make([user], channels=("in_app", "push"))
    run()
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.endpoint == "https://fcm.googleapis.com/new"
    assert Delivery.objects.get().status == "failed"


@pytest.mark.parametrize(
    ("preferences", "status"),
    [
        ({}, "sent"),
        ({"categories": {"orders": False}}, "skipped"),
        ({"categories": {"orders": False}, "types": {"order_placed": True}}, "sent"),
        ({"types": {"order_placed": False}}, "skipped"),
        ({"categories": {"system": False}}, "sent"),
    ],
)
def test_push_subscription_preferences_apply_to_that_browser_only(engine_settings, user, preferences, status):
    muted = subscribe(user, "muted")
    PushSubscription.objects.filter(pk=muted.pk).update(preferences=preferences)
    other = subscribe(user, "other")
    make([user], channels=("in_app", "push"))
    run()
    statuses = dict(Delivery.objects.values_list("subscription_id", "status"))
    assert statuses == {muted.pk: status, other.pk: "sent"}


# -- preferences -----------------------------------------------------------------------


def test_muted_channel_is_skipped_at_send_time(engine_settings, user):
    make([user])
    Preference.objects.create(user=user, channel="scripted", enabled=False)  # after creation, before sending
    run()
    row = Delivery.objects.get()
    assert (row.status, row.last_error) == ("skipped", "muted by the recipient's preferences")
    assert Notification.objects.get().visible_at is not None  # the inbox is never muted


def test_most_specific_preference_wins(engine_settings, user_factory):
    on, off = user_factory(), user_factory()
    Preference.objects.create(user=on, category="orders", channel="scripted", enabled=False)
    Preference.objects.create(user=on, type="order_placed", enabled=True)  # type beats category
    Preference.objects.create(user=off, enabled=False)  # everything off
    make([on, off])
    run()
    statuses = dict(Delivery.objects.values_list("notification__recipient_id", "status"))
    assert statuses == {on.pk: "sent", off.pk: "skipped"}


def test_critical_and_required_channels_ignore_mutes(engine_settings, user):
    Preference.objects.create(user=user, enabled=False)
    critical = NotificationType(
        key="outage", category="system", title="Down", channels=["in_app", "scripted"], critical=True
    )
    required = NotificationType(
        key="security",
        category="system",
        title="Login",
        channels=["in_app", "scripted"],
        required_channels=["scripted"],
    )
    with registered(critical, required):
        notify("outage", user)
        notify("security", user)
        run()
    assert list(Delivery.objects.values_list("status", flat=True)) == ["sent", "sent"]


def test_forbidden_channel_is_refused_by_notify(engine_settings, user):
    from django_notify.exceptions import ForbiddenChannel

    with registered(
        NotificationType(key="quiet_type", title="x", channels=["in_app"], forbidden_channels=["scripted"])
    ):
        with pytest.raises(ForbiddenChannel):
            notify("quiet_type", user, channels=["in_app", "scripted"])
        assert NotificationType(
            key="t2", channels=["in_app", "scripted"], forbidden_channels=["scripted"]
        ).get_channels() == ("in_app",)


def test_preference_resolution_uses_two_queries_for_any_batch(engine_settings, user_factory):
    users = [user_factory() for _ in range(12)]
    for user in users:
        Preference.objects.create(user=user, channel="scripted", enabled=True)
        UserPreferences.objects.create(user=user, timezone="Europe/Berlin")
    make(users[:2])
    lease, rows = delivery.claim(500)
    with CaptureQueriesContext(connection) as small:
        delivery.process(rows, lease)
    Delivery.objects.all().delete()
    make(users)
    lease, rows = delivery.claim(500)
    with CaptureQueriesContext(connection) as large:
        delivery.process(rows, lease)
    assert len(small) == len(large)


# -- quiet hours -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "night", "expected_end_utc"),
    [
        # 23:30 local on the nights of the 2026 clock changes; quiet hours 22:00-07:00.
        ("Europe/Berlin", dt.date(2026, 3, 28), dt.datetime(2026, 3, 29, 5, 0, tzinfo=UTC)),  # 07:00 CEST
        ("Europe/Berlin", dt.date(2026, 10, 24), dt.datetime(2026, 10, 25, 6, 0, tzinfo=UTC)),  # 07:00 CET
        ("America/New_York", dt.date(2026, 3, 7), dt.datetime(2026, 3, 8, 11, 0, tzinfo=UTC)),  # 07:00 EDT
        ("America/New_York", dt.date(2026, 10, 31), dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)),  # 07:00 EST
    ],
)
def test_quiet_hours_defer_to_the_local_end_across_dst(engine_settings, user, zone, night, expected_end_utc):
    UserPreferences.objects.create(user=user, timezone=zone, quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7))
    now = dt.datetime.combine(night, dt.time(23, 30), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    make([user])
    Delivery.objects.update(next_attempt_at=now, expires_at=now + dt.timedelta(days=1))
    report, _rows = run(now)
    row = Delivery.objects.get()
    assert (report.deferred, row.status, row.attempts) == (1, "pending", 0)
    assert row.next_attempt_at == expected_end_utc
    assert row.last_error == "deferred by quiet hours"
    # Due again at the end of the window, sent once, not dropped.
    assert delivery.claim(10, now=expected_end_utc - dt.timedelta(seconds=1))[1] == []
    run(expected_end_utc)
    assert Delivery.objects.get().status == "sent"
    assert ScriptedBackend.sent == [row.pk]


def test_critical_types_bypass_quiet_hours(engine_settings, user):
    zone = ZoneInfo("Europe/Berlin")
    UserPreferences.objects.create(
        user=user, timezone="Europe/Berlin", quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7)
    )
    now = dt.datetime(2026, 6, 1, 23, 0, tzinfo=zone).astimezone(UTC)
    with registered(NotificationType(key="fire", title="Fire", channels=["in_app", "scripted"], critical=True)):
        notify("fire", user)
        Delivery.objects.update(next_attempt_at=now, expires_at=now + dt.timedelta(days=1))
        run(now)
    assert Delivery.objects.get().status == "sent"


def test_outside_quiet_hours_sends(engine_settings, user):
    UserPreferences.objects.create(
        user=user, timezone="Europe/Berlin", quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7)
    )
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    make([user])
    Delivery.objects.update(next_attempt_at=now, expires_at=now + dt.timedelta(days=1))
    run(now)
    assert Delivery.objects.get().status == "sent"


# -- digests -------------------------------------------------------------------------


def test_daily_digest_holds_then_sends_one_message(engine_settings, user, other_user, notify_outbox):
    engine_settings(DIGEST_CHANNEL="scripted")
    UserPreferences.objects.create(user=user, timezone="Europe/Berlin")
    Preference.objects.create(user=user, channel="scripted", category="orders", frequency="daily")
    zone = ZoneInfo("Europe/Berlin")
    now = dt.datetime(2026, 6, 1, 15, 0, tzinfo=zone).astimezone(UTC)
    for _ in range(3):
        make([user, other_user])
    Delivery.objects.update(next_attempt_at=now)
    report, _rows = run(now)
    assert report.sent == 3  # the other user's, at once
    held = Delivery.objects.filter(notification__recipient=user)
    digest_at = dt.datetime(2026, 6, 2, 8, 0, tzinfo=zone).astimezone(UTC)
    assert set(held.values_list("status", "digest", "next_attempt_at", "attempts")) == {
        ("pending", "daily", digest_at, 0)
    }
    assert delivery.claim(10, now=digest_at)[1] == []  # ordinary claims leave digest items alone
    first_read = held.order_by("pk").first().notification
    first_read.mark_read()
    digest_report = delivery.send_digests(now=digest_at)
    assert (digest_report.sent, digest_report.skipped) == (2, 1)
    assert ScriptedBackend.sent[-1] == tuple(held.filter(status="sent").order_by("pk").values_list("pk", flat=True))
    assert held.get(notification=first_read).last_error == "read before the digest was sent"


# -- leases and upkeep ---------------------------------------------------------------


def test_expired_leases_are_released_and_poison_rows_fail(engine_settings, user_factory):
    make([user_factory() for _ in range(2)])
    now = timezone.now()
    lease, rows = delivery.claim(10, now=now)  # the worker dies here
    Delivery.objects.filter(pk=rows[1].pk).update(attempts=3)
    assert delivery.release_expired_leases(now=now + dt.timedelta(seconds=299)) == 0
    assert delivery.release_expired_leases(now=now + dt.timedelta(seconds=301)) == 2
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {rows[0].pk: "pending", rows[1].pk: "failed"}


def test_expire_overdue(engine_settings, user):
    make([user], expires_at=timezone.now() + dt.timedelta(minutes=1))
    assert delivery.expire_overdue(now=timezone.now() + dt.timedelta(minutes=2)) == 1
    assert Delivery.objects.get().status == "expired"


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_bounds(engine_settings, attempt):
    rng = random.Random(attempt)
    delays = [delivery.backoff_delay(attempt, rng) for _ in range(200)]
    ceiling = min(100, 10 * 2 ** (attempt - 1))
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range


def test_processing_queries_do_not_grow_with_the_batch(engine_settings, user_factory):
    counts = []
    for size in (2, 20):
        Delivery.objects.all().delete()
        make([user_factory() for _ in range(size)])
        with CaptureQueriesContext(connection) as queries:
            run()
        counts.append(len(queries))
    assert counts[0] == counts[1]


# -- kicks, modes, transactions ----------------------------------------------------


def test_inline_mode_delivers_on_commit(engine_settings, user, django_capture_on_commit_callbacks):
    engine_settings(DELIVERY_MODE="inline")
    with django_capture_on_commit_callbacks(execute=True):
        make([user])
    assert Delivery.objects.get().status == "sent"


def test_queue_mode_enqueues_one_task_for_a_burst(
    engine_settings, user_factory, django_capture_on_commit_callbacks, monkeypatch
):
    engine_settings(DELIVERY_MODE="queue")
    enqueued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, **kw: enqueued.append(func))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            make([user_factory()])
    assert enqueued == ["django_notify.tasks.deliver"]  # one queued task drains them all
    queue.task_started()  # the task begins: later commits queue a new one
    with django_capture_on_commit_callbacks(execute=True):
        make([user_factory()])
    assert len(enqueued) == 2


def test_queue_mode_runs_the_task(engine_settings, user, django_capture_on_commit_callbacks):
    # tests/settings.py runs django-q2 tasks synchronously ("sync": True).
    engine_settings(DELIVERY_MODE="queue")
    with django_capture_on_commit_callbacks(execute=True):
        make([user])
    assert Delivery.objects.get().status == "sent"
    assert EngineState.objects.get(key="worker").value is not None


def test_a_stale_kick_is_replaced(engine_settings, db):
    now = timezone.now()
    assert queue._claim_kick(now) is True
    assert queue._claim_kick(now) is False
    assert queue._claim_kick(now + dt.timedelta(minutes=6)) is True


def test_manual_mode_sends_nothing_until_notify_process(
    engine_settings, user, django_capture_on_commit_callbacks, capsys
):
    with django_capture_on_commit_callbacks(execute=True):
        make([user])
    assert Delivery.objects.get().status == "pending"
    call_command("notify_process")
    assert Delivery.objects.get().status == "sent"
    assert "1 claimed: 1 sent" in capsys.readouterr().out


def test_rollback_sends_nothing(engine_settings, user, django_capture_on_commit_callbacks):
    engine_settings(DELIVERY_MODE="inline")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        make([user])
        raise RuntimeError
    assert not Delivery.objects.exists() and ScriptedBackend.sent == []


def test_send_at_wakes_the_sweeper_instead(engine_settings, user, django_capture_on_commit_callbacks):
    from django_q.models import Schedule

    engine_settings(DELIVERY_MODE="queue")
    queue.ensure_schedules()
    Schedule.objects.filter(name=queue.SWEEP_SCHEDULE).update(next_run=timezone.now() + dt.timedelta(hours=1))
    later = timezone.now() + dt.timedelta(minutes=10)
    with django_capture_on_commit_callbacks(execute=True):
        make([user], send_at=later)
    assert Delivery.objects.get().status == "pending"
    assert Schedule.objects.get(name=queue.SWEEP_SCHEDULE).next_run == later


def test_schedules_are_created_once(engine_settings, db):
    from django_q.models import Schedule

    engine_settings(DELIVERY_MODE="queue")
    queue.ensure_schedules()
    queue.ensure_schedules()
    sweep = Schedule.objects.get(name=queue.SWEEP_SCHEDULE)
    assert (sweep.func, sweep.minutes, sweep.repeats) == ("django_notify.tasks.sweep", 1, -1)
    assert Schedule.objects.filter(name=queue.CLEANUP_SCHEDULE).count() == 1
    engine_settings(SWEEP_MINUTES=2)
    queue.ensure_schedules()
    assert Schedule.objects.get(name=queue.SWEEP_SCHEDULE).minutes == 2


def test_sweep_task(engine_settings, user_factory):
    from django_notify import tasks

    make([user_factory() for _ in range(2)])
    lease, rows = delivery.claim(1)
    Delivery.objects.filter(pk=rows[0].pk).update(leased_until=timezone.now() - dt.timedelta(seconds=1))
    engine_settings(DELIVERY_MODE="inline")
    result = tasks.sweep()
    assert (result["released"], result["due"]) == (1, 2)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert EngineState.objects.get(key="sweeper").value is not None


# -- retention -----------------------------------------------------------------------


def test_retention_deletes_old_rows_in_batches(engine_settings, user, monkeypatch):
    from django_notify import retention

    monkeypatch.setattr(retention, "BATCH", 2)
    make([user])
    make([user])
    make([user])
    old, young = Notification.objects.order_by("pk")[:2], Notification.objects.order_by("pk")[2]
    Notification.objects.filter(pk__in=[n.pk for n in old]).update(created_at=timezone.now() - dt.timedelta(days=200))
    EngagementEvent.objects.create(notification=old[0], type="order_placed", kind="clicked")
    run()
    Delivery.objects.filter(notification=young).update(finished_at=timezone.now() - dt.timedelta(days=31))
    assert retention.purge(dry_run=True) == {"notifications": 2, "deliveries": 1, "events": 0}
    counts = retention.purge()
    assert counts == {"notifications": 2, "deliveries": 1, "events": 0}
    assert list(Notification.objects.values_list("pk", flat=True)) == [young.pk]
    assert not Delivery.objects.exists() and not EngagementEvent.objects.exists()


def test_notify_cleanup_command(engine_settings, user, capsys):
    make([user])
    Notification.objects.update(expires_at=timezone.now() - dt.timedelta(days=2))
    call_command("notify_cleanup", "--dry-run")
    assert "Would delete 1 notifications" in capsys.readouterr().out
    call_command("notify_cleanup")
    assert "Deleted 1 notifications" in capsys.readouterr().out
    assert not Notification.objects.exists()


def test_notify_send_test(engine_settings, user, capsys):
    Preference.objects.create(user=user, enabled=False)  # the test type is critical: still sent
    call_command("notify_send_test", user.username, "--channel", "in_app", "--channel", "scripted")
    assert "1 deliveries on scripted" in capsys.readouterr().out
    call_command("notify_process")
    row = Delivery.objects.get()
    assert (row.status, row.notification.type) == ("sent", "django_notify.test")
    call_command("notify_send_test", str(user.pk), "--channel", "in_app")
    assert Notification.objects.count() == 2


@pytest.mark.parametrize(("args", "message"), [(["nobody"], "No user"), (["{user}", "--channel", "pigeon"], "pigeon")])
def test_notify_send_test_errors(engine_settings, user, args, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("notify_send_test", *[a.replace("{user}", user.username) for a in args])


def test_the_task_budget_bounds_a_batch(engine_settings, user_factory, monkeypatch):
    """A slow channel stops at the task's budget; the rest is deferred, not attempted."""
    clock = iter(range(1000))
    monkeypatch.setattr(delivery.time, "monotonic", lambda: float(next(clock)))
    make([user_factory() for _ in range(6)])
    report = delivery.deliver_due(budget_seconds=4)
    assert report.sent + report.deferred == 6 and 0 < report.deferred < 6
    assert Delivery.objects.filter(status="pending", attempts=0).count() == report.deferred


def test_critical_types_ignore_push_subscription_preferences():
    from django_notify.preferences import subscription_allows

    critical = NotificationType(key="outage", category="system", title="Down", critical=True)
    muted = {"categories": {"system": False}, "types": {"outage": False}}
    assert subscription_allows(muted, critical)
    assert not subscription_allows(muted, NotificationType(key="outage", category="system", title="Down"))
    assert subscription_allows({"types": "garbage"}, NotificationType(key="x", title="x"))
