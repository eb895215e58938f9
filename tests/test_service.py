from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from django_notify import NotificationType, content, notify, registry
from django_notify.exceptions import InvalidRecipients, MissingContextError, UnknownChannel, UnknownNotificationType
from django_notify.models import Delivery, Notification, PushSubscription
from django_notify.signals import notification_created
from django_notify.testing import capture_notifications, registered
from tests.testapp.models import Document, Order

LOW_STOCK = {"item": "Flour", "quantity": 3}
ORDER = {"order_number": "A-7", "total": "9.90"}


@pytest.fixture
def users(user_factory):
    return [user_factory() for _ in range(5)]


def recipients_of(key="low_stock"):
    return sorted(Notification.objects.filter(type=key).values_list("recipient_id", flat=True))


# -- recipient forms ---------------------------------------------------------------


def test_one_user(user):
    result = notify("low_stock", user, context=LOW_STOCK)
    assert (result.created, result.existing, result.deliveries) == (1, 0, 0)
    row = Notification.objects.get()
    assert (row.recipient_id, row.type, row.category) == (user.pk, "low_stock", "inventory")
    assert (row.title, row.body, row.url) == ("Low stock: Flour", "Only 3 left.", "")
    assert row.visible_at == row.created_at and row.read_at is None
    assert result.notification == row


@pytest.mark.parametrize("as_text", [False, True])
def test_one_user_id(user, as_text):
    notify("low_stock", str(user.pk) if as_text else user.pk, context=LOW_STOCK)
    assert recipients_of() == [user.pk]


def test_list_of_users_ids_and_duplicates(users):
    mixed = [users[0], users[1].pk, users[0], str(users[2].pk)]
    result = notify("low_stock", mixed, context=LOW_STOCK)
    assert result.created == 3
    assert recipients_of() == sorted(u.pk for u in users[:3])
    assert result.notification is None


def test_generator_of_users(users):
    notify("low_stock", (u for u in users), context=LOW_STOCK)
    assert recipients_of() == sorted(u.pk for u in users)


def test_queryset(users):
    user_model = get_user_model()
    result = notify("low_stock", user_model.objects.filter(pk__in=[u.pk for u in users[1:]]), context=LOW_STOCK)
    assert result.created == 4
    assert recipients_of() == sorted(u.pk for u in users[1:])


def test_queryset_with_join_duplicates_notifies_each_user_once(users):
    from django.contrib.auth.models import Group

    group_a, group_b = Group.objects.create(name="a"), Group.objects.create(name="b")
    for user in users[:2]:
        user.groups.add(group_a, group_b)
    recipients = get_user_model().objects.filter(groups__name__in=["a", "b"])
    assert recipients.count() == 4  # the join repeats each user
    assert notify("low_stock", recipients, context=LOW_STOCK).created == 2


def test_sliced_and_ordered_queryset(users):
    recipients = get_user_model().objects.order_by("-pk")[:2]
    notify("low_stock", recipients, context=LOW_STOCK)
    assert recipients_of() == sorted(u.pk for u in users[-2:])


def test_empty_recipients(db):
    assert notify("low_stock", [], context=LOW_STOCK).created == 0
    assert notify("low_stock", get_user_model().objects.none(), context=LOW_STOCK).created == 0
    assert not Notification.objects.exists()


def test_unknown_user_ids_are_skipped(user):
    assert notify("low_stock", [user.pk, 987654], context=LOW_STOCK).created == 1


@pytest.mark.parametrize("bad", [None, {"a": 1}, 1.5, True, [None], [object()]])
def test_invalid_recipients(db, bad):
    with pytest.raises(InvalidRecipients):
        notify("low_stock", bad, context=LOW_STOCK)


def test_queryset_of_another_model_is_refused(db):
    with pytest.raises(InvalidRecipients, match="Order"):
        notify("low_stock", Order.objects.all(), context=LOW_STOCK)


def test_unsaved_user_is_refused(db):
    with pytest.raises(InvalidRecipients, match="not been saved"):
        notify("low_stock", get_user_model()(username="ghost"), context=LOW_STOCK)


# -- chunks and queries ------------------------------------------------------------


def count_queries(**kwargs):
    with CaptureQueriesContext(connection) as queries:
        notify(**kwargs)
    return len(queries)


