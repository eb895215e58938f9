from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from django_notify import NotificationType, delivery, notify
from django_notify.models import Delivery, Preference, UserPreferences
from django_notify.preferences import load_recipients
from django_notify.registry import registry
from django_notify.testing import registered

URL = "/api/notifications/settings/"
ORDER = {"order_number": "A-7", "total": "9.90"}

EDITABLE = ("email", "sms")  # tests/settings.py: in_app is the inbox


def defaults():
    """GET of a user without rows: everything on, no digests, for whatever is registered."""
    return {
        "timezone": "",
        "quiet_hours": None,
        "channels": dict.fromkeys(EDITABLE, True),
        "categories": {category: dict.fromkeys(EDITABLE, True) for category in registry.categories()},
        "types": {t.key: {a: True for a in EDITABLE if a in t.get_channels()} for t in registry},
        "digests": dict.fromkeys(registry.categories(), "immediate"),
    }


def assert_shows(body, given):
    """Every value of the request body ``given`` is in the response ``body``, as sent."""
    for key, value in given.items():
        if isinstance(value, dict) and key in ("categories", "types"):
            for name, switches in value.items():
                assert body[key][name] == {**body[key][name], **switches}, (key, name)
        elif isinstance(value, dict) and key != "quiet_hours":
            assert body[key] == {**body[key], **value}, key
        else:
            assert body[key] == value, key


@pytest.fixture
def extra_types():
    """A critical type, and one with a required and a forbidden channel."""
    critical = NotificationType(
        key="password_changed", category="account", channels=["in_app", "email", "sms"], critical=True
    )
    invoice = NotificationType(
        key="invoice_due",
        category="billing",
        channels=["in_app", "email", "sms"],
        required_channels=["email"],
        forbidden_channels=["sms"],
    )
    with registered(critical, invoice):
        yield


def rows(user):
    return set(Preference.objects.filter(user=user).values_list("channel", "category", "type", "enabled", "frequency"))


def put(client, body):
    return client.put(URL, body, format="json")


def patch(client, body):
    return client.patch(URL, body, format="json")


# -- reading -----------------------------------------------------------------------


def test_get_defaults_creates_nothing(api_client, user):
    assert reverse("django_notify:settings-list") == URL
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body == defaults()
    assert list(body) == ["timezone", "quiet_hours", "channels", "categories", "types", "digests"]
    assert body["types"]["order_placed"] == {"email": True}  # in_app is never listed
    assert body["types"]["low_stock"] == {}
    assert body["categories"]["inventory"] == {"email": True, "sms": True}
    assert not Preference.objects.exists() and not UserPreferences.objects.exists()
    assert sum(q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for q in queries) == 0


def test_get_shows_locks_and_only_the_channels_a_type_is_sent_on(api_client, user, extra_types):
    # Everything off on email, as the admin could store it.
    Preference.objects.create(user=user, channel="email", enabled=False)
    Preference.objects.create(user=user, channel="email", type="password_changed", enabled=False)
    body = api_client.get(URL).json()
    assert body["channels"] == {"email": False, "sms": True}
    assert body["categories"]["account"] == {"email": False, "sms": True}
    assert body["types"]["password_changed"] == {"email": True, "sms": True}  # critical: locked on
    assert body["types"]["invoice_due"] == {"email": True}  # required; sms is forbidden
    assert body["types"]["order_placed"] == {"email": False}


def test_get_resolves_rows_the_api_does_not_write(api_client, user):
    # A row for every channel (blank channel), as the admin may store it.
    Preference.objects.create(user=user, enabled=False)
    Preference.objects.create(
        user=user, category="orders", type="order_placed", channel="email", enabled=True, frequency="weekly"
    )
    body = api_client.get(URL).json()
    assert body["channels"] == {"email": False, "sms": False}
    assert body["types"]["order_placed"] == {"email": True}
    assert body["digests"] == defaults()["digests"]
    assert put(api_client, {}).json() == defaults()
    assert not Preference.objects.filter(user=user).exists()


def test_trailing_slash_is_optional(api_client, user):
    assert api_client.patch(URL.rstrip("/"), {"channels": {"sms": False}}, format="json").status_code == 200
    assert api_client.get(URL.rstrip("/")).json()["channels"]["sms"] is False


