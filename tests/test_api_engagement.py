from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_notify.api.engagement import EventThrottle
from django_notify.models import Delivery, EngagementEvent, EngineState, Notification
from django_notify.signals import engagement_recorded, notification_read
from django_notify.tokens import make_event_token

EVENTS = "/api/notifications/events/"
STATS = "/api/notifications/stats/"
HEALTH = "/api/notifications/health/"

_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    # Throttle counts live in the cache, which outlives a test.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_notification(db):
    """A notification row made with the ORM, so no delivery engine runs."""

    def create(recipient, type="order_placed", **fields):
        now = timezone.now()
        fields.setdefault("created_at", now)
        fields.setdefault("visible_at", fields["created_at"])
        return Notification.objects.create(
            recipient=recipient, type=type, category="orders", title=f"Order {next(_numbers)}", **fields
        )

    return create


@pytest.fixture
def make_delivery(db):
    def create(notification, channel="email", status="pending", **fields):
        return Delivery.objects.create(notification=notification, channel=channel, status=status, **fields)

    return create


def post_event(client, body):
    return client.post(EVENTS, body, format="json")


# -- events by token ---------------------------------------------------------------


def test_token_event_needs_no_session_and_no_csrf(user, make_notification, make_delivery):
    notification = make_notification(user)
    delivery = make_delivery(notification, channel="webpush", status="sent")
    client = APIClient(enforce_csrf_checks=True)
    response = post_event(client, {"token": make_event_token(delivery), "event": "delivered"})
    assert response.status_code == 201, response.content
    assert response.json() == {"recorded": True}
    event = EngagementEvent.objects.get()
    assert (event.notification, event.delivery, event.type, event.channel, event.kind, event.action) == (
        notification,
        delivery,
        "order_placed",
        "webpush",
        "delivered",
        "",
    )


def test_token_event_ignores_the_session_cookie_and_its_csrf(api_client_factory, user, make_notification):
    # A service worker's fetch() sends the site's cookies but has no CSRF token.
    notification = make_notification(user)
    client = api_client_factory(user, enforce_csrf_checks=True)
    response = post_event(client, {"token": make_event_token(notification), "event": "clicked"})
    assert response.status_code == 201, response.content
    event = EngagementEvent.objects.get()
    assert (event.delivery, event.channel) == (None, "in_app")


def test_token_event_for_another_users_notification_reveals_nothing(api_client_factory, user, other_user):
    # The token is the credential; the answer is the same whoever posts it.
    notification = Notification.objects.create(recipient=other_user, type="order_placed", title="Secret title")
    response = post_event(api_client_factory(user), {"token": make_event_token(notification), "event": "dismissed"})
    assert response.status_code == 201
    assert response.json() == {"recorded": True}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("garbage", "Invalid event token."),
        ("1.2:1tXk2P:" + "A" * 43, "Invalid event token."),
        ("x" * 201, "Ensure this field has no more than 200 characters."),
        ("", "This field may not be blank."),
    ],
)
def test_bad_token_is_400(db, token, message):
    response = post_event(APIClient(), {"token": token, "event": "clicked"})
    assert response.status_code == 400
    assert response.json() == {"token": [message]}
    assert not EngagementEvent.objects.exists()


def test_expired_token_is_400(user, make_notification, settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "EVENT_TOKEN_MAX_AGE_DAYS": 1}
    notification = make_notification(user)
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 2 * 86400):
        token = make_event_token(notification)
    response = post_event(APIClient(), {"token": token, "event": "clicked"})
    assert response.status_code == 400
    assert response.json() == {"token": ["This event token has expired."]}


def test_token_of_a_deleted_notification_or_delivery_is_404(user, make_notification, make_delivery):
    notification = make_notification(user)
    delivery = make_delivery(notification)
    delivery_token = make_event_token(delivery)
    delivery.delete()
    assert post_event(APIClient(), {"token": delivery_token, "event": "clicked"}).status_code == 404
    in_app_token = make_event_token(notification)
    notification.delete()
    response = post_event(APIClient(), {"token": in_app_token, "event": "clicked"})
    assert response.status_code == 404
    assert response.json() == {"detail": "No Notification matches the given query."}
    assert not EngagementEvent.objects.exists()


