"""WebPushBackend through the engine, against real push receivers on 127.0.0.1.

The receivers (``tests/push/receiver.py``) verify the VAPID JWT and decrypt the
``aes128gcm`` body with the subscription's private key on their own, so every
assertion on a payload below is about what a browser would have received.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from django_notify import NotificationType, delivery, notify
from django_notify.backends.webpush import WebPushBackend, topic
from django_notify.checks import check_settings
from django_notify.exceptions import InvalidBackendError
from django_notify.models import Delivery, PushSubscription
from django_notify.push import push_channel, vapid
from django_notify.testing import registered
from django_notify.tokens import read_event_token
from tests.push.receiver import PushReceiver, Reply

ORDER = {"order_number": "A-7", "total": "9.90"}
PRIVATE_KEY = vapid.generate_private_key()
OTHER_KEY = vapid.generate_private_key()


def push_options(**overrides):
    options = {
        "vapid_private_key": vapid.private_key_b64(PRIVATE_KEY),
        "vapid_public_key": vapid.public_key_b64(PRIVATE_KEY),
        "vapid_subject": "mailto:ops@example.com",
        "allowed_endpoint_hosts": ["fcm.googleapis.com", "127.0.0.1"],
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
    }
    options.update(overrides)
    return options


@pytest.fixture
def push_settings(settings):
    """A ``webpush`` channel allowed to reach 127.0.0.1; returns a setter for its OPTIONS."""

    def configure(**overrides):
        channels = dict(settings.DJANGO_NOTIFY["CHANNELS"])
        channels["webpush"] = {
            "BACKEND": "django_notify.backends.webpush.WebPushBackend",
            "OPTIONS": push_options(**overrides),
        }
        settings.DJANGO_NOTIFY = {
            **settings.DJANGO_NOTIFY,
            "CHANNELS": channels,
            "DELIVERY_MODE": "manual",
            "RETRY_BASE_SECONDS": 10,
            "RETRY_MAX_SECONDS": 600,
        }

    configure()
    return configure


@pytest.fixture
def receiver():
    with PushReceiver() as running:
        yield running


def subscribe(user, receiver, name=None, **fields):
    info = receiver.subscribe(name)
    return PushSubscription.objects.create(
        user=user,
        endpoint=info["endpoint"],
        p256dh=info["keys"]["p256dh"],
        auth=info["keys"]["auth"],
        vapid_key_id=vapid.key_id(vapid.parse_public_key(vapid.public_key_b64(PRIVATE_KEY))),
        **fields,
    )


def send(users, *, type="order_placed", context=ORDER, **kwargs):
    notify(type, users, context=context, channels=["in_app", "webpush"], **kwargs)
    lease, rows = delivery.claim(1000)
    return delivery.process(rows, lease)


def token_of(subscription):
    return PushReceiver.token(subscription.endpoint)


# -- what the browser receives -----------------------------------------------------------


def test_the_message_decrypts_to_the_notification(push_settings, receiver, user):
    subscription = subscribe(user, receiver)
    report = send([user])
    assert report.sent == 1
    (message,) = receiver.wait_for(1)
    row = Delivery.objects.get()
    notification = row.notification
    payload = message.payload
    assert payload["id"] == notification.pk
    assert (payload["title"], payload["body"], payload["url"]) == (
        notification.title,
        notification.body,
        notification.url,
    )
    assert payload["tag"] == f"notification-{notification.pk}"
    assert payload["events"] == "/api/notifications/events/"
    assert read_event_token(payload["token"]) == (notification.pk, row.pk)
    assert payload["timestamp"] == int(notification.created_at.timestamp() * 1000)
    # RFC 8292: aud is the push service's origin; the receiver checked the signature, exp and sub.
    assert message.claims["aud"] == receiver.origin
    assert message.claims["sub"] == "mailto:ops@example.com"
    assert message.claims["exp"] - time.time() <= 24 * 3600
    assert message.headers["Content-Encoding"] == "aes128gcm"
    assert 86_300 < int(message.headers["TTL"]) <= 86_400  # what is left of the type's one-day TTL
    assert message.headers["Urgency"] == "normal"
    assert message.headers["Topic"] == topic(notification.pk) and len(topic(notification.pk)) == 32
    row.refresh_from_db()
    assert row.status == "sent" and row.provider_response["status"] == 201
    subscription.refresh_from_db()
    assert subscription.last_success_at is not None and subscription.failure_count == 0


def test_type_push_options_priority_and_ttl_reach_the_browser(push_settings, receiver, user):
    subscribe(user, receiver)
    push = {
        "icon": "/static/icon.png",
        "actions": [{"action": "open", "title": "Open the order", "url": "/orders/7/"}],
        "require_interaction": True,
        "vibrate": [100, 50, 100],
    }
    outage = NotificationType(
        key="outage",
        category="system",
        title="Kitchen printer down",
        priority="high",
        ttl=dt.timedelta(hours=1),
        push=push,
    )
    with registered(outage):
        send([user], type="outage", context={})
    (message,) = receiver.wait_for(1)
    assert message.payload["icon"] == "/static/icon.png"
    assert message.payload["actions"] == push["actions"]
    assert message.payload["requireInteraction"] is True and message.payload["vibrate"] == [100, 50, 100]
    assert message.headers["Urgency"] == "high"
    assert 3500 < int(message.headers["TTL"]) <= 3600


def test_a_crash_duplicate_carries_the_same_topic(push_settings, receiver, user):
    subscribe(user, receiver)
    send([user])
    Delivery.objects.update(status="pending", next_attempt_at=timezone.now())  # as a released lease would
    lease, rows = delivery.claim(10)
    delivery.process(rows, lease)
    first, second = receiver.wait_for(2)
    assert first.headers["Topic"] == second.headers["Topic"]
    assert first.payload["token"] == second.payload["token"]


def test_long_text_is_truncated_never_refused(push_settings, receiver, user):
    subscribe(user, receiver)
    long = NotificationType(key="long", title="{{ title }}", body="{{ body }}")
    with registered(long):
        send([user], type="long", context={"title": "Ünïcödé " * 20, "body": "Ελληνικά 漢字 😀 " * 400})
    (message,) = receiver.wait_for(1)
    assert message.payload["body"].endswith("…")
    assert len(message.payload["body"]) < 3000
    assert Delivery.objects.get().status == "sent"


def test_data_too_big_for_any_payload_fails_visibly(push_settings, receiver, user):
    subscribe(user, receiver)
    send([user], data={"blob": "x" * 5000})
    row = Delivery.objects.get()
    assert row.status == "failed" and row.last_error.startswith("payload_too_large")
    assert receiver.count() == 0


# -- answers and what they do ------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_gone_deactivates_that_subscription_only(push_settings, receiver, user, status):
    gone, kept = subscribe(user, receiver, "gone"), subscribe(user, receiver, "kept")
    receiver.script("gone", [Reply(status=status)])
    send([user])
    gone.refresh_from_db()
    kept.refresh_from_db()
    assert (gone.is_active, gone.deactivation_reason) == (False, f"HTTP {status}")
    assert kept.is_active and kept.last_success_at is not None
    statuses = dict(Delivery.objects.values_list("subscription_id", "status"))
    assert statuses == {gone.pk: "failed", kept.pk: "sent"}


def test_429_waits_at_least_retry_after(push_settings, receiver, user):
    subscription = subscribe(user, receiver)
    receiver.script(token_of(subscription), [Reply(status=429, headers={"Retry-After": "120"})])
    before = timezone.now()
    send([user])
    row = Delivery.objects.get()
    assert row.status == "pending" and "HTTP 429" in row.last_error
    assert row.next_attempt_at >= before + dt.timedelta(seconds=120)
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.failure_count == 1


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (Reply(status=500), "pending", "HTTP 500"),
        (Reply(status=503, headers={"Retry-After": "30"}), "pending", "HTTP 503"),
        (Reply(status=400, body=b"bad topic"), "failed", "bad_request: HTTP 400"),
        (Reply(status=403), "failed", "auth: HTTP 403"),
        (Reply(status=413), "failed", "payload_too_large: HTTP 413"),
        (Reply(status=418), "failed", "bad_request: HTTP 418"),
    ],
)
def test_answers_are_classified(push_settings, receiver, user, reply, status, reason):
    subscription = subscribe(user, receiver)
    receiver.script(token_of(subscription), [reply])
    send([user])
    row = Delivery.objects.get()
    assert row.status == status and reason in row.last_error
    assert receiver.origin in row.last_error or status == "failed"
    subscription.refresh_from_db()
    assert subscription.is_active  # only 404/410 end a subscription
    assert subscription.endpoint not in row.last_error


def test_auth_refusal_for_a_subscription_made_with_another_key_deactivates_it(push_settings, receiver, user):
    subscription = subscribe(user, receiver)
    PushSubscription.objects.filter(pk=subscription.pk).update(vapid_key_id="0123456789abcdef")
    receiver.script(token_of(subscription), [Reply(status=403)])
    send([user])
    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.deactivation_reason) == (False, "subscribed with another VAPID key")


def test_a_redirect_is_never_followed(push_settings, receiver, user):
    with PushReceiver() as canary:
        subscription = subscribe(user, receiver)
        target = canary.subscribe("canary")["endpoint"]
        receiver.script(token_of(subscription), [Reply(status=307, headers={"Location": target})])
        send([user])
        row = Delivery.objects.get()
        assert row.status == "failed" and row.last_error.startswith("redirect: HTTP 307")
        assert canary.count() == 0 and canary.connections() == 0


def test_a_hung_endpoint_times_out_while_the_others_are_delivered(push_settings, receiver, user_factory):
    users = [user_factory() for _ in range(20)]
    subscriptions = [subscribe(u, receiver) for u in users]
    hung = subscriptions[3]
    receiver.script(token_of(hung), [Reply(hang=True)])
    started = time.monotonic()
    report = send(users)
    elapsed = time.monotonic() - started
    assert (report.sent, report.retried) == (19, 1)
    assert elapsed < 1.0 + 2.0  # the read timeout, plus the rest of the batch
    row = Delivery.objects.get(subscription=hung)
    assert row.status == "pending" and "timeout" in row.last_error


def test_a_batch_is_sent_concurrently_over_reused_connections(push_settings, receiver, user_factory):
    push_settings(concurrency=20)
    users = [user_factory() for _ in range(100)]
    for u in users:
        subscribe(u, receiver)
    receiver.delay = 0.2
    started = time.monotonic()
    report = send(users)
    elapsed = time.monotonic() - started
    assert report.sent == 100
    assert elapsed < 100 * 0.2 / 10  # at least ten times faster than one at a time
    assert 10 < receiver.max_in_flight <= 20
    # 100 messages over at most 20 connections: each is reused. (The receiver's own
    # in-flight count lags the client's, so it is no bound on the connections.)
    assert receiver.connections() <= 20


def test_three_push_services_each_see_their_own_audience(push_settings, user_factory):
    with PushReceiver() as first, PushReceiver() as second, PushReceiver() as third:
        users = [user_factory() for _ in range(3)]
        for u, service in zip(users, (first, second, third), strict=True):
            subscribe(u, service)
        send(users)
        for service in (first, second, third):
            (message,) = service.wait_for(1)
            assert message.claims["aud"] == service.origin


def test_an_endpoint_outside_the_allowlist_is_refused_at_send_time(push_settings, receiver, user):
    subscription = subscribe(user, receiver)
    push_settings(allowed_endpoint_hosts=["fcm.googleapis.com"])  # 127.0.0.1 no longer allowed
    send([user])
    row = Delivery.objects.get()
    assert row.status == "failed" and "endpoint_rejected" in row.last_error
    assert receiver.count() == 0 and receiver.connections() == 0
    subscription.refresh_from_db()
    assert not subscription.is_active


def test_muted_browser_and_inactive_subscriptions_get_nothing(push_settings, receiver, user):
    subscribe(user, receiver, "muted", preferences={"categories": {"orders": False}})
    subscribe(user, receiver, "off", is_active=False)
    subscribe(user, receiver, "on")
    send([user])
    assert [m.token for m in receiver.messages()] == ["on"]


# -- configuration -----------------------------------------------------------------------


def test_push_channel_finds_the_configured_backend(push_settings, settings):
    backend = push_channel()
    assert isinstance(backend, WebPushBackend) and backend.alias == "webpush"
    assert backend.signer.public_key == vapid.public_key_b64(PRIVATE_KEY)
    channels = {k: v for k, v in settings.DJANGO_NOTIFY["CHANNELS"].items() if k != "webpush"}
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "CHANNELS": channels}
    assert push_channel() is None


@pytest.mark.parametrize(
    ("overrides", "check_id", "fragment"),
    [
        ({"vapid_private_key": None}, "django_notify.E040", "vapid_private_key"),
        ({"vapid_private_key": "not-a-key"}, "django_notify.E040", "vapid_private_key"),
        ({"vapid_public_key": vapid.public_key_b64(OTHER_KEY)}, "django_notify.E041", "not the public half"),
        ({"vapid_subject": "mailto:admin@localhost"}, "django_notify.E042", "vapid_subject"),
        ({"vapid_subject": "ops@example.com"}, "django_notify.E042", "vapid_subject"),
        ({"allowed_endpoint_hosts": ["*"]}, "django_notify.E043", "allowed_endpoint_hosts"),
        ({"read_timeout": 0}, "django_notify.E044", "read_timeout"),
        ({"max_payload_bytes": 5000}, "django_notify.E044", "max_payload_bytes"),
    ],
)
def test_bad_options_are_check_errors_with_their_own_ids(push_settings, overrides, check_id, fragment):
    push_settings(**overrides)
    (message,) = check_settings()
    assert message.id == check_id and fragment in message.msg
    assert vapid.private_key_b64(PRIVATE_KEY) not in message.msg  # never the secret
    with pytest.raises(InvalidBackendError):
        WebPushBackend("webpush", **push_options(**overrides))


def test_loopback_endpoints_in_production_are_a_warning(push_settings, settings):
    settings.DEBUG = False
    (message,) = check_settings()
    assert message.id == "django_notify.W045" and "127.0.0.1" in message.msg
    push_settings(allowed_endpoint_hosts=["fcm.googleapis.com"])
    assert check_settings() == []