def test_options_describes_the_body(api_client):
    response = api_client.options(URL)
    assert response.status_code == 200
    assert {"GET", "PUT", "PATCH"} <= set(response["Allow"].replace(" ", "").split(","))


def test_no_detail_route(api_client, user):
    for method in ("get", "put", "patch", "delete"):
        assert getattr(api_client, method)(URL + f"{user.pk}/").status_code == 404


# -- writing -----------------------------------------------------------------------

FULL = {
    "timezone": "Europe/Berlin",
    "quiet_hours": {"start": "22:00", "end": "07:00"},
    "channels": {"email": True, "sms": False},
    "categories": {"inventory": {"email": False, "sms": False}, "orders": {"email": True, "sms": True}},
    "types": {"low_stock": {}, "order_placed": {"email": False}},
    "digests": {"inventory": "immediate", "orders": "weekly"},
}


def test_put_then_get_round_trip(api_client, user):
    response = put(api_client, FULL)
    assert response.status_code == 200, response.json()
    assert_shows(response.json(), FULL)
    assert api_client.get(URL).json() == response.json()
    # What FULL leaves out inherits: the system category is off on sms like the channel.
    assert response.json()["categories"]["system"] == {"email": True, "sms": False}
    settings = UserPreferences.objects.get(user=user)
    assert (settings.timezone, settings.quiet_hours_start, settings.quiet_hours_end) == (
        "Europe/Berlin",
        dt.time(22, 0),
        dt.time(7, 0),
    )


def test_storage_is_one_explicit_row_per_value(api_client, user):
    body = {
        "channels": {"email": True},  # the default, stored all the same
        "categories": {"orders": {"sms": False}},
        "types": {"order_placed": {"email": False}},
        "digests": {"inventory": "daily"},
    }
    assert put(api_client, body).status_code == 200
    # Each row sets what was given and inherits the rest (None, "").
    assert rows(user) == {
        ("email", "", "", True, ""),
        ("sms", "orders", "", False, ""),
        ("email", "", "order_placed", False, ""),
        ("email", "inventory", "", None, "daily"),
    }
    assert not UserPreferences.objects.exists()  # none given, none needed


def test_patch_merges(api_client, user):
    put(api_client, FULL)
    response = patch(api_client, {"categories": {"inventory": {"sms": True}}, "digests": {"orders": "daily"}})
    assert response.status_code == 200
    assert response.json() == api_client.get(URL).json()
    assert_shows(response.json(), {**FULL, "categories": {"orders": FULL["categories"]["orders"]}, "digests": {}})
    assert response.json()["categories"]["inventory"] == {"email": False, "sms": True}
    assert response.json()["digests"] == {**defaults()["digests"], "orders": "daily"}
    assert patch(api_client, {"timezone": "America/New_York"}).json()["quiet_hours"] == FULL["quiet_hours"]
    assert patch(api_client, {"quiet_hours": None}).json()["timezone"] == "America/New_York"
    assert UserPreferences.objects.get(user=user).quiet_hours_start is None


def test_put_resets_what_it_leaves_out(api_client, user):
    put(api_client, FULL)
    response = put(api_client, {"channels": {"sms": False}})
    body = response.json()
    assert body["channels"] == {"email": True, "sms": False}
    assert all(switches == {"email": True, "sms": False} for switches in body["categories"].values())
    assert body["types"]["order_placed"] == {"email": True}
    assert (body["timezone"], body["quiet_hours"], body["digests"]) == ("", None, defaults()["digests"])
    assert rows(user) == {("sms", "", "", False, "")}
    assert put(api_client, {}).json() == defaults()
    assert not Preference.objects.filter(user=user).exists()
    settings = UserPreferences.objects.get(user=user)
    assert (settings.timezone, settings.quiet_hours_start, settings.quiet_hours_end) == ("", None, None)


def test_locked_pairs_may_be_set_on(api_client, user, extra_types):
    body = {"types": {"password_changed": {"email": True, "sms": True}, "invoice_due": {"email": True}}}
    response = patch(api_client, body)
    assert response.status_code == 200
    assert response.json()["types"]["password_changed"] == {"email": True, "sms": True}


