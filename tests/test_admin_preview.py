from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from django_notify import NotificationType, content, registry
from django_notify.models import TemplateOverride

LANGUAGES = [("en", "English"), ("de", "German"), ("pt-br", "Brazilian Portuguese")]

pytestmark = pytest.mark.usefixtures("_few_languages", "_fresh_caches")


@pytest.fixture
def _few_languages() -> Iterator[None]:
    # Django's default LANGUAGES has about a hundred; the preview loops over all of them.
    with override_settings(LANGUAGES=LANGUAGES, LANGUAGE_CODE="en"):
        yield


@pytest.fixture
def _fresh_caches() -> Iterator[None]:
    content.clear_caches()
    yield
    content.clear_caches()


@pytest.fixture
def staff(user_factory: Callable[..., Any]) -> Any:
    return user_factory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def hostile_type() -> Iterator[NotificationType]:
    notification_type = NotificationType(
        key="hostile",
        title="Hi {{ name }}",
        body="Body {{ name }}",
        url="/orders/{{ number }}/",
        channels=["in_app", "email"],
        sample_context={"name": "<script>alert(1)</script>", "number": "7"},
    )
    registry.register(notification_type)
    yield notification_type
    registry.unregister(notification_type)


@pytest.fixture
def email_channel() -> Iterator[None]:
    """The ``email`` alias sent by the real email backend, when it exists."""
    if importlib.util.find_spec("django_notify.backends.email") is None:
        pytest.skip("django_notify.backends.email is not there yet")
    channels = {**settings.DJANGO_NOTIFY["CHANNELS"], "email": {"BACKEND": "django_notify.backends.email.EmailBackend"}}
    with override_settings(DJANGO_NOTIFY={**settings.DJANGO_NOTIFY, "CHANNELS": channels, "SITE_NAME": "Shop"}):
        yield


def preview_url() -> str:
    return reverse("admin:django_notify_templateoverride_preview")


def show(client: Client, **query: str) -> Any:
    response = client.get(preview_url(), query)
    assert response.status_code == 200
    return response


def part(response: Any, name: str) -> Any:
    return next(p for p in response.context["preview"].parts if p.part == name)


# -- pages ------------------------------------------------------------------------


def test_every_type_channel_and_language_renders(staff_client: Client) -> None:
    for notification_type in registry:
        for channel in settings.DJANGO_NOTIFY["CHANNELS"]:
            for language, _name in LANGUAGES:
                response = show(staff_client, type=notification_type.key, channel=channel, language=language)

                preview = response.context["preview"]
                assert (preview.notification_type, preview.channel, preview.language) == (
                    notification_type,
                    channel,
                    language,
                )
                assert [p.part for p in preview.parts] == ["title", "body", "html"]


def test_defaults_to_the_first_type_and_channel_in_the_site_language(staff_client: Client) -> None:
    preview = show(staff_client).context["preview"]

    first = next(iter(registry))
    assert (preview.notification_type, preview.channel, preview.language) == (first, "in_app", "en")


def test_unknown_selection_is_a_form_error(staff_client: Client) -> None:
    response = show(staff_client, type="nope", channel="fax", language="xx")

    assert response.context["preview"] is None
    assert set(response.context["form"].errors) == {"type", "channel", "language"}


def test_needs_the_view_permission(user_factory: Callable[..., Any]) -> None:
    staff = user_factory(is_staff=True)
    client = Client()
    client.force_login(staff)

    assert client.get(preview_url()).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_templateoverride"))
    assert client.get(preview_url()).status_code == 200


def test_changelist_and_change_page_link_to_the_preview(staff_client: Client) -> None:
    override = TemplateOverride.objects.create(type="order_placed", channel="email", language="de", title="Hallo")

    changelist = staff_client.get(reverse("admin:django_notify_templateoverride_changelist")).content.decode()
    change = staff_client.get(
        reverse("admin:django_notify_templateoverride_change", args=[override.pk])
    ).content.decode()

    assert f'href="{preview_url()}"' in changelist
    assert f"{preview_url()}?type=order_placed&amp;channel=email&amp;language=de" in change


# -- where each part comes from ---------------------------------------------------


