"""Fixtures of the browser tests: Debian's Chromium driven by Playwright against a live server.

``localhost`` is a secure context, so service workers and the Push API work over
plain http there. Playwright cannot download its own browser here, so the tests
launch ``/usr/bin/chromium`` (the ``chromium`` Debian package) and are skipped,
saying which, when it or the ``playwright`` package is missing.

Playwright's sync API keeps an asyncio loop in the test's thread, which makes
Django refuse ORM calls there as "async"; the browser fixture allows them
(``DJANGO_ALLOW_ASYNC_UNSAFE``) for its own lifetime only, since nothing else
uses that loop.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client, override_settings
from pytest_django.live_server_helper import LiveServer

import django_notify
from django_notify.push import vapid
from tests.browser.support import PushPage
from tests.push.receiver import PushReceiver

CHROMIUM = "/usr/bin/chromium"
STATIC_ROOT = Path(django_notify.__file__).parent / "static"

#: Milliseconds Playwright waits for the page before failing the test.
PLAYWRIGHT_TIMEOUT_MS = 10_000

VAPID_KEY = vapid.generate_private_key()
BASE_CHANNELS = {
    "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
    "email": {"BACKEND": "django_notify.backends.locmem.LocMemBackend"},
}


def _missing() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is missing: apt-get install chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install playwright"
    return None


@pytest.fixture(scope="module")
def chromium(django_db_setup: None) -> Iterator[Any]:
    """One headless Chromium per test module; each test gets a fresh context (profile).

    Module-scoped, not session-scoped, so that Playwright's loop is gone before
    other modules' tests run; the test database is set up before it starts.
    """
    missing = _missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live_server(django_db_setup: None) -> Iterator[LiveServer]:
    """pytest-django's live server, also serving the app's static files at ``/static/``.

    ``tests.settings`` installs no ``staticfiles`` app and sets no ``STATIC_URL``,
    so the package's ``static/`` folder is served as ``STATIC_ROOT``, as a web
    server would serve it after ``collectstatic``.
    """
    with override_settings(STATIC_URL="/static/", STATIC_ROOT=str(STATIC_ROOT)):
        server = LiveServer("localhost")
        yield server
        server.stop()


@pytest.fixture
def browser_settings(settings: Any) -> Any:
    """The test page's URLconf; an empty cache (the events throttle counts in it)."""
    settings.ROOT_URLCONF = "tests.browser.urls"
    cache.clear()
    return settings


@pytest.fixture
def context(chromium: Any, live_server: LiveServer, browser_settings: Any) -> Iterator[Any]:
    """A fresh browser profile with notifications allowed for the live server."""
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(PLAYWRIGHT_TIMEOUT_MS)
    context.grant_permissions(["notifications"], origin=live_server.url)
    yield context
    context.close()


@pytest.fixture
def login(context: Any, live_server: LiveServer) -> Callable[[Any], None]:
    """``login(user)``: give the browser the session cookie of a real login."""

    def log_in(user: Any) -> None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])

    return log_in


@pytest.fixture
def page(context: Any) -> Any:
    """A tab; ``page.errors`` collects its uncaught JavaScript errors."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


@pytest.fixture
def push_page(page: Any, live_server: LiveServer) -> PushPage:
    return PushPage(page, live_server.url)


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    """A push service on 127.0.0.1 that decrypts what it receives (tests/push/receiver.py)."""
    with PushReceiver() as running:
        yield running


@pytest.fixture
def webpush_settings(browser_settings: Any) -> Any:
    """A Web Push channel whose allowed endpoint hosts include the loopback receiver."""
    browser_settings.DJANGO_NOTIFY = {
        "CHANNELS": {
            **BASE_CHANNELS,
            "webpush": {
                "BACKEND": "django_notify.backends.webpush.WebPushBackend",
                "OPTIONS": {
                    "vapid_private_key": vapid.private_key_b64(VAPID_KEY),
                    "vapid_subject": "mailto:ops@example.com",
                    "allowed_endpoint_hosts": ["127.0.0.1"],
                },
            },
        },
        # Deliveries are sent when the test says so (deliver_due()), not by a queue.
        "DELIVERY_MODE": "manual",
    }
    return browser_settings