@pytest.mark.parametrize("channels", [["in_app"], ["in_app", "email", "sms"]])
def test_queries_grow_with_chunks_not_with_recipients(user_factory, channels):
    users = [user_factory() for _ in range(12)]
    content.resolve(registry.get("low_stock"), "in_app")  # overrides are read once per process, not per call
    everyone = get_user_model().objects.all()
    with override_settings(DJANGO_NOTIFY={**_settings(), "FANOUT_CHUNK_SIZE": 100}):
        small = count_queries(
            type="low_stock",
            recipients=everyone.filter(pk__in=[u.pk for u in users[:2]]),
            context=LOW_STOCK,
            channels=channels,
        )
        large = count_queries(type="low_stock", recipients=everyone, context=LOW_STOCK, channels=channels)
    assert small == large  # one chunk either way
    Notification.objects.all().delete()
    Delivery.objects.all().delete()
    with override_settings(DJANGO_NOTIFY={**_settings(), "FANOUT_CHUNK_SIZE": 4}):
        three_chunks = count_queries(type="low_stock", recipients=everyone, context=LOW_STOCK, channels=channels)
    per_chunk = 3 if len(channels) > 1 else 2  # boundary + insert (+ deliveries)
    assert three_chunks - large == 2 * per_chunk
    assert recipients_of() == sorted(u.pk for u in users)
    assert Delivery.objects.count() == 12 * (len(channels) - 1)


def test_long_id_list_is_chunked(user_factory):
    users = [user_factory() for _ in range(7)]
    with override_settings(DJANGO_NOTIFY={**_settings(), "FANOUT_CHUNK_SIZE": 2}):
        result = notify("order_placed", [u.pk for u in users], context=ORDER)
    assert (result.created, result.deliveries) == (7, 7)


def _settings():
    from django.conf import settings

    return dict(settings.DJANGO_NOTIFY)


# -- deliveries --------------------------------------------------------------------


def test_outbox_rows_for_external_channels(users):
    before = timezone.now()
    result = notify("order_placed", users[:2], context=ORDER)
    assert (result.created, result.deliveries) == (2, 2)
    deliveries = list(Delivery.objects.select_related("notification"))
    assert {d.notification.recipient_id for d in deliveries} == {users[0].pk, users[1].pk}
    for delivery in deliveries:
        assert (delivery.channel, delivery.status, delivery.attempts) == ("email", "pending", 0)
        assert before <= delivery.next_attempt_at <= timezone.now()
        assert delivery.expires_at == delivery.next_attempt_at + dt.timedelta(days=1)


def test_channels_argument_overrides_the_type(user):
    result = notify("low_stock", user, context=LOW_STOCK, channels=["in_app", "email", "sms"])
    assert sorted(Delivery.objects.values_list("channel", flat=True)) == ["email", "sms"]
    assert result.deliveries == 2


def test_unknown_channel(user):
    with pytest.raises(UnknownChannel, match="pigeon"):
        notify("low_stock", user, context=LOW_STOCK, channels=["pigeon"])
    assert not Notification.objects.exists()


def test_type_without_inbox_channel_is_not_visible(user):
    result = notify("order_placed", user, context=ORDER, channels=["email"])
    row = Notification.objects.get()
    assert row.visible_at is None
    assert not Notification.objects.inbox(user).exists()
    assert result.deliveries == 1


def test_one_delivery_per_active_push_subscription(user_factory):
    alice, bob = user_factory(), user_factory()
    for owner, endpoint, active in [(alice, "a1", True), (alice, "a2", True), (alice, "a3", False), (bob, "b1", True)]:
        PushSubscription.objects.create(
            user=owner, endpoint=f"https://fcm.googleapis.com/{endpoint}", p256dh="k", auth="a", is_active=active
        )
    channels = {**_settings()["CHANNELS"], "push": {"BACKEND": "tests.testapp.backends.PerSubscriptionBackend"}}
    with override_settings(DJANGO_NOTIFY={**_settings(), "CHANNELS": channels}):
        result = notify("low_stock", [alice, bob], context=LOW_STOCK, channels=["in_app", "push", "email"])
    assert result.deliveries == 3 + 2
    push = Delivery.objects.filter(channel="push").select_related("subscription")
    assert sorted(d.subscription.endpoint[-2:] for d in push) == ["a1", "a2", "b1"]
    assert all(d.notification.recipient_id == d.subscription.user_id for d in push)


# -- scheduling and expiry ---------------------------------------------------------


def test_send_at_in_the_future(user):
    later = timezone.now() + dt.timedelta(hours=2)
    notify("order_placed", user, context=ORDER, send_at=later)
    row = Notification.objects.get()
    assert row.visible_at == later
    assert not Notification.objects.inbox(user).exists()
    assert Notification.objects.inbox(user, now=later).exists()
    assert Delivery.objects.get().next_attempt_at == later


def test_send_at_in_the_past_means_now(user):
    notify("low_stock", user, context=LOW_STOCK, send_at=timezone.now() - dt.timedelta(days=3))
    assert Notification.objects.inbox(user).exists()


