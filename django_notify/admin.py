"""The Django admin for django_notify, built for tables of millions of rows.

No changelist runs a query per row or a ``SELECT DISTINCT`` over a table: list
filters take their values from the registry and the ``CHANNELS`` setting, and the
search box finds users first, then their rows through the indexes that start with
the user. Rows that django_notify writes itself (notifications, deliveries, push
subscriptions, engagement events) are read-only; they change only through actions.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterable
from functools import partial, reduce
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_notify import preview, queue
from django_notify.api.push import browser_label
from django_notify.conf import notify_settings
from django_notify.languages import site_language
from django_notify.models import (
    Delivery,
    DeliveryStatus,
    EngagementEvent,
    Notification,
    NotificationQuerySet,
    Preference,
    PushSubscription,
    TemplateOverride,
    UserPreferences,
)
from django_notify.push import push_channel
from django_notify.registry import TEST_TYPE, registry
from django_notify.rendering import one_line, truncate
from django_notify.service import notify

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

#: Push subscription fields never shown, edited or searched: bearer secrets (RFC 8030 §8.3).
PUSH_SECRET_FIELDS = ("endpoint", "p256dh", "auth")

#: Statuses the "Requeue" action moves back to pending.
REQUEUEABLE_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED, DeliveryStatus.SKIPPED)


# -- search -----------------------------------------------------------------------


def user_search_fields() -> list[str]:
    """The user model's fields the search box matches: its username field, and email if any."""
    user_model = get_user_model()
    names = [user_model.USERNAME_FIELD]
    email = getattr(user_model, "EMAIL_FIELD", "email")
    try:
        user_model._meta.get_field(email)
    except FieldDoesNotExist:
        return names
    return names if email in names else [*names, email]


def matching_users(search_term: str) -> QuerySet[Any]:
    """Users matching every word of ``search_term`` (as Django's admin search does), or by id."""
    user_model = get_user_model()
    fields = user_search_fields()
    users: QuerySet[Any] = user_model._default_manager.all()
    for word in smart_split(search_term):
        if word.startswith(('"', "'")) and word[0] == word[-1]:
            word = unescape_string_literal(word)
        match = reduce(operator.or_, (Q(**{f"{name}__icontains": word}) for name in fields))
        with contextlib.suppress(ValidationError):  # not an id of this user model
            match |= Q(pk=user_model._meta.pk.to_python(word))
        users = users.filter(match)
    return users


# -- list filters -----------------------------------------------------------------


class ValueListFilter(admin.SimpleListFilter):
    """Filters on one column, offering known values instead of ``SELECT DISTINCT`` ones."""

    field_path: str

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field_path: value}) if value else queryset


class TypeFilter(ValueListFilter):
    title = _("type")
    parameter_name = field_path = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t.key, str(t)) for t in registry]


class CategoryFilter(ValueListFilter):
    title = _("category")
    parameter_name = field_path = "category"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(category, category) for category in registry.categories()]


class ChannelFilter(ValueListFilter):
    title = _("channel")
    parameter_name = field_path = "channel"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(alias, alias) for alias in notify_settings.CHANNELS]


