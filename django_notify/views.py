"""The plain Django views of the URLconf: the service worker and the unsubscribe pages.

A service worker's scope cannot be wider than its script's folder unless the
response allows it; :func:`service_worker` sends ``Service-Worker-Allowed: /`` so
the worker registered from ``<prefix>/sw.js`` can take scope ``/``.
:func:`unsubscribe` is the target of the ``List-Unsubscribe`` header of emails
(:mod:`django_notify.unsubscribe`). The REST views are in :mod:`django_notify.api`.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseNotModified
from django.shortcuts import render
from django.utils import translation
from django.utils.http import parse_etags, quote_etag
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from django_notify import languages
from django_notify import unsubscribe as unsubscribe_links
from django_notify.exceptions import BadUnsubscribeToken
from django_notify.registry import registry

#: Where the script is found, relative to a static files directory.
SERVICE_WORKER_PATH = "django_notify/sw.js"

_PACKAGED = Path(__file__).resolve().parent / "static" / SERVICE_WORKER_PATH


class ServiceWorkerScript:
    """The script's bytes and their ``ETag``, read once per process."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.etag = quote_etag(hashlib.sha256(content).hexdigest()[:32])


def _find_script() -> Path:
    # Through the static files finders when the app is installed, so a project
    # may override the worker with its own django_notify/sw.js in STATICFILES_DIRS.
    if apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles import finders

        found = finders.find(SERVICE_WORKER_PATH)
        if isinstance(found, str):
            return Path(found)
    return _PACKAGED


@functools.lru_cache(maxsize=1)
def service_worker_script() -> ServiceWorkerScript:
    """The service worker as served; cached for the life of the process."""
    return ServiceWorkerScript(_find_script().read_bytes())


@receiver(setting_changed)
def _forget_script(*, setting: str, **kwargs: Any) -> None:
    # Tests that change where static files are found get the script from there.
    if setting in {"INSTALLED_APPS", "STATICFILES_DIRS", "STATICFILES_FINDERS"}:
        service_worker_script.cache_clear()


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """``GET sw.js``: the service worker, allowed to control scope ``/``.

    ``Cache-Control: no-cache`` makes browsers check for a new worker on every
    update check; the ``ETag`` turns an unchanged check into a ``304``.
    """
    script = service_worker_script()
    headers = {
        "Service-Worker-Allowed": "/",
        "Cache-Control": "no-cache",
        "ETag": script.etag,
        "X-Content-Type-Options": "nosniff",
    }
    # If-None-Match compares weakly (RFC 9110 section 13.1.2).
    tags = [tag.removeprefix("W/") for tag in parse_etags(request.headers.get("If-None-Match", ""))]
    if script.etag in tags or tags == ["*"]:
        return HttpResponseNotModified(headers=headers)
    return HttpResponse(script.content, content_type="text/javascript; charset=utf-8", headers=headers)


# -- unsubscribe ---------------------------------------------------------------------

#: Sent with every unsubscribe response: the token in the URL is a bearer secret, so
#: no cache, search engine or linked site may keep it.
UNSUBSCRIBE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
}


def _unsubscribe_context(scope: unsubscribe_links.UnsubscribeScope) -> dict[str, Any]:
    """What the pages show: the categories and types of the link, and what is still sent."""
    return {
        "channel": scope.channel,
        "categories": list(scope.categories),
        "types": [registry.get(key) if key in registry else key for key in scope.types],
        "still_sent": unsubscribe_links.still_sent(scope),
    }


@csrf_exempt
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """``unsubscribe/<token>/``: the ``List-Unsubscribe`` target of emails (RFC 8058).

    ``GET`` shows what the link turns off and a button that ``POST``s here; it
    never changes anything, since mail scanners fetch links. ``POST`` with
    ``List-Unsubscribe=One-Click`` (from the mail client) or ``action=unsubscribe``
    (the button) turns it off; ``action=resubscribe`` undoes that. A bad or
    expired token gets a 400 page.

    CSRF-exempt and open to anonymous users: mail clients post without cookies,
    and the signed token, which names the user and scope and expires, is the
    authentication. A forged request can do no more than the token allows.
    """
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"], headers=UNSUBSCRIBE_HEADERS)
    try:
        scope = unsubscribe_links.read_token(token)
        user = unsubscribe_links.recipient(scope)
    except BadUnsubscribeToken as error:
        return _unsubscribe_page(request, "invalid", None, status=400, expired=error.expired)
    # The page speaks the language the email was written in.
    with translation.override(languages.language_of(user)):
        return _unsubscribe_action(request, scope)


def _unsubscribe_action(request: HttpRequest, scope: unsubscribe_links.UnsubscribeScope) -> HttpResponse:
    try:
        if request.method == "GET":
            return _unsubscribe_page(request, "confirm", scope)
        if request.POST.get("List-Unsubscribe") == "One-Click":
            unsubscribe_links.apply(scope, method="one-click")
            # The mail client posts without showing the answer: a short plain one will do.
            return HttpResponse(
                gettext("You are unsubscribed."), content_type="text/plain; charset=utf-8", headers=UNSUBSCRIBE_HEADERS
            )
        action = request.POST.get("action")
        if action == "unsubscribe":
            changed = unsubscribe_links.apply(scope, method="form")
            return _unsubscribe_page(request, "done", scope, already=not changed)
        if action == "resubscribe":
            unsubscribe_links.resubscribe(scope)
            return _unsubscribe_page(request, "confirm", scope, resubscribed=True)
        return _unsubscribe_page(request, "confirm", scope, status=400)
    except BadUnsubscribeToken as error:
        return _unsubscribe_page(request, "invalid", None, status=400, expired=error.expired)


def _unsubscribe_page(
    request: HttpRequest,
    name: str,
    scope: unsubscribe_links.UnsubscribeScope | None,
    *,
    status: int = 200,
    **context: Any,
) -> HttpResponse:
    if scope is not None:
        context.update(_unsubscribe_context(scope))
    response = render(request, f"django_notify/unsubscribe/{name}.html", context, status=status)
    for header, value in UNSUBSCRIBE_HEADERS.items():
        response[header] = value
    return response


__all__ = [
    "SERVICE_WORKER_PATH",
    "UNSUBSCRIBE_HEADERS",
    "ServiceWorkerScript",
    "service_worker",
    "service_worker_script",
    "unsubscribe",
]
