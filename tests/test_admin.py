from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_notify import notify, registry
from django_notify.admin import NotificationAdmin
from django_notify.models import (
    Delivery,
    DeliveryStatus,
    EngagementEvent,
    Notification,
    Preference,
    PushSubscription,
    TemplateOverride,
    UserPreferences,
)

ENDPOINT_TOKEN = "SECRET-" + "a1B2c3D4" * 20
ENDPOINT = f"https://fcm.googleapis.com/fcm/send/{ENDPOINT_TOKEN}"
P256DH = "BP256dhPublicKey" + "x9Y8" * 18
AUTH = "AuthSecretZq7Wv3"

ALL_MODELS = [
    Notification,
    Delivery,
    PushSubscription,
    Preference,
    UserPreferences,
    TemplateOverride,
    EngagementEvent,
]
EDITABLE_MODELS = {Preference, UserPreferences, TemplateOverride}


def admin_url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def order_placed(recipient: Any, number: str = "A-1") -> Notification:
    result = notify("order_placed", recipient, context={"order_number": number, "total": "12.50"})
    assert result.notification is not None
    return result.notification


def low_stock(recipient: Any) -> Notification:
    result = notify("low_stock", recipient, context={"item": "Flour", "quantity": 3})
    assert result.notification is not None
    return result.notification


@pytest.fixture
def alice(user_factory: Callable[..., Any]) -> Any:
    return user_factory(username="alice", email="alice@example.com")


@pytest.fixture
def bob(user_factory: Callable[..., Any]) -> Any:
    return user_factory(username="bob", email="bob@example.org")


@pytest.fixture
def rows(alice: Any, bob: Any) -> dict[type[models.Model], models.Model]:
    """One row of every model: alice's order (in-app and email) and bob's low stock."""
    order = order_placed(alice)
    low_stock(bob)
    delivery = Delivery.objects.get(notification=order)
    return {
        Notification: order,
        Delivery: delivery,
        PushSubscription: PushSubscription.objects.create(user=alice, endpoint=ENDPOINT, p256dh=P256DH, auth=AUTH),
        Preference: Preference.objects.create(user=alice, channel="email", category="orders"),
        UserPreferences: UserPreferences.objects.create(user=alice, timezone="Europe/Berlin"),
        TemplateOverride: TemplateOverride.objects.create(type="order_placed", channel="email", title="Hi"),
        EngagementEvent: EngagementEvent.objects.create(
            notification=order, delivery=delivery, type=order.type, channel="email", kind="clicked"
        ),
    }


def result_pks(response: Any) -> set[Any]:
    return {row.pk for row in response.context["cl"].result_list}


# -- pages ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_changelist_lists_the_rows(admin_client: Client, rows: dict[Any, Any], model: type[models.Model]) -> None:
    response = admin_client.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    assert rows[model].pk in result_pks(response)
    assert response.context["cl"].result_count == model._default_manager.count()


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_change_page_is_editable_only_for_hand_made_rows(
    admin_client: Client, rows: dict[Any, Any], model: type[models.Model]
) -> None:
    response = admin_client.get(admin_url(model, "change", rows[model].pk))

    assert response.status_code == 200
    assert response.context["original"] == rows[model]
    assert (b'name="_save"' in response.content) is (model in EDITABLE_MODELS)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_only_hand_made_rows_can_be_added(admin_client: Client, model: type[models.Model]) -> None:
    response = admin_client.get(admin_url(model, "add"))

    assert response.status_code == (200 if model in EDITABLE_MODELS else 403)


def test_notification_page_shows_its_deliveries(admin_client: Client, rows: dict[Any, Any]) -> None:
    delivery = rows[Delivery]
    Delivery.objects.filter(pk=delivery.pk).update(last_error="Mailbox unavailable")

    response = admin_client.get(admin_url(Notification, "change", rows[Notification].pk))

    assert b"Mailbox unavailable" in response.content
    assert admin_url(Delivery, "change", delivery.pk).encode() in response.content


