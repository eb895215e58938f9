"""Keyset pagination for the inbox: stable under inserts, one query per page."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from django_notify.conf import notify_settings


class InboxCursorPagination(BasePagination):
    """Newest first by ``(visible_at, id)``; ``?cursor=`` continues after a page.

    The cursor names the last row of the previous page, so a page never repeats
    or skips a notification when new ones arrive meanwhile. ``?page_size=``
    (1 to ``MAX_PAGE_SIZE``) sets the size. A bad cursor or size is a 400.
    """

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return notify_settings.PAGE_SIZE
        maximum = notify_settings.MAX_PAGE_SIZE
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise ValidationError({self.page_size_query_param: [f"Must be an integer from 1 to {maximum}."]})
        return int(raw)

    def decode_cursor(self, request: Request) -> tuple[datetime, int] | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            visible_at, pk = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            position = parse_datetime(visible_at)
            if position is None or not isinstance(pk, int):
                raise ValueError
        except (ValueError, TypeError, UnicodeError, binascii.Error):
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None
        return position, pk

    @staticmethod
    def encode_cursor(visible_at: datetime, pk: int) -> str:
        return base64.urlsafe_b64encode(json.dumps([visible_at.isoformat(), pk]).encode()).decode("ascii")

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any]:
        if not isinstance(queryset, QuerySet):
            raise TypeError("InboxCursorPagination pages a queryset of notifications.")
        size = self.get_page_size(request)
        position = self.decode_cursor(request)
        newest_first = getattr(queryset, "newest_first", None)
        ordered = newest_first() if newest_first else queryset.order_by("-visible_at", "-id")
        if position is not None:
            visible_at, pk = position
            # The redundant bound lets every database use the index range.
            ordered = ordered.filter(visible_at__lte=visible_at).filter(Q(visible_at__lt=visible_at) | Q(id__lt=pk))
        rows = list(ordered[: size + 1])
        self.next_url = None
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            self.next_url = replace_query_param(
                request.build_absolute_uri(),
                self.cursor_query_param,
                self.encode_cursor(last.visible_at, last.pk),
            )
        return rows

    def get_paginated_response(self, data: Sequence[Any]) -> Response:
        return Response({"next": self.next_url, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "format": "uri", "nullable": True},
                "results": schema,
            },
        }