class ReadFilter(admin.SimpleListFilter):
    title = _("read")
    parameter_name = "read"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("read")), ("no", _("unread"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() not in {"yes", "no"}:
            return queryset
        filtered: QuerySet[Any] = queryset.filter(read_at__isnull=self.value() == "no")
        return filtered


# -- base classes -----------------------------------------------------------------


# django-stubs makes ModelAdmin generic, but Django's class cannot be subscripted.
class NotifyModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Defaults for every django_notify admin."""

    # The unfiltered count is a second full count on every changelist page.
    show_full_result_count = False
    #: Path from the model to the user that the search box looks up, e.g. ``"recipient"``.
    user_path: str | None = None
    search_help_text: ClassVar[StrOrPromise | None] = _("Finds rows by the user's login name, email address or id.")

    def get_search_fields(self, request: HttpRequest) -> list[str] | tuple[str, ...]:
        if self.user_path is None:
            return super().get_search_fields(request)
        return [f"{self.user_path}__{name}" for name in user_search_fields()]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if self.user_path is None:
            return super().get_search_results(request, queryset, search_term)
        if not search_term:
            return queryset, False
        # ``user_id IN (SELECT …)`` lets every index that starts with the user do the work,
        # where Django's search would OR a LIKE on the joined user table for each row.
        users = matching_users(search_term).values("pk")
        return queryset.filter(**{f"{self.user_path}__in": users}), False


class ReadOnlyAdmin(NotifyModelAdmin):
    """Rows django_notify writes itself: viewed in the admin, changed only by its actions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_bulk_change_permission(self, request: HttpRequest) -> bool:
        """Actions need the model's change permission, which no form uses."""
        return super().has_change_permission(request)

    def report(self, request: HttpRequest, message: str, count: int) -> None:
        """Tell how many rows an action changed; none is worth a warning."""
        self.message_user(request, message % {"count": count}, messages.SUCCESS if count else messages.WARNING)


# -- notifications and deliveries -------------------------------------------------


class DeliveryInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Delivery
    fields = ("channel", "status", "attempts", "next_attempt_at", "sent_at", "last_error")
    ordering = ("pk",)
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    # Read-only: the text was rendered once and may already have been emailed or pushed.
    list_display = ("title", "type", "category", "recipient", "visible_at", "read")
    list_filter = (TypeFilter, CategoryFilter, ReadFilter)
    list_select_related = ("recipient",)
    raw_id_fields = ("recipient",)
    user_path = "recipient"
    # Newest first by primary key: every other index starts with the recipient, so
    # the model's ordering (visible_at) would sort the whole table for page one.
    ordering = ("-pk",)
    fieldsets = (
        (None, {"fields": ("recipient", "type", "category", "title", "body", "url", "data")}),
        (
            _("Actor and target"),
            {
                "fields": (
                    ("actor_repr", "actor_content_type", "actor_object_id"),
                    ("target_repr", "target_content_type", "target_object_id"),
                )
            },
        ),
        (
            _("State"),
            {"fields": (*Notification.TIMES, "idempotency_key")},
        ),
    )
    inlines = (DeliveryInline,)
    actions = ("mark_read", "mark_unread")

    @admin.display(description=_("read"), boolean=True, ordering="read_at")
    def read(self, obj: Notification) -> bool:
        return obj.is_read

    @admin.action(description=_("Mark as read"), permissions=["bulk_change"])
    def mark_read(self, request: HttpRequest, queryset: NotificationQuerySet) -> None:
        count = queryset.mark_read()
        message = ngettext("%(count)d notification marked as read.", "%(count)d notifications marked as read.", count)
        self.report(request, message, count)

    @admin.action(description=_("Mark as unread"), permissions=["bulk_change"])
    def mark_unread(self, request: HttpRequest, queryset: NotificationQuerySet) -> None:
        count = queryset.mark_unread()
        message = ngettext(
            "%(count)d notification marked as unread.", "%(count)d notifications marked as unread.", count
        )
        self.report(request, message, count)


def endpoint_host(value: str) -> str | None:
    """The host of a URL, or ``None``: all of a push endpoint that is safe to show."""
    try:
        return urlsplit(value).hostname
    except ValueError:
        return None


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "notification",
        "recipient",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "short_error",
    )
    list_filter = ("status", ChannelFilter)
    list_select_related = ("notification__recipient",)
    raw_id_fields = ("notification", "subscription")
    user_path = "notification__recipient"
    fields = (
        "notification",
        "channel",
        "subscription",
        "shown_destination",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "expires_at",
        "leased_until",
        "lease_id",
        "sent_at",
        "last_error",
        "provider_response",
    )
    readonly_fields = ("shown_destination",)
    actions = ("requeue",)

    @admin.display(description=_("recipient"), ordering="notification__recipient")
    def recipient(self, obj: Delivery) -> Any:
        return obj.notification.recipient

    @admin.display(description=_("last error"))
    def short_error(self, obj: Delivery) -> str:
        return truncate(one_line(obj.last_error), 80)

    @admin.display(description=_("destination"))
    def shown_destination(self, obj: Delivery) -> str | None:
        # A push destination may be the subscription's endpoint, a bearer secret.
        if "://" in obj.destination:
            return endpoint_host(obj.destination)
        return obj.destination

    @admin.action(description=_("Requeue failed, expired or skipped deliveries"), permissions=["bulk_change"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        now = timezone.now()
        count = queryset.filter(status__in=REQUEUEABLE_STATUSES).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            leased_until=None,
            lease_id=None,
            finished_at=None,
            # A passed deadline would expire the row again before it is sent.
            expires_at=Case(When(expires_at__lte=now, then=Value(None)), default=F("expires_at")),
        )
        if count:
            # Each requeued row gets one more attempt, even past MAX_ATTEMPTS.
            transaction.on_commit(partial(queue.kick, count))
        message = ngettext("%(count)d delivery requeued.", "%(count)d deliveries requeued.", count)
        self.report(request, message, count)


# -- push subscriptions -----------------------------------------------------------


class DeactivationReasonFilter(admin.SimpleListFilter):
    """Why a subscription was deactivated, grouped: the backend writes free text after a fixed word."""

    title = _("deactivation reason")
    parameter_name = "deactivation"

    #: (value, label, rows): the reasons :mod:`django_notify.backends.webpush` and this admin write.
    REASONS: ClassVar[tuple[tuple[str, StrOrPromise, Q], ...]] = (
        (
            "gone",
            _("Gone at the push service (404, 410)"),
            Q(deactivation_reason__in=("HTTP 404", "HTTP 410", "gone")),
        ),
        ("endpoint", _("Endpoint refused (SSRF rules)"), Q(deactivation_reason__startswith="endpoint_")),
        ("keys", _("Invalid subscription keys"), Q(deactivation_reason__startswith="bad subscription keys")),
        ("vapid_key", _("Made with another VAPID key"), Q(deactivation_reason__startswith="subscribed with another")),
        ("admin", _("Deactivated in the admin"), Q(deactivation_reason="admin")),
    )

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [*((value, label) for value, label, _rows in self.REASONS), ("other", _("Other"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "other":
            known = reduce(operator.or_, (rows for _value, _label, rows in self.REASONS))
            return queryset.filter(is_active=False).exclude(known)
        for option, _label, rows in self.REASONS:
            if value == option:
                return queryset.filter(rows)
        return queryset


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    """Subscriptions without their secrets: the endpoint shows as its push service's host only."""

    list_display = (
        "id",
        "user",
        "browser",
        "push_service",
        "is_active",
        "last_success_at",
        "last_failure_at",
        "failure_count",
        "deactivation_reason",
        "created_at",
    )
    list_filter = ("is_active", DeactivationReasonFilter)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    user_path = "user"
    # ``fields`` keeps the secrets off the page, ``exclude`` out of any form a subclass enables.
    exclude = PUSH_SECRET_FIELDS
    fields = (
        "user",
        "browser",
        "push_service",
        "secrets",
        "vapid_key_id",
        "user_agent",
        "preferences",
        "expiration_time",
        "is_active",
        "deactivated_at",
        "deactivation_reason",
        "created_at",
        "updated_at",
        "last_success_at",
        "last_failure_at",
        "failure_count",
    )
    readonly_fields = ("browser", "push_service", "secrets")
    actions = ("send_test_push", "deactivate", "reactivate")

    @admin.display(description=_("browser"))
    def browser(self, obj: PushSubscription) -> str:
        return browser_label(obj.user_agent) or "-"

    @admin.display(description=_("push service"))
    def push_service(self, obj: PushSubscription) -> str | None:
        return endpoint_host(obj.endpoint)

    @admin.display(description=_("endpoint and keys"))
    def secrets(self, obj: PushSubscription) -> StrOrPromise:
        return _("hidden (secret)")

    @admin.action(description=_("Send a test push"), permissions=["bulk_change"])
    def send_test_push(self, request: HttpRequest, queryset: QuerySet[PushSubscription]) -> None:
        backend = push_channel()
        if backend is None:
            self.message_user(
                request,
                _('Web Push is not configured: add a channel with WebPushBackend to DJANGO_NOTIFY["CHANNELS"].'),
                messages.ERROR,
            )
            return
        users = list(queryset.filter(is_active=True).order_by().values_list("user", flat=True).distinct())
        if not users:
            self.message_user(
                request, _("None of the selected subscriptions is active: nothing sent."), messages.WARNING
            )
            return
        # To each user's active subscriptions, as push/test/ does: the engine fans out per browser.
        result = notify(TEST_TYPE, users, channels=[backend.alias])
        # Two sentences, each with its own plural: "1 user: 3 deliveries", "2 users: 1 delivery".
        for_users = ngettext(
            "Test push queued for %(users)d user.", "Test push queued for %(users)d users.", len(users)
        )
        deliveries = ngettext(
            "%(count)d delivery, one per active subscription.",
            "%(count)d deliveries, one per active subscription.",
            result.deliveries,
        )
        queued = f"{for_users % {'users': len(users)}} {deliveries % {'count': result.deliveries}}"
        self.message_user(request, queued, messages.SUCCESS)

    @admin.action(description=_("Deactivate"), permissions=["bulk_change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[PushSubscription]) -> None:
        count = queryset.filter(is_active=True).update(
            is_active=False, deactivated_at=timezone.now(), deactivation_reason="admin"
        )
        message = ngettext(
            "%(count)d push subscription deactivated.", "%(count)d push subscriptions deactivated.", count
        )
        self.report(request, message, count)

    @admin.action(description=_("Reactivate"), permissions=["bulk_change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[PushSubscription]) -> None:
        count = queryset.filter(is_active=False).update(
            is_active=True, deactivated_at=None, deactivation_reason="", failure_count=0
        )
        message = ngettext(
            "%(count)d push subscription reactivated.", "%(count)d push subscriptions reactivated.", count
        )
        self.report(request, message, count)


# -- preferences and templates ----------------------------------------------------


def _check_known(value: str, known: Iterable[str], message: StrOrPromise) -> str:
    known = list(known)
    if value and value not in known:
        params = {"value": value, "known": ", ".join(known) or "-"}
        raise ValidationError(message, code="unknown", params=params)
    return value


class ScopeForm(forms.ModelForm):  # type: ignore[type-arg]
    """Rejects a type, category or channel nobody configured: such a row would never match."""

    def clean_type(self) -> str:
        message = _("%(value)s is not a registered notification type. Registered: %(known)s.")
        return _check_known(self.cleaned_data["type"], registry.keys(), message)

    def clean_category(self) -> str:
        message = _("%(value)s is not the category of a registered type. Categories: %(known)s.")
        return _check_known(self.cleaned_data["category"], registry.categories(), message)

    def clean_channel(self) -> str:
        message = _('%(value)s is not a channel of DJANGO_NOTIFY["CHANNELS"]. Channels: %(known)s.')
        return _check_known(self.cleaned_data["channel"], notify_settings.CHANNELS, message)


def _any(value: str) -> str:
    return value or str(_("any"))


@admin.register(Preference)
class PreferenceAdmin(NotifyModelAdmin):
    form = ScopeForm
    list_display = ("user", "channel_scope", "category_scope", "type_scope", "enabled", "frequency", "updated_at")
    list_filter = (ChannelFilter, CategoryFilter, TypeFilter, "enabled", "frequency")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    user_path = "user"
    fields = ("user", "channel", "category", "type", "enabled", "frequency", "updated_at")
    readonly_fields = ("updated_at",)

    @admin.display(description=_("channel"), ordering="channel")
    def channel_scope(self, obj: Preference) -> str:
        return _any(obj.channel)

    @admin.display(description=_("category"), ordering="category")
    def category_scope(self, obj: Preference) -> str:
        return _any(obj.category)

    @admin.display(description=_("type"), ordering="type")
    def type_scope(self, obj: Preference) -> str:
        return _any(obj.type)


@admin.register(UserPreferences)
class UserPreferencesAdmin(NotifyModelAdmin):
    list_display = ("user", "timezone", "quiet_hours_start", "quiet_hours_end", "updated_at")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    user_path = "user"
    fields = ("user", "timezone", ("quiet_hours_start", "quiet_hours_end"), "updated_at")
    readonly_fields = ("updated_at",)


def _select(field: forms.Field, choices: list[tuple[str, Any]], current: Any) -> None:
    """Show ``field`` as a select of ``choices``, keeping a saved value no longer among them."""
    if current and current not in {value for value, _label in choices}:
        choices.append((current, current))
    field.widget = forms.Select(choices=choices)


def type_choices() -> list[tuple[str, str]]:
    return [(t.key, t.key if str(t) == t.key else f"{t} ({t.key})") for t in registry]


class TemplateOverrideForm(ScopeForm):
    """Type, channel and language picked from what is configured; the templates are checked by the model."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        blank = [("", "---------")]
        choices: dict[str, list[tuple[str, Any]]] = {
            "type": [*blank, *type_choices()],
            "channel": [*blank, *((alias, alias) for alias in notify_settings.CHANNELS)],
            "language": [("", _("Every language")), *settings.LANGUAGES],
        }
        for name, options in choices.items():
            if name in self.fields:
                _select(self.fields[name], options, self.initial.get(name))


class PreviewForm(forms.Form):
    """The type, channel and language to preview."""

    type = forms.ChoiceField(label=_("type"))
    channel = forms.ChoiceField(label=_("channel"))
    language = forms.ChoiceField(label=_("language"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = {
            "type": type_choices(),
            "channel": [(alias, alias) for alias in notify_settings.CHANNELS],
            "language": list(settings.LANGUAGES),
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = options

    @classmethod
    def defaults(cls) -> dict[str, str]:
        return {
            "type": next((t.key for t in registry), ""),
            "channel": next(iter(notify_settings.CHANNELS), ""),
            "language": site_language(),
        }


@admin.register(TemplateOverride)
class TemplateOverrideAdmin(NotifyModelAdmin):
    form = TemplateOverrideForm
    list_display = ("type", "channel", "language", "is_active", "updated_at")
    list_filter = (TypeFilter, ChannelFilter, "is_active")
    # A small table, edited by hand: plain search is fine here.
    search_fields = ("type", "title")
    search_help_text = None
    ordering = ("type", "channel", "language")
    fieldsets = (
        (None, {"fields": ("type", "channel", "language", "is_active", "updated_at")}),
        (_("Templates"), {"fields": ("title", "body", "html")}),
    )
    readonly_fields = ("updated_at",)
    preview_template = "admin/django_notify/templateoverride/preview.html"

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_preview"
        # Before the model's own URLs, whose "<object_id>/" would take "preview/".
        return [path("preview/", self.admin_site.admin_view(self.preview_view), name=name), *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """Every part of a type on a channel in a language, rendered with the type's sample context."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PreviewForm({**PreviewForm.defaults(), **request.GET.dict()})
        result = None
        if form.is_valid():
            result = preview.preview(
                registry.get(form.cleaned_data["type"]),
                form.cleaned_data["channel"],
                form.cleaned_data["language"],
                request.user,
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Preview of notification templates"),
            "form": form,
            "preview": result,
            "overview": preview.overview(code for code, _name in settings.LANGUAGES),
            "languages": settings.LANGUAGES,
        }
        return TemplateResponse(request, self.preview_template, context)


# -- engagement -------------------------------------------------------------------


@admin.register(EngagementEvent)
class EngagementEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "type", "channel", "action", "notification")
    list_filter = ("kind", TypeFilter, ChannelFilter)
    list_select_related = ("notification",)
    raw_id_fields = ("notification", "delivery")
    user_path = "notification__recipient"
    fields = ("notification", "delivery", "type", "channel", "kind", "action", "created_at", "metadata")
