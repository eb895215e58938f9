"""Set-based inserts for ``notify()``: one statement per chunk of recipients.

The notification rows of a chunk are written by a single ``INSERT … SELECT`` whose
``SELECT`` is the recipients' queryset, so users are never loaded into Python;
their outbox rows are written by one more ``INSERT … SELECT`` over the new
notification ids (one row per channel, or per active push subscription).
Everything else is a constant of the call. The SQL is portable across SQLite,
PostgreSQL and MySQL/MariaDB; the few differences come from Django's own
``connection.ops`` and ``connection.features``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import F, Field, Model, QuerySet
from django.db.models.constants import OnConflict

from django_notify.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    PushSubscription,
)


@dataclass(frozen=True)
class OutboxChannel:
    """A channel that gets outbox rows, and how its destinations are found."""

    alias: str
    destination: str  # "user" or "push_subscription"


class NotificationWriter:
    """Writes the rows of one ``notify()`` call, chunk by chunk, on one database.

    ``values`` maps notification field names to the constants shared by every row;
    the recipient comes from the chunk's queryset.
    """

    def __init__(
        self,
        using: str,
        values: dict[str, Any],
        *,
        deduplicate: bool,
        outbox: Sequence[OutboxChannel],
        delivery_values: dict[str, Any],
    ) -> None:
        self.connection = connections[using]
        self.using = using
        self.deduplicate = deduplicate
        self.outbox = outbox
        self.delivery_values = delivery_values
        self.values = values
        self.returning = self.connection.features.can_return_rows_from_bulk_insert
        self._insert_sql, self._insert_params = self._build_insert(values)

    # -- notifications -----------------------------------------------------------

    def _field(self, model: type[Model], name: str) -> tuple[Field[Any, Any], str]:
        """A concrete field of ``model`` and its quoted column name."""
        field = model._meta.get_field(name)
        if not isinstance(field, Field) or field.column is None:
            raise TypeError(f"{model.__name__}.{name} is not a concrete column.")
        return field, self.connection.ops.quote_name(field.column)

    def _column(self, model: type[Model], name: str) -> str:
        return self._field(model, name)[1]

    def _prepared(self, model: type[Model], values: dict[str, Any]) -> tuple[list[str], list[Any]]:
        columns, params = [], []
        for name, value in values.items():
            field, column = self._field(model, name)
            columns.append(column)
            params.append(field.get_db_prep_save(value, self.connection))
        return columns, params

    def _build_insert(self, values: dict[str, Any]) -> tuple[str, list[Any]]:
        ops = self.connection.ops
        columns, params = self._prepared(Notification, values)
        on_conflict = OnConflict.IGNORE if self.deduplicate else None
        sql = "%s %s (%s, %s) SELECT src.recipient_pk, %s FROM (<source>) src WHERE 1 = 1 %s" % (
            ops.insert_statement(on_conflict=on_conflict),
            ops.quote_name(Notification._meta.db_table),
            self._column(Notification, "recipient"),
            ", ".join(columns),
            ", ".join(["%s"] * len(params)),
            ops.on_conflict_suffix_sql([], on_conflict, [], []),
        )
        if self.returning:
            sql += " RETURNING %s, %s" % (
                self._column(Notification, "id"),
                self._column(Notification, "recipient"),
            )
        return sql, params

    def insert_chunk(self, recipients: QuerySet[Any]) -> list[tuple[int, Any]]:
        """Insert one notification per recipient of ``recipients``; return (id, recipient_id) pairs.

        With an idempotency key, recipients who already have the notification are
        skipped and absent from the result.
        """
        source = recipients.values(recipient_pk=F("pk"))
        try:
            source_sql, source_params = source.query.get_compiler(self.using).as_sql()
        except EmptyResultSet:  # e.g. User.objects.none()
            return []
        sql = self._insert_sql.replace("<source>", source_sql)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, (*self._insert_params, *source_params))
            if self.returning:
                return list(cursor.fetchall())
        return self._find_inserted(recipients)

    def _find_inserted(self, recipients: QuerySet[Any]) -> list[tuple[int, Any]]:
        # MySQL has no RETURNING: find the rows just written by their shared values.
        # created_at carries microseconds and is taken once per notify() call.
        found = Notification.objects.using(self.using).filter(
            recipient__in=recipients.values("pk"),
            type=self.values["type"],
            created_at=self.values["created_at"],
            idempotency_key=self.values.get("idempotency_key"),
        )
        return list(found.values_list("pk", "recipient_id"))

    def insert_rows(self, rows: list[Notification]) -> list[tuple[int, Any]]:
        """Insert notifications rendered one by one (personalised text).

        With an idempotency key, a row another transaction wrote meanwhile is skipped
        (not an error); the rows written here are then found by their shared values.
        """
        manager = Notification.objects.using(self.using)
        manager.bulk_create(rows, ignore_conflicts=self.deduplicate)
        if rows and rows[0].pk is None:
            written = manager.filter(
                recipient__in=[row.recipient_id for row in rows],
                type=self.values["type"],
                created_at=self.values["created_at"],
                idempotency_key=self.values.get("idempotency_key"),
            )
            return list(written.values_list("pk", "recipient_id"))
        return [(row.pk, row.recipient_id) for row in rows]

    # -- deliveries --------------------------------------------------------------

    def insert_deliveries(self, notification_ids: Sequence[int]) -> int:
        """Create the pending outbox rows of these notifications; return how many."""
        if not self.outbox or not notification_ids:
            return 0
        total = 0
        per_user = [channel.alias for channel in self.outbox if channel.destination == "user"]
        per_subscription = [channel.alias for channel in self.outbox if channel.destination == "push_subscription"]
        with self.connection.cursor() as cursor:
            if per_user:
                sql, params = self._delivery_sql(per_user, notification_ids, join_subscriptions=False)
                cursor.execute(sql, params)
                total += cursor.rowcount
            if per_subscription:
                sql, params = self._delivery_sql(per_subscription, notification_ids, join_subscriptions=True)
                cursor.execute(sql, params)
                total += cursor.rowcount
        return total

    def _delivery_sql(
        self, aliases: list[str], ids: Sequence[int], *, join_subscriptions: bool
    ) -> tuple[str, list[Any]]:
        qn = self.connection.ops.quote_name
        values = {
            **self.delivery_values,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "destination": "",
            "last_error": "",
            "digest": "",
        }
        columns, params = self._prepared(Delivery, values)
        channel_rows = " UNION ALL ".join(["SELECT %s AS alias"] * len(aliases))
        notification = qn(Notification._meta.db_table)
        subscription_column, subscription_value, join = "", "", ""
        if join_subscriptions:
            subscription_column = ", " + self._column(Delivery, "subscription")
            subscription_value = ", s.%s" % self._column(PushSubscription, "id")
            join = " INNER JOIN %s s ON s.%s = n.%s AND s.%s = %%s" % (
                qn(PushSubscription._meta.db_table),
                self._column(PushSubscription, "user"),
                self._column(Notification, "recipient"),
                self._column(PushSubscription, "is_active"),
            )
        id_sql, id_params = self._id_list(ids)
        sql = (
            "INSERT INTO %s (%s, %s, %s%s) SELECT n.%s, c.alias, %s%s FROM %s n CROSS JOIN (%s) c%s WHERE n.%s IN (%s)"
            % (
                qn(Delivery._meta.db_table),
                self._column(Delivery, "notification"),
                self._column(Delivery, "channel"),
                ", ".join(columns),
                subscription_column,
                self._column(Notification, "id"),
                ", ".join(["%s"] * len(params)),
                subscription_value,
                notification,
                channel_rows,
                join,
                self._column(Notification, "id"),
                id_sql,
            )
        )
        join_params = [True] if join_subscriptions else []
        return sql, [*params, *aliases, *join_params, *id_params]

    def _id_list(self, ids: Sequence[int]) -> tuple[str, list[Any]]:
        """SQL for ``IN (…)`` over many ids, with as few parameters as the database allows."""
        vendor = self.connection.vendor
        if vendor == "postgresql":
            return "SELECT unnest(%s::bigint[])", [list(ids)]
        if vendor == "sqlite":
            return "SELECT value FROM json_each(%s)", ["[%s]" % ",".join(str(int(i)) for i in ids)]
        return ", ".join(["%s"] * len(ids)), list(ids)


def iter_chunks(recipients: QuerySet[Any], size: int, using: str) -> Iterator[QuerySet[Any]]:
    """Split a recipient queryset into primary-key ranges of at most ``size`` users.

    Each range costs one query that reads at most two keys (the range's last one and
    the next, to know whether another range follows), so the recipients are never
    loaded into Python.
    """
    keys = recipients.using(using).order_by("pk").values_list("pk", flat=True).distinct()
    after = None
    while True:
        window = keys if after is None else keys.filter(pk__gt=after)
        edge = list(window[size - 1 : size + 1])
        chunk = recipients.order_by()
        if after is not None:
            chunk = chunk.filter(pk__gt=after)
        if edge:
            chunk = chunk.filter(pk__lte=edge[0])
        yield chunk.distinct()
        if len(edge) < 2:
            return
        after = edge[0]
