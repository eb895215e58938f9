"""The JS client (``notify.js``) in a real Chromium: support, permission, subscribe, the live badge."""

from __future__ import annotations

from typing import Any

import pytest

from django_notify import notify
from django_notify.models import Notification, PushSubscription
from tests.browser.support import PushPage, fake_push_manager_script, wait_until

pytestmark = pytest.mark.browser

EVENTS = ["unread-count", "subscribed", "unsubscribed", "permission-denied", "error"]


def record_events(push_page: PushPage) -> None:
    """Collect the client's events in ``window.seen`` as ``[name, detail]`` (errors as message and status)."""
    push_page.page.evaluate(
        """(names) => {
            window.seen = [];
            for (const name of names) {
                djangoNotify.on(name, (detail) => window.seen.push(
                    [name, detail instanceof Error ? {message: detail.message, status: detail.status ?? null} : detail]
                ));
            }
        }""",
        EVENTS,
    )


def seen(push_page: PushPage) -> list[list[Any]]:
    events: list[list[Any]] = push_page.page.evaluate("window.seen")
    return events


def rejection(push_page: PushPage, expression: str) -> str:
    """The message of the Error ``expression`` (a promise) rejects with."""
    message: str = push_page.page.evaluate(
        f"({expression}).then(() => 'resolved', (error) => error instanceof Error ? error.message : 'not an Error')"
    )
    return message


def add_unread(user: Any, count: int = 1) -> None:
    for number in range(count):
        notify("order_placed", user, context={"order_number": f"B-{number}", "total": "9.00"}, channels=["in_app"])


# -- support and permission ---------------------------------------------------------------


def test_support_and_permission_state(push_page: PushPage, context: Any) -> None:
    push_page.open()
    assert push_page.page.evaluate("[djangoNotify.isSupported(), djangoNotify.permission()]") == [True, "granted"]

    context.clear_permissions()
    assert push_page.page.evaluate("djangoNotify.permission()") == "default"

    # A browser without the Push API (as Safari before 16.4).
    push_page.page.evaluate("delete window.PushManager")
    record_events(push_page)
    assert push_page.page.evaluate("[djangoNotify.isSupported(), djangoNotify.permission()]") == [False, "unsupported"]
    message = rejection(push_page, "djangoNotify.subscribe()")
    assert message.startswith("Web Push is not supported here: it needs service workers, the Push API")
    assert seen(push_page) == [["error", {"message": message, "status": None}]]
    assert push_page.page.errors == []


def test_subscribe_without_permission_says_so(push_page: PushPage, context: Any, login: Any, user: Any) -> None:
    login(user)
    context.clear_permissions()
    push_page.open()
    record_events(push_page)

    message = rejection(push_page, "djangoNotify.subscribe()")

    # Headless Chromium answers the prompt itself, with "denied" or by dismissing it.
    assert message in {
        "Notifications are blocked for this site: allow them in the browser's site settings, then try again.",
        "Notification permission was not granted: the prompt was dismissed.",
    }
    assert seen(push_page) == [["permission-denied", {}], ["error", {"message": message, "status": None}]]
    assert not PushSubscription.objects.exists()


# -- subscribe and unsubscribe --------------------------------------------------------------


def test_subscribe_stores_the_subscription_and_unsubscribe_deletes_it(
    push_page: PushPage, login: Any, user: Any, receiver: Any, webpush_settings: Any
) -> None:
    login(user)
    # Headless Chromium cannot reach a real push service: PushManager.subscribe returns
    # a subscription of the loopback push service instead (the network edge).
    subscription = receiver.subscribe("browser")
    push_page.page.add_init_script(fake_push_manager_script(subscription))
    push_page.open()
    record_events(push_page)
    assert push_page.page.evaluate("djangoNotify.isSubscribed()") is False

    answer = push_page.page.evaluate("djangoNotify.subscribe({preferences: {categories: {orders: false}}})")

    row = PushSubscription.objects.get(user=user)
    assert answer == {"id": row.pk}
    assert (row.endpoint, row.p256dh, row.auth) == (
        subscription["endpoint"],
        subscription["keys"]["p256dh"],
        subscription["keys"]["auth"],
    )
    assert row.preferences == {"categories": {"orders": False}, "types": {}}
    assert "HeadlessChrome" in row.user_agent
    assert push_page.page.evaluate("djangoNotify.isSubscribed()") is True

    # Again: the browser's subscription is reused and the server row updated, not duplicated.
    assert push_page.page.evaluate("djangoNotify.subscribe()") == {"id": row.pk}
    assert push_page.page.evaluate("window.fakePushSubscribeCalls") == 1
    assert PushSubscription.objects.count() == 1

    assert push_page.page.evaluate("djangoNotify.unsubscribe()") is True
    assert not PushSubscription.objects.exists()
    assert push_page.page.evaluate("djangoNotify.isSubscribed()") is False
    assert push_page.page.evaluate("djangoNotify.unsubscribe()") is False
    assert seen(push_page) == [["subscribed", {"id": row.pk}], ["subscribed", {"id": row.pk}], ["unsubscribed", {}]]

    # A row the server dropped already (its push service answered 410) is no error.
    push_page.page.evaluate("djangoNotify.subscribe()")
    PushSubscription.objects.all().delete()
    assert push_page.page.evaluate("djangoNotify.unsubscribe()") is True
    assert [name for name, _detail in seen(push_page)][-2:] == ["subscribed", "unsubscribed"]
    assert push_page.page.errors == []


