"""The push subscription admin: no secrets on any page, filters, and the test-push action."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_notify.models import Delivery, DeliveryStatus, PushSubscription
from django_notify.push import vapid

PRIVATE_KEY = vapid.generate_private_key()
WEBPUSH = {
    "BACKEND": "django_notify.backends.webpush.WebPushBackend",
    "OPTIONS": {
        "vapid_private_key": vapid.private_key_b64(PRIVATE_KEY),
        "vapid_subject": "mailto:ops@example.com",
    },
}
IN_APP = {"BACKEND": "django_notify.backends.in_app.InAppBackend"}
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
CHANGELIST = reverse("admin:django_notify_pushsubscription_changelist")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def change_url(subscription: PushSubscription) -> str:
    return reverse("admin:django_notify_pushsubscription_change", args=[subscription.pk])


@pytest.fixture
def subscription_factory(db: None) -> Callable[..., PushSubscription]:
    """Subscriptions with a secret-looking endpoint and real keys."""

    def create(user: Any, **fields: Any) -> PushSubscription:
        point = ec.generate_private_key(ec.SECP256R1()).public_key()
        values = {
            "endpoint": f"https://fcm.googleapis.com/fcm/send/{secrets.token_urlsafe(64)}",
            "p256dh": b64url(point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)),
            "auth": b64url(os.urandom(16)),
            **fields,
        }
        return PushSubscription.objects.create(user=user, **values)

    return create


@pytest.fixture
def webpush(settings: Any) -> None:
    settings.DJANGO_NOTIFY = {"CHANNELS": {"in_app": IN_APP, "webpush": WEBPUSH}}


def secrets_of(subscription: PushSubscription) -> list[str]:
    token = subscription.endpoint.rsplit("/", 1)[-1]
    return [token, subscription.p256dh, subscription.auth, subscription.endpoint_sha256]


def run_action(client: Client, action: str, objects: list[PushSubscription]) -> list[tuple[int, str]]:
    response = client.post(CHANGELIST, {"action": action, "_selected_action": [obj.pk for obj in objects]}, follow=True)
    assert response.status_code == 200
    return [(message.level, str(message)) for message in response.context["messages"]]


# -- pages ------------------------------------------------------------------------


def test_changelist_columns_show_the_browser_and_the_push_service_only(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    subscription = subscription_factory(admin_user, user_agent=CHROME_ANDROID)

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert list(response.context["cl"].list_display)[1:] == [
        "id",
        "user",
        "browser",
        "push_service",
        "is_active",
        "last_success_at",
        "last_failure_at",
        "failure_count",
        "deactivation_reason",
        "created_at",
    ]
    content = response.content.decode()
    assert "Chrome on Android" in content
    assert "fcm.googleapis.com" in content
    for secret in secrets_of(subscription):
        assert secret not in content


def test_change_page_says_the_secrets_are_hidden_and_has_no_field_for_them(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    subscription = subscription_factory(admin_user, user_agent=CHROME_ANDROID)

    response = admin_client.get(change_url(subscription))

    assert response.status_code == 200
    content = response.content.decode()
    assert "hidden (secret)" in content
    assert "Chrome on Android" in content
    for name in ("endpoint", "p256dh", "auth"):
        assert f'name="{name}"' not in content
    for secret in secrets_of(subscription):
        assert secret not in content


def test_secrets_cannot_be_changed_through_the_form(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    subscription = subscription_factory(admin_user)
    before = (subscription.endpoint, subscription.p256dh, subscription.auth)

    response = admin_client.post(
        change_url(subscription), {"endpoint": "https://evil.example/x", "p256dh": "x", "auth": "y"}
    )

    assert response.status_code == 403
    subscription.refresh_from_db()
    assert (subscription.endpoint, subscription.p256dh, subscription.auth) == before


# -- filters ----------------------------------------------------------------------

REASONS = {
    "HTTP 410": "gone",
    "HTTP 404": "gone",
    "endpoint_rejected: the host evil.example is not an allowed push service": "endpoint",
    "bad subscription keys: auth must be a 16-byte secret; got 15 bytes.": "keys",
    "subscribed with another VAPID key": "vapid_key",
    "admin": "admin",
    "retired by a migration": "other",
}


def test_deactivation_reason_filter_groups_the_reasons(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    rows = {reason: subscription_factory(admin_user, is_active=False, deactivation_reason=reason) for reason in REASONS}
    active = subscription_factory(admin_user)

    for value in sorted(set(REASONS.values())):
        response = admin_client.get(CHANGELIST, {"deactivation": value})
        found = {row.pk for row in response.context["cl"].result_list}
        assert found == {rows[reason].pk for reason, group in REASONS.items() if group == value}, value
        assert active.pk not in found

    response = admin_client.get(CHANGELIST, {"is_active__exact": "1"})
    assert [row.pk for row in response.context["cl"].result_list] == [active.pk]


def test_filters_and_search_never_select_distinct(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    subscription_factory(admin_user, is_active=False, deactivation_reason="HTTP 410")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"deactivation": "other", "q": admin_user.username})

    assert response.status_code == 200
    assert not [query["sql"] for query in queries if "DISTINCT" in query["sql"].upper()]


# -- actions ----------------------------------------------------------------------


def test_send_a_test_push_to_the_users_of_the_selected_active_subscriptions(
    webpush: None,
    admin_client: Client,
    user_factory: Callable[..., Any],
    subscription_factory: Callable[..., PushSubscription],
) -> None:
    alice, bob, carol = user_factory(), user_factory(), user_factory()
    alice_phone, alice_laptop = subscription_factory(alice), subscription_factory(alice)
    alice_old = subscription_factory(alice, is_active=False)
    bob_phone = subscription_factory(bob)
    carol_dead = subscription_factory(carol, is_active=False)
    subscription_factory(user_factory())  # not selected

    messages = run_action(admin_client, "send_test_push", [alice_phone, alice_old, bob_phone, carol_dead])

    # Each user's active subscriptions get it, selected or not (the laptop); carol has none active.
    assert messages == [(25, "Test push queued for 2 users. 3 deliveries, one per active subscription.")]
    deliveries = Delivery.objects.select_related("notification")
    assert {d.subscription_id for d in deliveries} == {alice_phone.pk, alice_laptop.pk, bob_phone.pk}
    assert {(d.channel, d.status, d.notification.type) for d in deliveries} == {
        ("webpush", DeliveryStatus.PENDING, "django_notify.test")
    }


def test_send_a_test_push_with_no_active_subscription_selected(
    webpush: None, admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    dead = subscription_factory(admin_user, is_active=False)

    assert run_action(admin_client, "send_test_push", [dead]) == [
        (30, "None of the selected subscriptions is active: nothing sent.")
    ]
    assert not Delivery.objects.exists()


def test_send_a_test_push_without_a_webpush_channel(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    subscription = subscription_factory(admin_user)

    [(level, message)] = run_action(admin_client, "send_test_push", [subscription])

    assert level == 40
    assert message.startswith("Web Push is not configured")
    assert 'DJANGO_NOTIFY["CHANNELS"]' in message
    assert not Delivery.objects.exists()


def test_deactivate_marks_the_reason(
    admin_client: Client, admin_user: Any, subscription_factory: Callable[..., PushSubscription]
) -> None:
    active, inactive = subscription_factory(admin_user), subscription_factory(admin_user, is_active=False)

    assert run_action(admin_client, "deactivate", [active, inactive]) == [(25, "1 push subscription deactivated.")]

    active.refresh_from_db()
    assert (active.is_active, active.deactivation_reason) == (False, "admin")
    response = admin_client.get(CHANGELIST, {"deactivation": "admin"})
    assert [row.pk for row in response.context["cl"].result_list] == [active.pk]


def test_actions_need_the_change_permission(
    client: Client, user_factory: Callable[..., Any], subscription_factory: Callable[..., PushSubscription]
) -> None:
    viewer = user_factory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pushsubscription"))
    client.force_login(viewer)
    subscription = subscription_factory(viewer)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    action_form = response.context["action_form"]
    names = [name for name, _label in action_form.fields["action"].choices] if action_form else []
    assert "send_test_push" not in names and "deactivate" not in names
    client.post(CHANGELIST, {"action": "deactivate", "_selected_action": [subscription.pk]})
    subscription.refresh_from_db()
    assert subscription.is_active
