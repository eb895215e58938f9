"""The service worker view: ``sw.js`` served from the URLconf so it may control the whole site.

A service worker's scope cannot be wider than its script's folder unless the
response allows it; this view sends ``Service-Worker-Allowed: /`` so the worker
registered from ``<prefix>/sw.js`` can take scope ``/``. The REST views are in
:mod:`django_notify.api`.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags, quote_etag
from django.views.decorators.http import require_safe

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


__all__ = ["SERVICE_WORKER_PATH", "ServiceWorkerScript", "service_worker", "service_worker_script"]
