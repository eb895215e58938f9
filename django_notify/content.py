"""What a notification says on each channel: template resolution and rendering.

Every channel resolves each part of its message in one order, the first found wins:

1. a :class:`~django_notify.models.TemplateOverride` saved in the admin for the
   type and channel, in the recipient's language (``"pt-br"``, then ``"pt"``), then
   for every language (blank language);
2. a template file ``django_notify/<type>/<channel>_<part>.<ext>`` in the project's
   templates: ``email_title.txt``, ``email_body.txt``, ``email_body.html``,
   ``in_app_title.txt``, ``webpush_body.txt``…;
3. the type's own strings (``title``, ``body``);
4. the app's generic templates: for email, the layouts
   ``django_notify/email/message.txt`` and ``message.html`` wrap the parts, and
   with no HTML part the layout shows the plain text body.

The parts are ``title`` (one line: the subject of an email), ``body`` (plain text,
never escaped) and ``html`` (escaped: ``{{ value }}`` in HTML cannot inject markup).
Text is rendered under the recipient's language, so ``{% translate %}`` and lazy
strings come out in it.

Overrides are read once per process and kept ``TEMPLATE_CACHE_SECONDS``; saving
or deleting one clears that process's copy at once. An override may not use the
tags that reach beyond its context (``debug``, ``load``, ``include``, ``extends``):
those templates are refused when saved, and skipped (with an error logged) if
found in the database.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.template import Template, TemplateDoesNotExist, TemplateSyntaxError
from django.template.defaulttags import DebugNode, LoadNode
from django.template.loader_tags import ExtendsNode, IncludeNode
from django.utils import translation

from django_notify.conf import notify_settings
from django_notify.exceptions import MissingContextError
from django_notify.registry import TITLE_MAX_LENGTH, NotificationType, Rendered
from django_notify.rendering import (
    RecipientProbe,
    compile_template,
    get_engine,
    one_line,
    render_compiled,
    truncate,
)

logger = logging.getLogger(__name__)

#: The parts of a message, and whether each is HTML.
PARTS: dict[str, bool] = {"title": False, "body": False, "html": True}

#: Template tags an override in the database may not use: they reach past the
#: context it is given (the whole context and ``sys.modules``, other templates,
#: other tag libraries).
FORBIDDEN_OVERRIDE_NODES = (DebugNode, LoadNode, IncludeNode, ExtendsNode)
FORBIDDEN_OVERRIDE_TAGS = ("debug", "load", "include", "extends")


@dataclass(frozen=True)
class Source:
    """Where one part's template came from, and the template itself.

    ``origin`` is ``"override"``, ``"file"``, ``"type"`` or ``"generic"``;
    ``name`` says which (an override's scope, a file's name); ``template`` is
    ``None`` when the part is empty at that level.
    """

    origin: str
    name: str
    template: Template | None


@dataclass(frozen=True)
class Content:
    """One message's rendered parts; ``html`` is ``""`` when no HTML part was found."""

    title: str
    body: str
    html: str
    sources: Mapping[str, Source]


# -- overrides ------------------------------------------------------------------------


def override_problems(source: str, *, html: bool = False) -> list[str]:
    """Why a template saved in the database cannot be used (``[]`` if it can)."""
    if not source:
        return []
    try:
        template = get_engine(autoescape=html).from_string(source)
    except TemplateSyntaxError as exc:
        return [str(exc)]
    found = {type(node) for node in template.nodelist.get_nodes_by_type(FORBIDDEN_OVERRIDE_NODES)}  # type: ignore[arg-type]
    if found:
        return [
            "Templates saved in the database may not use the tags "
            + ", ".join(f"{{% {tag} %}}" for tag in FORBIDDEN_OVERRIDE_TAGS)
            + "; put such a template in a file instead."
        ]
    return []


