"""Engagement events, delivery statistics and health: ``events/``, ``stats/``, ``health/``.

Each endpoint is a mixin (reuse it with your own permissions) composed into a thin
viewset that :mod:`django_notify.urls` registers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from django_notify.api.parsers import SafeJSONParser
from django_notify.conf import notify_settings
from django_notify.exceptions import BadEventToken
from django_notify.models import Delivery, DeliveryStatus, EngagementEvent, EngagementKind, EngineState, Notification
from django_notify.models.notification import visible_q
from django_notify.signals import engagement_recorded
from django_notify.tokens import MAX_TOKEN_LENGTH, EventTarget, read_event_token

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rest_framework.generics import GenericAPIView

    _Base = GenericAPIView[Any]
else:
    _Base = object

#: The channel name of the inbox in events and statistics (it has no outbox rows).
IN_APP_CHANNEL = "in_app"

#: Largest ``metadata`` of an event, as compact UTF-8 JSON.
METADATA_MAX_BYTES = 2048

#: Largest body ``events/`` reads; a real event is a few hundred bytes.
EVENT_BODY_MAX_BYTES = 8192

#: Events that mean the recipient saw the notification, and those that mean they opened it.
SEEN_KINDS = frozenset({EngagementKind.DISPLAYED, EngagementKind.DISMISSED})
READ_KINDS = frozenset({EngagementKind.CLICKED, EngagementKind.ACTION})


# -- serializers -------------------------------------------------------------------


class EventSerializer(serializers.Serializer[Any]):
    """Body of ``POST events/``: ``token`` (service worker) or ``notification`` (a logged-in page)."""

    token = serializers.CharField(
        required=False,
        max_length=MAX_TOKEN_LENGTH,
        help_text="The tracking token of the push message; no session needed.",
    )
    notification = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="A notification id of the logged-in caller (session or token auth, CSRF as usual).",
    )
    event = serializers.ChoiceField(choices=EngagementKind.choices)
    action = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text='The notification action clicked; required with, and only with, event "action".',
    )
    metadata = serializers.DictField(required=False, help_text=f"A JSON object of at most {METADATA_MAX_BYTES} bytes.")

    def validate_token(self, value: str) -> EventTarget:
        try:
            return read_event_token(value)
        except BadEventToken as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode())
        if size > METADATA_MAX_BYTES:
            raise serializers.ValidationError(f"At most {METADATA_MAX_BYTES} bytes of JSON (got {size}).")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("token" in attrs) == ("notification" in attrs):
            raise serializers.ValidationError({"non_field_errors": ["Give either token or notification."]})
        action = attrs.get("action", "")
        if attrs["event"] == EngagementKind.ACTION and not action:
            raise serializers.ValidationError({"action": ['Required with the event "action".']})
        if attrs["event"] != EngagementKind.ACTION and action:
            raise serializers.ValidationError({"action": ['Only allowed with the event "action".']})
        return attrs


class EventRecordedSerializer(serializers.Serializer[Any]):
    """Answer of ``POST events/``; nothing about the notification (the caller may be anonymous)."""

    recorded = serializers.BooleanField()


class StatsQuerySerializer(serializers.Serializer[Any]):
    """Query parameters of ``stats/``: the period starts at ``since``, or ``days`` ago (default 7)."""

    since = serializers.DateTimeField(required=False)
    days = serializers.IntegerField(required=False, min_value=1, max_value=366)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "since" in attrs and "days" in attrs:
            raise serializers.ValidationError({"non_field_errors": ["Give since or days, not both."]})
        return attrs


class StatsRowSerializer(serializers.Serializer[Any]):
    """Counts of one notification type on one channel over the period."""

    type = serializers.CharField()
    channel = serializers.CharField()
    created = serializers.IntegerField(help_text="Deliveries (in-app: notifications) created in the period.")
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()
    skipped = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Not finished yet: pending or sending (in-app: not shown yet).")
    delivered = serializers.IntegerField()
    displayed = serializers.IntegerField()
    clicked = serializers.IntegerField()
    dismissed = serializers.IntegerField()
    action = serializers.IntegerField()
    click_rate = serializers.FloatField(allow_null=True, help_text="clicked / sent; null when nothing was sent.")


class StatsSerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    rows = StatsRowSerializer(many=True)


class HealthSerializer(serializers.Serializer[Any]):
    """Answer of ``health/``; ages in seconds, counts of deliveries."""

    status = serializers.ChoiceField(choices=["ok", "unhealthy"])
    checks = serializers.DictField(
        child=serializers.CharField(),
        help_text='"sweeper_heartbeat": ok, missing or stale; "queue_lag": ok or lagging.',
    )
    oldest_due_age_s = serializers.FloatField(allow_null=True)
    pending = serializers.IntegerField()
    sending = serializers.IntegerField()
    expired_leases = serializers.IntegerField()
    failed_24h = serializers.IntegerField()
    sent_24h = serializers.IntegerField()
    success_rate_24h = serializers.FloatField(allow_null=True)
    sweeper_heartbeat_age_s = serializers.FloatField(allow_null=True)
    worker_heartbeat_age_s = serializers.FloatField(allow_null=True)


# -- events ------------------------------------------------------------------------


class EventThrottle(SimpleRateThrottle):
    """``events/`` per client IP, whoever the caller is (most callers have no session)."""

    scope = "django_notify_events"
    #: A page reports each notification shown and a service worker each push: 2 a second is plenty.
    rate = "120/minute"

    def get_cache_key(self, request: Request, view: Any) -> str:
        # Keyed by IP alone: asking request.user would authenticate the token path (see below).
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class EventJSONParser(SafeJSONParser):
    """Event bodies are small: at most ``EVENT_BODY_MAX_BYTES``."""

    max_bytes = EVENT_BODY_MAX_BYTES


class RecordEventMixin(_Base):
    """``POST events/``: record an engagement event; ``201 {"recorded": true}``.

    Authenticated by the signed ``token`` alone, or, with ``notification``, by the
    caller's session (or other DRF authentication) like the rest of the API.
    Authentication is lazy: the token path never looks at the session, so the
    service worker's ``fetch()`` (which sends the site's cookies) needs no CSRF
    token, while the ``notification`` path gets DRF's usual CSRF check. Keep the
    view's throttles and permissions from touching ``request.user``.

    Side effects: ``displayed`` and ``dismissed`` set ``seen_at`` if unset;
    ``clicked`` and ``action`` mark the notification read (``notification_read``
    is sent). ``engagement_recorded`` is sent for every event, after commit.

    Errors: 400 for a bad body (``{"token": ["This event token has expired."]}``,
    ``{"event": [...]}``, ``{"action": [...]}``, ``{"metadata": [...]}``,
    ``{"non_field_errors": ["Give either token or notification."]}``, malformed or
    oversized JSON ``{"detail": ...}``); 403 for ``notification`` without a logged-in
    caller or without the CSRF token; 404 when the notification or delivery no
    longer exists, or ``notification`` is not the caller's or not in their inbox;
    415 for a body that is not JSON; 429 when throttled.
    """

    def perform_authentication(self, request: Request) -> None:
        # Lazy: request.user (and so SessionAuthentication's CSRF check) only runs
        # when the notification path asks for it.
        pass

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = EventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user: Any = None
        if "token" in data:
            notification, delivery = self.get_token_target(data["token"])
        else:
            user = request.user
            if not user.is_authenticated:
                raise NotAuthenticated()
            notification, delivery = self.get_page_notification(data["notification"], user), None
        self.perform_record_event(notification, delivery, data, user)
        return Response(EventRecordedSerializer({"recorded": True}).data, status=status.HTTP_201_CREATED)

    def get_token_target(self, target: EventTarget) -> tuple[Notification, Delivery | None]:
        """The rows a valid token names; 404 if they were deleted since."""
        if target.delivery_id is None:
            return get_object_or_404(Notification, pk=target.notification_id), None
        queryset = Delivery.objects.select_related("notification")
        delivery = get_object_or_404(queryset, pk=target.delivery_id, notification_id=target.notification_id)
        return delivery.notification, delivery

    def get_page_notification(self, pk: int, user: Any) -> Notification:
        """The caller's notification ``pk``, if it is in their inbox now (else 404)."""
        return get_object_or_404(Notification.objects.filter(visible_q(), recipient=user.pk), pk=pk)

    def perform_record_event(
        self, notification: Notification, delivery: Delivery | None, data: Mapping[str, Any], user: Any
    ) -> EngagementEvent:
        now = timezone.now()
        kind = data["event"]
        with transaction.atomic():
            event = EngagementEvent.objects.create(
                notification=notification,
                delivery=delivery,
                type=notification.type,
                channel=delivery.channel if delivery is not None else IN_APP_CHANNEL,
                kind=kind,
                action=data.get("action", ""),
                metadata=data.get("metadata", {}),
                created_at=now,
            )
            if kind in READ_KINDS:
                notification.mark_read(now, user=user)
            elif kind in SEEN_KINDS and notification.seen_at is None:
                Notification.objects.filter(pk=notification.pk).mark_seen(now)
            # Receivers may call out (analytics): only for an event that is kept.
            transaction.on_commit(lambda: engagement_recorded.send(sender=EngagementEvent, event=event, user=user))
        return event


