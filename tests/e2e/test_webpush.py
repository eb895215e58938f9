"""Web Push through a real cluster: the worker process encrypts, signs and POSTs.

The test process runs push services (``tests/push/receiver.py``) on 127.0.0.1 in a
background thread; they check the VAPID JWT and decrypt each ``aes128gcm`` body
with the subscription's private key on their own, as a browser's push service and
the browser would. The test process commits ``notify()`` with a ``webpush``
channel, its ``on_commit`` kick queues a ``deliver`` task, and the ``qcluster``
subprocess (the same channel, from ``DN_E2E_NOTIFY``) sends the messages. What is
asserted is what arrived at the receivers and what the worker wrote to the rows.

Retries come back through the sweeper, which django-q2's scheduler runs at most
every ~30 s (see ``conftest``): tests that wait for a retry allow for that tick.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import pytest

from django_notify import notify
from django_notify.backends.webpush import topic
from django_notify.models import Delivery, PushSubscription
from django_notify.models.push import endpoint_digest
from django_notify.push import vapid
from django_notify.tokens import read_event_token
from tests.e2e.conftest import ORDER, TERMINAL
from tests.e2e.harness import wait_until
from tests.e2e.settings import ENGINE
from tests.push.receiver import PushReceiver, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

VAPID_KEY = vapid.generate_private_key()
VAPID_KEY_ID = vapid.key_id(vapid.parse_public_key(vapid.public_key_b64(VAPID_KEY)))
READ_TIMEOUT = 1.0
#: Requests in flight per batch: low enough that reused connections are plain to see.
CONCURRENCY = 10
#: django-q2's scheduler tick (30 s of guard loop, plus the loop's own overhead).
SCHEDULER_RESOLUTION = 31.0
#: The hops between a tick and the retry: the sweep task, the deliver task it queues, the pusher's poll.
MARGIN = 5.0


def webpush_channel(**options: Any) -> dict[str, Any]:
    """The ``webpush`` channel both processes use, allowed to reach loopback receivers."""
    return {
        "BACKEND": "django_notify.backends.webpush.WebPushBackend",
        "OPTIONS": {
            "vapid_private_key": vapid.private_key_b64(VAPID_KEY),
            "vapid_public_key": vapid.public_key_b64(VAPID_KEY),
            "vapid_subject": "mailto:ops@example.com",
            "allowed_endpoint_hosts": ["127.0.0.1"],
            "read_timeout": READ_TIMEOUT,
            "connect_timeout": 2.0,
            "concurrency": CONCURRENCY,
            **options,
        },
    }


@pytest.fixture
def push(e2e):
    """The harness with a ``webpush`` channel configured for the test process and its clusters."""
    channels = {**e2e.notify_settings["CHANNELS"], "webpush": webpush_channel()}
    e2e.configure(notify={"CHANNELS": channels})
    return e2e


@pytest.fixture
def receiver():
    with PushReceiver() as running:
        yield running


def subscribe(users: Any, receivers: list[PushReceiver]) -> dict[str, PushSubscription]:
    """One subscription per user, spread round-robin over ``receivers``; keyed by endpoint token."""
    rows = []
    for index, user in enumerate(users.order_by("pk")):
        info = receivers[index % len(receivers)].subscribe()
        rows.append(
            PushSubscription(
                user=user,
                endpoint=info["endpoint"],
                endpoint_sha256=endpoint_digest(info["endpoint"]),  # bulk_create skips save()
                p256dh=info["keys"]["p256dh"],
                auth=info["keys"]["auth"],
                vapid_key_id=VAPID_KEY_ID,
            )
        )
    PushSubscription.objects.bulk_create(rows, batch_size=500)
    return {PushReceiver.token(s.endpoint): s for s in PushSubscription.objects.filter(user__in=users)}


def send(users: Any) -> dict[str, Delivery]:
    """Commit ``order_placed`` for ``users`` (the kick queues the cluster); return its deliveries by token."""
    result = notify("order_placed", users, context=ORDER, channels=["in_app", "webpush"])
    assert result.created == users.count()
    rows = Delivery.objects.filter(channel="webpush").select_related("notification", "subscription")
    deliveries = {PushReceiver.token(row.subscription.endpoint): row for row in rows}
    assert len(deliveries) == result.deliveries == users.count()
    return deliveries


def settle(receivers: list[PushReceiver], timeout: float, quiet: float = 1.5) -> None:
    """Wait until every delivery is final and no receiver has seen a request for ``quiet`` s."""

    def settled() -> bool:
        if Delivery.objects.exclude(status__in=TERMINAL).exists():
            return False
        last = max((r.at for receiver in receivers for r in receiver.requests()), default=0.0)
        return time.time() - last >= quiet

    wait_until(
        settled,
        timeout,
        interval=0.2,
        describe=lambda: (
            f"statuses {dict(Counter(Delivery.objects.values_list('status', flat=True)))}, "
            f"receivers answered {[r.counters()['statuses'] for r in receivers]}"
        ),
    )


def statuses() -> dict[int, tuple[str, int]]:
    """``(status, attempts)`` of every delivery, by subscription id."""
    return {s: (status, n) for s, status, n in Delivery.objects.values_list("subscription_id", "status", "attempts")}


def leaked_secrets(e2e: Any) -> list[str]:
    """Subscriptions whose endpoint token or keys, or the VAPID private key, appear in a cluster log."""
    logs = "\n".join(cluster.log() for cluster in e2e.clusters)
    found = [
        f"subscription {s.pk}"
        for s in PushSubscription.objects.all()
        if any(secret in logs for secret in (PushReceiver.token(s.endpoint), s.p256dh, s.auth))
    ]
    return found + (["the VAPID private key"] if vapid.private_key_b64(VAPID_KEY) in logs else [])


# -- the messages --------------------------------------------------------------------------


def test_every_message_arrives_once_decrypted_signed_and_over_reused_connections(push, receiver):
    push.cluster()
    users = push.users(300)
    subscriptions = subscribe(users, [receiver])
    deliveries = send(users)

    receiver.wait_for(300, timeout=60)
    settle([receiver], timeout=30)

    requests = receiver.requests()
    assert len(requests) == 300, "every message exactly once"
    assert {r.token for r in requests} == set(subscriptions)
    for message in requests:
        row = deliveries[message.token]
        notification = row.notification
        payload = message.payload
        assert message.status == 201 and payload is not None and message.claims is not None
        assert payload["id"] == notification.pk
        assert (payload["title"], payload["body"], payload["url"]) == (
            notification.title,
            notification.body,
            notification.url,
        )
        assert payload["title"] and "E2E-1" in payload["body"]
        assert read_event_token(payload["token"]) == (notification.pk, row.pk)
        assert message.claims["aud"] == receiver.origin
        assert message.claims["sub"] == "mailto:ops@example.com"
        assert 0 < int(message.headers["TTL"]) <= 86_400
        assert message.headers["Urgency"] == "normal"
        assert message.headers["Topic"] == topic(notification.pk)
    assert len({m.payload["id"] for m in requests if m.payload}) == 300, "one notification per user"

    assert set(statuses().values()) == {("sent", 1)}
    assert not PushSubscription.objects.filter(last_success_at=None).exists()
    assert not PushSubscription.objects.filter(is_active=False).exists()
    # Each batch keeps at most CONCURRENCY connections open and reuses them for its messages.
    batches = math.ceil(300 / ENGINE["BATCH_SIZE"])
    print(f"300 messages over {receiver.connections()} connections (max in flight {receiver.max_in_flight})")
    assert receiver.connections() <= CONCURRENCY * batches < 300 / 5
    assert max(sum(1 for r in requests if r.connection_id == c) for c in {r.connection_id for r in requests}) > 1
    assert not push.log_problems()
    assert not leaked_secrets(push)


def test_410_and_404_deactivate_exactly_those_subscriptions(push, receiver):
    push.cluster()
    users = push.users(12)
    subscriptions = subscribe(users, [receiver])
    tokens = sorted(subscriptions)
    gone_410, scripted_404, forgotten = tokens[:2], tokens[2:3], tokens[3:4]
    for token in gone_410:
        receiver.script(token, [Reply(status=410, body=b"subscription expired")])
    for token in scripted_404:
        receiver.script(token, [Reply(status=404)])
    for token in forgotten:
        receiver.unsubscribe(token)  # the push service no longer knows it: a real 404
    send(users)

    settle([receiver], timeout=30)
    gone = {**dict.fromkeys(gone_410, "HTTP 410"), **dict.fromkeys(scripted_404 + forgotten, "HTTP 404")}
    rows = {PushReceiver.token(s.endpoint): s for s in PushSubscription.objects.all()}
    assert {t: (s.is_active, s.deactivation_reason) for t, s in rows.items() if t in gone} == {
        t: (False, reason) for t, reason in gone.items()
    }
    assert all(rows[t].deactivated_at is not None for t in gone)
    kept = set(rows) - set(gone)
    assert all(rows[t].is_active and rows[t].last_success_at is not None for t in kept)
    by_subscription = statuses()
    assert {t: by_subscription[rows[t].pk] for t in gone} == dict.fromkeys(gone, ("failed", 1))
    assert {t: by_subscription[rows[t].pk] for t in kept} == dict.fromkeys(kept, ("sent", 1))
    errors = dict(Delivery.objects.values_list("subscription_id", "last_error"))
    assert {t: errors[rows[t].pk] for t in gone} == {t: f"gone: {reason}" for t, reason in gone.items()}
    # One request each: a gone endpoint is never retried.
    assert sorted(r.token for r in receiver.requests()) == tokens
    assert {r.token for r in receiver.messages()} == kept
    # No endpoint (a bearer secret) in what the worker recorded.
    assert not any(s.endpoint in (d.last_error or "") for d in Delivery.objects.all() for s in rows.values())
    assert not push.log_problems()
    assert not leaked_secrets(push)


# -- retries -------------------------------------------------------------------------------


def test_429_is_retried_no_sooner_than_retry_after(push, receiver):
    push.cluster()
    users = push.users(1)
    (token,) = subscribe(users, [receiver])
    receiver.script(token, [Reply(status=429, headers={"Retry-After": "3"})])
    (row,) = send(users).values()

    first = wait_until(lambda: receiver.requests(token), timeout=30)[0]
    pending = wait_until(
        lambda: Delivery.objects.filter(pk=row.pk, status="pending", attempts=1).first(), timeout=10, interval=0.02
    )
    assert "HTTP 429" in pending.last_error and receiver.origin in pending.last_error
    second = receiver.wait_for(1, timeout=3 + SCHEDULER_RESOLUTION + MARGIN, token=token)[0]
    settle([receiver], timeout=10)

    assert [r.status for r in receiver.requests(token)] == [429, 201]
    gap = second.at - first.at
    planned = pending.next_attempt_at.timestamp() - first.at
    print(f"retry {gap:.2f} s after the 429 (Retry-After: 3; next_attempt_at {planned:.3f} s after it)")
    assert gap >= 3.0, "came back before Retry-After"
    assert gap <= 3 + SCHEDULER_RESOLUTION + MARGIN
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)
    assert second.payload is not None and read_event_token(second.payload["token"]) == (row.notification_id, row.pk)
    subscription = PushSubscription.objects.get()
    assert subscription.is_active and subscription.last_success_at is not None
    assert not push.log_problems()
    assert not leaked_secrets(push)


def test_a_hung_endpoint_times_out_while_the_batch_is_delivered(push, receiver):
    push.cluster()
    users = push.users(30)
    subscriptions = subscribe(users, [receiver])
    hung = sorted(subscriptions)[7]
    # The retry is answered slowly, so its row is seen (sending, 2) with the first attempt's error
    # even when the jittered backoff drawn is near zero and the retry is claimed at once.
    receiver.script(hung, [Reply(hang=True), Reply(delay=0.5)])
    deliveries = send(users)
    row = deliveries[hung]

    hang = wait_until(lambda: receiver.requests(hung), timeout=30)[0]
    # The row stays (sending, 1) while its request hangs; its first other state is the timeout's result
    # (pending, or already claimed again when the backoff drawn had passed).
    changed = wait_until(
        lambda: Delivery.objects.filter(pk=row.pk).exclude(status="sending", attempts=1).first(),
        timeout=READ_TIMEOUT + 10,
        interval=0.01,
    )
    gave_up_after = time.time() - hang.at
    assert changed.attempts >= 1 and "timeout" in changed.last_error and receiver.origin in changed.last_error
    receiver.wait_for(30, timeout=SCHEDULER_RESOLUTION + MARGIN + ENGINE["RETRY_MAX_SECONDS"])
    settle([receiver], timeout=10)

    others = [m for m in receiver.messages() if m.token != hung]
    assert len(others) == 29 and {m.token for m in others} == set(subscriptions) - {hung}
    # The others went out alongside the hung request, none of them after it gave up.
    batch_start = min(r.at for r in receiver.requests())
    spread = max(m.at for m in others) - batch_start
    print(f"the other 29 arrived within {spread:.3f} s; the hung attempt ended {gave_up_after:.2f} s after it began")
    assert spread < READ_TIMEOUT / 2
    assert max(m.at for m in others) < hang.at + READ_TIMEOUT / 2
    # It gave up after read_timeout, not at the 4 s total timeout: the client's clock starts once it has
    # sent the request, a moment before the receiver stamps it; recording and polling the row add a little.
    assert READ_TIMEOUT - 0.05 <= gave_up_after <= READ_TIMEOUT + 1.5
    (retried,) = receiver.messages(hung)
    assert retried.at - hang.at >= READ_TIMEOUT
    assert [r.status for r in receiver.requests(hung)] == [None, 201]
    by_subscription = statuses()
    assert by_subscription.pop(subscriptions[hung].pk) == ("sent", 2)
    assert set(by_subscription.values()) == {("sent", 1)}
    assert not push.log_problems()
    assert not leaked_secrets(push)


# -- several push services -----------------------------------------------------------------


def test_three_push_services_in_one_batch_each_see_their_own_audience(push):
    with PushReceiver() as first, PushReceiver() as second, PushReceiver() as third:
        services = [first, second, third]
        push.cluster()
        users = push.users(9)
        subscribe(users, services)
        deliveries = send(users)
        for service in services:
            service.wait_for(3, timeout=30)
        settle(services, timeout=10)

        assert len({s.origin for s in services}) == 3
        for service in services:
            messages = service.requests()
            assert len(messages) == 3 and all(m.status == 201 for m in messages)
            assert {m.claims["aud"] for m in messages if m.claims} == {service.origin}
            assert all(deliveries[m.token].subscription.endpoint.startswith(service.origin + "/") for m in messages)
    rows = Delivery.objects.all()
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}
    assert len({row.sent_at for row in rows}) == 1, "all nine went out in one batch"
    assert not push.log_problems()
    assert not leaked_secrets(push)