class _OverrideCache:
    """Active overrides by (type, channel) then language, read in one query."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._scopes: dict[tuple[str, str], dict[str, dict[str, Template]]] = {}

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")
            self._scopes = {}

    def get(self, type_key: str, channel: str) -> dict[str, dict[str, Template]]:
        """``{language: {part: template}}`` of one type and channel (``""``: every language)."""
        ttl = notify_settings.TEMPLATE_CACHE_SECONDS
        with self._lock:
            if ttl <= 0 or time.monotonic() - self._loaded_at > ttl:
                self._scopes = self._load()
                self._loaded_at = time.monotonic()
            return self._scopes.get((type_key, channel), {})

    def _load(self) -> dict[tuple[str, str], dict[str, dict[str, Template]]]:
        from django_notify.models import TemplateOverride

        scopes: dict[tuple[str, str], dict[str, dict[str, Template]]] = {}
        for row in TemplateOverride.objects.filter(is_active=True):
            parts: dict[str, Template] = {}
            for part, html in PARTS.items():
                source = getattr(row, part)
                if not source:
                    continue
                problems = override_problems(source, html=html)
                if problems:
                    logger.error("Template override %s (%s) is not used: %s", row.pk, part, problems[0])
                    continue
                parts[part] = get_engine(autoescape=html).from_string(source)
            if parts:
                scopes.setdefault((row.type, row.channel), {})[row.language.lower()] = parts
        return scopes


_overrides = _OverrideCache()


@functools.cache
def _file_template(name: str, html: bool) -> Template | None:
    try:
        template: Template = get_engine(autoescape=html).get_template(name)
    except TemplateDoesNotExist:
        return None
    return template


def file_name(type_key: str, channel: str, part: str) -> str:
    """The template file that holds ``part`` of ``type_key`` on ``channel``."""
    extension = "html" if PARTS[part] else "txt"
    stem = "body" if part == "html" else part
    return f"django_notify/{type_key}/{channel}_{stem}.{extension}"


def clear_caches() -> None:
    """Forget the overrides and template files read so far (tests, or after deploying templates)."""
    _overrides.clear()
    _file_template.cache_clear()


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"TEMPLATES", "INSTALLED_APPS"}:
        clear_caches()


def _override_saved(**kwargs: Any) -> None:
    _overrides.clear()


def connect_signals() -> None:
    """Clear this process's overrides whenever one is saved or deleted (called by the app config)."""
    from django_notify.models import TemplateOverride

    post_save.connect(_override_saved, sender=TemplateOverride, dispatch_uid="django_notify.content.saved")
    post_delete.connect(_override_saved, sender=TemplateOverride, dispatch_uid="django_notify.content.deleted")


# -- resolution -----------------------------------------------------------------------


def _language_chain(language: str) -> list[str]:
    language = (language or "").lower()
    chain = [language] if language else []
    if "-" in language:
        chain.append(language.split("-", 1)[0])
    chain.append("")
    return chain


def resolve(notification_type: NotificationType, channel: str, language: str = "") -> dict[str, Source]:
    """The template of each part of ``notification_type`` on ``channel``, in ``language``."""
    scopes = _overrides.get(notification_type.key, channel)
    found: dict[str, Source] = {}
    for part, html in PARTS.items():
        for code in _language_chain(language):
            template = scopes.get(code, {}).get(part)
            if template is not None:
                scope = f"{notification_type.key} / {channel} / {code or '*'}"
                found[part] = Source("override", scope, template)
                break
        if part in found:
            continue
        name = file_name(notification_type.key, channel, part)
        template = _file_template(name, html)
        if template is not None:
            found[part] = Source("file", name, template)
        elif part == "html":
            found[part] = Source("generic", "", None)
        else:
            source = str(getattr(notification_type, part) or "")
            if source or part == "body":
                found[part] = Source(
                    "type", f"{notification_type.key}.{part}", compile_template(source) if source else None
                )
            else:
                name = str(notification_type.verbose_name or notification_type.key)
                found[part] = Source("generic", "", compile_template(name.replace("{", "{% templatetag openbrace %}")))
    return found


def has_own_text(notification_type: NotificationType, channel: str) -> bool:
    """Whether ``channel`` has a title or body of its own for this type (an override or a file).

    Without one, a channel sends the text stored for the inbox as it is.
    """
    if any(part in parts for parts in _overrides.get(notification_type.key, channel).values() for part in PARTS):
        return True
    return any(_file_template(file_name(notification_type.key, channel, part), PARTS[part]) for part in PARTS)


# -- rendering ------------------------------------------------------------------------


def _render(source: Source, context: Mapping[str, Any]) -> tuple[str, list[str]]:
    if source.template is None:
        return "", []
    return render_compiled(source.template, context)


