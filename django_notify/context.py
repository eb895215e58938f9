"""The template context kept with a notification, for channels that render when they send.

Email is rendered by the worker, long after ``notify()`` returned, so the context
given to ``notify()`` is stored on each notification as JSON (:func:`freeze`) and
rebuilt for the templates (:func:`thaw_many`):

* JSON values (``str``, numbers, booleans, ``None``, lists, dicts with string keys)
  are kept as they are;
* ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal`` and ``UUID`` come
  back as the same types, so filters such as ``|date`` work as they did;
* a saved model instance is kept as a reference and loaded again when the batch is
  rendered (one query per model for the whole batch); if it was deleted since, the
  template sees its text as it was (``str(instance)``);
* anything else is kept as its text (``str(value)``).

``recipient`` is never stored: every channel provides it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.dateparse import parse_date, parse_datetime, parse_duration, parse_time
from django.utils.duration import duration_iso_string
from django.utils.functional import Promise

#: The key that marks an encoded value; a dict of the caller's with this key is kept as text.
TAG = "__dn__"

_DECODERS: dict[str, Any] = {
    "datetime": parse_datetime,
    "date": parse_date,
    "time": parse_time,
    "timedelta": parse_duration,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
}


def freeze(context: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of a template context (``recipient`` left out)."""
    return {str(name): _encode(value, 0) for name, value in context.items() if name != "recipient"}


def _encode(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 20:
        return str(value)
    if isinstance(value, Promise):  # lazy translations: their text in the current language
        return str(value)
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": duration_iso_string(value)}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if isinstance(value, models.Model):
        if value.pk is None:
            return str(value)
        content_type = ContentType.objects.get_for_model(value)
        return {TAG: "model", "ct": content_type.pk, "pk": str(value.pk), "text": str(value)}
    if isinstance(value, Mapping):
        if TAG in value:
            return str(value)
        return {str(k): _encode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_encode(item, depth + 1) for item in value]
    return str(value)


def thaw_many(stored: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rebuild several stored contexts at once; model references cost one query per model."""
    stored = list(stored)
    wanted: dict[int, set[str]] = defaultdict(set)
    for context in stored:
        _collect(context, wanted, 0)
    loaded: dict[tuple[int, str], Any] = {}
    for content_type_id, keys in wanted.items():
        try:
            model = ContentType.objects.get_for_id(content_type_id).model_class()
        except ContentType.DoesNotExist:
            continue
        if model is None:
            continue
        pk_field = model._meta.pk
        assert pk_field is not None
        try:
            pks = [pk_field.to_python(key) for key in keys]
        except Exception:  # a key of a type the model no longer has
            continue
        for obj in model._default_manager.filter(pk__in=pks):
            loaded[(content_type_id, str(obj.pk))] = obj
    return [{name: _decode(value, loaded, 0) for name, value in context.items()} for context in stored]


def thaw(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild one stored context."""
    return thaw_many([stored])[0]


def _collect(value: Any, wanted: dict[int, set[str]], depth: int) -> None:
    if depth > 21:
        return
    if isinstance(value, dict):
        if value.get(TAG) == "model" and isinstance(value.get("ct"), int):
            wanted[value["ct"]].add(str(value.get("pk")))
            return
        for item in value.values():
            _collect(item, wanted, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _collect(item, wanted, depth + 1)


def _decode(value: Any, loaded: Mapping[tuple[int, str], Any], depth: int) -> Any:
    if isinstance(value, list):
        return [_decode(item, loaded, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None or depth > 21:
        return {name: _decode(item, loaded, depth + 1) for name, item in value.items()}
    if tag == "model":
        found = loaded.get((value.get("ct"), str(value.get("pk"))))  # type: ignore[arg-type]
        return found if found is not None else value.get("text", "")
    decoder = _DECODERS.get(str(tag))
    if decoder is None:
        return value.get("v")
    try:
        return decoder(value.get("v"))
    except (TypeError, ValueError, decimal.InvalidOperation):
        return value.get("v")
