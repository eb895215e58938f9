"""URLconf of the REST API. Include it under any prefix::

    path("api/notifications/", include("django_notify.urls"))

Trailing slashes are optional.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, re_path
from rest_framework.routers import SimpleRouter

from django_notify.api.views import NotificationTypeViewSet, NotificationViewSet

app_name = "django_notify"


class OptionalSlashRouter(SimpleRouter):
    """A ``SimpleRouter`` whose routes match with or without a trailing slash."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

    def get_urls(self) -> list[Any]:
        # The root list route of an empty prefix would become "^?$"; the include's
        # own prefix already decides its slash.
        urls = []
        for url in super().get_urls():
            if isinstance(url, URLPattern) and str(url.pattern) == "^?$":
                url = re_path("^$", url.callback, name=url.name)
            urls.append(url)
        return urls


router = OptionalSlashRouter()
router.register("types", NotificationTypeViewSet, basename="type")
router.register("", NotificationViewSet, basename="notification")

urlpatterns = router.urls
