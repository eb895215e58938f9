"""The service worker (``sw.js``) in a real Chromium: registration, pushes, clicks, renewals.

Pushes reach the worker through DevTools (``ServiceWorker.deliverPushMessage``),
as the browser's push service would deliver them. Clicks and closes are events
built inside the worker around the real notification: nobody can click a
headless notification.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from django_notify import NotificationType, notify
from django_notify.channels import channels
from django_notify.delivery import deliver_due
from django_notify.models import Delivery, DeliveryStatus, EngagementEvent, Notification, PushSubscription
from django_notify.push.payload import build_payload
from django_notify.registry import registry
from django_notify.testing import registered
from django_notify.tokens import make_event_token, read_event_token
from tests.browser.support import PushPage, fake_push_manager_script, wait_until

pytestmark = pytest.mark.browser

ORDER_SHIPPED = NotificationType(
    key="browser_order_shipped",
    category="orders",
    title="Order {{ number }} shipped",
    body="It leaves the kitchen at {{ time }}.",
    channels=["in_app", "webpush"],
    push={
        "require_interaction": True,
        "actions": [{"action": "track", "title": "Track it", "url": "/page/?track=1"}],
    },
)
CONTEXT = {"number": "A-7", "time": "12:30"}


@pytest.fixture
def shipped_type() -> Any:
    with registered(ORDER_SHIPPED):
        yield ORDER_SHIPPED


def wait_for_event(kind: str, **filters: Any) -> EngagementEvent:
    return wait_until(
        lambda: EngagementEvent.objects.filter(kind=kind, **filters).first(), f'a "{kind}" engagement event'
    )


def subscribe_row(user: Any, receiver: Any) -> PushSubscription:
    subscription = receiver.subscribe()
    keys = subscription["keys"]
    return PushSubscription.objects.create(
        user=user, endpoint=subscription["endpoint"], p256dh=keys["p256dh"], auth=keys["auth"]
    )


@pytest.fixture
def push_order(webpush_settings: Any, shipped_type: Any, user: Any, receiver: Any) -> Any:
    """``push_order(push_page)``: notify ``user``, push the server's message for it; returns the delivery.

    The message is the backend's own (``WebPushBackend.message()`` then
    ``build_payload()``), tracking token and events URL included; it reaches the
    worker through DevTools instead of the network (the full network path is
    :func:`test_push_from_notify_to_the_screen`).
    """

    def push(push_page: PushPage, url: str = "/page/?order=A-7") -> tuple[Delivery, dict[str, Any]]:
        subscribe_row(user, receiver)
        notification = notify(ORDER_SHIPPED.key, user, context=CONTEXT, url=url).notification
        delivery = Delivery.objects.get(notification=notification, channel="webpush")
        events_url = reverse("django_notify:event-list")
        message = channels["webpush"].message(delivery, notification, registry.get(ORDER_SHIPPED.key), events_url)
        document = json.loads(build_payload(message))
        push_page.push(json.dumps(document))
        return delivery, document

    return push


# -- registration ----------------------------------------------------------------------


def test_worker_registers_from_the_view_with_scope_root(push_page: PushPage, live_server: Any) -> None:
    push_page.open()
    registration = push_page.register()

    assert registration == {"scope": live_server.url + "/", "script": live_server.url + "/api/notifications/sw.js"}
    controller = push_page.page.evaluate("navigator.serviceWorker.controller.scriptURL")
    assert controller == live_server.url + "/api/notifications/sw.js"
    assert push_page.page.errors == []


def test_the_static_file_alone_cannot_take_scope_root(push_page: PushPage) -> None:
    # Why the view exists: without Service-Worker-Allowed the scope stops at the script's folder.
    push_page.open()
    message = push_page.page.evaluate(
        """navigator.serviceWorker.register("/static/django_notify/sw.js", {scope: "/"})
            .then(() => "registered", (error) => error.message)"""
    )
    assert "Service-Worker-Allowed" in message


# -- push ----------------------------------------------------------------------------------


def test_push_from_notify_to_the_screen(
    push_page: PushPage, login: Any, user: Any, receiver: Any, webpush_settings: Any, shipped_type: Any
) -> None:
    """notify() → the real sender → an encrypted POST to a push service → the worker → a notification."""
    login(user)
    # The browser's subscription is one the loopback push service made (the network edge).
    push_page.page.add_init_script(fake_push_manager_script(receiver.subscribe("browser")))
    push_page.open()
    answer = push_page.page.evaluate("djangoNotify.subscribe()")
    row = PushSubscription.objects.get(user=user)
    assert answer == {"id": row.pk}
    push_page.register()  # subscribe() registered the worker already; this waits for DevTools

    notification = notify(ORDER_SHIPPED.key, user, context=CONTEXT, url="/page/?order=A-7").notification
    report = deliver_due()
    delivery = Delivery.objects.get(notification=notification, channel="webpush")
    assert (report.sent, delivery.status) == (1, DeliveryStatus.SENT)
    [received] = receiver.messages("browser")  # decrypted with the subscription's private key
    push_page.push(json.dumps(received.payload))

    [shown] = push_page.wait_for_notifications()
    assert shown["title"] == "Order A-7 shipped"
    assert shown["body"] == "It leaves the kitchen at 12:30."
    assert shown["tag"] == f"notification-{notification.pk}"
    assert shown["requireInteraction"] is True
    assert shown["actions"] == [{"action": "track", "title": "Track it"}]
    assert shown["data"] == {
        "url": "/page/?order=A-7",
        "id": notification.pk,
        "token": received.payload["token"],
        "events": "/api/notifications/events/",
        "actionUrls": {"track": "/page/?track=1"},
        "data": {},
    }
    assert read_event_token(shown["data"]["token"]) == (notification.pk, delivery.pk)
    event = wait_for_event("delivered")
    assert (event.notification_id, event.delivery_id, event.channel) == (notification.pk, delivery.pk, "webpush")
    assert push_page.page.errors == []


@pytest.mark.parametrize(
    ("data", "body"),
    [("Your order is ready", "Your order is ready"), ("", "Open the site to see it."), ("[1, 2]", "[1, 2]")],
    ids=["text", "empty", "json-but-not-an-object"],
)
def test_a_push_that_is_not_a_message_still_shows_a_notification(push_page: PushPage, data: str, body: str) -> None:
    push_page.open()
    push_page.register()
    push_page.push(data)

    [shown] = push_page.wait_for_notifications()
    assert (shown["title"], shown["body"]) == ("New notification", body)
    assert shown["data"]["token"] is None
    assert EngagementEvent.objects.count() == 0


# -- clicks and dismissals -----------------------------------------------------------------


def test_click_reports_clicked_and_opens_the_url_in_the_open_window(push_page: PushPage, push_order: Any) -> None:
    push_page.open()
    push_page.register()
    delivery, document = push_order(push_page)
    push_page.wait_for_notifications()
    push_page.spy_on_windows()

    push_page.dispatch("notificationclick", document["tag"])

    event = wait_for_event("clicked", delivery=delivery)
    assert event.action == ""
    # The page this worker controls was navigated to the notification's URL, then focused.
    push_page.page.wait_for_url("**/page/?order=A-7")
    url = push_page.origin + "/page/?order=A-7"
    wait_until(lambda: push_page.window_calls() == [["navigate", url], ["focus", url]], "navigate, then focus")
    assert push_page.notifications() == []  # closed on click
    Notification.objects.get(pk=delivery.notification_id, read_at__isnull=False)  # clicked means read


def test_action_click_reports_the_action_and_opens_its_url(push_page: PushPage, push_order: Any) -> None:
    push_page.open()
    push_page.register()
    delivery, document = push_order(push_page)
    push_page.wait_for_notifications()

    push_page.dispatch("notificationclick", document["tag"], action="track")

    event = wait_for_event("action", delivery=delivery)
    assert event.action == "track"
    push_page.page.wait_for_url("**/page/?track=1")


def test_a_new_window_is_opened_only_for_a_real_click(push_page: PushPage, push_order: Any) -> None:
    # With no window of the site open, the worker calls clients.openWindow(); Chromium
    # allows that only during a real notification click, never for a built event.
    push_page.open()
    push_page.register()
    delivery, document = push_order(push_page)
    push_page.wait_for_notifications()
    push_page.page.goto("about:blank")  # no window of the site is left
    push_page.spy_on_windows()

    push_page.dispatch("notificationclick", document["tag"])

    wait_for_event("clicked", delivery=delivery)
    url = push_page.origin + "/page/?order=A-7"
    wait_until(lambda: push_page.window_calls() == [["openWindow", url]], "the worker to call openWindow")
    assert [page.url for page in push_page.page.context.pages] == ["about:blank"]


def test_close_reports_dismissed(push_page: PushPage, push_order: Any) -> None:
    push_page.open()
    push_page.register()
    delivery, document = push_order(push_page)
    push_page.wait_for_notifications()

    push_page.dispatch("notificationclose", document["tag"])

    wait_for_event("dismissed", delivery=delivery)
    assert list(EngagementEvent.objects.values_list("kind", flat=True).order_by("pk")) == ["delivered", "dismissed"]


def test_a_javascript_url_is_never_opened(push_page: PushPage, user: Any) -> None:
    push_page.open()
    push_page.register()
    notification = Notification.objects.create(recipient=user, type="order_placed", title="Order 1")
    push_page.push(
        json.dumps(
            {
                "id": notification.pk,
                "title": "Order 1",
                "tag": "evil",
                "url": "javascript:document.title='opened'",
                "token": make_event_token(notification),
                "events": "/api/notifications/events/",
            }
        )
    )
    push_page.wait_for_notifications()
    push_page.spy_on_windows()

    push_page.dispatch("notificationclick", "evil")

    wait_for_event("clicked", notification=notification)
    # Without a usable URL the worker only focuses the site's window; it opens nothing.
    page_url = push_page.origin + "/page/"
    wait_until(lambda: push_page.window_calls() == [["focus", page_url]], "the worker to focus the page")
    assert push_page.page.url == page_url
    assert push_page.page.title() == "django_notify browser test page"


# -- subscription renewal --------------------------------------------------------------------


def test_pushsubscriptionchange_renews_the_subscription_in_place(
    push_page: PushPage, login: Any, user: Any, receiver: Any, webpush_settings: Any
) -> None:
    login(user)
    old = subscribe_row(user, receiver)
    renewed = receiver.subscribe("renewed")
    push_page.open()  # the page sets the csrftoken cookie the worker sends back
    push_page.register()

    # The browser's push service renewed the subscription: the worker subscribes again
    # (stubbed: the network edge) and tells the server which endpoint it replaces.
    push_page.worker.evaluate(
        """async ([oldEndpoint, renewed]) => {
            self.registration.pushManager.subscribe = async (options) => ({toJSON: () => renewed, options});
            const event = new ExtendableEvent("pushsubscriptionchange");
            const key = new Uint8Array(65).fill(4).buffer;
            Object.defineProperty(event, "oldSubscription", {value: {endpoint: oldEndpoint, options: {applicationServerKey: key}}});
            Object.defineProperty(event, "newSubscription", {value: null});
            self.dispatchEvent(event);
        }""",
        [old.endpoint, renewed],
    )

    wait_until(
        lambda: PushSubscription.objects.filter(pk=old.pk, endpoint=renewed["endpoint"]).exists(),
        "the old row to take the renewed endpoint",
    )
    assert PushSubscription.objects.filter(user=user).count() == 1
