"""System checks for django_notify's settings, registry and django-q2 setup.

Ids are stable: once shipped, an id is never reused for another problem.

=========================  =========================================================
``django_notify.E001``     ``DJANGO_NOTIFY`` is not a dict
``django_notify.E002``     unknown key in ``DJANGO_NOTIFY``
``django_notify.E003``     a ``DJANGO_NOTIFY`` value has the wrong type
``django_notify.E004``     a ``CHANNELS`` entry is not ``{"BACKEND": ..., "OPTIONS": {...}}``
``django_notify.E005``     a channel ``BACKEND`` cannot be imported or is not a backend
``django_notify.E006``     a channel has unknown or invalid ``OPTIONS``
``django_notify.E007``     ``DEFAULT_CHANNELS`` names a channel that is not configured
``django_notify.E008``     no channel is the in-app inbox
``django_notify.E009``     a channel alias is not a short identifier
``django_notify.E012``     ``PAGE_SIZE`` is larger than ``MAX_PAGE_SIZE``
``django_notify.E010``     a notification type lists a channel that is not configured
``django_notify.E011``     a notification type's template does not compile
``django_notify.E020``     ``Q_CLUSTER`` selects no broker (django-q2 would use Redis)
``django_notify.E021``     ``Q_CLUSTER["orm"]`` is not a database alias
``django_notify.E022``     ``Q_CLUSTER`` timeout missing, or ``retry`` not above it
``django_notify.E030``     ``DELIVERY_MODE`` is ``"queue"`` but ``django_q`` is not installed
``django_notify.E031``     ``LEASE_SECONDS`` is not longer than ``Q_CLUSTER["timeout"]``
``django_notify.W032``     the queue runs on an SQLite file without ``"transaction_mode": "IMMEDIATE"``
``django_notify.E050``     an email channel has no address for absolute links (``BASE_URL``)
``django_notify.W051``     an email channel, but ``django_notify.urls`` is not included: no unsubscribe links
``django_notify.E052``     ``RECIPIENT_LANGUAGE`` names nothing usable
=========================  =========================================================
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import router
from django.template import TemplateSyntaxError

from django_notify.conf import DEFAULTS, VALIDATORS
from django_notify.exceptions import InvalidBackendError

ALIAS_MAX_LENGTH = 50  # Delivery.channel
ALIAS_RE = re.compile(rf"^[a-z][a-z0-9_-]{{0,{ALIAS_MAX_LENGTH - 1}}}$")

# Q_CLUSTER keys that pick a broker; without any of them django-q2 falls back to Redis.
Q_BROKER_KEYS = (
    "orm",
    "redis",
    "django_redis",
    "broker_class",
    "sqs",
    "iron_mq",
    "mongo",
)


@register(Tags.compatibility)
def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    user_settings = getattr(settings, "DJANGO_NOTIFY", {})
    if not isinstance(user_settings, Mapping):
        return [
            Error(
                f"DJANGO_NOTIFY must be a dict, not {type(user_settings).__name__}.",
                hint='Write DJANGO_NOTIFY = {"CHANNELS": {...}} in your settings.',
                id="django_notify.E001",
            )
        ]
    errors: list[CheckMessage] = []
    for key in user_settings:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            errors.append(
                Error(
                    f"Unknown key {key!r} in DJANGO_NOTIFY.",
                    hint=f"{hint}Valid keys: {', '.join(sorted(DEFAULTS))}.",
                    id="django_notify.E002",
                )
            )
    for key, value in user_settings.items():
        if key in VALIDATORS:
            valid, description = VALIDATORS[key]
            if not valid(value):
                errors.append(
                    Error(
                        f"DJANGO_NOTIFY[{key!r}] must be {description}; got {value!r}.",
                        hint=f"Remove it to use the default, {DEFAULTS[key]!r}.",
                        id="django_notify.E003",
                    )
                )
    page, largest = (user_settings.get(key, DEFAULTS[key]) for key in ("PAGE_SIZE", "MAX_PAGE_SIZE"))
    if isinstance(page, int) and isinstance(largest, int) and page > largest:
        errors.append(
            Error(
                f'DJANGO_NOTIFY["PAGE_SIZE"] ({page}) is larger than DJANGO_NOTIFY["MAX_PAGE_SIZE"] ({largest}).',
                hint="Raise MAX_PAGE_SIZE or lower PAGE_SIZE.",
                id="django_notify.E012",
            )
        )
    channels = user_settings.get("CHANNELS", DEFAULTS["CHANNELS"])
    if isinstance(channels, Mapping):
        errors.extend(_check_channels(channels))
        default_channels = user_settings.get("DEFAULT_CHANNELS", DEFAULTS["DEFAULT_CHANNELS"])
        if VALIDATORS["DEFAULT_CHANNELS"][0](default_channels):
            for alias in default_channels:
                if alias not in channels:
                    errors.append(
                        Error(
                            f'DJANGO_NOTIFY["DEFAULT_CHANNELS"] names {alias!r}, which is not in CHANNELS.',
                            hint=f"Configured channels: {', '.join(channels) or 'none'}.",
                            id="django_notify.E007",
                        )
                    )
    return errors


def _check_channels(channels: Mapping[Any, Any]) -> list[CheckMessage]:
    from django_notify.channels import ChannelHandler

    errors: list[CheckMessage] = []
    inboxes = 0
    for alias, config in channels.items():
        where = f'DJANGO_NOTIFY["CHANNELS"][{alias!r}]'
        if not isinstance(alias, str) or not ALIAS_RE.match(alias):
            errors.append(
                Error(
                    f"Channel alias {alias!r} must be 1-{ALIAS_MAX_LENGTH} characters of lowercase letters, "
                    "digits, '_' or '-', starting with a letter.",
                    hint="It is stored on every delivery row and used in preferences and the API.",
                    id="django_notify.E009",
                )
            )
            continue
        if not isinstance(config, Mapping) or "BACKEND" not in config or set(config) - {"BACKEND", "OPTIONS"}:
            errors.append(
                Error(
                    f'{where} must be a dict with "BACKEND" and optionally "OPTIONS"; got {config!r}.',
                    hint='Example: {"BACKEND": "django_notify.backends.in_app.InAppBackend"}.',
                    id="django_notify.E004",
                )
            )
            continue
        try:
            backend_class = ChannelHandler.backend_class(str(alias), config["BACKEND"])
        except InvalidBackendError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint="Check the dotted path to the backend class.",
                    id="django_notify.E005",
                )
            )
            continue
        inboxes += backend_class.is_inbox
        options = config.get("OPTIONS", {})
        if not isinstance(options, Mapping):
            errors.append(Error(f'{where}["OPTIONS"] must be a dict.', id="django_notify.E006"))
            continue
        try:
            backend = backend_class(str(alias), **options)
        except InvalidBackendError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint=exc.hint
                    or f"Options of {backend_class.__qualname__} and their defaults: {backend_class.default_options!r}.",
                    id=exc.check_id or "django_notify.E006",
                )
            )
            continue
        errors.extend(backend.check())
    if not inboxes:
        errors.append(
            Error(
                "No channel in DJANGO_NOTIFY['CHANNELS'] is the in-app inbox.",
                hint='Add "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"}; '
                "every notification is stored for the inbox and its API.",
                id="django_notify.E008",
            )
        )
    return errors


@register(Tags.compatibility)
def check_registry(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    from django_notify.conf import notify_settings
    from django_notify.registry import registry
    from django_notify.rendering import compile_template

    if not isinstance(getattr(settings, "DJANGO_NOTIFY", {}), Mapping):
        return []  # E001 says what is wrong; every type would look misconfigured
    configured = notify_settings.CHANNELS
    errors: list[CheckMessage] = []
    for notification_type in registry:
        for alias in notification_type.get_channels():
            if alias not in configured:
                errors.append(
                    Error(
                        f"Notification type {notification_type.key!r} lists channel {alias!r}, which is not configured.",
                        hint=f'Add {alias!r} to DJANGO_NOTIFY["CHANNELS"] or remove it from the type. '
                        f"Configured: {', '.join(configured) or 'none'}.",
                        obj=notification_type,
                        id="django_notify.E010",
                    )
                )
        for part in ("title", "body", "url"):
            try:
                compile_template(getattr(notification_type, part))
            except TemplateSyntaxError as exc:
                errors.append(
                    Error(
                        f"Notification type {notification_type.key!r}: the {part} template does not compile: {exc}",
                        obj=notification_type,
                        id="django_notify.E011",
                    )
                )
    return errors


@register(Tags.compatibility)
def check_django_q(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    user_settings = getattr(settings, "DJANGO_NOTIFY", {})
    mode = user_settings.get("DELIVERY_MODE", DEFAULTS["DELIVERY_MODE"]) if isinstance(user_settings, Mapping) else None
    if not apps.is_installed("django_q"):
        if mode == "queue":
            return [
                Error(
                    'DJANGO_NOTIFY["DELIVERY_MODE"] is "queue" but django_q is not in INSTALLED_APPS.',
                    hint='Add "django_q" to INSTALLED_APPS (and run its worker, manage.py qcluster), or set '
                    'DELIVERY_MODE to "manual" and run manage.py notify_process from a scheduler.',
                    id="django_notify.E030",
                )
            ]
        return []
    q_cluster = getattr(settings, "Q_CLUSTER", {})
    if not isinstance(q_cluster, Mapping):
        q_cluster = {}
    errors: list[CheckMessage] = []
    if not any(q_cluster.get(key) for key in Q_BROKER_KEYS):
        errors.append(
            Error(
                "Q_CLUSTER selects no broker, so django-q2 would use Redis on localhost.",
                hint='Add "orm": "default" to Q_CLUSTER to queue tasks in the database (no Redis needed).',
                id="django_notify.E020",
            )
        )
    orm = q_cluster.get("orm")
    if orm and orm not in settings.DATABASES:
        errors.append(
            Error(
                f'Q_CLUSTER["orm"] is {orm!r}, which is not a key of DATABASES.',
                hint=f"Use one of: {', '.join(settings.DATABASES)}.",
                id="django_notify.E021",
            )
        )
    timeout, retry = q_cluster.get("timeout"), q_cluster.get("retry", 60)
    if not isinstance(timeout, (int, float)) or not isinstance(retry, (int, float)) or retry <= timeout:
        errors.append(
            Error(
                f"Q_CLUSTER needs a timeout and a retry greater than it (timeout={timeout!r}, retry={retry!r}).",
                hint="django-q2 hands a task to a second worker after `retry` seconds; if that is not longer "
                'than `timeout`, one batch can run twice at once. Example: "timeout": 60, "retry": 120.',
                id="django_notify.E022",
            )
        )
    lease = (
        user_settings.get("LEASE_SECONDS", DEFAULTS["LEASE_SECONDS"]) if isinstance(user_settings, Mapping) else None
    )
    if mode == "queue" and isinstance(timeout, (int, float)) and isinstance(lease, int) and lease <= timeout:
        errors.append(
            Error(
                f'DJANGO_NOTIFY["LEASE_SECONDS"] ({lease}) must be longer than Q_CLUSTER["timeout"] ({timeout}).',
                hint="A worker killed at the timeout leaves its batch leased; if the lease ran out first, "
                "another worker could send the same batch while the first is still running.",
                id="django_notify.E031",
            )
        )
    if mode == "queue":
        errors.extend(_check_sqlite_transaction_mode(q_cluster))
    return errors


def _check_sqlite_transaction_mode(q_cluster: Mapping[str, Any]) -> list[CheckMessage]:
    # The web process, the worker and django-q2's own processes all write to one file.
    # A deferred transaction that has read and then writes fails at once with
    # "database is locked" (the busy timeout does not apply), failing a sweep or a batch.
    aliases = {q_cluster.get("orm") or "default", router.db_for_write(apps.get_model("django_notify", "Delivery"))}
    warnings: list[CheckMessage] = []
    for alias in sorted(a for a in aliases if a in settings.DATABASES):
        config = settings.DATABASES[alias]
        if config.get("ENGINE") != "django.db.backends.sqlite3":
            continue
        name, options = str(config.get("NAME") or ""), config.get("OPTIONS") or {}
        if name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in name:
            continue  # one process only: nothing to wait for
        if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
            warnings.append(
                Warning(
                    f'DATABASES["{alias}"] is an SQLite file shared by the web process and the django-q2 '
                    'workers, without "transaction_mode": "IMMEDIATE".',
                    hint=f'Add "OPTIONS": {{"timeout": 20, "transaction_mode": "IMMEDIATE"}} to DATABASES["{alias}"], '
                    'or workers will fail now and then with "database is locked".',
                    id="django_notify.W032",
                )
            )
    return warnings


@register(Tags.compatibility)
def check_email_and_languages(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Email needs absolute links and an unsubscribe URL; languages need a usable source."""
    from django_notify.languages import LanguageSettingError, language_source

    errors: list[CheckMessage] = []
    if isinstance(getattr(settings, "DJANGO_NOTIFY", {}), Mapping):
        try:
            language_source.cache_clear()
            language_source()
        except LanguageSettingError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint='Name a field of the user model ("language", "profile__language"), an attribute, '
                    "a dotted path to a function taking the user, or None for the site's LANGUAGE_CODE.",
                    id="django_notify.E052",
                )
            )
    aliases = _email_channels()
    if not aliases:
        return errors
    from django_notify.sites import base_url

    if not base_url():
        errors.append(
            Error(
                f"Channel(s) {', '.join(aliases)} send email, but links in emails cannot be made absolute.",
                hint='Set DJANGO_NOTIFY["BASE_URL"] = "https://your.site", or install django.contrib.sites '
                "with SITE_ID and the site's domain.",
                id="django_notify.E050",
            )
        )
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("django_notify:unsubscribe", args=["check"])
    except NoReverseMatch:
        errors.append(
            Warning(
                f"Channel(s) {', '.join(aliases)} send email, but django_notify.urls is not included, "
                "so emails carry no one-click unsubscribe link (RFC 8058; Gmail and Yahoo require it for bulk mail).",
                hint='Add path("api/notifications/", include("django_notify.urls")) to your URLconf.',
                id="django_notify.W051",
            )
        )
    return errors


def _email_channels() -> list[str]:
    from django_notify.backends.email import EmailBackend
    from django_notify.channels import channels

    user_settings = getattr(settings, "DJANGO_NOTIFY", {})
    configured = user_settings.get("CHANNELS", {}) if isinstance(user_settings, Mapping) else {}
    if not isinstance(configured, Mapping):
        return []  # E003 reports it
    found = []
    for alias, config in configured.items():
        try:
            cls = channels.backend_class(alias, config.get("BACKEND") if isinstance(config, Mapping) else None)
        except InvalidBackendError:
            continue  # E005 reports it
        if issubclass(cls, EmailBackend):
            found.append(alias)
    return found