def test_expires_at_hides_and_bounds_delivery(user):
    soon = timezone.now() + dt.timedelta(minutes=5)
    notify("order_placed", user, context=ORDER, expires_at=soon)
    assert Notification.objects.inbox(user).exists()
    assert not Notification.objects.inbox(user, now=soon + dt.timedelta(seconds=1)).exists()
    assert Delivery.objects.get().expires_at == soon


# -- content -----------------------------------------------------------------------


def test_actor_target_and_url(user, staff_user):
    order = Order.objects.create(number="A-9")
    notify("low_stock", user, context=LOW_STOCK, actor=staff_user, target=order)
    row = Notification.objects.get()
    assert row.actor == staff_user and row.actor_repr == str(staff_user)
    assert row.target == order and row.target_repr == "Order A-9"
    assert row.target_object_id == str(order.pk)
    assert row.url == f"/orders/{order.pk}/"  # from target.get_absolute_url()
    assert row.target_content_type == ContentType.objects.get_for_model(Order)


def test_empty_url_means_no_link_even_with_a_target(user):
    notify("low_stock", user, context=LOW_STOCK, target=Order.objects.create(number="C-1"), url="")
    assert Notification.objects.get().url == ""


def test_uuid_target_and_text_actor(user):
    document = Document.objects.create(name="Menu")
    notify("low_stock", user, context=LOW_STOCK, actor="System", target=document, url="/menu/")
    row = Notification.objects.get()
    assert row.target == document and row.target_object_id == str(document.pk)
    uuid.UUID(row.target_object_id)
    assert (row.actor_content_type_id, row.actor_repr, row.url) == (None, "System", "/menu/")


def test_actor_and_target_are_in_the_context(user, staff_user):
    with registered(NotificationType(key="commented", title="{{ actor }} commented on {{ target }}")):
        notify("commented", user, actor=staff_user, target=Order.objects.create(number="B-1"))
    assert Notification.objects.get().title == f"{staff_user} commented on Order B-1"


def test_data_is_stored_as_json(user):
    data = {"amount": decimal.Decimal("1.50"), "when": dt.date(2026, 1, 2), "tags": ["a"]}
    notify("low_stock", user, context=LOW_STOCK, data=data)
    assert Notification.objects.get().data == {"amount": "1.50", "when": "2026-01-02", "tags": ["a"]}


@pytest.mark.parametrize("bad", [["a"], {"x": object()}])
def test_bad_data_is_refused(user, bad):
    with pytest.raises(TypeError, match="data"):
        notify("low_stock", user, context=LOW_STOCK, data=bad)


def test_bad_actor_is_refused(user):
    with pytest.raises(TypeError, match="actor"):
        notify("low_stock", user, context=LOW_STOCK, actor=42)


def test_overlong_url_is_refused(user):
    with pytest.raises(ValueError, match="2048"):
        notify("low_stock", user, context=LOW_STOCK, url="/" + "x" * 2048)


def test_missing_context_fails_before_anything_is_written(user):
    with pytest.raises(MissingContextError, match="quantity"):
        notify("low_stock", user, context={"item": "Flour"})
    assert not Notification.objects.exists()


def test_unknown_type(user):
    with pytest.raises(UnknownNotificationType):
        notify("nope", user)


def test_type_object_and_class_are_accepted(user):
    from tests.testapp.notifications import LowStock

    notify(LowStock, user, context=LOW_STOCK)
    notify(LowStock(), user, context=LOW_STOCK)
    assert Notification.objects.count() == 2


def test_personalised_text_is_rendered_per_recipient(users):
    with registered(
        NotificationType(key="hello", title="Hello {{ recipient.username }}", channels=["in_app", "email"])
    ):
        result = notify("hello", users[:3])
    titles = dict(Notification.objects.values_list("recipient_id", "title"))
    assert titles == {u.pk: f"Hello {u.username}" for u in users[:3]}
    assert (result.created, result.deliveries) == (3, 3)


# -- idempotency -------------------------------------------------------------------


def test_idempotency_key_returns_the_existing_notification(user):
    first = notify("order_placed", user, context=ORDER, idempotency_key="order:7")
    second = notify("order_placed", user, context=ORDER, idempotency_key="order:7")
    assert (first.created, second.created, second.existing) == (1, 0, 1)
    assert second.notification == first.notification
    assert Notification.objects.count() == 1 and Delivery.objects.count() == 1


