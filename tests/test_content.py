"""Template resolution, recipient languages and the context kept for send-time rendering."""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from django_notify import NotificationType, content, languages, notify
from django_notify.context import freeze, thaw, thaw_many
from django_notify.exceptions import MissingContextError
from django_notify.models import Notification, TemplateOverride
from django_notify.testing import registered
from tests.testapp.models import Order, Profile

PACKAGE = Path(__file__).resolve().parent.parent / "django_notify"
LANGUAGES = [("en", "English"), ("de", "German"), ("fr", "French"), ("pt-br", "Brazilian Portuguese")]

#: Renders the language it was rendered in, so a test sees which one was active.
SPEAKS = NotificationType(
    key="speaks",
    category="tests",
    title="{% load i18n %}{% get_current_language as lang %}[{{ lang }}] {{ item }}",
    body="{{ item }}",
    channels=["in_app", "email"],
)


def notify_settings(**extra):
    return {
        "CHANNELS": {
            "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
            "email": {"BACKEND": "django_notify.backends.locmem.LocMemBackend"},
        },
        "DELIVERY_MODE": "manual",
        **extra,
    }


def with_language(user_factory, code):
    user = user_factory()
    if code is not None:
        Profile.objects.create(user=user, language=code)
    return user


# -- resolution order -------------------------------------------------------------


@pytest.fixture
def template_dir(tmp_path, settings):
    """A project templates directory searched before the apps' (like a host's ``DIRS``)."""
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    content.clear_caches()
    yield tmp_path
    content.clear_caches()


def write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    content.clear_caches()


@pytest.mark.django_db
def test_the_type_strings_are_the_default():
    with registered(SPEAKS):
        sources = content.resolve(SPEAKS, "email", "de")
    assert sources["title"].origin == "type"
    assert sources["body"].origin == "type"
    assert sources["html"].origin == "generic" and sources["html"].template is None


@pytest.mark.django_db
def test_a_template_file_beats_the_type(template_dir):
    write(template_dir, "django_notify/speaks/email_title.txt", "File title {{ item }}")
    write(template_dir, "django_notify/speaks/email_body.html", "<b>{{ item }}</b>")
    with registered(SPEAKS):
        rendered = content.render(SPEAKS, "email", {"item": "<flour>"}, language="en")
    assert rendered.sources["title"].origin == "file"
    assert rendered.sources["title"].name == "django_notify/speaks/email_title.txt"
    assert rendered.title == "File title <flour>"  # plain text: never escaped
    assert rendered.html == "<b>&lt;flour&gt;</b>"  # HTML: escaped
    assert rendered.body == "<flour>"  # no body file: the type's string


@pytest.mark.django_db
def test_a_database_override_beats_a_file_and_prefers_the_language(template_dir):
    write(template_dir, "django_notify/speaks/email_title.txt", "File title")
    TemplateOverride.objects.create(type="speaks", channel="email", language="", title="Any language {{ item }}")
    TemplateOverride.objects.create(type="speaks", channel="email", language="pt", title="Português {{ item }}")
    TemplateOverride.objects.create(type="speaks", channel="email", language="de", title="Deutsch {{ item }}")
    TemplateOverride.objects.create(type="speaks", channel="email", language="fr", title="inactive", is_active=False)
    with registered(SPEAKS), override_settings(LANGUAGES=LANGUAGES):
        titles = {code: content.render(SPEAKS, "email", {"item": "x"}, language=code).title for code in LANGUAGES_CODES}
    assert titles == {"de": "Deutsch x", "pt-br": "Português x", "fr": "Any language x", "en": "Any language x"}


LANGUAGES_CODES = ["de", "pt-br", "fr", "en"]


@pytest.mark.django_db
def test_an_override_part_left_blank_falls_through_to_the_next_level():
    TemplateOverride.objects.create(type="speaks", channel="email", language="", body="Override body")
    with registered(SPEAKS):
        sources = content.resolve(SPEAKS, "email", "en")
    assert sources["body"].origin == "override"
    assert sources["title"].origin == "type"


@pytest.mark.django_db
def test_saving_an_override_is_seen_at_once_in_this_process():
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY={**notify_settings(), "TEMPLATE_CACHE_SECONDS": 3600}):
        assert content.resolve(SPEAKS, "in_app")["title"].origin == "type"
        row = TemplateOverride.objects.create(type="speaks", channel="in_app", title="New")
        assert content.resolve(SPEAKS, "in_app")["title"].origin == "override"
        row.delete()
        assert content.resolve(SPEAKS, "in_app")["title"].origin == "type"


@pytest.mark.django_db
def test_an_override_with_a_forbidden_tag_is_skipped_and_logged(caplog):
    TemplateOverride.objects.create(type="speaks", channel="email", title="{% debug %}")
    with registered(SPEAKS):
        assert content.resolve(SPEAKS, "email")["title"].origin == "type"
    assert "is not used" in caplog.text


@pytest.mark.parametrize(
    "source",
    ["{% debug %}", "{% load i18n %}x", '{% include "admin/base.html" %}', '{% extends "admin/base.html" %}'],
)
def test_override_problems_name_the_forbidden_tags(source):
    problems = content.override_problems(source)
    assert problems and "{% debug %}" in problems[0]