def test_a_digest_does_not_pin_the_category_switch(api_client, user):
    patch(api_client, {"channels": {"email": False}})
    body = patch(api_client, {"digests": {"orders": "daily"}}).json()
    assert body["categories"]["orders"]["email"] is False
    assert ("email", "orders", "", None, "daily") in rows(user)
    # A later "email off/on" still reaches the category: the digest row sets no switch.
    body = patch(api_client, {"channels": {"email": True}}).json()
    assert body["categories"]["orders"]["email"] is True
    assert body["digests"]["orders"] == "daily"


def test_type_switches_keep_their_categorys_digest(api_client, user):
    patch(api_client, {"types": {"order_placed": {"email": True}}})
    patch(api_client, {"digests": {"orders": "weekly"}})
    assert ("email", "", "order_placed", True, "") in rows(user)
    recipient = load_recipients([user.pk])[user.pk]
    assert recipient.digest(registry.get("order_placed"), "email") == "weekly"
    assert recipient.allows(registry.get("order_placed"), "email") is True


def test_writes_leave_other_users_alone(api_client, user, other_user):
    theirs = Preference.objects.create(user=other_user, channel="email", enabled=False)
    UserPreferences.objects.create(user=other_user, timezone="Asia/Tokyo")
    before = rows(other_user)
    assert api_client.get(URL).json() == defaults()
    put(api_client, FULL)
    patch(api_client, {"channels": {"email": False}})
    put(api_client, {})
    assert rows(other_user) == before
    assert Preference.objects.get(pk=theirs.pk).enabled is False
    assert UserPreferences.objects.get(user=other_user).timezone == "Asia/Tokyo"


# -- validation --------------------------------------------------------------------