def test_token_naming_a_delivery_of_another_notification_is_404(user, make_notification, make_delivery):
    first, second = make_notification(user), make_notification(user)
    delivery = make_delivery(second)
    token = make_event_token((first.pk, delivery.pk))
    assert post_event(APIClient(), {"token": token, "event": "clicked"}).status_code == 404


# -- events from a logged-in page --------------------------------------------------


def test_page_event_by_notification_id(api_client, user, make_notification):
    notification = make_notification(user)
    response = post_event(api_client, {"notification": notification.pk, "event": "displayed"})
    assert response.status_code == 201
    event = EngagementEvent.objects.get()
    assert (event.notification, event.delivery, event.channel, event.kind) == (
        notification,
        None,
        "in_app",
        "displayed",
    )


def test_page_event_for_another_users_notification_is_404(api_client, other_user, make_notification):
    theirs = make_notification(other_user)
    response = post_event(api_client, {"notification": theirs.pk, "event": "clicked"})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None and not EngagementEvent.objects.exists()


def test_page_event_for_a_notification_not_in_the_inbox_is_404(api_client, user, make_notification):
    later = make_notification(user, visible_at=timezone.now() + dt.timedelta(hours=1))
    push_only = make_notification(user, visible_at=None)
    for notification in (later, push_only):
        assert post_event(api_client, {"notification": notification.pk, "event": "clicked"}).status_code == 404
    assert post_event(api_client, {"notification": 10**15, "event": "clicked"}).status_code == 404


def test_page_event_needs_a_logged_in_caller(user, make_notification):
    notification = make_notification(user)
    response = post_event(APIClient(), {"notification": notification.pk, "event": "clicked"})
    assert response.status_code == 403
    assert not EngagementEvent.objects.exists()