# -- stats -------------------------------------------------------------------------

_DELIVERY_COUNTS = ("sent", "failed", "expired", "skipped", "pending")


def engagement_stats(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Rows of ``stats/`` for deliveries, notifications and events created in ``[since, until]``.

    Three grouped queries, whatever the volume. Events are counted by when they
    happened, so a click in the period on a push sent before it counts, and
    ``click_rate`` can exceed 1 for a short period.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(type_key: str, channel: str) -> dict[str, Any]:
        if (type_key, channel) not in rows:
            counts = dict.fromkeys(("created", *_DELIVERY_COUNTS, *EngagementKind.values), 0)
            rows[type_key, channel] = {"type": type_key, "channel": channel, **counts}
        return rows[type_key, channel]

    deliveries = (
        Delivery.objects.filter(created_at__gte=since, created_at__lte=until)
        .values_list("notification__type", "channel", "status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for type_key, channel, delivery_status, count in deliveries:
        counts = row(type_key, channel)
        counts["created"] += count
        # "sending" is unfinished, like "pending".
        counts["pending" if delivery_status == DeliveryStatus.SENDING else delivery_status] += count

    inbox = (
        Notification.objects.filter(created_at__gte=since, created_at__lte=until, visible_at__isnull=False)
        .values_list("type")
        .annotate(created=Count("pk"), shown=Count("pk", filter=Q(visible_at__lte=until)))
        .order_by()
    )
    for type_key, created, shown in inbox:
        counts = row(type_key, IN_APP_CHANNEL)
        counts.update(created=created, sent=shown, pending=created - shown)

    events = (
        EngagementEvent.objects.filter(created_at__gte=since, created_at__lte=until)
        .values_list("type", "channel", "kind")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for type_key, channel, kind, count in events:
        row(type_key, channel)[kind] += count

    for counts in rows.values():
        counts["click_rate"] = round(counts["clicked"] / counts["sent"], 4) if counts["sent"] else None
    return [rows[key] for key in sorted(rows)]


class StatsMixin(_Base):
    """``GET stats/``: deliveries and engagement by type and channel over a period.

    ``?since=<ISO 8601>`` or ``?days=1..366`` (default 7); the period ends now.
    Permission: ``STATS_PERMISSION_CLASSES`` (default staff). Errors: 400 for a bad
    or conflicting parameter (``{"days": [...]}``, ``{"since": [...]}``,
    ``{"non_field_errors": ["Give since or days, not both."]}``); 403 without the
    permission.
    """

    def get_permissions(self) -> list[BasePermission]:
        return [import_string(path)() for path in notify_settings.STATS_PERMISSION_CLASSES]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        until = timezone.now()
        since = query.validated_data.get("since") or until - timedelta(days=query.validated_data.get("days", 7))
        if since > until:
            raise serializers.ValidationError({"since": ["Must not be in the future."]})
        data = {"since": since, "until": until, "rows": engagement_stats(since, until)}
        return Response(StatsSerializer(data).data)


# -- health ------------------------------------------------------------------------


def _age(now: datetime, then: datetime | None) -> float | None:
    # Rounded: sub-millisecond digits are noise. Negative if clocks disagree; reported as is.
    return None if then is None else round((now - then).total_seconds(), 3)


def health_report(now: datetime | None = None) -> dict[str, Any]:
    """What ``health/`` answers, from the database alone (not django-q2's cache stats).

    Every delivery query reads one status of the ``(status, next_attempt_at)`` index;
    the 24-hour counts read all kept rows of their status (there is no index on
    ``finished_at``), the others a small range.
    """
    now = now or timezone.now()
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING)
    sending = Delivery.objects.filter(status=DeliveryStatus.SENDING)
    # Digest rows wait for their digest job, which has its own schedule.
    oldest_due = (
        pending.filter(next_attempt_at__lte=now, digest="")
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    day_ago = now - timedelta(hours=24)
    sent_24h = Delivery.objects.filter(status=DeliveryStatus.SENT, finished_at__gte=day_ago).count()
    failed_24h = Delivery.objects.filter(status=DeliveryStatus.FAILED, finished_at__gte=day_ago).count()
    beats = dict(EngineState.objects.filter(key__in=("sweeper", "worker")).values_list("key", "value"))

    sweeper_age = _age(now, beats.get("sweeper"))
    lag = _age(now, oldest_due)
    checks = {
        "sweeper_heartbeat": (
            "missing"
            if sweeper_age is None
            else "stale"
            if sweeper_age > notify_settings.HEALTH_MAX_HEARTBEAT_SECONDS
            else "ok"
        ),
        "queue_lag": "lagging" if lag is not None and lag > notify_settings.HEALTH_MAX_LAG_SECONDS else "ok",
    }
    finished = sent_24h + failed_24h
    return {
        "status": "ok" if all(value == "ok" for value in checks.values()) else "unhealthy",
        "checks": checks,
        "oldest_due_age_s": lag,
        "pending": pending.count(),
        "sending": sending.count(),
        "expired_leases": sending.filter(leased_until__lt=now).count(),
        "failed_24h": failed_24h,
        "sent_24h": sent_24h,
        "success_rate_24h": round(sent_24h / finished, 4) if finished else None,
        "sweeper_heartbeat_age_s": sweeper_age,
        "worker_heartbeat_age_s": _age(now, beats.get("worker")),
    }


class HealthMixin(_Base):
    """``GET health/``: 200 when deliveries flow, 503 when not; JSON either way.

    503 when the sweeper's heartbeat is missing or older than
    ``HEALTH_MAX_HEARTBEAT_SECONDS``, or a due delivery has waited longer than
    ``HEALTH_MAX_LAG_SECONDS``; ``checks`` says which. ``Cache-Control: no-store``.
    Permission: ``HEALTH_PERMISSION_CLASSES`` (default open, for load balancers);
    403 without it. The answer holds counts and ages only, nothing per user.
    """

    def get_permissions(self) -> list[BasePermission]:
        return [import_string(path)() for path in notify_settings.HEALTH_PERMISSION_CLASSES]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        report = HealthSerializer(health_report()).data
        code = status.HTTP_200_OK if report["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(report, status=code, headers={"Cache-Control": "no-store"})


# -- viewsets ----------------------------------------------------------------------


class EventViewSet(RecordEventMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Engagement events from the service worker (by token) or the page (by session)."""

    serializer_class = EventSerializer
    permission_classes = [AllowAny]
    throttle_classes = [EventThrottle]
    parser_classes = [EventJSONParser]
    renderer_classes = [JSONRenderer]


class StatsViewSet(StatsMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Delivery and engagement counts by type and channel, for staff."""

    serializer_class = StatsSerializer


class HealthViewSet(HealthMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Queue lag, backlog, failures and heartbeats, for load balancers and monitoring."""

    serializer_class = HealthSerializer
    renderer_classes = [JSONRenderer]


__all__ = [
    "EventJSONParser",
    "EventSerializer",
    "EventThrottle",
    "EventViewSet",
    "HealthMixin",
    "HealthSerializer",
    "HealthViewSet",
    "RecordEventMixin",
    "StatsMixin",
    "StatsQuerySerializer",
    "StatsSerializer",
    "StatsViewSet",
    "engagement_stats",
    "health_report",
]
