from __future__ import annotations

import pytest
from django.core.checks import Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_notify import NotificationType
from django_notify.backends.console import ConsoleBackend
from django_notify.checks import check_django_q, check_email_and_languages, check_registry, check_settings
from django_notify.exceptions import InvalidBackendError
from django_notify.testing import registered

IN_APP = {"BACKEND": "django_notify.backends.in_app.InAppBackend"}
Q_OK = {"name": "t", "orm": "default", "timeout": 30, "retry": 60}


def ids(messages):
    return [message.id for message in messages]


def test_valid_settings_have_no_messages():
    assert check_settings() == []
    assert check_registry() == []
    assert check_django_q() == []


@pytest.mark.django_db  # Django 6.1's check command also runs the database checks
def test_checks_run_from_manage_py(settings):
    settings.DJANGO_NOTIFY = {"CHANEL": {}}
    with pytest.raises(SystemCheckError, match=r"django_notify\.E002"):
        call_command("check")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], ["django_notify.E001"]),
        ({"CHANELS": {}}, ["django_notify.E002"]),
        ({"PAGE_SIZE": 0}, ["django_notify.E003"]),
        ({"FANOUT_CHUNK_SIZE": "100"}, ["django_notify.E003"]),
        ({"CREATE_THROTTLE_RATE": "lots"}, ["django_notify.E003"]),
        ({"DEFAULT_CHANNELS": "in_app"}, ["django_notify.E003"]),
        ({"CHANNELS": {"in_app": IN_APP, "email": "smtp"}}, ["django_notify.E004"]),
        (
            {"CHANNELS": {"in_app": IN_APP, "email": {"BACKEND": "x", "OPTIONS": {}, "EXTRA": 1}}},
            ["django_notify.E004"],
        ),
        ({"CHANNELS": {"in_app": IN_APP, "email": {"BACKEND": "no.such.Backend"}}}, ["django_notify.E005"]),
        (
            {"CHANNELS": {"in_app": IN_APP, "email": {"BACKEND": "django_notify.conf.NotifySettings"}}},
            ["django_notify.E005"],
        ),
        (
            {
                "CHANNELS": {
                    "in_app": IN_APP,
                    "email": {"BACKEND": "django_notify.backends.locmem.LocMemBackend", "OPTIONS": {"colour": 1}},
                }
            },
            ["django_notify.E006"],
        ),
        (
            {
                "CHANNELS": {
                    "in_app": IN_APP,
                    "email": {
                        "BACKEND": "django_notify.backends.locmem.LocMemBackend",
                        "OPTIONS": {"outcome": "maybe"},
                    },
                }
            },
            ["django_notify.E006"],
        ),
        ({"DEFAULT_CHANNELS": ["in_app", "pigeon"]}, ["django_notify.E007"]),
        (
            {
                "CHANNELS": {"email": {"BACKEND": "django_notify.backends.console.ConsoleBackend"}},
                "DEFAULT_CHANNELS": ["email"],
            },
            ["django_notify.E008"],
        ),
    ],
)
def test_settings_errors_by_id(settings, value, expected):
    settings.DJANGO_NOTIFY = value
    assert ids(check_settings()) == expected


def test_unknown_key_hint_suggests_the_closest_key(settings):
    settings.DJANGO_NOTIFY = {"PAGESIZE": 10}
    [error] = check_settings()
    assert "'PAGE_SIZE'" in error.hint


def test_type_with_unconfigured_channel():
    with registered(NotificationType(key="pigeon_post", channels=["in_app", "pigeon"])):
        messages = check_registry()
    assert ids(messages) == ["django_notify.E010"]
    assert "pigeon" in messages[0].msg


def test_type_with_broken_template():
    with registered(NotificationType(key="broken", title="{% if %}")):
        assert ids(check_registry()) == ["django_notify.E011"]


@pytest.mark.parametrize(
    ("q_cluster", "expected"),
    [
        ({"name": "t", "timeout": 30, "retry": 60}, ["django_notify.E020"]),
        ({**Q_OK, "orm": "replica"}, ["django_notify.E021"]),
        ({**Q_OK, "timeout": None}, ["django_notify.E022"]),
        ({**Q_OK, "timeout": 60, "retry": 60}, ["django_notify.E022"]),
        ({"name": "t", "orm": "default", "timeout": 30}, []),  # retry defaults to 60
        ({"name": "t", "redis": {"host": "127.0.0.1"}, "timeout": 30, "retry": 60}, []),
    ],
)
def test_django_q_checks(settings, q_cluster, expected):
    settings.Q_CLUSTER = q_cluster
    assert ids(check_django_q()) == expected


@pytest.mark.parametrize("alias", ["Email", "e-mail!", "x" * 51, ""])
def test_channel_alias_must_be_a_short_identifier(settings, alias):
    settings.DJANGO_NOTIFY = {
        "CHANNELS": {"in_app": IN_APP, alias: {"BACKEND": "django_notify.backends.console.ConsoleBackend"}}
    }
    assert ids(check_settings()) == ["django_notify.E009"]


class _CheckedBackend(ConsoleBackend):
    default_options = {"level": "ok"}

    def validate_options(self):
        if self.options["level"] == "broken":
            raise InvalidBackendError("broken on purpose", check_id="django_notify.E099", hint="fix it")

    def check(self):
        return [Warning("looks odd", id="django_notify.W099")] if self.options["level"] == "odd" else []


