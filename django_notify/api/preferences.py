"""The caller's preferences over REST: ``GET``, ``PUT`` and ``PATCH`` on ``settings/``.

One resource per user, so the route has no id. Its representation is *resolved*:
every configured channel, registered category and type appears with the value the
delivery engine would apply (:mod:`django_notify.preferences`), so a preference
center shows the truth without knowing the resolution rules. Writes store one
:class:`~django_notify.models.Preference` row per value given:

==========================  ================================================================
``channels[X]``             ``Preference(channel=X)``
``categories[C][X]``        ``Preference(channel=X, category=C)``
``types[T][X]``             ``Preference(channel=X, type=T)``
``digests[C]``              ``frequency`` of ``Preference(channel=DIGEST_CHANNEL, category=C)``
==========================  ================================================================
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from django_notify.api.parsers import SafeJSONParser
from django_notify.channels import channels
from django_notify.conf import notify_settings
from django_notify.exceptions import UnknownChannel, UnknownNotificationType
from django_notify.models import DigestFrequency, Preference, UserPreferences
from django_notify.preferences import RecipientPreferences, load_recipients, specificity
from django_notify.registry import NotificationType, registry

if TYPE_CHECKING:
    from rest_framework.decorators import ViewSetAction
    from rest_framework.views import AsView, GenericView

    _Base = viewsets.GenericViewSet[Any]
else:
    _Base = object

#: ``(channel, category, type)`` of a :class:`~django_notify.models.Preference`; blank is "any".
Scope = tuple[str, str, str]

TIME_FORMAT = "%H:%M"


# -- what users may set ------------------------------------------------------------


def editable_channels() -> list[str]:
    """The configured channels a user may switch: all but the inbox, in settings order."""
    return [alias for alias in notify_settings.CHANNELS if not channels[alias].is_inbox]


def digest_channel() -> str | None:
    """``DIGEST_CHANNEL`` if users may choose digests on it, else ``None``.

    It must be configured, not the inbox, and its backend must send digests: the
    engine ignores a frequency on any other channel.
    """
    alias = notify_settings.DIGEST_CHANNEL
    if alias not in notify_settings.CHANNELS:
        return None
    backend = channels[alias]
    return alias if backend.supports_digest and not backend.is_inbox else None


def locked_channels(notification_type: NotificationType) -> list[str]:
    """The channels of ``notification_type`` users cannot mute: all if it is critical."""
    return [alias for alias in notification_type.get_channels() if notification_type.is_locked(alias)]


def _type_channels(notification_type: NotificationType, editable: Iterable[str]) -> list[str]:
    sent_on = notification_type.get_channels()
    return [alias for alias in editable if alias in sent_on]


# -- resolution ----------------------------------------------------------------------


def _switch(preferences: RecipientPreferences, channel: str, category: str = "") -> bool:
    # The engine's own choice of rule, for a scope instead of a type: a blank type key
    # matches only rows without a type, so this is what a type without rows inherits.
    rule = preferences.rule_for(channel, category, "", "enabled")
    return rule is None or bool(rule.enabled)


def _frequency(preferences: RecipientPreferences, channel: str, category: str) -> str:
    # Mirrors RecipientPreferences.digest(): only daily and weekly hold messages back.
    rule = preferences.rule_for(channel, category, "", "frequency")
    if rule is not None and rule.frequency in (DigestFrequency.DAILY, DigestFrequency.WEEKLY):
        return rule.frequency
    return DigestFrequency.IMMEDIATE


# -- serializers ---------------------------------------------------------------------


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only: in a JSON body, ``"yes"`` or ``1`` is more likely a bug."""

    default_error_messages = {"invalid": _("Must be true or false.")}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")


def unknown_category_error(category: str) -> str:
    """The 400 message for a category no registered type has."""
    known = registry.categories()
    return str(
        _("Unknown category %(value)s. Categories: %(known)s.")
        % {"value": repr(category), "known": ", ".join(known) or "none"}
    )


def check_categories(categories: Iterable[str]) -> None:
    """Raise a 400 naming every unknown category (the keys of a ``{category: ...}`` map)."""
    known = registry.categories()
    errors = {category: [unknown_category_error(category)] for category in categories if category not in known}
    if errors:
        raise serializers.ValidationError(errors)