def test_subscribe_reports_the_servers_refusal(
    push_page: PushPage, login: Any, user: Any, receiver: Any, webpush_settings: Any
) -> None:
    login(user)
    subscription = {**receiver.subscribe(), "endpoint": "https://push.example.net/send/abc"}
    push_page.page.add_init_script(fake_push_manager_script(subscription))
    push_page.open()

    message = rejection(push_page, "djangoNotify.subscribe()")

    assert message.startswith(
        "POST push/subscribe/ failed with 400: subscription.endpoint: "
        "The push endpoint's host push.example.net is not an allowed push service"
    )
    assert "/send/abc" not in message
    assert not PushSubscription.objects.exists()


# -- the unread badge ---------------------------------------------------------------------


def badge(push_page: PushPage) -> dict[str, Any]:
    state: dict[str, Any] = push_page.page.eval_on_selector(
        "[data-notify-badge]", "(b) => ({text: b.textContent, count: b.dataset.count, hidden: b.hidden})"
    )
    return state


def watch_unread_count(push_page: PushPage) -> list[dict[str, Any]]:
    """Every answer of ``unread-count/``: status, the request's If-None-Match, the ETag."""
    answers: list[dict[str, Any]] = []

    def on_response(response: Any) -> None:
        if "/unread-count/" in response.url:
            answers.append(
                {
                    "status": response.status,
                    "if_none_match": response.request.headers.get("if-none-match"),
                    "etag": response.headers.get("etag"),
                }
            )

    push_page.page.on("response", on_response)
    return answers


def test_the_badge_follows_the_unread_count_with_etags(push_page: PushPage, login: Any, user: Any) -> None:
    login(user)
    add_unread(user)
    answers = watch_unread_count(push_page)
    push_page.open()

    # First paint: rendered by the server.
    assert push_page.page.text_content("#server-count") == "1"
    assert badge(push_page) == {"text": "1", "count": "1", "hidden": False}

    # Polls: a 200 with an ETag, then 304s for the same count, asked with If-None-Match.
    wait_until(lambda: any(a["status"] == 304 for a in answers), "a 304 answer", page=push_page.page)
    first, second = answers[:2]
    assert (first["status"], first["if_none_match"]) == (200, None)
    assert (second["status"], second["if_none_match"]) == (304, first["etag"])
    assert badge(push_page) == {"text": "1", "count": "1", "hidden": False}

    add_unread(user)
    wait_until(lambda: badge(push_page)["text"] == "2", "the badge to show 2")
    assert answers[-1]["status"] == 200 and answers[-1]["if_none_match"] == first["etag"]

    add_unread(user, 8)
    wait_until(lambda: badge(push_page) == {"text": "9+", "count": "10", "hidden": False}, "the badge to show 9+")

    Notification.objects.filter(recipient=user).mark_read()
    wait_until(lambda: badge(push_page) == {"text": "0", "count": "0", "hidden": True}, "the badge to hide at 0")
    assert push_page.page.errors == []


def test_polling_stops_when_the_session_ends(push_page: PushPage, context: Any, login: Any, user: Any) -> None:
    login(user)
    answers = watch_unread_count(push_page)
    push_page.open()
    record_events(push_page)
    wait_until(lambda: answers, "the first poll", page=push_page.page)

    context.clear_cookies()  # logged out

    wait_until(lambda: push_page.page.evaluate("!djangoNotify.polling"), "polling to stop")
    assert answers[-1]["status"] == 403
    assert seen(push_page) == [["error", {"message": "GET unread-count/ failed with 403.", "status": 403}]]
    asked = len(answers)
    push_page.page.wait_for_timeout(2500)  # more than two intervals
    assert len(answers) == asked


def test_polling_slows_down_in_a_hidden_tab(push_page: PushPage, login: Any, user: Any) -> None:
    login(user)
    answers = watch_unread_count(push_page)
    push_page.open()
    wait_until(lambda: len(answers) >= 2, "two polls", page=push_page.page)

    # The browser hides the tab (the page cannot be hidden for real in headless mode).
    set_visibility = """(state) => {
        Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    push_page.page.evaluate(set_visibility, "hidden")
    push_page.page.wait_for_timeout(1500)  # the poll already scheduled at the visible pace may still come
    asked = len(answers)
    push_page.page.wait_for_timeout(2000)  # at 4x the 1 s interval, none comes now
    assert len(answers) == asked

    push_page.page.evaluate(set_visibility, "visible")
    wait_until(lambda: len(answers) > asked, "a poll as soon as the tab shows", timeout=1.0, page=push_page.page)
