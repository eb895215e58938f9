"""The notification: one row per recipient, which is also its in-app inbox entry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models
from django.db.models.functions import Coalesce
from django.db.models.lookups import IsNull
from django.db.models.sql.where import AND, WhereNode
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class NotificationQuerySet(models.QuerySet["Notification"]):
    """Chainable filters for the inbox; each matches an index of the model."""

    def for_recipient(self, user: Any) -> NotificationQuerySet:
        """Rows of ``user`` (a user or a user id)."""
        return self.filter(recipient=user)

    def visible(self, now: datetime | None = None) -> NotificationQuerySet:
        """In the inbox now: shown already and not expired."""
        return self.filter(visible_q(now))

    def inbox(self, user: Any, now: datetime | None = None) -> NotificationQuerySet:
        """What ``user`` sees in the inbox (not archived)."""
        # One filter() call: each call clones the query, and this runs on every poll.
        return self.filter(visible_q(now), recipient=user, archived_at__isnull=True)

    def newest_first(self) -> NotificationQuerySet:
        """Order newest first, by ``(visible_at, id)``, in the order the indexes hold.

        On PostgreSQL, the columns the filters pin to ``NULL`` (``archived_at``, then
        ``read_at``) lead the ``ORDER BY``. That changes nothing in the result, but
        PostgreSQL does not treat ``IS NULL`` as an equality, and without them it
        sorts all of the user's rows instead of reading the first page straight off
        the index. SQLite and MySQL need no help, and MySQL would sort if asked.
        """
        prefix = []
        if connections[self.db].vendor == "postgresql":
            pinned = _pinned_to_null(self.query.where)
            if "archived_at" in pinned:
                prefix.append("-archived_at")
                if "read_at" in pinned:
                    prefix.append("-read_at")
        return self.order_by(*prefix, "-visible_at", "-id")

    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)

    def read(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=False)

    def archived(self) -> NotificationQuerySet:
        return self.filter(archived_at__isnull=False)

    def unarchived(self) -> NotificationQuerySet:
        return self.filter(archived_at__isnull=True)

    def mark_read(self, now: datetime | None = None) -> int:
        """Mark the unread rows read (and seen); return how many changed."""
        now = now or timezone.now()
        return self.filter(read_at__isnull=True).update(read_at=now, seen_at=Coalesce("seen_at", models.Value(now)))

    def mark_unread(self) -> int:
        """Mark the read rows unread; return how many changed."""
        return self.filter(read_at__isnull=False).update(read_at=None)

    def mark_seen(self, now: datetime | None = None) -> int:
        """Mark the unseen rows seen; return how many changed."""
        return self.filter(seen_at__isnull=True).update(seen_at=now or timezone.now())


class AbstractNotification(models.Model):
    """A rendered notification for one recipient.

    ``visible_at`` is when it enters the recipient's inbox: the creation time, a
    later ``send_at``, or ``NULL`` for a type that has no in-app channel (the row
    then only feeds its deliveries on other channels).
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="%(app_label)s_%(class)ss",
        # Every index of this model starts with the recipient.
        db_index=False,
        verbose_name=_("recipient"),
    )
    type = models.CharField(_("type"), max_length=100)
    category = models.CharField(_("category"), max_length=50)
    title = models.CharField(_("title"), max_length=255)
    body = models.TextField(_("body"), blank=True)
    url = models.CharField(_("URL"), max_length=2048, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    #: The language the text was rendered in; channels rendered at send time use it too.
    language = models.CharField(_("language"), max_length=15, blank=True)
    #: The template context given to ``notify()``, kept (see :mod:`django_notify.context`)
    #: for the channels that render their own text when they send, such as email.
    context = models.JSONField(_("context"), default=dict, blank=True, encoder=DjangoJSONEncoder)

    # No database constraint on the content types: the rows are static, and a
    # constraint trigger per inserted row would cost fan-out ~15% on PostgreSQL.
    actor_content_type = models.ForeignKey(
        ContentType,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    actor_object_id = models.CharField(max_length=255, blank=True)
    actor_repr = models.CharField(_("actor"), max_length=255, blank=True)
    actor = GenericForeignKey("actor_content_type", "actor_object_id")

    target_content_type = models.ForeignKey(
        ContentType,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    target_object_id = models.CharField(max_length=255, blank=True)
    target_repr = models.CharField(_("target"), max_length=255, blank=True)
    target = GenericForeignKey("target_content_type", "target_object_id")

    created_at = models.DateTimeField(_("created"), default=timezone.now)
    visible_at = models.DateTimeField(_("visible from"), null=True, blank=True)
    seen_at = models.DateTimeField(_("seen"), null=True, blank=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    archived_at = models.DateTimeField(_("archived"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    # NULL, not "": unique constraints treat NULLs as distinct, so unkeyed rows never collide.
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, null=True, blank=True)  # noqa: DJ001

    objects = NotificationQuerySet.as_manager()

    #: The lifecycle timestamps, in order.
    TIMES = ("created_at", "visible_at", "seen_at", "read_at", "archived_at", "expires_at")

    class Meta:
        abstract = True
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            # The inbox, newest first, archived or not.
            models.Index(
                fields=["recipient", "archived_at", "visible_at", "id"],
                name="dn_%(class)s_inbox",
            ),
            # Unread count and unread list: every predicate is an index column, so the
            # count never touches the table.
            models.Index(
                fields=[
                    "recipient",
                    "archived_at",
                    "read_at",
                    "visible_at",
                    "expires_at",
                ],
                name="dn_%(class)s_unread",
            ),
        ]
        constraints = [
            # NULL keys never collide, so only keyed notifications are deduplicated.
            models.UniqueConstraint(
                fields=["recipient", "type", "idempotency_key"],
                name="dn_%(class)s_idempotency",
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.type

    def get_absolute_url(self) -> str:
        return self.url

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    def mark_read(self, now: datetime | None = None, *, user: Any = None) -> bool:
        """Mark this notification read; return whether it was unread.

        Sends ``notification_read`` if it changed; ``user`` is who read it, if known.
        """
        from django_notify.signals import notification_read

        rows = type(self)._default_manager.filter(pk=self.pk)
        changed = rows.mark_read(now)
        if changed:
            self.refresh_from_db(fields=["read_at", "seen_at"])
            notification_read.send(sender=type(self), user=user, notifications=rows)
        return bool(changed)

    def snapshot(self) -> dict[str, Any]:
        """Actor and target as the API shows them, without loading either object."""
        return {
            "actor": _reference(self.actor_content_type_id, self.actor_object_id, self.actor_repr),
            "target": _reference(self.target_content_type_id, self.target_object_id, self.target_repr),
        }


def visible_q(now: datetime | None = None) -> models.Q:
    """The condition for "in the inbox at ``now``": shown already and not expired."""
    now = now or timezone.now()
    return models.Q(visible_at__lte=now) & (models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


def _pinned_to_null(where: WhereNode) -> set[str]:
    """Names of the fields that a top-level ``AND`` of the WHERE clause requires to be NULL."""
    if where.connector != AND or where.negated:
        return set()
    names = set()
    for child in where.children:
        if isinstance(child, IsNull) and child.rhs is True:
            names.add(child.lhs.target.name)
        elif isinstance(child, WhereNode):
            names |= _pinned_to_null(child)
    return names


def _reference(content_type_id: int | None, object_id: str, text: str) -> dict[str, Any] | None:
    if content_type_id is None and not text:
        return None
    model = ContentType.objects.get_for_id(content_type_id) if content_type_id else None
    return {
        "type": f"{model.app_label}.{model.model}" if model else None,
        "id": object_id or None,
        "display": text,
    }


class Notification(AbstractNotification):
    pass