def test_type_strings(staff_client: Client) -> None:
    response = show(staff_client, type="order_placed", channel="in_app", language="en")

    title, body, html_part = (part(response, name) for name in ("title", "body", "html"))
    assert (title.origin, title.name, title.output) == ("type", "order_placed.title", "Order A-1 placed")
    assert (body.origin, body.output) == ("type", "Order A-1 for 12.50.")
    assert (html_part.origin, html_part.output) == ("generic", "")


def test_template_file(staff_client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "django_notify" / "order_placed"
    folder.mkdir(parents=True)
    (folder / "in_app_title.txt").write_text("From a file: {{ order_number }}")
    templates = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]

    with override_settings(TEMPLATES=templates):
        content.clear_caches()
        response = show(staff_client, type="order_placed", channel="in_app", language="de")

    title = part(response, "title")
    assert (title.origin, title.name, title.output) == (
        "file",
        "django_notify/order_placed/in_app_title.txt",
        "From a file: A-1",
    )
    assert part(response, "body").origin == "type"


def test_override_in_a_language_and_for_every_language(staff_client: Client) -> None:
    TemplateOverride.objects.create(
        type="order_placed", channel="email", language="de", title="Bestellung {{ order_number }}"
    )
    TemplateOverride.objects.create(type="order_placed", channel="email", body="Every language: {{ total }}")

    german = show(staff_client, type="order_placed", channel="email", language="de")
    english = show(staff_client, type="order_placed", channel="email", language="en")

    assert (part(german, "title").origin, part(german, "title").name) == ("override", "order_placed / email / de")
    assert part(german, "title").output == "Bestellung A-1"
    assert (part(english, "title").origin, part(english, "title").output) == ("type", "Order A-1 placed")
    for response in (german, english):
        assert (part(response, "body").name, part(response, "body").output) == (
            "order_placed / email / *",
            "Every language: 12.50",
        )


def test_overview_lists_each_level_and_the_languages_that_differ(staff_client: Client) -> None:
    TemplateOverride.objects.create(type="order_placed", channel="email", language="pt", title="Pedido")

    response = show(staff_client)

    row = next(
        r for r in response.context["overview"] if (r.notification_type.key, r.channel) == ("order_placed", "email")
    )
    levels = dict(row.parts)
    assert [(level.origin, level.languages) for level in levels["title"]] == [("type", []), ("override", ["pt-br"])]
    assert [(level.origin, level.languages) for level in levels["body"]] == [("type", [])]
    assert len(response.context["overview"]) == len(registry) * len(settings.DJANGO_NOTIFY["CHANNELS"])


# -- what the page shows ----------------------------------------------------------


def test_hostile_sample_values_are_escaped(staff_client: Client, hostile_type: NotificationType) -> None:
    TemplateOverride.objects.create(type="hostile", channel="email", html="<p>Hello {{ name }}</p>")

    response = show(staff_client, type="hostile", channel="email", language="en")

    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page
    assert part(response, "html").output == "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert 'srcdoc="&lt;p&gt;Hello &amp;lt;script&amp;gt;' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the plain text parts, escaped by the page


def test_a_hostile_override_cannot_run_script_in_the_admin(staff_client: Client) -> None:
    TemplateOverride.objects.create(type="order_placed", channel="email", html="<script>parent.steal()</script>")

    page = show(staff_client, type="order_placed", channel="email", language="en").content.decode()

    assert "<script>parent.steal()" not in page
    assert '<iframe sandbox srcdoc="&lt;script&gt;parent.steal()&lt;/script&gt;"' in page


def test_a_missing_variable_is_named_not_a_server_error(staff_client: Client) -> None:
    TemplateOverride.objects.create(type="order_placed", channel="email", body="For {{ customer_name }}")

    response = show(staff_client, type="order_placed", channel="email", language="en")

    body = part(response, "body")
    assert body.origin == "override"
    assert "{{ customer_name }}" in body.error
    assert "sample context does not provide" in response.content.decode()
    assert part(response, "title").output == "Order A-1 placed"


def test_a_template_error_is_shown_not_a_server_error(staff_client: Client) -> None:
    TemplateOverride.objects.create(type="order_placed", channel="email", title="{% url 'no-such-view' %}")

    response = show(staff_client, type="order_placed", channel="email", language="en")

    title = part(response, "title")
    assert (title.origin, title.output) == ("override", "")
    assert "NoReverseMatch" in title.error
    assert part(response, "body").output == "Order A-1 for 12.50."


