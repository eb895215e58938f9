from __future__ import annotations

from django.test import override_settings

from django_notify.channels import channels
from django_notify.conf import DEFAULTS, notify_settings


def test_defaults_apply_when_unset(settings):
    del settings.DJANGO_NOTIFY
    assert notify_settings.CHANNELS == DEFAULTS["CHANNELS"]
    assert notify_settings.DEFAULT_CHANNELS == ("in_app",)
    assert notify_settings.PAGE_SIZE == 20


def test_reads_fresh_values_on_every_access():
    with override_settings(DJANGO_NOTIFY={"PAGE_SIZE": 7, "FANOUT_CHUNK_SIZE": 3}):
        assert notify_settings.PAGE_SIZE == 7
        assert notify_settings.FANOUT_CHUNK_SIZE == 3
    assert notify_settings.PAGE_SIZE == 20


def test_channel_handler_builds_backends_lazily_and_resets_on_change():
    email = channels["email"]
    assert channels["email"] is email
    assert type(email).__name__ == "LocMemBackend"
    new = {
        "CHANNELS": {
            "in_app": DEFAULTS["CHANNELS"]["in_app"],
            "email": {"BACKEND": "django_notify.backends.console.ConsoleBackend"},
        }
    }
    with override_settings(DJANGO_NOTIFY=new):
        assert type(channels["email"]).__name__ == "ConsoleBackend"
    assert type(channels["email"]).__name__ == "LocMemBackend"
    assert list(channels) == ["in_app", "email", "sms"]
