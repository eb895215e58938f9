"""``notify()``: turn one event into notifications and pending deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.utils import timezone

from django_notify import content, languages
from django_notify.channels import channels as channel_handler
from django_notify.conf import notify_settings
from django_notify.context import freeze
from django_notify.exceptions import ForbiddenChannel, InvalidRecipients, UnknownChannel
from django_notify.fanout import NotificationWriter, OutboxChannel, iter_chunks
from django_notify.models import Notification
from django_notify.registry import (
    TITLE_MAX_LENGTH,
    URL_MAX_LENGTH,
    NotificationType,
    Rendered,
    registry,
)
from django_notify.rendering import truncate
from django_notify.signals import notification_created

REPR_MAX_LENGTH = 255


@dataclass
class NotifyResult:
    """What one ``notify()`` call wrote."""

    type: str
    #: Notifications created.
    created: int = 0
    #: Recipients skipped because they already had this ``idempotency_key``.
    existing: int = 0
    #: Pending outbox rows created for the external channels.
    deliveries: int = 0
    _single: tuple[Any, str | None, int | None] | None = field(default=None, repr=False)

    @cached_property
    def notification(self) -> Notification | None:
        """For a single recipient: the notification created, or the one that existed."""
        if self._single is None:
            return None
        recipient_id, key, created_id = self._single
        found: Notification | None = None
        if created_id is not None:
            found = Notification.objects.get(pk=created_id)
        elif key is not None:
            found = Notification.objects.filter(recipient_id=recipient_id, type=self.type, idempotency_key=key).first()
        return found


def notify(
    type: str | NotificationType | type[NotificationType],
    recipients: Any,
    *,
    context: Mapping[str, Any] | None = None,
    actor: Any = None,
    target: Any = None,
    url: str | None = None,
    data: Mapping[str, Any] | None = None,
    channels: Sequence[str] | None = None,
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> NotifyResult:
    """Create a notification of ``type`` for each recipient, with its pending deliveries.

    ``recipients`` is a user, a user id, an iterable of either, or a queryset of
    users (streamed in chunks, never loaded whole). The text is rendered once and
    inserted set-based unless a template uses ``recipient``. Safe inside
    ``transaction.atomic()``: nothing is visible or sent unless it commits.
    With ``idempotency_key``, a recipient who already has a notification of this
    type with that key gets no second one.
    """
    notification_type = registry.get(type)
    aliases = tuple(channels) if channels is not None else notification_type.get_channels()
    forbidden = set(aliases) & set(notification_type.forbidden_channels)
    if forbidden:
        raise ForbiddenChannel(notification_type.key, forbidden)
    backends = []
    for alias in aliases:
        if alias not in channel_handler:
            raise UnknownChannel(alias, notify_settings.CHANNELS)
        backends.append(channel_handler[alias])
    outbox = [OutboxChannel(b.alias, b.destination) for b in backends if not b.is_inbox]
    has_inbox = any(b.is_inbox for b in backends)

    # An absent actor or target is not in the context (a template that needs one fails
    # clearly instead of rendering "None"), so the type's defaults can supply them.
    given = {name: value for name, value in (("actor", actor), ("target", target)) if value is not None}
    full_context = notification_type.get_context(context, **given)
    texts = _Texts(notification_type, full_context)
    texts.shared(languages.site_language())  # a gap in the context fails here, before any write
    for backend in backends:
        if not backend.is_inbox and (
            backend.renders_own_text or content.has_own_text(notification_type, backend.alias)
        ):
            content.check_channel(notification_type, backend.alias, full_context)

    now = timezone.now()
    start = max(send_at, now) if send_at is not None else now
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 255):
        raise ValueError("idempotency_key must be a non-empty string of at most 255 characters.")
    if url is not None and len(url) > URL_MAX_LENGTH:
        raise ValueError(f"url is longer than {URL_MAX_LENGTH} characters.")
    values: dict[str, Any] = {
        "type": notification_type.key,
        "category": notification_type.category,
        "data": _json_object(data),
        # Kept for the channels that render when they send (email); the inbox needs none.
        "context": freeze(full_context) if outbox else {},
        **_reference("actor", actor),
        **_reference("target", target),
        "created_at": now,
        "visible_at": start if has_inbox else None,
        "expires_at": expires_at,
        "idempotency_key": idempotency_key,
    }
    ttl_deadline = start + notification_type.ttl
    delivery_values = {
        "next_attempt_at": start,
        "expires_at": min(ttl_deadline, expires_at) if expires_at else ttl_deadline,
        "created_at": now,
    }

    using = router.db_for_write(Notification)
    writers: dict[str, NotificationWriter] = {}

    def writer(language: str) -> NotificationWriter:
        """The writer of one language's rows; its text is a constant when it can be shared."""
        if language not in writers:
            shared = texts.shared(language)
            row_values = {**values, "language": language}
            if shared is not None:
                row_values.update(_text_values(shared, url, target))
            writers[language] = NotificationWriter(
                using,
                row_values,
                deduplicate=idempotency_key is not None,
                outbox=outbox,
                delivery_values=delivery_values,
            )
        return writers[language]

    def personal_row(user: Any, language: str) -> Notification:
        rendered = texts.shared(language) or texts.personal(user, language)
        return Notification(recipient_id=user.pk, **values, language=language, **_text_values(rendered, url, target))

    result = NotifyResult(type=notification_type.key)
    single = _single_recipient(recipients)
    announce = notification_created.has_listeners(notification_type.__class__)
    with transaction.atomic(using=using):
        for chunk in _recipient_chunks(recipients, using):
            ids: list[int] = []
            groups = languages.split_by_language(chunk)
            if groups is None:
                # The language is known only to loaded users: load the chunk, insert its rows.
                users = _without_existing(chunk, notification_type, idempotency_key, using)
                rows = [personal_row(user, languages.language_of(user)) for user in users]
                ids += [pk for pk, _recipient in writer(languages.site_language()).insert_rows(rows)]
                result.existing += chunk.count() - len(rows) if idempotency_key else 0
            for language, group in groups or ():
                if texts.shared(language) is not None:
                    written = writer(language).insert_chunk(group)
                    if idempotency_key is not None:
                        result.existing += group.count() - len(written)
                else:
                    users = _without_existing(group, notification_type, idempotency_key, using)
                    rows = [personal_row(user, language) for user in users]
                    written = writer(language).insert_rows(rows)
                    result.existing += group.count() - len(rows) if idempotency_key else 0
                ids += [pk for pk, _recipient in written]
            result.created += len(ids)
            if ids:
                result.deliveries += writer(languages.site_language()).insert_deliveries(ids)
            if announce and ids:
                notification_created.send(
                    sender=notification_type.__class__,
                    notification_type=notification_type,
                    notifications=Notification.objects.using(using).filter(pk__in=ids),
                )
            if single is not None:
                result._single = (single, idempotency_key, ids[0] if ids else None)
    if result.deliveries:
        # Bound to the caller's transaction: nothing is sent unless it commits.
        transaction.on_commit(partial(_after_commit, result.deliveries, start), using=using)
    return result


