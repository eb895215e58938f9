"""What a recipient wants: channel switches, quiet hours and digests, resolved in bulk.

The delivery engine loads the preferences of a whole batch of recipients with two
queries (:func:`load_recipients`) and asks each :class:`RecipientPreferences` about
one delivery at a time, so no query runs per user.

Resolution, for a delivery of type T (category C) on channel X:

1. the in-app inbox is never muted (archiving is how a user dismisses it);
2. a critical type, or a channel in T's ``required_channels``, is always on;
3. otherwise the most specific matching :class:`~django_notify.models.Preference`
   that sets ``enabled`` wins: a row for the type beats one for the category,
   which beats a global row, and within each, a row for channel X beats one for
   every channel;
4. with no such row, the channel is on.

The digest frequency is resolved the same way, among the rows that set a
``frequency``: a row that only chooses a digest does not pin the switch, and a
row that only switches a type does not cancel its category's digest.

Preferences apply when a delivery is *sent*, not when it is created: muting email
before a pending email goes out skips it (status ``skipped``); un-muting does not
bring back what was skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from django_notify.conf import notify_settings

if TYPE_CHECKING:
    from django_notify.models import Preference, UserPreferences
    from django_notify.registry import NotificationType

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc


def get_zone(name: str | None) -> dt.tzinfo:
    """The time zone ``name``, or the project's ``TIME_ZONE`` if it is blank or unknown."""
    for candidate in (name, settings.TIME_ZONE, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                if candidate == name:
                    logger.warning("Unknown time zone %r in user preferences; using the default.", name)
    return UTC


def is_valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_datetime(day: dt.date, time: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """``day`` at wall-clock ``time`` in ``zone``, as an aware UTC datetime.

    A time that does not exist (skipped by a spring-forward change) becomes the
    first valid instant after the gap; an ambiguous one (repeated in autumn) is
    its first occurrence.
    """
    naive = dt.datetime.combine(day, time)
    first = naive.replace(tzinfo=zone, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != naive:
        # In a gap: fold=0 used the offset from before the change, which lands the
        # instant after the gap, except when the clock moved back; take the later.
        second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        as_utc = max(as_utc, second)
    return as_utc


def quiet_until(now: dt.datetime, zone: dt.tzinfo, start: dt.time | None, end: dt.time | None) -> dt.datetime | None:
    """When the quiet hours around ``now`` end (UTC), or ``None`` outside them.

    ``start``/``end`` are wall-clock times in ``zone``; a window may span midnight
    (22:00-07:00). Equal or missing times mean no quiet hours.
    """
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:
        inside = t >= start or t < end
        end_day = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return local_datetime(end_day, end, zone)


def next_digest_time(now: dt.datetime, zone: dt.tzinfo, frequency: str) -> dt.datetime:
    """The next digest time strictly after ``now``: ``DIGEST_HOUR`` local time, daily,
    or on ``DIGEST_WEEKDAY`` for weekly digests."""
    local = now.astimezone(zone)
    hour = dt.time(notify_settings.DIGEST_HOUR)
    day = local.date()
    for _ in range(15):
        if frequency != "weekly" or day.weekday() == notify_settings.DIGEST_WEEKDAY:
            candidate = local_datetime(day, hour, zone)
            if candidate > now:
                return candidate
        day += dt.timedelta(days=1)
    raise AssertionError("no digest time within two weeks")  # unreachable: a week always has the weekday


@dataclass
class RecipientPreferences:
    """One recipient's switches and settings, as loaded for a batch."""

    rules: list[tuple[int, Preference]] = field(default_factory=list)
    settings: UserPreferences | None = None

    def rule_for(self, channel: str, category: str, type_key: str, setting: str) -> Preference | None:
        """The most specific rule matching the scope that sets ``setting``
        (``"enabled"`` or ``"frequency"``); ``type_key=""`` asks for a whole category."""
        best: tuple[int, Preference] | None = None
        for score, rule in self.rules:
            if getattr(rule, setting) in (None, ""):
                continue
            if (
                rule.channel not in ("", channel)
                or rule.category not in ("", category)
                or rule.type not in ("", type_key)
            ):
                continue
            if best is None or score > best[0]:
                best = (score, rule)
        return best[1] if best else None

    def allows(self, notification_type: NotificationType, channel: str, *, inbox: bool = False) -> bool:
        """Whether this recipient gets ``notification_type`` on ``channel``."""
        if inbox or notification_type.is_locked(channel):
            return True
        rule = self.rule_for(channel, notification_type.category, notification_type.key, "enabled")
        return rule is None or bool(rule.enabled)

    def digest(self, notification_type: NotificationType, channel: str) -> str:
        """``"daily"`` or ``"weekly"`` if messages of this type go into a digest, else ``""``."""
        if channel != notify_settings.DIGEST_CHANNEL or notification_type.critical:
            return ""
        rule = self.rule_for(channel, notification_type.category, notification_type.key, "frequency")
        return rule.frequency if rule is not None and rule.frequency in ("daily", "weekly") else ""

    @property
    def zone(self) -> dt.tzinfo:
        return get_zone(self.settings.timezone if self.settings else None)

    def quiet_until(self, now: dt.datetime) -> dt.datetime | None:
        if self.settings is None:
            return None
        return quiet_until(now, self.zone, self.settings.quiet_hours_start, self.settings.quiet_hours_end)


def subscription_allows(preferences: Any, notification_type: NotificationType) -> bool:
    """Whether one push subscription (one browser) takes ``notification_type``.

    ``preferences`` is the subscription's ``{"categories": {name: bool}, "types":
    {key: bool}}``: a type's rule wins over its category's; no rule means yes, and
    critical types are never muted.
    """
    if notification_type.critical or not isinstance(preferences, dict):
        return True
    for scope, name in (("types", notification_type.key), ("categories", notification_type.category)):
        rules = preferences.get(scope)
        if isinstance(rules, dict) and isinstance(rules.get(name), bool):
            return bool(rules[name])
    return True


def specificity(rule: Preference) -> int:
    """Type beats category beats global; a named channel beats every channel."""
    return 4 * bool(rule.type) + 2 * bool(rule.category) + bool(rule.channel)


def load_recipients(user_ids: Iterable[Any], using: str | None = None) -> dict[Any, RecipientPreferences]:
    """Preferences of many users in two queries; users without any get the defaults."""
    from django_notify.models import Preference, UserPreferences

    ids = set(user_ids)
    found: dict[Any, RecipientPreferences] = defaultdict(RecipientPreferences)
    for rule in Preference.objects.using(using).filter(user_id__in=ids):
        found[rule.user_id].rules.append((specificity(rule), rule))
    for row in UserPreferences.objects.using(using).filter(user_id__in=ids):
        found[row.user_id].settings = row
    return {user_id: found[user_id] for user_id in ids}
