"""URLconf of the REST API, the service worker and the unsubscribe pages. Include it under any prefix::

    path("api/notifications/", include("django_notify.urls"))

Trailing slashes are optional.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path, re_path
from rest_framework.routers import SimpleRouter

from django_notify import views
from django_notify.api.engagement import EventViewSet, HealthViewSet, StatsViewSet
from django_notify.api.preferences import PreferencesViewSet
from django_notify.api.push import PushSubscriptionViewSet, PushViewSet
from django_notify.api.views import NotificationTypeViewSet, NotificationViewSet, not_found

app_name = "django_notify"


class OptionalSlashRouter(SimpleRouter):
    """A ``SimpleRouter`` whose routes also match without the trailing slash.

    ``reverse()`` gives the canonical form, with the slash; each route gets an
    unnamed twin without it, so clients (and POSTs, which cannot be redirected by
    ``APPEND_SLASH``) may use either.
    """

    def get_urls(self) -> list[Any]:
        urls: list[Any] = []
        for url in super().get_urls():
            urls.append(url)
            regex = str(url.pattern)
            if isinstance(url, URLPattern) and regex.endswith("/$"):
                urls.append(re_path(regex[:-2] + "$", url.callback))
        return urls


router = OptionalSlashRouter()
router.register("types", NotificationTypeViewSet, basename="type")
router.register("events", EventViewSet, basename="event")
router.register("stats", StatsViewSet, basename="stats")
router.register("health", HealthViewSet, basename="health")
router.register("settings", PreferencesViewSet, basename="settings")
router.register("push/subscriptions", PushSubscriptionViewSet, basename="push-subscription")
router.register("push", PushViewSet, basename="push")
router.register("", NotificationViewSet, basename="notification")

urlpatterns = [
    # The service worker, served from inside the URLconf with Service-Worker-Allowed: /.
    path("sw.js", views.service_worker, name="service-worker"),
    # The List-Unsubscribe target of emails; before the router, whose detail routes would take it.
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("unsubscribe/<str:token>", views.unsubscribe),
    *router.urls,
    re_path(r"^", not_found),
]
