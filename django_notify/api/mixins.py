"""DRF mixins for notification endpoints; compose them into your own viewsets.

Every mixin works on :meth:`NotificationQuerysetMixin.get_queryset`, which holds
only the caller's own notifications, so another user's id is a 404 everywhere.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, cast

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.http import parse_etags, quote_etag
from django.utils.module_loading import import_string
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, UserRateThrottle

from django_notify.api.serializers import (
    InboxFilterSerializer,
    MarkAllReadSerializer,
    NotificationCreateSerializer,
    NotifyResultSerializer,
    UnreadCountSerializer,
)
from django_notify.conf import notify_settings
from django_notify.exceptions import NotifyError
from django_notify.models import Notification, NotificationQuerySet
from django_notify.models.notification import visible_q
from django_notify.service import notify
from django_notify.signals import notification_read

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

    _Base = GenericAPIView[Notification]
else:
    _Base = object


class NotificationQuerysetMixin(_Base):
    """The caller's notifications that are in the inbox now; list filters from the query string.

    ``?unread=true|false``, ``?archived=true|false`` (default false),
    ``?category=a,b`` and ``?type=x`` (comma-separated or repeated).
    """

    def get_queryset(self) -> NotificationQuerySet:
        queryset: NotificationQuerySet = Notification.objects.filter(visible_q(), recipient=self.request.user.pk)
        return queryset

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        if getattr(self, "action", None) != "list":
            return queryset
        params = self.request.query_params
        raw: dict[str, Any] = {key: params.get(key) for key in ("unread", "archived") if key in params}
        for key in ("category", "type"):
            values = [part for value in params.getlist(key) for part in value.split(",") if part]
            if values:
                raw[key] = values
        filters = InboxFilterSerializer(data=raw)
        filters.is_valid(raise_exception=True)
        chosen = filters.validated_data
        conditions: dict[str, Any] = {"archived_at__isnull": not chosen["archived"]}
        if chosen["unread"] is not None:
            conditions["read_at__isnull"] = chosen["unread"]
        if chosen.get("category"):
            conditions["category__in"] = chosen["category"]
        if chosen.get("type"):
            conditions["type__in"] = chosen["type"]
        filtered: QuerySet[Any] = queryset.filter(**conditions)
        return filtered


class ReadStateMixin(_Base):
    """``POST <id>/read/`` and ``POST <id>/unread/``."""

    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str | None = None) -> Response:
        notification = self.get_object()
        self.perform_mark_read(notification)
        return Response(self.get_serializer(notification).data)

    @action(detail=True, methods=["post"])
    def unread(self, request: Request, pk: str | None = None) -> Response:
        notification = self.get_object()
        self.perform_mark_unread(notification)
        return Response(self.get_serializer(notification).data)

    def perform_mark_read(self, notification: Notification) -> None:
        notification.mark_read(user=self.request.user)

    def perform_mark_unread(self, notification: Notification) -> None:
        if notification.read_at is not None:
            type(notification)._default_manager.filter(pk=notification.pk).update(read_at=None)
            notification.read_at = None


class ArchiveMixin(_Base):
    """``POST <id>/archive/`` and ``POST <id>/unarchive/``: hide from or return to the inbox."""

    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        notification = self.get_object()
        if notification.archived_at is None:
            notification.archived_at = timezone.now()
            notification.save(update_fields=["archived_at"])
        return Response(self.get_serializer(notification).data)

    @action(detail=True, methods=["post"])
    def unarchive(self, request: Request, pk: str | None = None) -> Response:
        notification = self.get_object()
        if notification.archived_at is not None:
            notification.archived_at = None
            notification.save(update_fields=["archived_at"])
        return Response(self.get_serializer(notification).data)


class MarkAllReadMixin(_Base):
    """``POST mark-all-read/``: the inbox's unread rows (not archived ones), optionally
    narrowed by ``category``, ``type`` or ``before``."""

    @action(
        detail=False,
        methods=["post"],
        url_path="mark-all-read",
        serializer_class=MarkAllReadSerializer,
    )
    def mark_all_read(self, request: Request) -> Response:
        body = MarkAllReadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # The inbox only, as the unread count: archived rows keep their state.
        queryset = self.get_queryset().filter(archived_at__isnull=True, read_at__isnull=True)
        for name in ("category", "type"):
            if name in body.validated_data:
                queryset = queryset.filter(**{name: body.validated_data[name]})
        if "before" in body.validated_data:
            queryset = queryset.filter(visible_at__lte=body.validated_data["before"])
        return Response({"updated": self.perform_mark_all_read(queryset)})

    def perform_mark_all_read(self, queryset: QuerySet[Notification]) -> int:
        if not notification_read.has_listeners(Notification):
            changed: int = cast(NotificationQuerySet, queryset).mark_read()
            return changed
        ids = list(queryset.values_list("pk", flat=True))
        changed = Notification.objects.filter(pk__in=ids).mark_read()
        notification_read.send(
            sender=Notification,
            user=self.request.user,
            notifications=Notification.objects.filter(pk__in=ids),
        )
        return changed


class UnreadCountMixin(_Base):
    """``GET unread-count/``: ``{"count": n}`` with an ``ETag``; ``If-None-Match`` gives 304.

    The count reads only the unread index (no table rows), so it stays cheap to
    poll even for a user with thousands of unread notifications.
    """

    @action(
        detail=False,
        methods=["get"],
        url_path="unread-count",
        serializer_class=UnreadCountSerializer,
    )
    def unread_count(self, request: Request) -> Response:
        count = self.get_queryset().filter(archived_at__isnull=True, read_at__isnull=True).count()
        digest = hashlib.blake2s(f"{request.user.pk}:{count}".encode(), digest_size=8).hexdigest()
        etag = quote_etag(digest)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and (if_none_match.strip() == "*" or etag in _strong(parse_etags(if_none_match))):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response({"count": count}, headers=headers)


def _strong(etags: list[str]) -> list[str]:
    # If-None-Match uses weak comparison (RFC 9110 section 13.1.2).
    return [tag.removeprefix("W/") for tag in etags]


class CreateThrottle(UserRateThrottle):
    """Rate of ``POST /`` per user, from ``DJANGO_NOTIFY["CREATE_THROTTLE_RATE"]``."""

    scope = "django_notify_create"

    def get_rate(self) -> str | None:
        return notify_settings.CREATE_THROTTLE_RATE


class CreateNotificationMixin(_Base):
    """``POST /``: notify other users. Permission and throttle come from settings."""

    def get_permissions(self) -> list[BasePermission]:
        if getattr(self, "action", None) == "create":
            return [import_string(path)() for path in notify_settings.CREATE_PERMISSION_CLASSES]
        return list(super().get_permissions())  # type: ignore[arg-type]

    def get_throttles(self) -> list[BaseThrottle]:
        if getattr(self, "action", None) == "create" and notify_settings.CREATE_THROTTLE_RATE:
            return [CreateThrottle()]
        return list(super().get_throttles())

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = NotificationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        arguments = dict(body.validated_data)
        actor = request.user if request.user.is_authenticated else None
        try:
            result = notify(arguments.pop("type"), arguments.pop("recipients"), actor=actor, **arguments)
        except NotifyError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from None
        data = NotifyResultSerializer(
            {
                "created": result.created,
                "existing": result.existing,
                "deliveries": result.deliveries,
            }
        ).data
        # Nothing new (every recipient already had this idempotency key): 200, not 201.
        return Response(data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


__all__ = [
    "ArchiveMixin",
    "CreateNotificationMixin",
    "CreateThrottle",
    "IsAuthenticated",
    "MarkAllReadMixin",
    "NotificationQuerysetMixin",
    "ReadStateMixin",
    "UnreadCountMixin",
]
