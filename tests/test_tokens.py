from __future__ import annotations

import datetime as dt
import time
from unittest import mock

import pytest
from django.core import signing

from django_notify import notify
from django_notify.exceptions import BadEventToken, NotifyError
from django_notify.models import Delivery, Notification
from django_notify.tokens import SALT, EventTarget, make_event_token, read_event_token

ORDER = {"order_number": "A-7", "total": "9.90"}


def signed_at(when, value):
    """A token signed with the clock at ``when`` (a POSIX time)."""
    with mock.patch("django.core.signing.time.time", return_value=when):
        return make_event_token(value)


@pytest.fixture
def delivery(user):
    notify("order_placed", user, context=ORDER, channels=["email"])
    return Delivery.objects.get()


def test_round_trip_for_a_delivery(delivery):
    token = make_event_token(delivery)
    assert read_event_token(token) == EventTarget(delivery.notification_id, delivery.pk)


def test_round_trip_for_an_in_app_notification(user):
    notify("low_stock", user, context={"item": "Flour", "quantity": 3})
    notification = Notification.objects.get()
    assert read_event_token(make_event_token(notification)) == (notification.pk, None)


@pytest.mark.parametrize("ids", [(1, 2), (5, None), (2**63 - 1, 2**63 - 1)])
def test_round_trip_for_ids(ids):
    assert read_event_token(make_event_token(ids)) == ids


def test_tokens_are_short_and_hold_only_ids(settings):
    token = make_event_token((2**63 - 1, 2**63 - 1))
    assert len(token) < 100  # it travels in a push payload of at most 3000 bytes
    assert token.startswith(f"{2**63 - 1}.{2**63 - 1}:")
    assert settings.SECRET_KEY not in token


@pytest.mark.parametrize("ids", [(None, None), (0, 1), (1, 0), ("1", 2), (True, None), (1.0, None)])
def test_unsaved_or_non_integer_ids_are_refused(ids):
    with pytest.raises(TypeError):
        make_event_token(ids)


def test_tampered_token_is_refused():
    token = make_event_token((1, 2))
    forged = "1.3" + token[3:]
    with pytest.raises(BadEventToken, match="Invalid") as caught:
        read_event_token(forged)
    assert not caught.value.expired
    assert isinstance(caught.value, NotifyError)
    with pytest.raises(BadEventToken):
        read_event_token(token[:-1] + ("A" if token[-1] != "A" else "B"))


@pytest.mark.parametrize("token", ["", "garbage", "1:2:3", "x" * 500, None, 12])
def test_malformed_token_is_refused(token):
    with pytest.raises(BadEventToken, match="Invalid"):
        read_event_token(token)


def test_expired_token_is_refused(settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "EVENT_TOKEN_MAX_AGE_DAYS": 2}
    now = time.time()
    fresh = signed_at(now - dt.timedelta(days=1).total_seconds(), (1, 2))
    stale = signed_at(now - dt.timedelta(days=3).total_seconds(), (1, 2))
    assert read_event_token(fresh) == (1, 2)
    with pytest.raises(BadEventToken, match="expired") as caught:
        read_event_token(stale)
    assert caught.value.expired


def test_max_age_argument_overrides_the_setting():
    token = signed_at(time.time() - 60, (1, None))
    assert read_event_token(token, max_age=120) == (1, None)
    assert read_event_token(token, max_age=dt.timedelta(minutes=2)) == (1, None)
    with pytest.raises(BadEventToken, match="expired"):
        read_event_token(token, max_age=30)


def test_token_signed_with_another_salt_is_refused():
    other = signing.TimestampSigner(salt="django_notify.other").sign("1.2")
    with pytest.raises(BadEventToken):
        read_event_token(other)
    assert signing.TimestampSigner(salt=SALT).unsign(make_event_token((1, 2))) == "1.2"


def test_token_of_another_secret_is_refused_but_fallback_keys_work(settings):
    token = make_event_token((1, 2))
    settings.SECRET_KEY = "rotated"
    with pytest.raises(BadEventToken):
        read_event_token(token)
    settings.SECRET_KEY_FALLBACKS = ["django_notify-tests"]
    assert read_event_token(token) == (1, 2)


def test_signed_value_in_another_format_is_refused():
    # Only make_event_token signs with SALT; this guards against format changes.
    for value in ("abc", "1.2.3", "01", "1."):
        with pytest.raises(BadEventToken):
            read_event_token(signing.TimestampSigner(salt=SALT).sign(value))
