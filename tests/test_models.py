from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from django_notify import notify
from django_notify.models import Delivery, Notification, Preference, PushSubscription, UserPreferences

LOW_STOCK = {"item": "Flour", "quantity": 3}


def test_queryset_read_state_helpers(user):
    for _ in range(3):
        notify("low_stock", user, context=LOW_STOCK)
    rows = Notification.objects.for_recipient(user)
    assert rows.unread().count() == 3
    first = rows.order_by("pk").first()
    assert first.mark_read() is True and first.mark_read() is False
    assert first.is_read and first.seen_at == first.read_at
    assert rows.mark_read() == 2
    assert rows.unread().count() == 0 and rows.read().count() == 3
    assert rows.mark_unread() == 3
    assert rows.filter(seen_at__isnull=True).count() == 0  # seen survives "unread"
    assert rows.mark_seen() == 0


def test_mark_read_keeps_an_earlier_seen_time(user):
    notify("low_stock", user, context=LOW_STOCK)
    earlier = timezone.now() - dt.timedelta(hours=1)
    Notification.objects.update(seen_at=earlier)
    Notification.objects.mark_read()
    row = Notification.objects.get()
    assert row.seen_at == earlier and row.read_at > earlier


@pytest.mark.parametrize("unread", [False, True])
def test_newest_first_orders_by_visible_at_then_id(user, unread):
    for _ in range(4):
        notify("low_stock", user, context=LOW_STOCK)
    same = timezone.now()
    Notification.objects.update(visible_at=same)
    queryset = Notification.objects.inbox(user)
    if unread:
        queryset = queryset.unread()
    ids = list(queryset.newest_first().values_list("pk", flat=True))
    assert ids == sorted(ids, reverse=True)
    sql = str(queryset.newest_first().query)
    assert ("read_at" in sql.split("ORDER BY")[1]) is (unread and connection.vendor == "postgresql")


def test_newest_first_pins_nothing_for_archived_rows(user):
    notify("low_stock", user, context=LOW_STOCK)
    order = Notification.objects.archived().newest_first().query.order_by
    assert order == ("-visible_at", "-id")


def inbox_plan(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE django_notify_notification")
            cursor.execute("EXPLAIN " + sql, params)
        elif connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        else:  # MySQL: no ANALYZE TABLE here, it would commit the test's transaction
            cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(" ".join(str(col) for col in row) for row in cursor.fetchall())


@pytest.mark.parametrize("unread", [False, True])
def test_first_page_reads_the_index_in_order(user_factory, unread):
    """The first page of a big inbox comes straight off an index, with no sort step."""
    reader, others = user_factory(), [user_factory() for _ in range(20)]
    from tests.benchmarks.bench_fanout import notify_many

    notify_many(reader, 3000, {})
    for other in others:
        notify_many(other, 100, {})
    queryset = Notification.objects.inbox(reader)
    if unread:
        queryset = queryset.unread()
    plan = inbox_plan(queryset.newest_first()[:21])
    assert "dn_notification_unread" in plan or "dn_notification_inbox" in plan, plan
    assert "TEMP B-TREE" not in plan and "filesort" not in plan, plan
    if connection.vendor == "postgresql":
        assert "Index Scan Backward" in plan, plan
        assert "Sort Key" not in plan or "Incremental Sort" in plan, plan


def test_deleting_a_user_deletes_their_notification_data(user_factory):
    user, other = user_factory(), user_factory()
    for owner in (user, other):
        notify("order_placed", owner, context={"order_number": "1", "total": "2"})
        PushSubscription.objects.create(
            user=owner, endpoint=f"https://fcm.googleapis.com/{owner.pk}", p256dh="k", auth="a"
        )
        Preference.objects.create(user=owner, channel="email", enabled=False)
        UserPreferences.objects.create(user=owner, timezone="Europe/Berlin")
    get_user_model().objects.filter(pk=user.pk).delete()
    for model, field in [
        (Notification, "recipient"),
        (PushSubscription, "user"),
        (Preference, "user"),
        (UserPreferences, "user"),
    ]:
        assert not model.objects.filter(**{field: user.pk}).exists()
        assert model.objects.filter(**{field: other.pk}).exists()
    assert list(Delivery.objects.values_list("notification__recipient", flat=True)) == [other.pk]


def test_push_subscription_hides_its_endpoint(user):
    subscription = PushSubscription.objects.create(
        user=user, endpoint="https://fcm.googleapis.com/fcm/send/SECRET", p256dh="k", auth="a"
    )
    assert "SECRET" not in str(subscription) and "SECRET" not in repr(subscription)
    assert len(subscription.endpoint_sha256) == 64


def test_str_of_models(user):
    notify("order_placed", user, context={"order_number": "1", "total": "2"})
    notification, delivery = Notification.objects.get(), Delivery.objects.get()
    assert str(notification) == "Order 1 placed"
    assert str(delivery) == f"email #{delivery.pk} (pending)"
    assert not delivery.is_terminal
    assert str(Preference(channel="email", enabled=False)) == "email/*/*: off"
