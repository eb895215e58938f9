"""The language each recipient reads in.

``DJANGO_NOTIFY["RECIPIENT_LANGUAGE"]`` says where to find it:

* a field of the user model, or a lookup path through forward relations
  (``"language"``, ``"profile__language"``; foreign keys and one-to-one relations
  either way): read in the database, so ``notify()``
  splits a chunk of recipients by language with one query and stays set-based;
* an attribute or property of the user (loaded users are asked);
* the dotted path of a callable ``language_of(user) -> str | None``;
* ``None``: everybody gets the site's ``LANGUAGE_CODE``.

The default, ``"language"``, falls back to the site's language when the user model
has no such field or attribute. Whatever is found is matched against
``settings.LANGUAGES`` (``"de-at"`` → ``"de"``); an unknown or blank value means the
site's language.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver
from django.utils.module_loading import import_string
from django.utils.translation import get_supported_language_variant

from django_notify.conf import DEFAULTS, notify_settings


class LanguageSettingError(ValueError):
    """``RECIPIENT_LANGUAGE`` names nothing usable (reported by check E052)."""


@dataclass(frozen=True)
class LanguageSource:
    """How recipients' languages are found: ``kind`` is field, attribute, callable or site."""

    kind: str
    path: str = ""
    function: Callable[[Any], Any] | None = None

    @property
    def in_database(self) -> bool:
        return self.kind == "field"


def site_language() -> str:
    """The site's language, as a supported code."""
    return normalize(settings.LANGUAGE_CODE) or settings.LANGUAGE_CODE


def normalize(code: Any) -> str:
    """A supported language code for ``code``, or ``""`` if it is blank or unknown."""
    if not isinstance(code, str) or not code.strip():
        return ""
    try:
        return get_supported_language_variant(code.strip().lower().replace("_", "-"))
    except LookupError:
        return ""


def resolve(code: Any) -> str:
    """The language to render in for a recipient whose setting is ``code``."""
    return normalize(code) or site_language()


@functools.cache
def language_source() -> LanguageSource:
    """Where languages come from under the current settings; raises :class:`LanguageSettingError`."""
    setting = notify_settings.RECIPIENT_LANGUAGE
    if not settings.USE_I18N or setting is None:
        return LanguageSource("site")
    user_model = get_user_model()
    if "." in setting:
        try:
            function = import_string(setting)
        except ImportError as exc:
            raise LanguageSettingError(f"RECIPIENT_LANGUAGE {setting!r} cannot be imported: {exc}") from exc
        if not callable(function):
            raise LanguageSettingError(f"RECIPIENT_LANGUAGE {setting!r} is not callable.")
        return LanguageSource("callable", setting, function)
    if _field_path_ok(user_model, setting.split("__")):
        return LanguageSource("field", setting)
    if "__" not in setting and hasattr(user_model, setting):
        return LanguageSource("attribute", setting)
    if setting == DEFAULTS["RECIPIENT_LANGUAGE"]:
        return LanguageSource("site")  # the default asks, it does not require
    raise LanguageSettingError(
        f"RECIPIENT_LANGUAGE {setting!r} is neither a field (or forward lookup path) nor an attribute of "
        f"{user_model._meta.label}, nor a dotted path to a callable."
    )


def _field_path_ok(model: type[models.Model], names: list[str]) -> bool:
    """Whether ``names`` walks forward, single-valued relations to a concrete field."""
    for position, name in enumerate(names):
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        last = position == len(names) - 1
        if last:
            return bool(getattr(field, "concrete", False)) and not field.is_relation
        # Single-valued only (a foreign key, or a one-to-one either way, such as a profile):
        # a many-valued relation would give a user several languages.
        single = (field.many_to_one and getattr(field, "concrete", False)) or field.one_to_one
        if not (field.is_relation and single):
            return False
        related = field.related_model
        if not isinstance(related, type):
            return False
        model = related
    return False


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"DJANGO_NOTIFY", "USE_I18N", "AUTH_USER_MODEL", "LANGUAGES", "LANGUAGE_CODE"}:
        language_source.cache_clear()


def language_of(user: Any) -> str:
    """The language ``user`` reads in (a loaded user)."""
    source = language_source()
    if source.kind == "site":
        return site_language()
    if source.kind == "callable":
        assert source.function is not None
        return resolve(source.function(user))
    value: Any = user
    for name in source.path.split("__"):
        value = getattr(value, name, None)
        if value is None:
            break
    return resolve(value)


def split_by_language(recipients: models.QuerySet[Any]) -> list[tuple[str, models.QuerySet[Any]]] | None:
    """``recipients`` split into one queryset per language, or ``None`` if only loaded users can tell.

    With the language in the database this costs one query (the distinct values);
    with none configured it costs nothing.
    """
    source = language_source()
    if source.kind == "site":
        return [(site_language(), recipients)]
    if source.kind != "field":
        return None
    raw_values = list(recipients.order_by().values_list(source.path, flat=True).distinct())
    by_language: dict[str, list[Any]] = defaultdict(list)
    for raw in raw_values:
        by_language[resolve(raw)].append(raw)
    if len(by_language) <= 1:
        return [(next(iter(by_language), site_language()), recipients)]
    groups = []
    for language, raws in by_language.items():
        present = [raw for raw in raws if raw is not None]
        condition = models.Q(**{f"{source.path}__in": present})
        if len(present) < len(raws):
            condition |= models.Q(**{f"{source.path}__isnull": True})
        groups.append((language, recipients.filter(condition)))
    return groups
