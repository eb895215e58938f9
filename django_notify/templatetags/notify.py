"""``{% load notify %}``: the push client script, the unread count and a live badge.

::

    {% load notify %}
    <head>{% notify_client %}</head>
    <a href="/inbox/">Inbox {% notify_badge %}</a>

``{% notify_client %}`` loads ``django_notify/notify.js`` and exposes a configured
client on ``window.djangoNotify``; it keeps every ``{% notify_badge %}`` of the page
up to date by polling ``unread-count/``. ``{% unread_count %}`` is the number alone,
rendered by the server for the first paint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from django_notify.models import Notification

register = template.Library()

#: Seconds between two polls of ``unread-count/`` unless a tag says otherwise.
DEFAULT_POLL_SECONDS = 30

#: The attribute a request caches its unread count in, so several tags cost one query.
_CACHE_ATTRIBUTE = "_django_notify_unread_count"


def _request(context: template.Context) -> HttpRequest | None:
    request = context.get("request")
    return request if isinstance(request, HttpRequest) else None


def _user(context: template.Context) -> Any:
    request = _request(context)
    return getattr(request, "user", None) or context.get("user")


def _positive(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise template.TemplateSyntaxError(f"{name} must be a whole number of 0 or more, not {value!r}.")
    return number


def _poll_seconds(value: Any) -> int:
    seconds = _positive("notify_client poll", value)
    if seconds < 1:
        raise template.TemplateSyntaxError(f"notify_client poll must be at least 1 second, not {value!r}.")
    return seconds


def _reverse(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        raise ImproperlyConfigured(
            f'{{% notify_client %}} cannot find the URL "{name}": include django_notify.urls in your '
            'URLconf, e.g. path("api/notifications/", include("django_notify.urls")).'
        ) from None


@register.simple_tag(takes_context=True)
def unread_count(context: template.Context) -> int:
    """The current user's unread inbox count (0 for an anonymous visitor), as ``unread-count/`` gives it."""
    user = _user(context)
    if user is None or not user.is_authenticated:
        return 0
    request = _request(context)
    cached = getattr(request, _CACHE_ATTRIBUTE, None)
    if isinstance(cached, int):
        return cached
    count: int = Notification.objects.inbox(user.pk).unread().count()
    if request is not None:
        setattr(request, _CACHE_ATTRIBUTE, count)
    return count


@register.simple_tag(takes_context=True)
def notify_badge(
    context: template.Context,
    poll: Any = None,
    max: Any = 99,
    css_class: str = "notify-badge",
) -> SafeString:
    """A ``<span data-notify-badge>`` with the unread count, hidden at 0, kept live by the client.

    ``poll``: seconds between polls (default: the client's; 0: this badge does not
    need polling, as for an anonymous visitor); ``max``: show ``99+`` above it (0: no cap); ``css_class``: the
    ``class`` attribute.
    """
    count = unread_count(context)
    cap = _positive("notify_badge max", max)
    seconds = None if poll is None else _positive("notify_badge poll", poll)
    user = _user(context)
    if user is None or not user.is_authenticated:
        seconds = 0  # unread-count/ would answer 403: do not ask
    return render_to_string(
        "django_notify/badge.html",
        {
            "count": count,
            "shown": f"{cap}+" if cap and count > cap else str(count),
            "poll": seconds,
            "max": cap,
            "css_class": css_class,
        },
    )


@register.simple_tag(takes_context=True)
def notify_client(
    context: template.Context,
    poll: Any = DEFAULT_POLL_SECONDS,
    service_worker_url: str | None = None,
    scope: str = "/",
    nonce: str | None = None,
) -> SafeString:
    """The client script: ``window.djangoNotify`` once ready, badges kept live.

    ``poll``: seconds between polls of the unread count (at least 1);
    ``service_worker_url`` defaults to the URLconf's ``sw.js`` view; ``scope`` to
    ``/``; ``nonce`` (for a Content Security Policy) to the ``csp_nonce`` context
    variable. The JSON config is escaped with ``json_script``.
    """
    request = _request(context)
    worker_url = service_worker_url or _reverse("django_notify:service-worker")
    if settings.CSRF_COOKIE_NAME != "csrftoken" and "?" not in worker_url:
        # The worker reads the CSRF cookie by name when it renews a subscription.
        worker_url += "?" + urlencode({"csrf_cookie": settings.CSRF_COOKIE_NAME})
    config = {
        "baseUrl": _reverse("django_notify:notification-list"),
        "serviceWorkerUrl": worker_url,
        "scope": scope,
        "csrfCookieName": settings.CSRF_COOKIE_NAME,
        "pollInterval": _poll_seconds(poll),
    }
    if request is not None:
        config["csrfToken"] = get_token(request)
    return render_to_string(
        "django_notify/client.html",
        {
            "config": config,
            "module_url": static("django_notify/notify.js"),
            "nonce": nonce if nonce is not None else context.get("csp_nonce"),
        },
    )