def test_a_template_file_that_does_not_compile_is_shown(staff_client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "django_notify" / "order_placed"
    folder.mkdir(parents=True)
    (folder / "email_body.txt").write_text("{% if %}")

    with override_settings(TEMPLATES=[{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]):
        content.clear_caches()
        response = show(staff_client, type="order_placed", channel="email", language="en")

    assert all("TemplateSyntaxError" in p.error for p in response.context["preview"].parts)


def test_sending_channels_get_the_send_time_names(staff_client: Client) -> None:
    TemplateOverride.objects.create(
        type="order_placed", channel="email", body="{{ unsubscribe_url }} {{ notification.title }} {{ url }}"
    )

    response = show(staff_client, type="order_placed", channel="email", language="en")

    assert part(response, "body").output == "https://example.com/unsubscribe/preview/ Order A-1 placed"
    inbox = show(staff_client, type="order_placed", channel="in_app", language="en").context["preview"]
    assert "unsubscribe_url" not in inbox.context_names


def test_the_whole_email(staff_client: Client, hostile_type: NotificationType, email_channel: None) -> None:
    response = show(staff_client, type="hostile", channel="email", language="en")

    email = response.context["preview"].email
    assert email is not None
    assert email.errors == []
    assert email.subject == "Hi <script>alert(1)</script>"
    assert "Body <script>alert(1)</script>" in email.text
    assert "Body &lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    page = response.content.decode()
    assert "<iframe sandbox srcdoc=" in page
    assert "<script>alert(1)</script>" not in page


def test_no_whole_email_for_other_backends(staff_client: Client) -> None:
    response = show(staff_client, type="order_placed", channel="email", language="en")

    assert response.context["preview"].email is None  # the test settings send "email" with LocMemBackend


# -- validation -------------------------------------------------------------------


def add(client: Client, **fields: str) -> Any:
    data = {"type": "order_placed", "channel": "email", "language": "", "is_active": "on", **fields}
    return client.post(reverse("admin:django_notify_templateoverride_add"), data)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"title": "{% debug %}"}, {"title"}),
        ({"html": "{% load static %}<img>"}, {"html"}),
        ({"body": "{% if %}"}, {"body"}),
        ({"title": "{{ total|no_such_filter }}"}, {"title"}),
        ({"type": "nope"}, {"type"}),
        ({"channel": "fax"}, {"channel"}),
        ({"language": "xx"}, {"language"}),
    ],
)
def test_form_refuses(staff_client: Client, fields: dict[str, str], errors: set[str]) -> None:
    response = add(staff_client, **fields)

    assert response.status_code == 200
    form_errors = response.context["adminform"].form.errors
    assert set(form_errors) == errors
    assert all(len(messages) == 1 for messages in form_errors.values())  # the form and the model agree
    assert not TemplateOverride.objects.exists()


def test_form_error_names_the_problem(staff_client: Client) -> None:
    debug = add(staff_client, title="{% debug %}").context["adminform"].form.errors["title"]
    syntax = add(staff_client, body="{% if %}").context["adminform"].form.errors["body"]

    assert "{% debug %}" in debug[0]
    assert "if" in syntax[0]


def test_form_saves_a_good_override(staff_client: Client) -> None:
    response = add(staff_client, language="pt-BR", title="Pedido {{ order_number }}", html="<b>{{ total }}</b>")

    assert response.status_code == 302
    assert TemplateOverride.objects.get().language == "pt-br"


def test_form_offers_what_is_configured(staff_client: Client) -> None:
    form = staff_client.get(reverse("admin:django_notify_templateoverride_add")).context["adminform"].form

    assert sorted(value for value, _label in form.fields["type"].widget.choices) == ["", *registry.keys()]
    assert [value for value, _label in form.fields["channel"].widget.choices] == ["", "in_app", "email", "sms"]
    assert [value for value, _label in form.fields["language"].widget.choices] == ["", "en", "de", "pt-br"]


@pytest.mark.django_db
def test_full_clean_refuses_what_the_form_refuses() -> None:
    override = TemplateOverride(
        type="nope", channel="fax", language="xx", title="{% include 'x.html' %}", html="{% x %}"
    )

    with pytest.raises(ValidationError) as caught:
        override.full_clean()

    assert set(caught.value.message_dict) == {"type", "channel", "language", "title", "html"}
