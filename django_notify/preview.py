"""What a type says on a channel in a language, rendered with its sample context, for the admin.

:func:`preview` renders each part the way the channel would, and says where each
part's template came from (:class:`~django_notify.content.Source`); for an email
channel it also renders the whole message in the email layouts. :func:`overview`
tells, for every type and channel, which level each part comes from per language.
Nothing here raises on a broken template or a gap in the sample context: the
problem is reported in the result, so the admin page always renders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_notify import content
from django_notify.backends.email import MESSAGE_LAYOUTS
from django_notify.channels import ChannelHandler
from django_notify.conf import notify_settings
from django_notify.exceptions import InvalidBackendError, MissingContextError
from django_notify.models import Notification, TemplateOverride
from django_notify.registry import NotificationType, Rendered, registry
from django_notify.rendering import get_engine, render_compiled, strip_missing
from django_notify.sites import absolute_url, base_url, site_name

#: How the admin names each level of :func:`django_notify.content.resolve`.
ORIGIN_LABELS = {
    "override": gettext_lazy("override"),
    "file": gettext_lazy("template file"),
    "type": gettext_lazy("type string"),
    "generic": gettext_lazy("generic"),
}

#: The email layouts, rendered around the parts as the email backend does.
EMAIL_LAYOUTS = dict(zip(("text", "html"), MESSAGE_LAYOUTS, strict=True))

#: Where the preview's ``unsubscribe_url`` points: real messages carry a signed link per recipient.
UNSUBSCRIBE_PLACEHOLDER_PATH = "/unsubscribe/preview/"


@dataclass(frozen=True)
class PartPreview:
    """One part as rendered, where its template came from, and why it failed (``error``)."""

    part: str
    origin: str
    name: str
    output: str = ""
    error: str = ""

    @property
    def is_html(self) -> bool:
        return content.PARTS[self.part]

    @property
    def origin_label(self) -> str:
        return str(ORIGIN_LABELS.get(self.origin, self.origin))


@dataclass(frozen=True)
class EmailPreview:
    """The whole email: subject, and each layout's output or the problem that stopped it."""

    subject: str
    text: str
    html: str
    errors: Sequence[str]


@dataclass(frozen=True)
class Preview:
    notification_type: NotificationType
    channel: str
    language: str
    parts: Sequence[PartPreview]
    email: EmailPreview | None
    #: Problems outside the parts: the sample context, the sample notification's inbox text.
    errors: Sequence[str]
    #: The names the templates were given, for the admin to see what is available.
    context_names: Sequence[str]
    unsubscribe_url: str


# -- channels ---------------------------------------------------------------------


def _backend_class(alias: str) -> type[Any] | None:
    config = notify_settings.CHANNELS.get(alias)
    try:
        return ChannelHandler.backend_class(alias, config.get("BACKEND") if isinstance(config, dict) else None)
    except InvalidBackendError:
        return None


def is_inbox(alias: str) -> bool:
    """Whether ``alias`` renders at ``notify()`` time (the inbox), without the send-time names."""
    cls = _backend_class(alias)
    return bool(cls is not None and cls.is_inbox)


def is_email(alias: str) -> bool:
    """Whether ``alias`` is sent by the email backend (or a subclass of it)."""
    from django_notify.backends.email import EmailBackend

    cls = _backend_class(alias)
    return cls is not None and issubclass(cls, EmailBackend)


# -- messages ---------------------------------------------------------------------


def missing_message(exc: MissingContextError) -> str:
    names = ", ".join(f"{{{{ {name} }}}}" for name in exc.missing)
    return _(
        "The %(part)s template uses %(names)s, which the sample context does not provide: "
        "add it to the type's sample_context or defaults, or guard it with {%% if %%}."
    ) % {"part": exc.part, "names": names}