def test_idempotency_key_is_per_recipient_and_type(users):
    notify("order_placed", users[:2], context=ORDER, idempotency_key="k")
    result = notify("order_placed", users[:4], context=ORDER, idempotency_key="k")
    assert (result.created, result.existing, result.deliveries) == (2, 2, 2)
    notify("low_stock", users[0], context=LOW_STOCK, idempotency_key="k")
    assert Notification.objects.count() == 5


def test_idempotency_with_personalised_text(users):
    with registered(NotificationType(key="hello", title="Hi {{ recipient.username }}")):
        notify("hello", users[:1], idempotency_key="k")
        result = notify("hello", users[:2], idempotency_key="k")
    assert (result.created, result.existing) == (1, 1)


def test_idempotency_fallback_without_returning(users, monkeypatch):
    # MySQL has no INSERT ... RETURNING: the rows are found again by their values.
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    notify("order_placed", users[:1], context=ORDER, idempotency_key="k")
    result = notify("order_placed", users[:3], context=ORDER, idempotency_key="k")
    assert (result.created, result.existing, result.deliveries) == (2, 1, 2)
    assert Delivery.objects.count() == 3


@pytest.mark.parametrize("bad", ["", "x" * 256, 5])
def test_bad_idempotency_key(user, bad):
    with pytest.raises(ValueError, match="idempotency_key"):
        notify("low_stock", user, context=LOW_STOCK, idempotency_key=bad)


# -- transactions and signals ------------------------------------------------------


def test_rollback_leaves_nothing(users):
    with pytest.raises(RuntimeError), transaction.atomic():
        notify("order_placed", users, context=ORDER)
        assert Notification.objects.count() == 5
        raise RuntimeError("the caller's transaction fails")
    assert not Notification.objects.exists()
    assert not Delivery.objects.exists()


def test_notification_created_signal_per_chunk(users):
    seen = []

    def receiver(sender, notification_type, notifications, **kwargs):
        seen.append((sender, notification_type.key, sorted(n.recipient_id for n in notifications)))

    notification_created.connect(receiver)
    try:
        with override_settings(DJANGO_NOTIFY={**_settings(), "FANOUT_CHUNK_SIZE": 3}):
            notify("low_stock", get_user_model().objects.all(), context=LOW_STOCK)
    finally:
        notification_created.disconnect(receiver)
    assert [len(ids) for _s, _k, ids in seen] == [3, 2]
    assert {key for _s, key, _ids in seen} == {"low_stock"}
    assert sorted(i for _s, _k, ids in seen for i in ids) == sorted(u.pk for u in users)


def test_capture_notifications(users):
    with capture_notifications() as captured:
        notify("low_stock", users[:2], context=LOW_STOCK)
        notify("order_placed", users[0], context=ORDER)
    assert len(captured) == 3
    assert [n.title for n in captured.of_type("order_placed")] == ["Order A-7 placed"]
    assert len(captured.for_user(users[0])) == 2
    with capture_notifications() as later:
        pass
    assert later == []


def test_type_defaults_do_not_override_actor_and_target(user, staff_user):
    kind = NotificationType(key="by", title="{{ actor }} / {{ target }}", defaults={"actor": "Someone", "target": "x"})
    with registered(kind):
        notify("by", user, actor=staff_user)
        notify("by", user, context={"actor": "Explicit"}, actor=staff_user)
    titles = list(Notification.objects.order_by("pk").values_list("title", flat=True))
    assert titles == [f"{staff_user} / x", "Explicit / x"]


def test_personalised_rows_written_meanwhile_are_skipped_not_an_error(users):
    """A concurrent notify() with the same key can insert between our check and our insert."""
    from django_notify.fanout import NotificationWriter

    now = timezone.now()
    values = {
        "type": "low_stock",
        "category": "inventory",
        "created_at": now,
        "visible_at": now,
        "idempotency_key": "k",
    }
    Notification.objects.create(
        recipient=users[0],
        title="earlier",
        created_at=now - dt.timedelta(seconds=1),
        **{k: v for k, v in values.items() if k != "created_at"},
    )
    writer = NotificationWriter("default", values, deduplicate=True, outbox=[], delivery_values={})
    rows = [Notification(recipient_id=u.pk, title=f"hi {u.pk}", **values) for u in users[:2]]
    written = writer.insert_rows(rows)
    assert [recipient for _pk, recipient in written] == [users[1].pk]
    assert Notification.objects.filter(recipient=users[0]).values_list("title", flat=True).get() == "earlier"


def test_template_needing_an_absent_actor_fails_clearly(user):
    with (
        registered(NotificationType(key="by2", title="{{ actor }} did it")),
        pytest.raises(MissingContextError, match="actor"),
    ):
        notify("by2", user)