def test_page_event_enforces_csrf(api_client_factory, user, make_notification):
    notification = make_notification(user)
    client = api_client_factory(user, enforce_csrf_checks=True)
    response = post_event(client, {"notification": notification.pk, "event": "clicked"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    notification.refresh_from_db()
    assert notification.read_at is None and not EngagementEvent.objects.exists()
    client.cookies["csrftoken"] = "t" * 32
    response = client.post(
        EVENTS, {"notification": notification.pk, "event": "clicked"}, format="json", HTTP_X_CSRFTOKEN="t" * 32
    )
    assert response.status_code == 201


# -- side effects ------------------------------------------------------------------


def test_displayed_and_dismissed_set_seen_once(api_client, user, make_notification):
    notification = make_notification(user)
    post_event(api_client, {"notification": notification.pk, "event": "displayed"})
    notification.refresh_from_db()
    first_seen = notification.seen_at
    assert first_seen is not None and notification.read_at is None
    post_event(api_client, {"notification": notification.pk, "event": "dismissed"})
    notification.refresh_from_db()
    assert notification.seen_at == first_seen and notification.read_at is None
    assert EngagementEvent.objects.count() == 2


def test_delivered_changes_nothing(user, make_notification, make_delivery):
    notification = make_notification(user)
    token = make_event_token(make_delivery(notification, status="sent"))
    assert post_event(APIClient(), {"token": token, "event": "delivered"}).status_code == 201
    notification.refresh_from_db()
    assert notification.seen_at is None and notification.read_at is None


@pytest.mark.parametrize("body", [{"event": "clicked"}, {"event": "action", "action": "open"}])
def test_clicked_and_action_mark_read_and_send_notification_read(user, make_notification, body):
    notification = make_notification(user)
    received = []

    def receiver(sender, user, notifications, **kwargs):
        received.append((sender, user, [n.pk for n in notifications]))

    notification_read.connect(receiver)
    try:
        response = post_event(APIClient(), {"token": make_event_token(notification), **body})
        assert response.status_code == 201
        # A second click changes nothing and sends nothing.
        post_event(APIClient(), {"token": make_event_token(notification), **body})
    finally:
        notification_read.disconnect(receiver)
    notification.refresh_from_db()
    assert notification.read_at is not None and notification.seen_at == notification.read_at
    assert received == [(Notification, None, [notification.pk])]
    assert EngagementEvent.objects.filter(action=body.get("action", "")).count() == 2


def test_page_click_sends_notification_read_with_the_user(api_client, user, make_notification):
    notification = make_notification(user)
    received = []

    def receiver(sender, user, notifications, **kwargs):
        received.append(user)

    notification_read.connect(receiver)
    try:
        post_event(api_client, {"notification": notification.pk, "event": "clicked"})
    finally:
        notification_read.disconnect(receiver)
    assert received == [user]


def test_engagement_recorded_is_sent_after_commit(user, make_notification, django_capture_on_commit_callbacks):
    notification = make_notification(user)
    received = []

    def receiver(sender, event, user, **kwargs):
        received.append((sender, event.kind, event.metadata, user))

    engagement_recorded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            body = {"token": make_event_token(notification), "event": "displayed", "metadata": {"tab": "orders"}}
            post_event(APIClient(), body)
    finally:
        engagement_recorded.disconnect(receiver)
    assert received == [(EngagementEvent, "displayed", {"tab": "orders"}, None)]


# -- bad bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "event"),
        ({"event": "clicked"}, "non_field_errors"),
        ({"token": "{token}", "notification": "{id}", "event": "clicked"}, "non_field_errors"),
        ({"token": "{token}", "event": "opened"}, "event"),
        ({"token": "{token}", "event": ""}, "event"),
        ({"token": "{token}", "event": "action"}, "action"),
        ({"token": "{token}", "event": "action", "action": ""}, "action"),
        ({"token": "{token}", "event": "action", "action": "x" * 65}, "action"),
        ({"token": "{token}", "event": "clicked", "action": "open"}, "action"),
        ({"token": "{token}", "event": "clicked", "metadata": ["not", "an", "object"]}, "metadata"),
        ({"token": "{token}", "event": "clicked", "metadata": "text"}, "metadata"),
        ({"token": "{token}", "event": "clicked", "metadata": {"blob": "x" * 2100}}, "metadata"),
        ({"token": "{token}", "event": "clicked", "metadata": {"blob": "é" * 1100}}, "metadata"),
        ({"token": 5, "event": "clicked"}, "token"),
        ({"token": ["a"], "event": "clicked"}, "token"),
        ({"notification": "abc", "event": "clicked"}, "notification"),
        ({"notification": 0, "event": "clicked"}, "notification"),
        ({"notification": 2**63, "event": "clicked"}, "notification"),
    ],
)
def test_bad_event_body_is_400_with_the_field(api_client, user, make_notification, body, field):
    notification = make_notification(user)
    values = {"{token}": make_event_token(notification), "{id}": notification.pk}
    body = {key: values.get(value, value) if isinstance(value, str) else value for key, value in body.items()}
    response = post_event(api_client, body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not EngagementEvent.objects.exists()


def test_metadata_at_the_size_limit_is_accepted(user, make_notification):
    notification = make_notification(user)
    metadata = {"blob": "x" * (2048 - len('{"blob":""}'))}
    body = {"token": make_event_token(notification), "event": "clicked", "metadata": metadata}
    assert post_event(APIClient(), body).status_code == 201
    assert EngagementEvent.objects.get().metadata == metadata


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[" * 5000 + "]" * 5000,  # nesting deeper than Python's recursion limit
        json.dumps({"event": "clicked", "metadata": {"blob": "x" * 9000}}),  # larger than the body cap
        '{"event": "clicked", "metadata": {"n": NaN}}',
        "[1, 2]",
    ],
)
def test_malformed_or_oversized_json_is_400(db, raw):
    response = APIClient().post(EVENTS, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()


def test_a_body_that_is_not_json_is_415(db):
    response = APIClient().post(EVENTS, {"event": "clicked"})  # multipart form
    assert response.status_code == 415


def test_get_is_405(api_client):
    assert api_client.get(EVENTS).status_code == 405


def test_slashless_route_works(user, make_notification):
    notification = make_notification(user)
    body = {"token": make_event_token(notification), "event": "clicked"}
    assert APIClient().post(EVENTS.rstrip("/"), body, format="json").status_code == 201
    assert reverse("django_notify:event-list") == EVENTS


# -- throttle ----------------------------------------------------------------------


def test_events_are_throttled_per_ip(user, make_notification, monkeypatch):
    monkeypatch.setattr(EventThrottle, "rate", "2/minute")
    notification = make_notification(user)
    body = {"token": make_event_token(notification), "event": "displayed"}
    codes = [post_event(APIClient(), body).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    # Another address has its own budget.
    assert APIClient(REMOTE_ADDR="10.0.0.9").post(EVENTS, body, format="json").status_code == 201
    assert EngagementEvent.objects.count() == 3


def test_default_event_rate_is_sane():
    throttle = EventThrottle()
    assert (throttle.num_requests, throttle.duration) == (120, 60)


# -- stats -------------------------------------------------------------------------


@pytest.fixture
def dataset(user, other_user, make_notification, make_delivery):
    """Deliveries, in-app notifications and events, some outside the last 7 days."""
    now = timezone.now()
    old = now - dt.timedelta(days=10)
    orders = [make_notification(user) for _ in range(4)]
    stock = make_notification(other_user, type="low_stock", visible_at=None)  # push/email only
    later = make_notification(user, visible_at=now + dt.timedelta(hours=2))  # send_at in the future
    make_notification(user, created_at=old)  # outside the period
    for notification, status in zip(orders, ["sent", "sent", "failed", "expired"], strict=True):
        make_delivery(notification, channel="email", status=status, finished_at=now)
    make_delivery(orders[0], channel="webpush", status="sent")
    make_delivery(orders[1], channel="webpush", status="skipped")
    make_delivery(orders[2], channel="webpush", status="sending")
    make_delivery(later, channel="webpush", status="pending")
    make_delivery(stock, channel="email", status="sent")
    make_delivery(stock, channel="email", status="pending", created_at=old)  # outside the period

    def event(notification, kind, channel, action="", created_at=None):
        EngagementEvent.objects.create(
            notification=notification,
            type=notification.type,
            channel=channel,
            kind=kind,
            action=action,
            created_at=created_at or now,
        )

    for kind in ("delivered", "displayed", "clicked"):
        event(orders[0], kind, "webpush")
    event(orders[1], "dismissed", "webpush")
    event(orders[0], "action", "webpush", action="open")
    event(orders[0], "displayed", "in_app")
    event(orders[1], "clicked", "in_app")
    event(orders[2], "clicked", "in_app")
    event(stock, "clicked", "email")
    event(orders[3], "clicked", "in_app", created_at=old)  # outside the period
    return now


def zero(type_key, channel, **counts):
    names = ("created", "sent", "failed", "expired", "skipped", "pending")
    names += ("delivered", "displayed", "clicked", "dismissed", "action")
    return {"type": type_key, "channel": channel, **dict.fromkeys(names, 0), "click_rate": None, **counts}


def test_stats_numbers(api_client_factory, staff_user, dataset):
    response = api_client_factory(staff_user).get(STATS)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["rows"] == [
        zero("low_stock", "email", created=1, sent=1, clicked=1, click_rate=1.0),
        zero("order_placed", "email", created=4, sent=2, failed=1, expired=1, click_rate=0.0),
        # Five in the period have visible_at set; one of them shows later.
        zero("order_placed", "in_app", created=5, sent=4, pending=1, displayed=1, clicked=2, click_rate=0.5),
        zero(
            "order_placed",
            "webpush",
            created=4,
            sent=1,
            skipped=1,
            pending=2,
            delivered=1,
            displayed=1,
            clicked=1,
            dismissed=1,
            action=1,
            click_rate=1.0,
        ),
    ]
    since = dt.datetime.fromisoformat(data["since"].replace("Z", "+00:00"))
    until = dt.datetime.fromisoformat(data["until"].replace("Z", "+00:00"))
    assert until - since == dt.timedelta(days=7)


def test_stats_period_by_days_and_since(api_client_factory, staff_user, dataset):
    client = api_client_factory(staff_user)
    rows = client.get(STATS + "?days=30").json()["rows"]
    in_app = next(row for row in rows if row["channel"] == "in_app")
    assert (in_app["created"], in_app["clicked"]) == (6, 3)
    since = (dataset - dt.timedelta(days=11)).isoformat()
    assert client.get(STATS, {"since": since}).json()["rows"] == rows
    recent = client.get(STATS, {"since": (dataset - dt.timedelta(seconds=1)).isoformat()})
    assert recent.status_code == 200


def test_stats_query_count_is_constant(api_client_factory, staff_user, dataset, make_notification, make_delivery):
    client = api_client_factory(staff_user)
    client.get(STATS)
    with CaptureQueriesContext(connection) as before:
        client.get(STATS)
    for index in range(5):
        notification = make_notification(staff_user, type=f"type_{index}")
        make_delivery(notification, channel="sms", status="failed")
    with CaptureQueriesContext(connection) as after:
        rows = client.get(STATS).json()["rows"]
    assert len(after) == len(before) <= 5  # session, user, three grouped queries
    assert len(rows) == 4 + 10


def test_stats_empty(api_client_factory, staff_user):
    data = api_client_factory(staff_user).get(STATS + "?days=1").json()
    assert data["rows"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?days=0", "days"),
        ("?days=367", "days"),
        ("?days=abc", "days"),
        ("?since=yesterday", "since"),
        ("?since=2999-01-01T00:00:00Z", "since"),
        ("?since=2026-01-01T00:00:00Z&days=3", "non_field_errors"),
    ],
)
def test_stats_bad_parameters_are_400(api_client_factory, staff_user, query, field):
    response = api_client_factory(staff_user).get(STATS + query)
    assert response.status_code == 400
    assert field in response.json()


def test_stats_is_for_staff(api_client, db):
    assert api_client.get(STATS).status_code == 403
    assert APIClient().get(STATS).status_code == 403


def test_stats_permission_is_configurable(api_client, settings):
    settings.DJANGO_NOTIFY = {
        **settings.DJANGO_NOTIFY,
        "STATS_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    assert api_client.get(STATS).status_code == 200


# -- health ------------------------------------------------------------------------


def beat(key, age_seconds):
    EngineState.objects.update_or_create(
        key=key, defaults={"value": timezone.now() - dt.timedelta(seconds=age_seconds)}
    )


def health():
    response = APIClient().get(HEALTH)
    return response.status_code, response.json(), response


def test_health_ok_with_a_fresh_heartbeat_and_no_backlog(db):
    beat("sweeper", 5)
    code, data, response = health()
    assert code == 200
    assert response["Cache-Control"] == "no-store"
    assert data["status"] == "ok"
    assert data["checks"] == {"sweeper_heartbeat": "ok", "queue_lag": "ok"}
    assert data["oldest_due_age_s"] is None and data["worker_heartbeat_age_s"] is None
    assert 5 <= data["sweeper_heartbeat_age_s"] < 60
    assert (data["pending"], data["sending"], data["failed_24h"], data["success_rate_24h"]) == (0, 0, 0, None)


def test_health_without_a_heartbeat_is_503(db):
    code, data, response = health()
    assert code == 503
    assert response["Cache-Control"] == "no-store"
    assert data["status"] == "unhealthy"
    assert data["checks"] == {"sweeper_heartbeat": "missing", "queue_lag": "ok"}


def test_health_with_an_old_heartbeat_is_503_and_recovers(db, settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "HEALTH_MAX_HEARTBEAT_SECONDS": 120}
    beat("sweeper", 121)
    beat("worker", 3)
    code, data, _ = health()
    assert code == 503
    assert data["checks"]["sweeper_heartbeat"] == "stale"
    assert data["sweeper_heartbeat_age_s"] >= 121
    assert 3 <= data["worker_heartbeat_age_s"] < 60
    beat("sweeper", 0)
    assert health()[0] == 200


def test_health_with_an_old_due_delivery_is_503_and_recovers(user, make_notification, make_delivery, settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "HEALTH_MAX_LAG_SECONDS": 300}
    beat("sweeper", 1)
    notification = make_notification(user)
    now = timezone.now()
    make_delivery(notification, next_attempt_at=now - dt.timedelta(seconds=100))
    assert health()[0] == 200
    late = make_delivery(notification, next_attempt_at=now - dt.timedelta(seconds=400))
    code, data, _ = health()
    assert code == 503
    assert data["checks"] == {"sweeper_heartbeat": "ok", "queue_lag": "lagging"}
    assert 400 <= data["oldest_due_age_s"] < 460
    late.status, late.finished_at = "sent", timezone.now()
    late.save()
    code, data, _ = health()
    assert code == 200
    assert 100 <= data["oldest_due_age_s"] < 160


def test_health_ignores_digest_and_future_rows(user, make_notification, make_delivery):
    beat("sweeper", 1)
    notification = make_notification(user)
    hour = dt.timedelta(hours=1)
    make_delivery(notification, next_attempt_at=timezone.now() - hour, digest="daily")
    make_delivery(notification, next_attempt_at=timezone.now() + hour)
    code, data, _ = health()
    assert code == 200
    assert (data["oldest_due_age_s"], data["pending"]) == (None, 2)


def test_health_numbers(user, make_notification, make_delivery):
    beat("sweeper", 1)
    beat("worker", 2)
    notification = make_notification(user)
    now = timezone.now()
    for _ in range(3):
        make_delivery(notification, status="sent", finished_at=now - dt.timedelta(hours=1))
    make_delivery(notification, status="sent", finished_at=now - dt.timedelta(hours=25))
    make_delivery(notification, status="failed", finished_at=now - dt.timedelta(hours=2))
    make_delivery(notification, status="failed", finished_at=now - dt.timedelta(days=2))
    make_delivery(notification, status="expired", finished_at=now)
    make_delivery(notification, status="sending", leased_until=now - dt.timedelta(seconds=5))
    make_delivery(notification, status="sending", leased_until=now + dt.timedelta(seconds=60))
    make_delivery(notification, status="pending", next_attempt_at=now - dt.timedelta(seconds=30))
    code, data, _ = health()
    assert code == 200
    assert set(data) == {
        "status", "checks", "oldest_due_age_s", "pending", "sending", "expired_leases", "failed_24h",
        "sent_24h", "success_rate_24h", "sweeper_heartbeat_age_s", "worker_heartbeat_age_s",
    }  # fmt: skip
    assert (data["pending"], data["sending"], data["expired_leases"]) == (1, 2, 1)
    assert (data["sent_24h"], data["failed_24h"], data["success_rate_24h"]) == (3, 1, 0.75)
    assert 30 <= data["oldest_due_age_s"] < 90


def test_health_query_count_is_constant(user, make_notification, make_delivery):
    beat("sweeper", 1)
    with CaptureQueriesContext(connection) as before:
        health()
    notification = make_notification(user)
    for status in ("pending", "sending", "sent", "failed"):
        make_delivery(notification, status=status, finished_at=timezone.now())
    with CaptureQueriesContext(connection) as after:
        health()
    assert len(before) == len(after) <= 7


def test_health_permission_is_configurable(api_client_factory, staff_user, settings):
    settings.DJANGO_NOTIFY = {
        **settings.DJANGO_NOTIFY,
        "HEALTH_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    beat("sweeper", 1)
    assert APIClient().get(HEALTH).status_code == 403
    assert api_client_factory(staff_user).get(HEALTH).status_code == 200