def error_message(exc: Exception) -> str:
    return _("The template failed: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}


# -- preview ----------------------------------------------------------------------


def unsubscribe_placeholder() -> str:
    return (base_url() or "https://example.com") + UNSUBSCRIBE_PLACEHOLDER_PATH


def preview(notification_type: NotificationType, channel: str, language: str, user: Any) -> Preview:
    """Render every part of ``notification_type`` on ``channel`` in ``language`` for ``user``."""
    errors: list[str] = []
    with translation.override(language or None):
        try:
            values = notification_type.get_context(notification_type.sample_context)
        except ValueError as exc:
            errors.append(str(exc))
            values = dict(notification_type.defaults)
        values["recipient"] = user
        inbox_errors: list[str] = []
        inbox = _sample_inbox(notification_type, values, language, report=inbox_errors)
        if not is_inbox(channel):  # on the inbox channel, its parts below report the same
            errors.extend(inbox_errors)
        notification = Notification(
            recipient=user,
            type=notification_type.key,
            category=notification_type.category,
            title=inbox.title,
            body=inbox.body,
            url=inbox.url,
            language=language,
            created_at=timezone.now(),
        )
        unsubscribe_url = unsubscribe_placeholder()
        if not is_inbox(channel):
            # What a channel that renders when it sends adds (see content.SEND_TIME_NAMES).
            values = {
                **values,
                "notification": notification,
                "notification_type": notification_type,
                "url": absolute_url(inbox.url),
                "site_name": site_name(),
                "base_url": base_url(),
                "unsubscribe_url": unsubscribe_url,
            }
        parts = _render_parts(notification_type, channel, language, values)
        email = _render_email(values, parts) if is_email(channel) else None
    return Preview(
        notification_type=notification_type,
        channel=channel,
        language=language,
        parts=parts,
        email=email,
        errors=errors,
        context_names=sorted(values),
        unsubscribe_url=unsubscribe_url,
    )


def _sample_inbox(
    notification_type: NotificationType, values: Mapping[str, Any], language: str, *, report: list[str]
) -> Rendered:
    try:
        return content.render_inbox(notification_type, values, language=language)
    except MissingContextError as exc:
        report.append(_("The sample notification has no inbox text.") + " " + missing_message(exc))
    except Exception as exc:  # any template error: the page reports it instead of failing
        report.append(_("The sample notification has no inbox text.") + " " + error_message(exc))
    return Rendered(title="", body="", url="")


def _render_parts(
    notification_type: NotificationType, channel: str, language: str, values: Mapping[str, Any]
) -> list[PartPreview]:
    try:
        sources = content.resolve(notification_type, channel, language)
    except TemplateSyntaxError as exc:  # a template file or type string that does not compile
        return [PartPreview(part, "", "", error=error_message(exc)) for part in content.PARTS]
    parts = []
    for part, source in sources.items():
        try:
            rendered = content.render(notification_type, channel, values, language=language, parts=(part,))
        except MissingContextError as exc:
            parts.append(PartPreview(part, source.origin, source.name, error=missing_message(exc)))
        except Exception as exc:  # a filter or tag that raises: shown, never a server error
            parts.append(PartPreview(part, source.origin, source.name, error=error_message(exc)))
        else:
            parts.append(PartPreview(part, source.origin, source.name, output=getattr(rendered, part)))
    return parts


def _render_email(values: Mapping[str, Any], parts: Sequence[PartPreview]) -> EmailPreview:
    output = {part.part: part.output for part in parts}
    # As the email backend does: the HTML part is escaped already, the layout marks it safe.
    layout_values = {**values, "title": output["title"], "body": output["body"], "html": output["html"]}
    errors: list[str] = []
    rendered: dict[str, str] = {}
    for kind, name in EMAIL_LAYOUTS.items():
        try:
            template = get_engine(autoescape=kind == "html").get_template(name)
            text, missing = render_compiled(template, layout_values)
        except TemplateDoesNotExist:
            errors.append(_("The email layout %(name)s was not found.") % {"name": name})
            continue
        except Exception as exc:  # a broken layout is reported like a broken part
            errors.append(f"{name}: {error_message(exc)}")
            continue
        if missing:
            names = ", ".join(f"{{{{ {variable} }}}}" for variable in sorted(set(missing)))
            errors.append(
                _("The email layout %(name)s uses %(names)s, which is not provided.") % {"name": name, "names": names}
            )
        rendered[kind] = strip_missing(text).strip()
    return EmailPreview(
        subject=output["title"], text=rendered.get("text", ""), html=rendered.get("html", ""), errors=errors
    )


# -- overview ---------------------------------------------------------------------


@dataclass
class Level:
    """Where one part comes from for some languages (``languages`` empty: every other language)."""

    origin: str
    name: str
    languages: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def origin_label(self) -> str:
        return str(ORIGIN_LABELS.get(self.origin, self.origin))


@dataclass(frozen=True)
class OverviewRow:
    notification_type: NotificationType
    channel: str
    #: ``(part, levels)``: the level most languages use first, then the languages that differ.
    parts: Sequence[tuple[str, Sequence[Level]]]


def _chain(code: str) -> set[str]:
    code = code.lower()
    return {code, code.split("-", 1)[0]}


def overview(languages: Iterable[str]) -> list[OverviewRow]:
    """Every registered type on every configured channel, with each part's level per language.

    Languages differ only where an override names them (or their generic code), so only
    those are resolved apart; one resolution with no language stands for all the others.
    """
    languages = list(languages)
    scoped: dict[tuple[str, str], set[str]] = {}
    for type_key, channel, language in TemplateOverride.objects.filter(is_active=True).values_list(
        "type", "channel", "language"
    ):
        if language:
            scoped.setdefault((type_key, channel), set()).add(language.lower())
    rows = []
    for notification_type in registry:
        for channel in notify_settings.CHANNELS:
            named = scoped.get((notification_type.key, channel), set())
            special = [code for code in languages if _chain(code) & named]
            rows.append(OverviewRow(notification_type, channel, _levels(notification_type, channel, special)))
    return rows


def _levels(
    notification_type: NotificationType, channel: str, languages: Sequence[str]
) -> list[tuple[str, list[Level]]]:
    by_language: dict[str, dict[str, content.Source] | str] = {}
    for code in ["", *languages]:
        try:
            by_language[code] = content.resolve(notification_type, channel, code)
        except TemplateSyntaxError as exc:
            by_language[code] = error_message(exc)
    parts = []
    for part in content.PARTS:
        # The first level, with no language, is what every language not listed after it gets.
        levels: dict[tuple[str, str, str], Level] = {}
        for code, sources in by_language.items():
            key = ("", "", sources) if isinstance(sources, str) else (sources[part].origin, sources[part].name, "")
            if code and key == next(iter(levels)):
                continue
            level = levels.setdefault(key, Level(origin=key[0], name=key[1], error=key[2]))
            if code:
                level.languages.append(code)
        parts.append((part, list(levels.values())))
    return parts