def render(
    notification_type: NotificationType,
    channel: str,
    context: Mapping[str, Any],
    *,
    language: str = "",
    parts: tuple[str, ...] = ("title", "body", "html"),
) -> Content:
    """Render ``parts`` of a message under ``language``; raise :class:`MissingContextError` on a gap."""
    with translation.override(language or None):
        sources = resolve(notification_type, channel, language)
        output: dict[str, str] = {}
        for part in parts:
            text, missing = _render(sources[part], context)
            if missing:
                raise MissingContextError(notification_type.key, f"{channel} {part}", missing, context.keys())
            output[part] = text
    return Content(
        title=truncate(one_line(output.get("title", "")), TITLE_MAX_LENGTH),
        body=output.get("body", "").strip(),
        html=output.get("html", "").strip(),
        sources=sources,
    )


def render_inbox(notification_type: NotificationType, context: Mapping[str, Any], *, language: str = "") -> Rendered:
    """The title, body and link stored on a notification (the ``in_app`` channel's text)."""
    content = render(notification_type, "in_app", context, language=language, parts=("title", "body"))
    with translation.override(language or None):
        url, missing = _render(_url_source(notification_type), context)
    if missing:
        raise MissingContextError(notification_type.key, "url", missing, context.keys())
    return Rendered(title=content.title, body=content.body, url=url.strip())


def render_inbox_shared(
    notification_type: NotificationType, context: Mapping[str, Any], *, language: str = ""
) -> Rendered | None:
    """:func:`render_inbox` once for every recipient, or ``None`` if the text uses ``recipient``."""
    probe = RecipientProbe()
    probed = {**context, "recipient": probe}
    with translation.override(language or None):
        sources = resolve(notification_type, "in_app", language)
        outputs: dict[str, tuple[str, list[str]]] = {}
        for part, source in (
            ("title", sources["title"]),
            ("body", sources["body"]),
            ("url", _url_source(notification_type)),
        ):
            outputs[part] = _render(source, probed)
            if probe.touched:
                return None
    for part, (_text, missing) in outputs.items():
        if missing:
            raise MissingContextError(notification_type.key, part, missing, context.keys())
    return Rendered(
        title=truncate(one_line(outputs["title"][0]), TITLE_MAX_LENGTH),
        body=outputs["body"][0].strip(),
        url=outputs["url"][0].strip(),
    )


#: Names a channel that renders when it sends adds to the context (see ``EmailBackend``).
SEND_TIME_NAMES = frozenset(
    {"recipient", "notification", "notification_type", "url", "site_name", "base_url", "unsubscribe_url"}
)


def check_channel(
    notification_type: NotificationType, channel: str, context: Mapping[str, Any], *, language: str = ""
) -> None:
    """Render a channel's parts once with stand-ins for what only sending provides, so a gap in
    the context is an error at ``notify()`` time rather than a failed delivery later."""
    probed = {**context, **{name: RecipientProbe() for name in SEND_TIME_NAMES}}
    with translation.override(language or None):
        sources = resolve(notification_type, channel, language)
        for part in PARTS:
            _text, missing = _render(sources[part], probed)
            missing = [name for name in missing if name.split(".", 1)[0].split("|", 1)[0] not in SEND_TIME_NAMES]
            if missing:
                raise MissingContextError(notification_type.key, f"{channel} {part}", missing, context.keys())


def _url_source(notification_type: NotificationType) -> Source:
    source = str(notification_type.url or "")
    return Source("type", f"{notification_type.key}.url", compile_template(source) if source else None)


def render_stored(
    notification: Any,
    notification_type: NotificationType,
    channel: str,
    *,
    parts: tuple[str, ...] = ("title", "body"),
    extra: Mapping[str, Any] | None = None,
) -> Content:
    """Render a channel's own text for a stored notification, from the context kept with it.

    For channels that send the inbox text unless they have their own (:func:`has_own_text`).
    """
    from django_notify.context import thaw

    values = {
        **thaw(notification.context or {}),
        "recipient": notification.recipient,
        "notification": notification,
        "notification_type": notification_type,
        "url": notification.url,
        **(extra or {}),
    }
    return render(notification_type, channel, values, language=notification.language, parts=parts)