@pytest.mark.parametrize("model", [Notification, Delivery], ids=lambda m: m.__name__)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client: Client, user_factory: Callable[..., Any], model: type[models.Model]
) -> None:
    def query_count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(admin_url(model, "changelist"))
        assert response.status_code == 200
        return len(queries)

    for number in range(3):
        order_placed(user_factory(), f"A-{number}")
    admin_client.get(admin_url(model, "changelist"))  # warm caches (content types, session)
    few = query_count()
    for number in range(27):
        order_placed(user_factory(), f"B-{number}")

    assert model._default_manager.count() == 30
    assert query_count() == few


# -- search -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [Notification, Delivery], ids=lambda m: m.__name__)
@pytest.mark.parametrize("term", ["alice", "ALICE@example.com", "{pk}"])
def test_search_finds_the_recipients_rows(
    admin_client: Client, alice: Any, bob: Any, model: type[models.Model], term: str
) -> None:
    order_placed(alice, "A-1")
    order_placed(alice, "A-2")
    order_placed(bob, "B-1")
    path = "recipient" if model is Notification else "notification__recipient"
    expected = set(model._default_manager.filter(**{path: alice}).values_list("pk", flat=True))

    response = admin_client.get(admin_url(model, "changelist"), {"q": term.format(pk=alice.pk)})

    assert response.status_code == 200
    assert len(expected) == 2
    assert result_pks(response) == expected


def test_search_with_words_and_unknown_ids_finds_nothing_else(admin_client: Client, rows: dict[Any, Any]) -> None:
    url = admin_url(Notification, "changelist")

    assert result_pks(admin_client.get(url, {"q": "alice example.com"})) == {rows[Notification].pk}
    assert result_pks(admin_client.get(url, {"q": "alice bob"})) == set()
    assert result_pks(admin_client.get(url, {"q": "99999999999999999999999"})) == set()


def test_search_fields_follow_the_user_models_username_field(
    rf: Any, admin_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_admin = NotificationAdmin(Notification, admin.site)
    request = rf.get("/")
    request.user = admin_user
    assert model_admin.get_search_fields(request) == ["recipient__username", "recipient__email"]

    monkeypatch.setattr(get_user_model(), "USERNAME_FIELD", "email")

    assert model_admin.get_search_fields(request) == ["recipient__email"]


# -- list filters -----------------------------------------------------------------


def test_type_filter_offers_the_registered_types(admin_client: Client, rows: dict[Any, Any]) -> None:
    response = admin_client.get(admin_url(Notification, "changelist"))

    spec = next(spec for spec in response.context["cl"].filter_specs if spec.parameter_name == "type")
    choices = dict(spec.lookup_choices)
    assert set(choices) == set(registry.keys())
    assert choices["order_placed"] == "Order placed"
    assert choices["low_stock"] == "low_stock"


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        (Notification, {"type": "low_stock"}, {"low_stock"}),
        (Notification, {"type": "order_placed"}, {"order_placed"}),
        (Notification, {"category": "inventory"}, {"low_stock"}),
        (Notification, {"read": "no"}, {"low_stock", "order_placed"}),
        (Notification, {"read": "yes"}, set()),
        (Delivery, {"channel": "email"}, {"order_placed"}),
        (Delivery, {"channel": "sms"}, set()),
        (EngagementEvent, {"type": "order_placed"}, {"order_placed"}),
        (EngagementEvent, {"type": "low_stock"}, set()),
    ],
)
def test_list_filters_filter(
    admin_client: Client,
    rows: dict[Any, Any],
    model: type[models.Model],
    query: dict[str, str],
    expected: set[str],
) -> None:
    response = admin_client.get(admin_url(model, "changelist"), query)

    results = response.context["cl"].result_list
    types = {row.type if model is not Delivery else row.notification.type for row in results}
    assert types == expected


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_changelist_never_selects_distinct(
    admin_client: Client, rows: dict[Any, Any], model: type[models.Model]
) -> None:
    term = "order_placed" if model is TemplateOverride else "alice"

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(admin_url(model, "changelist"), {"q": term})

    assert result_pks(response) == {rows[model].pk}
    assert not [query["sql"] for query in queries if "DISTINCT" in query["sql"].upper()]


# -- actions ----------------------------------------------------------------------