def _reject_unknown_fields(serializer: serializers.Serializer[Any], data: Any) -> None:
    # DRF drops unknown keys silently; a misspelt key would then "succeed" doing nothing.
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            message = _("Unknown field. Valid fields: %(fields)s.") % {"fields": ", ".join(serializer.fields)}
            raise serializers.ValidationError({key: [message] for key in unknown})


class QuietHoursSerializer(serializers.Serializer[Any]):
    """``{"start": "22:00", "end": "07:00"}``: wall-clock times in the user's time zone."""

    start = serializers.TimeField(format=TIME_FORMAT, input_formats=[TIME_FORMAT])
    end = serializers.TimeField(format=TIME_FORMAT, input_formats=[TIME_FORMAT])

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _reject_unknown_fields(self, data)
        validated: dict[str, Any] = super().to_internal_value(data)
        return validated

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["start"] == attrs["end"]:
            # The engine reads equal times as "no quiet hours"; say so instead of storing it.
            raise serializers.ValidationError(_("Start and end must differ; send null for no quiet hours."))
        return attrs


def _channel_error(alias: str, editable: list[str]) -> str | None:
    if alias in editable:
        return None
    if alias not in notify_settings.CHANNELS:
        return str(UnknownChannel(alias, notify_settings.CHANNELS))
    return str(_("%(alias)s is the in-app inbox, which cannot be muted: archive notifications instead.")) % {
        "alias": alias
    }