def test_override_problems_report_syntax_errors():
    assert content.override_problems("{% if %}")
    assert content.override_problems("{{ fine }} {% if x %}y{% endif %}") == []


@pytest.mark.django_db
def test_the_inbox_text_follows_the_in_app_chain(user_factory):
    TemplateOverride.objects.create(type="speaks", channel="in_app", title="Inbox: {{ item }}")
    user = user_factory()
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY=notify_settings()):
        notify("speaks", user, context={"item": "Flour"})
    assert Notification.objects.get().title == "Inbox: Flour"


@pytest.mark.django_db
def test_send_time_templates_are_checked_at_notify_time(user_factory, template_dir):
    write(template_dir, "django_notify/speaks/email_body.txt", "{{ item }} {{ recipient.first_name }} {{ missing }}")
    user = user_factory()
    settings = notify_settings()
    settings["CHANNELS"]["email"] = {"BACKEND": "tests.testapp.backends.RendersOwnText"}
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY=settings), pytest.raises(MissingContextError) as caught:
        notify("speaks", user, context={"item": "x"})
    assert caught.value.missing == ["missing"]  # recipient is provided when sending
    assert not Notification.objects.exists()


# -- recipient language -----------------------------------------------------------


@pytest.mark.django_db
def test_without_a_language_setting_everyone_gets_the_site_language(user_factory):
    users = [user_factory() for _ in range(3)]
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY=notify_settings(), LANGUAGE_CODE="de"):
        notify("speaks", users, context={"item": "x"})
    assert set(Notification.objects.values_list("language", "title")) == {("de", "[de] x")}


@pytest.mark.django_db
def test_languages_from_a_related_field_split_the_fanout_set_based(user_factory):
    codes = ["de", "fr", "pt-BR", "de-at", "", None, "xx"]
    users = [with_language(user_factory, code) for code in codes]
    no_profile = user_factory()
    recipients = get_user_model().objects.filter(pk__in=[u.pk for u in [*users, no_profile]])
    settings = notify_settings(RECIPIENT_LANGUAGE="profile__language")
    with (
        registered(SPEAKS),
        override_settings(DJANGO_NOTIFY=settings, LANGUAGES=LANGUAGES, LANGUAGE_CODE="en"),
        CaptureQueriesContext(connection) as queries,
    ):
        result = notify("speaks", recipients, context={"item": "x"})
    assert result.created == 8
    got = dict(Notification.objects.values_list("recipient_id", "language"))
    expected = ["de", "fr", "pt-br", "de", "en", "en", "en"]
    assert [got[u.pk] for u in users] == expected
    assert got[no_profile.pk] == "en"
    for row in Notification.objects.all():
        assert row.title == f"[{row.language}] x"
    # One notification INSERT per language, no user loaded: no SELECT of whole users.
    table, password = connection.ops.quote_name("django_notify_notification"), connection.ops.quote_name("password")
    inserts = [q["sql"] for q in queries.captured_queries if f"INSERT INTO {table}" in q["sql"]]
    assert len(inserts) == 4
    assert not any(password in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_a_personal_template_renders_each_user_in_their_language(user_factory):
    personal = NotificationType(
        key="personal",
        title="{% load i18n %}{% get_current_language as lang %}{{ lang }} {{ recipient.username }}",
    )
    users = [with_language(user_factory, code) for code in ("de", "fr")]
    settings = notify_settings(RECIPIENT_LANGUAGE="profile__language")
    with registered(personal), override_settings(DJANGO_NOTIFY=settings, LANGUAGES=LANGUAGES):
        notify("personal", users)
    assert sorted(Notification.objects.values_list("title", flat=True)) == sorted(
        [f"de {users[0].username}", f"fr {users[1].username}"]
    )


def language_by_name(user):
    return {"anna": "de", "jean": "fr-ca"}.get(user.username)


@pytest.mark.django_db
def test_languages_from_a_callable(user_factory):
    users = [user_factory(username=name) for name in ("anna", "jean", "bob")]
    settings = notify_settings(RECIPIENT_LANGUAGE="tests.test_content.language_by_name")
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY=settings, LANGUAGES=LANGUAGES):
        result = notify("speaks", users, context={"item": "x"}, idempotency_key="k")
        again = notify("speaks", users, context={"item": "x"}, idempotency_key="k")
    assert (result.created, again.created, again.existing) == (3, 0, 3)
    got = dict(Notification.objects.values_list("recipient__username", "title"))
    assert got == {"anna": "[de] x", "jean": "[fr] x", "bob": "[en] x"}  # LANGUAGE_CODE en-us: "en" is supported


@pytest.mark.django_db
def test_languages_from_a_user_attribute(user_factory, monkeypatch):
    monkeypatch.setattr(get_user_model(), "language", property(lambda user: user.first_name), raising=False)
    user = user_factory(first_name="fr")
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY=notify_settings(), LANGUAGES=LANGUAGES):
        assert languages.language_source().kind == "attribute"
        notify("speaks", user, context={"item": "x"})
    assert Notification.objects.get().language == "fr"