def _after_commit(count: int, start: datetime) -> None:
    from django_notify import queue

    if start <= timezone.now():
        queue.kick(count)
    else:
        queue.wake_sweeper(start)


def _recipient_chunks(recipients: Any, using: str) -> Iterator[models.QuerySet[Any]]:
    """Querysets of users, one per chunk, from any accepted form of ``recipients``."""
    user_model = get_user_model()
    size = notify_settings.FANOUT_CHUNK_SIZE
    if isinstance(recipients, models.QuerySet):
        if not issubclass(recipients.model, user_model):
            raise InvalidRecipients(
                f"recipients is a queryset of {recipients.model.__name__}, not of the user model ({user_model.__name__})."
            )
        if recipients.query.is_sliced:
            # A slice cannot be filtered further; its keys are few by construction.
            yield from _id_chunks(list(recipients.values_list("pk", flat=True)), size, user_model, using)
        else:
            yield from iter_chunks(recipients.using(using), size, using)
        return
    yield from _id_chunks(_recipient_ids(recipients, user_model), size, user_model, using)


def _id_chunks(ids: list[Any], size: int, user_model: type[models.Model], using: str) -> Iterator[models.QuerySet[Any]]:
    # Each id is a query parameter, and SQLite caps those per statement.
    from django.db import connections

    limit = connections[using].features.max_query_params
    size = min(size, limit - 50) if limit else size
    for start in range(0, len(ids), size):
        yield user_model._default_manager.using(using).filter(pk__in=ids[start : start + size])