def run_action(client: Client, model: type[models.Model], action: str, objects: list[Any]) -> list[str]:
    response = client.post(
        admin_url(model, "changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def test_requeue_puts_dead_deliveries_back_to_pending(admin_client: Client, user_factory: Callable[..., Any]) -> None:
    failed, sent, expired, pending = (Delivery.objects.get(notification=order_placed(user_factory())) for _ in range(4))
    now = timezone.now()
    Delivery.objects.filter(pk=failed.pk).update(
        status=DeliveryStatus.FAILED,
        attempts=5,
        last_error="550 Mailbox unavailable",
        lease_id=uuid.uuid4(),
        leased_until=now,
        next_attempt_at=now - timedelta(days=1),
    )
    Delivery.objects.filter(pk=sent.pk).update(status=DeliveryStatus.SENT, sent_at=now)
    Delivery.objects.filter(pk=expired.pk).update(status=DeliveryStatus.EXPIRED, expires_at=now - timedelta(hours=1))
    later = now + timedelta(hours=1)
    Delivery.objects.filter(pk=pending.pk).update(next_attempt_at=later)

    before = timezone.now()
    messages = run_action(admin_client, Delivery, "requeue", [failed, sent, expired, pending])
    after = timezone.now()

    assert messages == ["2 deliveries requeued."]
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.PENDING
    assert before <= failed.next_attempt_at <= after
    assert (failed.lease_id, failed.leased_until) == (None, None)
    assert (failed.last_error, failed.attempts) == ("550 Mailbox unavailable", 5)
    assert failed.expires_at is not None and failed.expires_at > after
    expired.refresh_from_db()
    assert (expired.status, expired.expires_at) == (DeliveryStatus.PENDING, None)
    sent.refresh_from_db()
    assert sent.status == DeliveryStatus.SENT
    pending.refresh_from_db()
    assert pending.next_attempt_at == later


def test_requeue_of_nothing_warns(admin_client: Client, rows: dict[Any, Any]) -> None:
    messages = run_action(admin_client, Delivery, "requeue", [rows[Delivery]])

    assert messages == ["0 deliveries requeued."]
    assert Delivery.objects.get().status == DeliveryStatus.PENDING


def test_mark_read_and_unread(admin_client: Client, alice: Any, bob: Any) -> None:
    first, second = order_placed(alice), low_stock(bob)

    assert run_action(admin_client, Notification, "mark_read", [first, second]) == ["2 notifications marked as read."]
    assert Notification.objects.filter(read_at__isnull=False, seen_at__isnull=False).count() == 2

    assert run_action(admin_client, Notification, "mark_unread", [first]) == ["1 notification marked as unread."]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.read_at, first.seen_at is not None, second.is_read) == (None, True, True)


@pytest.mark.parametrize(("permission", "allowed"), [("view_delivery", False), ("change_delivery", True)])
def test_actions_need_the_change_permission(
    client: Client, user_factory: Callable[..., Any], rows: dict[Any, Any], permission: str, allowed: bool
) -> None:
    staff = user_factory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename=permission))
    client.force_login(staff)
    Delivery.objects.update(status=DeliveryStatus.FAILED)

    response = client.get(admin_url(Delivery, "changelist"))
    run_action(client, Delivery, "requeue", [rows[Delivery]])

    assert response.status_code == 200
    action_form = response.context["action_form"]  # None when no action is allowed
    action_names = [name for name, _label in action_form.fields["action"].choices] if action_form else []
    assert ("requeue" in action_names) is allowed
    assert (Delivery.objects.get().status == DeliveryStatus.PENDING) is allowed


def test_deactivate_and_reactivate_push_subscriptions(admin_client: Client, rows: dict[Any, Any]) -> None:
    subscription = rows[PushSubscription]
    PushSubscription.objects.filter(pk=subscription.pk).update(failure_count=4)

    assert run_action(admin_client, PushSubscription, "deactivate", [subscription]) == [
        "1 push subscription deactivated."
    ]
    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.deactivation_reason) == (False, "admin")
    assert subscription.deactivated_at is not None

    assert run_action(admin_client, PushSubscription, "reactivate", [subscription]) == [
        "1 push subscription reactivated."
    ]
    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.deactivated_at, subscription.failure_count) == (True, None, 0)


# -- secrets ----------------------------------------------------------------------


