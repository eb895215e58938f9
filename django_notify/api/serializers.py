"""Serializers of the REST API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from django_notify.conf import notify_settings
from django_notify.exceptions import UnknownChannel, UnknownNotificationType
from django_notify.models import Notification
from django_notify.registry import (
    CATEGORY_MAX_LENGTH,
    KEY_MAX_LENGTH,
    RESERVED_CONTEXT,
    URL_MAX_LENGTH,
    registry,
)


class ReferenceSerializer(serializers.Serializer[Any]):
    """An actor or target as stored on the notification (never loaded)."""

    type = serializers.CharField(allow_null=True, help_text="app_label.model, or null for a plain text actor.")
    id = serializers.CharField(allow_null=True)
    display = serializers.CharField()


class NotificationSerializer(serializers.Serializer[Notification]):
    """A notification as the inbox shows it. Read-only: state changes go through actions."""

    id = serializers.IntegerField(read_only=True)
    type = serializers.CharField(read_only=True)
    category = serializers.CharField(read_only=True)
    title = serializers.CharField(read_only=True)
    body = serializers.CharField(read_only=True)
    url = serializers.CharField(read_only=True)
    # DRF moves declared fields off the class, so Serializer.data stays a property.
    data = serializers.JSONField(read_only=True)  # type: ignore[assignment]
    actor = ReferenceSerializer(read_only=True, allow_null=True)
    target = ReferenceSerializer(read_only=True, allow_null=True)
    unread = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    visible_at = serializers.DateTimeField(read_only=True)
    seen_at = serializers.DateTimeField(read_only=True, allow_null=True)
    read_at = serializers.DateTimeField(read_only=True, allow_null=True)
    archived_at = serializers.DateTimeField(read_only=True, allow_null=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)

    # One field instance for every row: DRF's formatting rules, without a Field per value.
    _as_text = staticmethod(serializers.DateTimeField().to_representation)

    def to_representation(self, instance: Notification) -> dict[str, Any]:
        # Inbox pages are polled often: build the dict directly (same output as the
        # declared fields, which document it) instead of field by field.
        as_text = self._as_text
        row: dict[str, Any] = {
            "id": instance.pk,
            "type": instance.type,
            "category": instance.category,
            "title": instance.title,
            "body": instance.body,
            "url": instance.url,
            "data": instance.data,
            **instance.snapshot(),
            "unread": instance.read_at is None,
        }
        for name in Notification.TIMES:
            value = getattr(instance, name)
            row[name] = None if value is None else as_text(value)
        return row


class InboxFilterSerializer(serializers.Serializer[Any]):
    """Query parameters of the inbox list."""

    unread = serializers.BooleanField(required=False, allow_null=True, default=None)
    archived = serializers.BooleanField(required=False, default=False)
    category = serializers.ListField(
        child=serializers.CharField(max_length=CATEGORY_MAX_LENGTH),
        required=False,
        max_length=50,
    )
    type = serializers.ListField(
        child=serializers.CharField(max_length=KEY_MAX_LENGTH),
        required=False,
        max_length=50,
    )


class MarkAllReadSerializer(serializers.Serializer[Any]):
    """Body of ``mark-all-read``: optionally narrow which notifications."""

    category = serializers.CharField(required=False, max_length=CATEGORY_MAX_LENGTH)
    type = serializers.CharField(required=False, max_length=KEY_MAX_LENGTH)
    before = serializers.DateTimeField(required=False, help_text="Only notifications shown up to this time.")


class UnreadCountSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField()


class NotificationCreateSerializer(serializers.Serializer[Any]):
    """Body of ``POST /``: the arguments of ``notify()``."""

    type = serializers.CharField(max_length=KEY_MAX_LENGTH)
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        help_text="User ids (primary keys).",
    )
    # DRF moves declared fields off the class, so Field.context stays a property.
    context = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]
    url = serializers.CharField(required=False, allow_blank=True, max_length=URL_MAX_LENGTH)
    data = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]
    channels = serializers.ListField(child=serializers.CharField(max_length=50), required=False, allow_empty=False)
    send_at = serializers.DateTimeField(required=False)
    expires_at = serializers.DateTimeField(required=False)
    idempotency_key = serializers.CharField(required=False, max_length=255)

    def validate_type(self, value: str) -> str:
        try:
            return registry.get(value).key
        except UnknownNotificationType as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_recipients(self, value: list[str]) -> list[Any]:
        limit = notify_settings.API_MAX_RECIPIENTS
        if len(value) > limit:
            raise serializers.ValidationError(f"At most {limit} recipients per request.")
        user_model = get_user_model()
        pk_field = user_model._meta.pk
        try:
            ids = list(dict.fromkeys(pk_field.to_python(v) for v in value))
        except Exception:
            raise serializers.ValidationError("Recipients must be user ids.") from None
        found = set(user_model._default_manager.filter(pk__in=ids).values_list("pk", flat=True))
        missing = [str(pk) for pk in ids if pk not in found]
        if missing:
            raise serializers.ValidationError(f"Unknown user ids: {', '.join(missing)}.")
        return ids

    def validate_context(self, value: dict[str, Any]) -> dict[str, Any]:
        reserved = RESERVED_CONTEXT.intersection(value)
        if reserved:
            raise serializers.ValidationError(f"{', '.join(sorted(reserved))} is provided by django_notify.")
        return value

    def validate_channels(self, value: list[str]) -> list[str]:
        for alias in value:
            if alias not in notify_settings.CHANNELS:
                raise serializers.ValidationError(str(UnknownChannel(alias, notify_settings.CHANNELS)))
        return value


class NotifyResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    deliveries = serializers.IntegerField()


class NotificationTypeSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    category = serializers.CharField()
    verbose_name = serializers.CharField()
    description = serializers.CharField()
    channels = serializers.ListField(child=serializers.CharField())
    critical = serializers.BooleanField(help_text="Critical types cannot be muted.")
    priority = serializers.CharField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "key": instance.key,
            "category": instance.category,
            "verbose_name": str(instance),
            "description": str(instance.description),
            "channels": list(instance.get_channels()),
            "critical": instance.critical,
            "priority": instance.priority,
        }
