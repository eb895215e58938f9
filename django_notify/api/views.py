"""Default viewsets: thin compositions of :mod:`django_notify.api.mixins`."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from django_notify.api.mixins import (
    ArchiveMixin,
    CreateNotificationMixin,
    MarkAllReadMixin,
    NotificationQuerysetMixin,
    ReadStateMixin,
    UnreadCountMixin,
)
from django_notify.api.pagination import InboxCursorPagination
from django_notify.api.parsers import SafeJSONParser
from django_notify.api.preferences import digest_channel, locked_channels
from django_notify.api.serializers import (
    NotificationSerializer,
    NotificationTypeSerializer,
)
from django_notify.conf import notify_settings
from django_notify.registry import registry


class NotificationViewSet(
    NotificationQuerysetMixin,
    CreateNotificationMixin,
    ReadStateMixin,
    ArchiveMixin,
    MarkAllReadMixin,
    UnreadCountMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """The caller's inbox: list, read state, archive, delete; staff may create."""

    serializer_class = NotificationSerializer
    pagination_class = InboxCursorPagination
    permission_classes = [IsAuthenticated]
    parser_classes = [SafeJSONParser]
    lookup_value_regex = "[0-9]{1,18}"


class NotificationTypeViewSet(viewsets.ViewSet):
    """The registered types, categories and channels, for a preference-center UI."""

    permission_classes = [IsAuthenticated]
    serializer_class = NotificationTypeSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        channels = notify_settings.CHANNELS
        types = list(registry)
        rows = NotificationTypeSerializer(types, many=True).data
        return Response(
            {
                "types": [
                    {
                        **row,
                        "locked_channels": locked_channels(notification_type),
                        "forbidden_channels": list(notification_type.forbidden_channels),
                    }
                    for notification_type, row in zip(types, rows, strict=True)
                ],
                "categories": registry.categories(),
                "channels": list(channels),
                "digest_channel": digest_channel(),
            }
        )


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under the API's prefix: a JSON 404, as from the API itself."""
    return JsonResponse({"detail": "Not found."}, status=404)