def test_language_codes_are_matched_to_the_supported_ones():
    with override_settings(LANGUAGES=LANGUAGES, LANGUAGE_CODE="en"):
        normalized = [languages.normalize(code) for code in ("DE", "de_AT", "pt-br", "pt", "xx", "", None, 3)]
        # "pt" finds the one Portuguese there is; unknown, blank and non-text values find none.
        assert normalized == ["de", "de", "pt-br", "pt-br", "", "", "", ""]
        assert languages.resolve("xx") == "en"


@pytest.mark.django_db
def test_a_bad_language_setting_is_a_check_error():
    with override_settings(DJANGO_NOTIFY=notify_settings(RECIPIENT_LANGUAGE="profile__nope")):
        with pytest.raises(languages.LanguageSettingError, match="profile__nope"):
            languages.language_source()
        messages = call_check()
    assert "django_notify.E052" in messages


def call_check():
    from io import StringIO

    from django.core.management.base import SystemCheckError

    out = StringIO()
    try:
        call_command("check", stdout=out, stderr=out)
    except SystemCheckError as exc:
        return str(exc)
    return out.getvalue()


@pytest.mark.django_db
def test_reverse_relations_are_not_language_paths():
    # A reverse relation could give a user several languages, hence several notifications.
    with (
        override_settings(DJANGO_NOTIFY=notify_settings(RECIPIENT_LANGUAGE="groups__name")),
        pytest.raises(languages.LanguageSettingError),
    ):
        languages.language_source()


# -- the stored context -----------------------------------------------------------


@pytest.mark.django_db
def test_the_context_survives_storage():
    order = Order.objects.create(number="A-1")
    when = timezone.now().replace(microsecond=123456)
    original = {
        "when": when,
        "day": dt.date(2026, 3, 29),
        "at": dt.time(8, 30),
        "wait": dt.timedelta(hours=2, seconds=3),
        "price": decimal.Decimal("12.50"),
        "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "order": order,
        "nested": {"items": [order, 1, "two", None, True]},
        "text": "{0.__class__}",
        "odd": object(),
        "tagged": {"__dn__": "model", "ct": 1, "pk": "1"},
    }
    stored = freeze({**original, "recipient": "never stored"})
    assert "recipient" not in stored
    rebuilt = thaw(_json_round_trip(stored))
    assert rebuilt["when"] == when and rebuilt["day"] == original["day"] and rebuilt["at"] == original["at"]
    assert rebuilt["wait"] == original["wait"] and rebuilt["price"] == original["price"]
    assert rebuilt["ref"] == original["ref"]
    assert rebuilt["order"] == order and rebuilt["nested"]["items"][0] == order
    assert rebuilt["nested"]["items"][1:] == [1, "two", None, True]
    assert rebuilt["text"] == "{0.__class__}"
    assert rebuilt["odd"].startswith("<object object")
    assert isinstance(rebuilt["tagged"], str)  # a caller's dict is never taken for an encoded value


def _json_round_trip(value):
    import json

    return json.loads(json.dumps(value))


@pytest.mark.django_db
def test_model_references_load_once_per_model_and_outlive_deletion(django_assert_num_queries):
    orders = [Order.objects.create(number=f"N{i}") for i in range(5)]
    stored = [_json_round_trip(freeze({"order": order})) for order in orders]
    orders[0].delete()
    with django_assert_num_queries(1):
        rebuilt = thaw_many(stored)
    assert rebuilt[0]["order"] == "Order N0"  # the text it had
    assert [r["order"].number for r in rebuilt[1:]] == ["N1", "N2", "N3", "N4"]


@pytest.mark.django_db
def test_notify_keeps_the_context_only_for_channels_that_need_it(user_factory):
    user = user_factory()
    with registered(SPEAKS), override_settings(DJANGO_NOTIFY=notify_settings()):
        notify("speaks", user, context={"item": "x"}, channels=["in_app"])
        notify("speaks", user, context={"item": "y"}, channels=["in_app", "email"])
    kept = dict(Notification.objects.values_list("body", "context"))
    assert kept == {"x": {}, "y": {"item": "y"}}


# -- no str.format on templates -----------------------------------------------------


def test_the_package_never_formats_a_string_it_did_not_write():
    """``str.format``/``format_map`` on text from a type or the database would let
    ``{0.__class__}`` reach into objects; only string literals may be formatted."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("format", "format_map")
                and not (isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str))
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


@pytest.mark.django_db
def test_format_fields_in_context_and_templates_render_literally(user_factory):
    hostile = NotificationType(key="hostile", title="{0.__class__} {{ value }}", body="{value.__class__.__mro__}")
    TemplateOverride.objects.create(type="hostile", channel="in_app", body="{{ value }} {0.__globals__}")
    with registered(hostile), override_settings(DJANGO_NOTIFY=notify_settings()):
        notify("hostile", user_factory(), context={"value": "{0.__class__}"})
    row = Notification.objects.get()
    assert row.title == "{0.__class__} {0.__class__}"
    assert row.body == "{0.__class__} {0.__globals__}"