@pytest.mark.parametrize(
    ("level", "expected"), [("ok", []), ("odd", ["django_notify.W099"]), ("broken", ["django_notify.E099"])]
)
def test_backends_can_report_their_own_check_messages(settings, level, expected):
    settings.DJANGO_NOTIFY = {
        "CHANNELS": {
            "in_app": IN_APP,
            "custom": {"BACKEND": f"{__name__}._CheckedBackend", "OPTIONS": {"level": level}},
        }
    }
    messages = check_settings()
    assert ids(messages) == expected
    if level == "broken":
        assert messages[0].hint == "fix it"


def test_page_size_above_the_maximum(settings):
    settings.DJANGO_NOTIFY = {"PAGE_SIZE": 50, "MAX_PAGE_SIZE": 40}
    assert ids(check_settings()) == ["django_notify.E012"]


def test_broken_setting_is_reported_once_not_per_type(settings):
    settings.DJANGO_NOTIFY = ["not", "a", "dict"]
    assert ids(check_settings()) == ["django_notify.E001"]
    assert check_registry() == []


def test_queue_mode_needs_django_q(settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_q"]
    assert ids(check_django_q()) == ["django_notify.E030"]
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DELIVERY_MODE": "manual"}
    assert check_django_q() == []


def test_lease_must_outlast_the_task_timeout(settings):
    settings.Q_CLUSTER = {**Q_OK, "timeout": 300, "retry": 400}
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "LEASE_SECONDS": 300}
    assert ids(check_django_q()) == ["django_notify.E031"]
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DELIVERY_MODE": "inline"}
    assert check_django_q() == []


def test_queue_on_an_sqlite_file_needs_immediate_transactions(settings, tmp_path, monkeypatch):
    file_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3"), "OPTIONS": {}}
    # In place: an alias the check reads, not a database connection the test run opens.
    monkeypatch.setitem(settings.DATABASES, "queue", file_db)
    settings.Q_CLUSTER = {**Q_OK, "orm": "queue"}
    (warning,) = [m for m in check_django_q() if m.id == "django_notify.W032"]
    assert 'DATABASES["queue"]' in warning.msg
    assert '"transaction_mode": "IMMEDIATE"' in warning.hint
    file_db["OPTIONS"] = {"timeout": 20, "transaction_mode": "immediate"}
    assert "django_notify.W032" not in ids(check_django_q())
    file_db["OPTIONS"], file_db["NAME"] = {}, ":memory:"  # one process only
    assert "django_notify.W032" not in ids(check_django_q())
    file_db["NAME"] = str(tmp_path / "db.sqlite3")
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DELIVERY_MODE": "inline"}
    assert "django_notify.W032" not in ids(check_django_q())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DELIVERY_MODE", "async"),
        ("DIGEST_HOUR", 24),
        ("DIGEST_WEEKDAY", -1),
        ("RETRY_BASE_SECONDS", 0),
        ("DELIVERY_RETENTION_DAYS", 0),
    ],
)
def test_engine_settings_are_validated(settings, key, value):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, key: value}
    assert ids(check_settings()) == ["django_notify.E003"]


# -- email and languages --------------------------------------------------------------

EMAIL = {"BACKEND": "django_notify.backends.email.EmailBackend"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, ["django_notify.E050"]),
        ({"BASE_URL": "https://notify.example"}, []),
        ({"BASE_URL": "https://notify.example", "RECIPIENT_LANGUAGE": "no_such_field"}, ["django_notify.E052"]),
        (
            {"BASE_URL": "https://notify.example", "RECIPIENT_LANGUAGE": "tests.nope.language_of"},
            ["django_notify.E052"],
        ),
        ({"BASE_URL": "https://notify.example", "RECIPIENT_LANGUAGE": None}, []),
    ],
)
def test_email_needs_a_base_url_and_languages_a_source(settings, extra, expected):
    settings.DJANGO_NOTIFY = {"CHANNELS": {"in_app": IN_APP, "email": EMAIL}, **extra}
    assert ids(check_email_and_languages()) == expected


def test_an_email_channel_without_the_urlconf_warns(settings):
    settings.DJANGO_NOTIFY = {"CHANNELS": {"in_app": IN_APP, "email": EMAIL}, "BASE_URL": "https://notify.example"}
    settings.ROOT_URLCONF = "tests.testapp.no_urls"
    assert ids(check_email_and_languages()) == ["django_notify.W051"]


def test_links_are_made_absolute_from_the_base_url(settings):
    from django_notify import sites

    settings.DJANGO_NOTIFY = {"BASE_URL": "https://notify.example/", "SITE_NAME": "Back office"}
    assert sites.base_url() == "https://notify.example"
    assert sites.absolute_url("/orders/7/") == "https://notify.example/orders/7/"
    assert sites.absolute_url("https://elsewhere.example/x") == "https://elsewhere.example/x"
    assert sites.absolute_url("") == ""
    # A link in an email only ever opens a web page.
    assert sites.absolute_url("javascript:alert(1)") == sites.absolute_url("data:text/html,x") == ""
    assert (sites.site_name(), sites.mail_domain()) == ("Back office", "notify.example")
    settings.DJANGO_NOTIFY = {"BASE_URL": "http://localhost:8000"}
    assert (sites.site_name(), sites.mail_domain()) == ("localhost", "localhost")