def _recipient_ids(recipients: Any, user_model: type[models.Model]) -> list[Any]:
    items: Iterable[Any]
    if isinstance(recipients, (user_model, int, str)):
        items = [recipients]
    elif isinstance(recipients, Iterable) and not isinstance(recipients, (bytes, Mapping)):
        items = recipients
    else:
        raise InvalidRecipients(
            f"recipients must be a user, a user id, an iterable of those, or a queryset of users; got {recipients!r}."
        )
    ids: dict[Any, None] = {}
    for item in items:
        if isinstance(item, user_model):
            if item.pk is None:
                raise InvalidRecipients("A recipient user has not been saved (its pk is None).")
            ids[item.pk] = None
        elif isinstance(item, (int, str)) and not isinstance(item, bool):
            ids[user_model._meta.pk.to_python(item)] = None
        else:
            raise InvalidRecipients(f"{item!r} is neither a {user_model.__name__} nor a user id.")
    return list(ids)


def _single_recipient(recipients: Any) -> Any:
    user_model = get_user_model()
    if isinstance(recipients, user_model):
        return recipients.pk
    if isinstance(recipients, (int, str)) and not isinstance(recipients, bool):
        return user_model._meta.pk.to_python(recipients)
    return None


class _Texts:
    """The inbox text of one ``notify()`` call, rendered once per language when it can be shared."""

    def __init__(self, notification_type: NotificationType, context: dict[str, Any]) -> None:
        self.notification_type = notification_type
        self.context = context
        self._shared: dict[str, Rendered | None] = {}

    def shared(self, language: str) -> Rendered | None:
        """The text every recipient reading ``language`` gets, or ``None`` if it uses ``recipient``."""
        if language not in self._shared:
            self._shared[language] = content.render_inbox_shared(
                self.notification_type, self.context, language=language
            )
        return self._shared[language]

    def personal(self, user: Any, language: str) -> Rendered:
        return content.render_inbox(self.notification_type, {**self.context, "recipient": user}, language=language)


def _without_existing(
    users: models.QuerySet[Any], notification_type: NotificationType, idempotency_key: str | None, using: str
) -> models.QuerySet[Any]:
    """``users`` less those who already have this type's notification with ``idempotency_key``."""
    if idempotency_key is None:
        return users
    return users.exclude(
        pk__in=Notification.objects.using(using)
        .filter(type=notification_type.key, idempotency_key=idempotency_key)
        .values("recipient_id")
    )


def _text_values(rendered: Rendered, url: str | None, target: Any) -> dict[str, Any]:
    if url is not None:  # explicit, even "" (no link)
        link = url
    else:
        link = rendered.url or (target.get_absolute_url() if hasattr(target, "get_absolute_url") else "")
    if len(link) > URL_MAX_LENGTH:
        raise ValueError(f"The notification URL is longer than {URL_MAX_LENGTH} characters.")
    return {
        "title": truncate(rendered.title, TITLE_MAX_LENGTH),
        "body": rendered.body,
        "url": link,
    }


def _reference(prefix: str, obj: Any) -> dict[str, Any]:
    """Generic-relation columns plus a text snapshot, for ``actor`` or ``target``."""
    if obj is None:
        return {
            f"{prefix}_content_type_id": None,
            f"{prefix}_object_id": "",
            f"{prefix}_repr": "",
        }
    if isinstance(obj, str):
        return {
            f"{prefix}_content_type_id": None,
            f"{prefix}_object_id": "",
            f"{prefix}_repr": truncate(obj, REPR_MAX_LENGTH),
        }
    if not isinstance(obj, models.Model):
        raise TypeError(f"{prefix} must be a model instance, a string or None, not {type(obj).__name__}.")
    if obj.pk is None:
        raise ValueError(f"{prefix} {obj!r} has not been saved (its pk is None).")
    return {
        f"{prefix}_content_type_id": ContentType.objects.get_for_model(obj).pk,
        f"{prefix}_object_id": str(obj.pk),
        f"{prefix}_repr": truncate(str(obj), REPR_MAX_LENGTH),
    }


def _json_object(data: Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict, not {type(data).__name__}.")
    try:
        # Round-trip so what is stored is exactly what clients will read back.
        loaded: dict[str, Any] = json.loads(json.dumps(dict(data), cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"data must be JSON-serializable: {exc}") from None
    return loaded