BAD = [
    ({"channels": {"pigeon": False}}, ["channels", "pigeon"], "Unknown channel"),
    ({"channels": {"in_app": False}}, ["channels", "in_app"], "archive"),
    ({"channels": []}, ["channels"], "dictionary"),
    ({"channels": {"email": "yes"}}, ["channels", "email"], "true or false"),
    ({"channels": {"email": 0}}, ["channels", "email"], "true or false"),
    ({"channels": {"email": None}}, ["channels", "email"], "null"),
    ({"categories": []}, ["categories"], "dictionary"),
    ({"categories": {"orders": []}}, ["categories", "orders"], "dictionary"),
    ({"categories": {"nope": {"email": False}}}, ["categories", "nope"], "Unknown category 'nope'"),
    ({"categories": {"orders": {"in_app": False}}}, ["categories", "orders", "in_app"], "archive"),
    ({"categories": {"orders": {"pigeon": True}}}, ["categories", "orders", "pigeon"], "Unknown channel"),
    ({"categories": {"orders": {"email": "false"}}}, ["categories", "orders", "email"], "true or false"),
    ({"types": {"nope": {"email": False}}}, ["types", "nope"], "Unknown notification type 'nope'"),
    ({"types": {"order_placed": True}}, ["types", "order_placed"], "dictionary"),
    ({"types": {"low_stock": {"email": False}}}, ["types", "low_stock", "email"], "not sent on"),
    ({"types": {"order_placed": {"in_app": False}}}, ["types", "order_placed", "in_app"], "archive"),
    ({"types": {"invoice_due": {"sms": True}}}, ["types", "invoice_due", "sms"], "forbidden"),
    ({"types": {"password_changed": {"email": False}}}, ["types", "password_changed", "email"], "locked"),
    ({"types": {"invoice_due": {"email": False}}}, ["types", "invoice_due", "email"], "locked"),
    ({"timezone": "Mars/Olympus_Mons"}, ["timezone"], "IANA"),
    ({"timezone": "europe/berlin"}, ["timezone"], "IANA"),
    ({"timezone": None}, ["timezone"], "null"),
    ({"timezone": ["UTC"]}, ["timezone"], "valid string"),
    ({"quiet_hours": {"start": "22:00"}}, ["quiet_hours", "end"], "required"),
    ({"quiet_hours": {"end": "07:00", "start": None}}, ["quiet_hours", "start"], "null"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, ["quiet_hours", "start"], "hh:mm"),
    ({"quiet_hours": {"start": "22:00:00", "end": "07:00"}}, ["quiet_hours", "start"], "hh:mm"),
    ({"quiet_hours": {"start": 2200, "end": "07:00"}}, ["quiet_hours", "start"], "hh:mm"),
    ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, ["quiet_hours", "non_field_errors"], "differ"),
    (
        {"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "UTC"}},
        ["quiet_hours", "tz"],
        "Valid fields: start, end",
    ),
    ({"quiet_hours": "22:00-07:00"}, ["quiet_hours", "non_field_errors"], "dictionary"),
    ({"digests": {"orders": "hourly"}}, ["digests", "orders"], "not a valid choice"),
    ({"digests": {"orders": 1}}, ["digests", "orders"], "not a valid choice"),
    ({"digests": {"nope": "daily"}}, ["digests", "nope"], "Unknown category"),
    ({"digests": []}, ["digests"], "dictionary"),
    ({"colour": "blue", "channels": {}}, ["colour"], "Valid fields: timezone, quiet_hours, channels"),
    ([], ["non_field_errors"], "Expected a dictionary"),
]


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize(("body", "path", "message"), BAD, ids=[str(case[0])[:60] for case in BAD])
def test_bad_input_is_400_naming_the_field(api_client, user, extra_types, method, body, path, message):
    response = getattr(api_client, method)(URL, body, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    for key in path:
        assert key in errors, (path, errors)
        errors = errors[key]
    assert message in str(errors), errors
    assert not Preference.objects.exists() and not UserPreferences.objects.exists()


def test_one_bad_entry_rejects_the_whole_body(api_client, user):
    response = patch(api_client, {"channels": {"email": False, "sms": "off"}, "timezone": "UTC"})
    assert response.status_code == 400
    assert not Preference.objects.exists() and not UserPreferences.objects.exists()


def test_malformed_json_is_400(api_client):
    response = api_client.generic("PATCH", URL, "{nope", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()


@pytest.mark.parametrize("alias", ["pigeon", "in_app"])
def test_digests_are_absent_and_refused_without_a_digest_channel(api_client, user, settings, alias):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DIGEST_CHANNEL": alias}
    assert "digests" not in api_client.get(URL).json()
    response = patch(api_client, {"digests": {"orders": "daily"}})
    assert response.status_code == 400
    assert "Digests are off" in response.json()["digests"][0]


def test_another_digest_channel(api_client, user, settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DIGEST_CHANNEL": "sms"}
    assert patch(api_client, {"digests": {"orders": "weekly"}}).json()["digests"]["orders"] == "weekly"
    assert rows(user) == {("sms", "orders", "", None, "weekly")}


# -- queries, atomicity, security ---------------------------------------------------


def test_writes_take_the_same_queries_for_one_or_ten_entries(api_client_factory, user_factory, extra_types):
    one = {"channels": {"email": False}}
    ten = {
        "channels": {"email": False, "sms": False},
        "categories": {
            "account": {"email": False, "sms": False},
            "billing": {"email": False, "sms": False},
            "orders": {"email": False, "sms": False},
        },
        "types": {"order_placed": {"email": False}},
        "digests": {"inventory": "daily"},
    }
    counts = {}
    for name, body in (("one", one), ("ten", ten)):
        user = user_factory()
        client = api_client_factory(user)
        for step, method in (("create", "patch"), ("update", "put")):
            if step == "update":  # flip every value: the same rows, updated
                body = {**body, "channels": dict.fromkeys(body["channels"], True), "timezone": "UTC"}
            with CaptureQueriesContext(connection) as queries:
                response = getattr(client, method)(URL, body, format="json")
            assert response.status_code == 200, response.json()
            counts[name, step] = len(queries)
        assert len(rows(user)) == (1 if name == "one" else 10)
    assert counts["one", "create"] == counts["ten", "create"]
    assert counts["one", "update"] == counts["ten", "update"]


def test_put_deleting_many_rows_takes_the_same_queries_as_one(api_client_factory, user_factory, extra_types):
    counts = []
    for how_many in (1, 10):
        user = user_factory()
        categories = ["account", "billing", "inventory", "orders", ""]
        for index in range(how_many):
            Preference.objects.create(user=user, channel=("email", "sms")[index % 2], category=categories[index // 2])
        with CaptureQueriesContext(connection) as queries:
            assert api_client_factory(user).put(URL, {}, format="json").status_code == 200
        counts.append(len(queries))
        assert not Preference.objects.filter(user=user).exists()
    assert counts[0] == counts[1]


def test_anonymous_is_refused(db):
    client = APIClient()
    for method in ("get", "put", "patch"):
        assert getattr(client, method)(URL, {}, format="json").status_code in {401, 403}
    assert not Preference.objects.exists()


def test_csrf_is_enforced_for_session_auth(api_client_factory, user):
    client = api_client_factory(user, enforce_csrf_checks=True)
    assert client.get(URL).status_code == 200  # safe method
    assert client.put(URL, {"channels": {"email": False}}, format="json").status_code == 403
    assert client.patch(URL, {"channels": {"email": False}}, format="json").status_code == 403
    assert not Preference.objects.exists()
    token = "t" * 32
    client.cookies["csrftoken"] = token
    response = client.patch(URL, {"channels": {"email": False}}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert rows(user) == {("email", "", "", False, "")}


# -- the engine decides as GET shows ------------------------------------------------


def assert_engine_agrees(client, user):
    """Every switch and digest GET shows is what the delivery engine would apply."""
    shown = client.get(URL).json()
    recipient = load_recipients([user.pk])[user.pk]
    for notification_type in registry:
        for alias, enabled in shown["types"][notification_type.key].items():
            assert recipient.allows(notification_type, alias) is enabled, (notification_type.key, alias)
            # A type without rows of its own inherits its category's switch.
            if not notification_type.is_locked(alias) and not any(
                rule.type == notification_type.key for _score, rule in recipient.rules
            ):
                assert shown["categories"][notification_type.category][alias] is enabled
        if not notification_type.critical:
            expected = shown["digests"][notification_type.category]
            assert (recipient.digest(notification_type, "email") or "immediate") == expected, notification_type.key
    if shown["quiet_hours"]:
        assert recipient.settings.quiet_hours_start.strftime("%H:%M") == shown["quiet_hours"]["start"]
        assert recipient.settings.quiet_hours_end.strftime("%H:%M") == shown["quiet_hours"]["end"]
    assert str(recipient.zone) == (shown["timezone"] or "UTC")
    return shown, recipient


def test_the_engine_applies_what_get_shows(api_client, user, extra_types):
    steps = [
        ("put", FULL),
        ("patch", {"channels": {"email": False}}),
        ("patch", {"categories": {"orders": {"email": True}}, "digests": {"orders": "daily"}}),
        ("patch", {"types": {"order_placed": {"email": True}, "invoice_due": {"email": True}}}),
        ("patch", {"digests": {"orders": "weekly", "billing": "daily", "account": "daily"}}),
        ("patch", {"categories": {"billing": {"email": False}}}),
        ("put", {"channels": {"email": False}, "types": {"order_placed": {"email": True}}}),
        ("patch", {"digests": {"orders": "daily"}}),
        ("put", {}),
    ]
    for method, body in steps:
        assert getattr(api_client, method)(URL, body, format="json").status_code == 200
        assert_engine_agrees(api_client, user)


def test_muted_and_digested_deliveries_follow_the_api(api_client_factory, user_factory, settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DELIVERY_MODE": "manual"}
    muted, digested, plain = user_factory(), user_factory(), user_factory()
    api_client_factory(muted).patch(URL, {"categories": {"orders": {"email": False}}}, format="json")
    client = api_client_factory(digested)
    client.patch(URL, {"types": {"order_placed": {"email": True}}}, format="json")
    client.patch(URL, {"digests": {"orders": "daily"}}, format="json")
    notify("order_placed", [muted, digested, plain], context=ORDER)
    lease, claimed = delivery.claim(500)
    delivery.process(claimed, lease)
    outcome = {row.notification.recipient_id: (row.status, row.digest) for row in Delivery.objects.all()}
    assert outcome == {
        muted.pk: ("skipped", ""),
        digested.pk: ("pending", "daily"),
        plain.pk: ("sent", ""),
    }


def test_a_row_created_meanwhile_is_updated_not_a_500(api_client, user, monkeypatch):
    """Two requests at once: the second inserts a row the first created after it looked."""
    from django_notify.api import preferences as module
    from django_notify.preferences import RecipientPreferences

    Preference.objects.create(user=user, channel="email", enabled=True)
    real = module.load_recipients
    stale = iter([{user.pk: RecipientPreferences()}])
    monkeypatch.setattr(module, "load_recipients", lambda ids, using=None: next(stale, None) or real(ids, using=using))
    response = patch(api_client, {"channels": {"email": False}})
    assert response.status_code == 200
    assert rows(user) == {("email", "", "", False, "")}