class PreferencesSerializer(serializers.Serializer[RecipientPreferences]):
    """The body of ``settings/``; every field is optional.

    Reads a :class:`~django_notify.preferences.RecipientPreferences`: each switch and
    frequency as the engine resolves it, so locked channels are always ``true``.
    """

    timezone = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text='IANA name such as "Europe/Berlin"; "" means the site\'s TIME_ZONE.',
    )
    quiet_hours = QuietHoursSerializer(required=False, allow_null=True)
    channels = serializers.DictField(
        child=StrictBooleanField(),
        required=False,
        help_text="Channel alias to on/off, for every notification.",
    )
    categories = serializers.DictField(
        child=serializers.DictField(child=StrictBooleanField()),
        required=False,
        help_text="Category to {channel alias: on/off}.",
    )
    types = serializers.DictField(
        child=serializers.DictField(child=StrictBooleanField()),
        required=False,
        help_text="Type key to {channel alias: on/off}.",
    )
    digests = serializers.DictField(
        child=serializers.ChoiceField(choices=DigestFrequency.choices),
        required=False,
        help_text="Category to immediate, daily or weekly, on DIGEST_CHANNEL.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        _reject_unknown_fields(self, data)
        validated: dict[str, Any] = super().to_internal_value(data)
        return validated

    def validate_timezone(self, value: str) -> str:
        # The list of the installed tz database, as the admin checks it: ZoneInfo()
        # alone also loads odd files ("posixrules") and, on case-insensitive file
        # systems, wrongly cased names.
        if value and value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(
                _('%(value)s is not an IANA time zone name such as "Europe/Berlin"; "" means the site\'s time zone.')
                % {"value": value}
            )
        return value

    def validate_channels(self, value: dict[str, bool]) -> dict[str, bool]:
        editable = editable_channels()
        errors = {alias: [error] for alias in value if (error := _channel_error(alias, editable))}
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_categories(self, value: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
        editable = editable_channels()
        known = registry.categories()
        errors: dict[str, Any] = {}
        for category, switches in value.items():
            if category not in known:
                errors[category] = [unknown_category_error(category)]
                continue
            wrong = {alias: [error] for alias in switches if (error := _channel_error(alias, editable))}
            if wrong:
                errors[category] = wrong
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_types(self, value: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
        editable = editable_channels()
        errors: dict[str, Any] = {}
        for key, switches in value.items():
            if key not in registry:
                errors[key] = [str(UnknownNotificationType(key, registry.keys()))]
                continue
            notification_type = registry.get(key)
            wrong = {}
            for alias, enabled in switches.items():
                error = _channel_error(alias, editable) or self._type_channel_error(notification_type, alias, enabled)
                if error:
                    wrong[alias] = [error]
            if wrong:
                errors[key] = wrong
        if errors:
            raise serializers.ValidationError(errors)
        return value

    @staticmethod
    def _type_channel_error(notification_type: NotificationType, alias: str, enabled: bool) -> str | None:
        params = {"type": notification_type.key, "alias": alias}
        if alias in notification_type.forbidden_channels:
            return str(_("%(type)s is never sent on %(alias)s (forbidden_channels).") % params)
        if alias not in notification_type.get_channels():
            return str(_("%(type)s is not sent on %(alias)s.") % params)
        if not enabled and notification_type.is_locked(alias):
            if notification_type.critical:
                return str(_("%(type)s is critical: it is locked on and cannot be muted.") % params)
            return str(_("%(alias)s is locked on for %(type)s (required_channels): it cannot be muted.") % params)
        return None

    def validate_digests(self, value: dict[str, str]) -> dict[str, str]:
        if digest_channel() is None:
            raise serializers.ValidationError(
                _(
                    'Digests are off: DJANGO_NOTIFY["DIGEST_CHANNEL"] (%(alias)s) is not a configured channel '
                    "whose backend sends digests."
                )
                % {"alias": repr(notify_settings.DIGEST_CHANNEL)}
            )
        check_categories(value)
        return value

    def to_representation(self, instance: RecipientPreferences) -> dict[str, Any]:
        editable = editable_channels()
        categories = registry.categories()
        stored = instance.settings
        start = stored.quiet_hours_start if stored else None
        end = stored.quiet_hours_end if stored else None
        data: dict[str, Any] = {
            "timezone": stored.timezone if stored else "",
            # Half-set or equal times are no quiet hours to the engine: show them as none.
            "quiet_hours": (
                {"start": start.strftime(TIME_FORMAT), "end": end.strftime(TIME_FORMAT)}
                if start is not None and end is not None and start != end
                else None
            ),
            "channels": {alias: _switch(instance, alias) for alias in editable},
            "categories": {
                category: {alias: _switch(instance, alias, category) for alias in editable} for category in categories
            },
            "types": {
                notification_type.key: {
                    alias: instance.allows(notification_type, alias)
                    for alias in _type_channels(notification_type, editable)
                }
                for notification_type in registry
            },
        }
        digest = digest_channel()
        if digest is not None:
            data["digests"] = {category: _frequency(instance, digest, category) for category in categories}
        return data


# -- writing -------------------------------------------------------------------------


def _upsert_options(using: str, *unique_fields: str) -> dict[str, Any]:
    # An insert that updates the row a concurrent request created meanwhile, instead
    # of failing on the unique constraint. MySQL and MariaDB take no conflict target.
    target = connections[using].features.supports_update_conflicts_with_target
    return {"update_conflicts": True, "unique_fields": list(unique_fields) if target else None}


def save_preferences(user_id: Any, data: Mapping[str, Any], *, partial: bool) -> RecipientPreferences:
    """Store validated ``data`` for one user and return the preferences as now stored.

    ``partial=False`` (``PUT``) replaces: what ``data`` leaves out goes back to the
    defaults (rows deleted, quiet hours cleared). ``partial=True`` (``PATCH``) changes
    only the entries given. Atomic, and a fixed number of queries however many
    entries change.
    """
    using = router.db_for_write(Preference)
    with transaction.atomic(using=using):
        current = load_recipients([user_id], using=using)[user_id]
        _save_rules(user_id, current, data, partial=partial, using=using)
        _save_settings(user_id, current.settings, data, partial=partial, using=using)
        return load_recipients([user_id], using=using)[user_id]


def _resolver(rows: Iterable[Preference]) -> RecipientPreferences:
    return RecipientPreferences(rules=[(specificity(row), row) for row in rows])


def _save_rules(
    user_id: Any, current: RecipientPreferences, data: Mapping[str, Any], *, partial: bool, using: str
) -> None:
    stored: dict[Scope, Preference] = {(rule.channel, rule.category, rule.type): rule for _score, rule in current.rules}
    before = {scope: (rule.enabled, rule.frequency) for scope, rule in stored.items()}
    wanted: dict[Scope, Preference] = dict(stored) if partial else {}

    def row(scope: Scope) -> Preference:
        """The wanted row of ``scope``; a new one sets nothing until told (it inherits)."""
        found = wanted.get(scope)
        if found is None:
            channel, category, type_key = scope
            found = wanted[scope] = Preference(user_id=user_id, channel=channel, category=category, type=type_key)
        return found

    for alias, enabled in data.get("channels", {}).items():
        row((alias, "", "")).enabled = enabled
    for category, switches in data.get("categories", {}).items():
        for alias, enabled in switches.items():
            row((alias, category, "")).enabled = enabled
    for key, switches in data.get("types", {}).items():
        for alias, enabled in switches.items():
            row((alias, "", key)).enabled = enabled
    digest = digest_channel()
    if digest is not None:
        for category, frequency in data.get("digests", {}).items():
            row((digest, category, "")).frequency = frequency

    gone = [rule.pk for scope, rule in stored.items() if scope not in wanted]
    changed = [rule for scope, rule in wanted.items() if before.get(scope) != (rule.enabled, rule.frequency)]
    if gone:
        Preference.objects.using(using).filter(pk__in=gone).delete()
    if changed:
        Preference.objects.using(using).bulk_create(
            [
                Preference(
                    user_id=user_id,
                    channel=rule.channel,
                    category=rule.category,
                    type=rule.type,
                    enabled=rule.enabled,
                    frequency=rule.frequency,
                )
                for rule in changed
            ],
            update_fields=["enabled", "frequency", "updated_at"],
            **_upsert_options(using, "user", "channel", "category", "type"),
        )


def _save_settings(
    user_id: Any, current: UserPreferences | None, data: Mapping[str, Any], *, partial: bool, using: str
) -> None:
    fields = ("timezone", "quiet_hours_start", "quiet_hours_end")
    defaults: dict[str, Any] = {"timezone": "", "quiet_hours_start": None, "quiet_hours_end": None}
    before = {name: getattr(current, name) for name in fields} if current is not None else defaults
    values = dict(before) if partial else dict(defaults)
    if "timezone" in data:
        values["timezone"] = data["timezone"]
    if "quiet_hours" in data:
        quiet = data["quiet_hours"] or {"start": None, "end": None}
        values["quiet_hours_start"], values["quiet_hours_end"] = quiet["start"], quiet["end"]
    if values == before:
        return  # also: no row, and none needed for the defaults
    UserPreferences.objects.using(using).bulk_create(
        [UserPreferences(user_id=user_id, **values)],
        update_fields=[*fields, "updated_at"],
        **_upsert_options(using, "user"),
    )


# -- views ---------------------------------------------------------------------------


class PreferencesMixin(_Base):
    """``GET``, ``PUT`` and ``PATCH`` on one list route: the caller's preferences.

    Actions ``list`` (read), ``replace`` (``PUT``: what the body leaves out goes back
    to the defaults) and ``merge`` (``PATCH``: only the entries given change).
    Override :meth:`perform_save` to change how a valid body is stored.
    """

    serializer_class = PreferencesSerializer

    @classmethod
    def as_view(
        cls, actions: dict[str, str | ViewSetAction[Any]] | None = None, **initkwargs: Any
    ) -> AsView[GenericView]:
        # A router maps only GET (and POST) on a list route and PUT/PATCH on a detail
        # route, which this resource does not have: add them to the list route. The
        # handlers are not named update/partial_update, which would make the router
        # add that detail route.
        if actions == {"get": "list"}:
            actions = {**actions, "put": "replace", "patch": "merge"}
        return super().as_view(actions, **initkwargs)

    def get_object(self) -> RecipientPreferences:
        user_id = self.request.user.pk
        preferences = load_recipients([user_id])[user_id]
        self.check_object_permissions(self.request, preferences)
        return preferences

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def replace(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._save(request, partial=False)

    def merge(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._save(request, partial=True)

    def _save(self, request: Request, *, partial: bool) -> Response:
        # Not DRF's partial validation: it would also let {"quiet_hours": {"start": ...}}
        # through without its end. Every field is optional anyway.
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved = self.perform_save(serializer.validated_data, partial=partial)
        return Response(self.get_serializer(saved).data)

    def perform_save(self, data: Mapping[str, Any], *, partial: bool) -> RecipientPreferences:
        return save_preferences(self.request.user.pk, data, partial=partial)


class PreferencesViewSet(PreferencesMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """``settings/``: the caller's channel, category and type switches, quiet hours and digests."""

    permission_classes = [IsAuthenticated]
    parser_classes = [SafeJSONParser]