@pytest.mark.parametrize("view", ["changelist", "change", "delete", "history"])
def test_push_subscription_pages_never_show_secrets(admin_client: Client, rows: dict[Any, Any], view: str) -> None:
    subscription = rows[PushSubscription]
    args = () if view == "changelist" else (subscription.pk,)

    response = admin_client.get(admin_url(PushSubscription, view, *args))

    assert response.status_code == 200
    content = response.content.decode()
    for secret in (ENDPOINT_TOKEN[:16], P256DH, AUTH, subscription.endpoint_sha256):
        assert secret not in content
    if view in {"changelist", "change"}:
        assert "fcm.googleapis.com" in content


@pytest.mark.parametrize("term", [ENDPOINT, ENDPOINT_TOKEN, "fcm.googleapis.com", P256DH, AUTH])
def test_push_subscription_search_ignores_secrets(admin_client: Client, rows: dict[Any, Any], term: str) -> None:
    url = admin_url(PushSubscription, "changelist")

    assert result_pks(admin_client.get(url, {"q": "alice"})) == {rows[PushSubscription].pk}
    assert result_pks(admin_client.get(url, {"q": term})) == set()


def test_delivery_page_shows_only_the_host_of_a_url_destination(admin_client: Client, rows: dict[Any, Any]) -> None:
    delivery = rows[Delivery]
    Delivery.objects.filter(pk=delivery.pk).update(destination=ENDPOINT)

    response = admin_client.get(admin_url(Delivery, "change", delivery.pk))

    content = response.content.decode()
    assert ENDPOINT_TOKEN[:16] not in content
    assert "fcm.googleapis.com" in content


# -- forms ------------------------------------------------------------------------


def test_preference_form_rejects_unknown_scopes(admin_client: Client, alice: Any) -> None:
    data = {"user": alice.pk, "channel": "fax", "category": "nope", "type": "nope", "frequency": "immediate"}

    response = admin_client.post(admin_url(Preference, "add"), data)

    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"channel", "category", "type"}
    assert "Registered: django_notify.test, low_stock, order_placed" in response.content.decode()
    assert not Preference.objects.exists()


def test_preference_form_saves_known_and_blank_scopes(admin_client: Client, alice: Any) -> None:
    data = {"user": alice.pk, "channel": "email", "category": "", "type": "order_placed", "frequency": "daily"}

    response = admin_client.post(admin_url(Preference, "add"), data)

    assert response.status_code == 302
    preference = Preference.objects.get()
    assert (preference.user, preference.channel, preference.category, preference.type) == (
        alice,
        "email",
        "",
        "order_placed",
    )
    assert preference.enabled is None  # not chosen: inherits from a less specific rule


@pytest.mark.parametrize(("value", "saved"), [("Mars/Olympus_Mons", False), ("Europe/Berlin", True)])
def test_user_preferences_form_checks_the_time_zone(admin_client: Client, alice: Any, value: str, saved: bool) -> None:
    response = admin_client.post(admin_url(UserPreferences, "add"), {"user": alice.pk, "timezone": value})

    assert response.status_code == (302 if saved else 200)
    assert UserPreferences.objects.filter(user=alice, timezone=value).exists() is saved


def test_template_override_form_rejects_an_unknown_type(admin_client: Client) -> None:
    data = {"type": "nope", "channel": "email", "language": "", "is_active": "on", "title": "Hi"}

    response = admin_client.post(admin_url(TemplateOverride, "add"), data)

    assert set(response.context["adminform"].form.errors) == {"type"}
    assert not TemplateOverride.objects.exists()


@pytest.mark.parametrize(
    ("start", "end", "saved"),
    [("22:00", "", False), ("", "07:00", False), ("07:00", "07:00", False), ("22:00", "07:00", True), ("", "", True)],
)
def test_user_preferences_form_checks_quiet_hours(
    admin_client: Client, alice: Any, start: str, end: str, saved: bool
) -> None:
    data = {"user": alice.pk, "timezone": "Europe/Berlin", "quiet_hours_start": start, "quiet_hours_end": end}
    response = admin_client.post(admin_url(UserPreferences, "add"), data)
    assert response.status_code == (302 if saved else 200)
    assert UserPreferences.objects.filter(user=alice).exists() is saved
