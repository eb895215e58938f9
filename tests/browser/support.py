"""Helpers of the browser tests: the test page, its service worker, pushes through DevTools."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

#: How long a test waits for the browser or the server, in seconds.
WAIT_SECONDS = 10.0


def wait_until(check: Callable[[], Any], message: str, timeout: float = WAIT_SECONDS, page: Any = None) -> Any:
    """Call ``check`` until it returns something truthy and return that; fail saying ``message``.

    Give ``page`` when ``check`` reads what Playwright's event handlers collect:
    they run only while a Playwright call waits, so the pauses wait on the page.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        if page is None:
            time.sleep(0.05)
        else:
            page.wait_for_timeout(50)


_FAKE_PUSH_MANAGER = """
(() => {
  const json = SUBSCRIPTION_JSON;
  let current = null;
  PushManager.prototype.subscribe = async function (options) {
    window.fakePushSubscribeCalls = (window.fakePushSubscribeCalls || 0) + 1;
    current = {
      endpoint: json.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: options.userVisibleOnly, applicationServerKey: options.applicationServerKey.buffer },
      toJSON: () => json,
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


def fake_push_manager_script(subscription: dict[str, Any]) -> str:
    """A page script replacing ``PushManager``'s subscribe with one returning ``subscription``.

    Headless Chromium cannot reach a real push service: this is the network edge.
    The returned object behaves like a ``PushSubscription`` (``endpoint``,
    ``options.applicationServerKey``, ``toJSON()``, ``unsubscribe()``); its endpoint
    is a push service the test runs on 127.0.0.1. ``window.fakePushSubscribeCalls``
    counts the calls.
    """
    return _FAKE_PUSH_MANAGER.replace("SUBSCRIPTION_JSON", json.dumps(subscription))


_SHOW_MISSING_AGAIN = """async () => {
    const listed = await self.registration.getNotifications();
    for (const [title, options] of self.shownCalls) {
        if (!listed.some((n) => n.title === title && n.tag === (options.tag || ""))) {
            await self.realShowNotification.call(self.registration, title, options);
        }
    }
}"""


class PushPage:
    """The test page (``/page/``) in a browser context, with DevTools access to its service worker."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.registrations: dict[str, str] = {}
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("ServiceWorker.workerRegistrationUpdated", self._registrations_updated)
        self.cdp.send("ServiceWorker.enable")

    def _registrations_updated(self, event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            self.registrations[registration["scopeURL"]] = registration["registrationId"]

    def open(self, path: str = "/page/") -> PushPage:
        """Load a page of the site and wait until ``{% notify_client %}`` made ``window.djangoNotify``."""
        self.page.goto(path)
        self.page.wait_for_function("window.djangoNotify !== undefined")
        return self

    def register(self) -> dict[str, Any]:
        """Register the service worker through the client; wait until it controls the page."""
        registration = self.page.evaluate(
            "djangoNotify.register().then((r) => ({scope: r.scope, script: r.active.scriptURL}))"
        )
        self.page.wait_for_function("navigator.serviceWorker.controller !== null")
        wait_until(lambda: self.origin + "/" in self.registrations, "DevTools to report the registration")
        self.spy_on_notifications()
        return registration

    @property
    def worker(self) -> Any:
        """The service worker's Playwright handle, to evaluate code inside it."""
        workers = self.page.context.service_workers
        return workers[0] if workers else self.page.context.wait_for_event("serviceworker")

    def push(self, data: str) -> None:
        """Deliver a push message to the worker as the browser's push service would (DevTools)."""
        scope = self.origin + "/"
        registration_id = wait_until(lambda: self.registrations.get(scope), "DevTools to report the registration")
        self.cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": self.origin, "registrationId": registration_id, "data": data},
        )

    def notifications(self) -> list[dict[str, Any]]:
        """What ``registration.getNotifications()`` holds now."""
        notifications: list[dict[str, Any]] = self.page.evaluate(
            """navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((all) => all.map((n) => ({
                title: n.title, body: n.body, tag: n.tag, icon: n.icon, badge: n.badge, image: n.image,
                requireInteraction: n.requireInteraction, silent: n.silent, timestamp: n.timestamp,
                actions: n.actions.map((a) => ({action: a.action, title: a.title})), data: n.data,
            })))"""
        )
        return notifications

    def spy_on_notifications(self) -> None:
        """Record the worker's ``showNotification()`` calls (they still reach the browser)."""
        self.worker.evaluate(
            """() => {
                self.shownCalls = [];
                self.realShowNotification = ServiceWorkerRegistration.prototype.showNotification;
                ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
                    self.shownCalls.push([title, options || {}]);
                    return self.realShowNotification.call(this, title, options);
                };
            }"""
        )

    def wait_for_notifications(self, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the worker showed ``count`` notifications; return what ``getNotifications()`` lists.

        Headless Chromium now and then (a few pushes in a hundred) drops a notification
        whose ``showNotification()`` has resolved: ``getNotifications()`` never lists
        it. What the worker asked for is known from the spy, so a missing one is
        shown again from the recorded title and options, outside the push handler
        (nothing is reported twice), and the test goes on with the real object.
        """
        wait_until(
            lambda: self.worker.evaluate("self.shownCalls.length") >= count,
            f"the worker to show {count} notification(s)",
        )
        deadline = time.monotonic() + WAIT_SECONDS
        shown_again_at = time.monotonic()
        while True:
            shown = self.notifications()
            if len(shown) >= count:
                return shown
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {WAIT_SECONDS} s waiting for {count} notification(s) to be listed")
            if time.monotonic() - shown_again_at > 1.0:
                self.worker.evaluate(_SHOW_MISSING_AGAIN)
                shown_again_at = time.monotonic()
            time.sleep(0.05)

    def spy_on_windows(self) -> None:
        """Record the worker's calls to ``clients.openWindow()`` and ``WindowClient`` ``navigate()``/``focus()``.

        The calls still reach the browser: this only lets a test see what the worker
        asked for where Chromium refuses it (opening or focusing a window is allowed
        only during a real click).
        """
        self.worker.evaluate(
            """() => {
                self.windowCalls = [];
                const record = (name, real) => function (...args) {
                    self.windowCalls.push([name, name === "focus" ? this.url : args[0]]);
                    return real.apply(this, args);
                };
                self.clients.openWindow = record("openWindow", Clients.prototype.openWindow).bind(self.clients);
                WindowClient.prototype.navigate = record("navigate", WindowClient.prototype.navigate);
                WindowClient.prototype.focus = record("focus", WindowClient.prototype.focus);
            }"""
        )

    def window_calls(self) -> list[list[str]]:
        calls: list[list[str]] = self.worker.evaluate("self.windowCalls")
        return calls

    def dispatch(self, event: str, tag: str, action: str = "") -> None:
        """Fire ``notificationclick`` or ``notificationclose`` in the worker for the notification ``tag``.

        A test cannot click a headless notification; the event is built in the
        worker with the real notification object, as the browser would build it.
        """
        self.worker.evaluate(
            """async ([name, tag, action]) => {
                const [notification] = await self.registration.getNotifications({tag});
                if (!notification) throw new Error(`no notification with tag ${tag}`);
                self.dispatchEvent(new NotificationEvent(name, {notification, action}));
            }""",
            [event, tag, action],
        )


__all__ = ["WAIT_SECONDS", "PushPage", "fake_push_manager_script", "wait_until"]
