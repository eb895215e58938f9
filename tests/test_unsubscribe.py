"""One-click unsubscribe (RFC 8058): tokens, the pages, and what a link switches off."""

from __future__ import annotations

import datetime as dt
import logging
import time
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from django_notify import NotificationType, notify, unsubscribe
from django_notify.delivery import deliver_due
from django_notify.exceptions import BadUnsubscribeToken
from django_notify.models import Delivery, EngagementEvent, Notification, Preference
from django_notify.registry import registry
from django_notify.testing import registered
from django_notify.tokens import make_event_token
from django_notify.unsubscribe import UnsubscribeScope, make_token, read_token

ORDER = {"order_number": "A-7", "total": "9.90"}
ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}

#: Critical, in the same category as order_placed: no link can stop it.
PAYMENT_FAILED = NotificationType(
    key="payment_failed",
    category="orders",
    verbose_name="Payment failed",
    title="Payment failed",
    channels=["in_app", "email"],
    critical=True,
)
#: Another type of the category, to tell a category link from a type link.
ORDER_SHIPPED = NotificationType(
    key="order_shipped", category="orders", verbose_name="Order shipped", title="Shipped", channels=["email"]
)


@pytest.fixture(autouse=True)
def manual_delivery(settings):
    """Deliveries wait for deliver_due(); links are absolute against BASE_URL."""
    settings.DJANGO_NOTIFY = {
        **settings.DJANGO_NOTIFY,
        "DELIVERY_MODE": "manual",
        "BASE_URL": "https://shop.example",
    }


@pytest.fixture
def set_notify(settings):
    def update(**values):
        settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, **values}

    return update


@pytest.fixture
def client():
    # No login, CSRF enforced: what a mail client's POST looks like.
    return Client(enforce_csrf_checks=True)


def email_of(user, key="order_placed", context=ORDER):
    """Notify ``user`` of ``key`` by email and return the pending email delivery."""
    notify(key, user, context=context, channels=["email"])
    return Delivery.objects.filter(notification__recipient=user, channel="email").latest("pk")


def link_for(delivery):
    """The path of the unsubscribe link of ``delivery``'s email."""
    scope = unsubscribe.scope_for([delivery], [registry.get(delivery.notification.type)])
    assert scope is not None
    return url_of(scope)


def url_of(scope):
    return reverse("django_notify:unsubscribe", args=[make_token(scope)])


def email_status(user, key="order_placed", context=ORDER):
    """Send ``user`` a fresh ``key`` email through the engine and return its status."""
    delivery = email_of(user, key, context)
    deliver_due()
    delivery.refresh_from_db()
    return delivery.status


def signed_at(when, scope):
    """A token signed with the clock at ``when`` (a POSIX time)."""
    with mock.patch("django.core.signing.time.time", return_value=when):
        return make_token(scope)


def assert_security_headers(response):
    for header, value in SECURITY_HEADERS.items():
        assert response[header] == value, header


# -- tokens and links ----------------------------------------------------------------


def test_token_round_trip():
    scope = UnsubscribeScope(
        user_id="42", channel="email", categories=("orders",), types=("a", "b"), notification_id=7, delivery_id=9
    )
    assert read_token(make_token(scope)) == scope


def test_url_name_and_slashless_twin(db, user, client):
    scope = UnsubscribeScope(user_id=str(user.pk), channel="email", categories=("orders",))
    url = url_of(scope)
    assert url.startswith("/api/notifications/unsubscribe/") and url.endswith("/")
    assert client.get(url.rstrip("/")).status_code == 200


def test_link_is_absolute_from_base_url(user):
    delivery = email_of(user)
    link = unsubscribe.unsubscribe_link([delivery], [registry.get("order_placed")])
    assert link is not None and link.startswith("https://shop.example/api/notifications/unsubscribe/")
    token = link.removeprefix("https://shop.example/api/notifications/unsubscribe/").removesuffix("/")
    assert read_token(token) == UnsubscribeScope(
        user_id=str(user.pk),
        channel="email",
        categories=("orders",),
        notification_id=delivery.notification_id,
        delivery_id=delivery.pk,
    )


def test_scope_for_a_locked_type_is_none(user):
    with registered(PAYMENT_FAILED):
        delivery = email_of(user, "payment_failed", {})
        assert unsubscribe.scope_for([delivery], [PAYMENT_FAILED]) is None
        assert unsubscribe.unsubscribe_link([delivery], [PAYMENT_FAILED]) is None


def test_scope_for_required_channel_is_none(user):
    required = NotificationType(key="receipt", category="orders", title="Receipt", required_channels=["email"])
    with registered(required):
        delivery = email_of(user, "receipt", {})
        assert unsubscribe.scope_for([delivery], [required]) is None


# -- invalid links -------------------------------------------------------------------


def invalid_tokens(user_id):
    scope = UnsubscribeScope(user_id=user_id, channel="email", categories=("orders",))
    token = make_token(scope)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    return {
        "tampered": flipped,
        "truncated": token[: len(token) // 2],
        "wrong salt": make_event_token((1, 2)),
        "garbage": "not-a-token",
        "too long": "x" * 2000,
    }


@pytest.mark.parametrize("kind", ["tampered", "truncated", "wrong salt", "garbage", "too long"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_invalid_token_is_a_400_page(user, client, kind, method):
    token = invalid_tokens(str(user.pk))[kind]
    url = reverse("django_notify:unsubscribe", args=[token])
    response = getattr(client, method)(url, ONE_CLICK, content_type=FORM) if method == "post" else client.get(url)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/html; charset=utf-8"
    content = response.content.decode()
    assert "This unsubscribe link is not valid" in content and "expired" not in content
    assert "Traceback" not in content
    assert_security_headers(response)
    assert not Preference.objects.exists()


def test_expired_token_says_so(user, client, set_notify):
    set_notify(UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS=2)
    scope = UnsubscribeScope(user_id=str(user.pk), channel="email", categories=("orders",))
    now = time.time()
    fresh = signed_at(now - dt.timedelta(days=1).total_seconds(), scope)
    stale = signed_at(now - dt.timedelta(days=3).total_seconds(), scope)
    assert read_token(fresh) == scope
    with pytest.raises(BadUnsubscribeToken) as caught:
        read_token(stale)
    assert caught.value.expired

    url = reverse("django_notify:unsubscribe", args=[stale])
    for response in (client.get(url), client.post(url, ONE_CLICK, content_type=FORM)):
        assert response.status_code == 400
        assert "This unsubscribe link has expired" in response.content.decode()
        assert_security_headers(response)
    assert not Preference.objects.exists()


def test_read_token_max_age_argument(user):
    scope = UnsubscribeScope(user_id=str(user.pk), channel="email", types=("order_placed",))
    token = signed_at(time.time() - 60, scope)
    assert read_token(token, max_age=dt.timedelta(minutes=5)) == scope
    with pytest.raises(BadUnsubscribeToken) as caught:
        read_token(token, max_age=dt.timedelta(seconds=10))
    assert caught.value.expired


@pytest.mark.parametrize("user_id", ["deleted", "not-a-number"])
def test_unknown_user_is_an_invalid_link(user_factory, client, user_id):
    if user_id == "deleted":
        gone = user_factory()
        user_id = str(gone.pk)
        gone.delete()
    url = url_of(UnsubscribeScope(user_id=user_id, channel="email", categories=("orders",)))
    for response in (client.get(url), client.post(url, ONE_CLICK, content_type=FORM)):
        assert response.status_code == 400
        assert "This unsubscribe link is not valid" in response.content.decode()
    assert not Preference.objects.exists()


@pytest.mark.parametrize("method", ["head", "put", "patch", "delete", "options"])
def test_other_methods_are_405(user, client, method):
    url = url_of(UnsubscribeScope(user_id=str(user.pk), channel="email", categories=("orders",)))
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert_security_headers(response)


# -- GET: the confirmation page ------------------------------------------------------


def test_get_shows_what_will_be_turned_off_and_changes_nothing(user, client):
    url = link_for(email_of(user))
    response = client.get(url)

    assert response.status_code == 200
    assert_security_headers(response)
    content = response.content.decode()
    assert "All email notifications in the category “orders”" in content
    assert '<form method="post">' in content and 'name="action" value="unsubscribe"' in content
    assert 'name="viewport"' in content
    assert not Preference.objects.exists()
    assert not EngagementEvent.objects.exists()
    assert email_status(user) == "sent"


def test_type_scope_page_names_the_type(user, client, set_notify):
    set_notify(UNSUBSCRIBE_SCOPE="type")
    content = client.get(link_for(email_of(user))).content.decode()
    assert "email notifications “Order placed”" in content
    assert "category" not in content


def test_pages_say_critical_types_are_still_sent(user, client):
    with registered(PAYMENT_FAILED):
        url = link_for(email_of(user))
        confirm = client.get(url).content.decode()
        done = client.post(url, {"action": "unsubscribe"}).content.decode()
    for content in (confirm, done):
        assert "will still be sent" in content and "“Payment failed”" in content


def test_pages_escape_what_they_show(user, client):
    # Category names come from code, but the page must not trust them either.
    scope = UnsubscribeScope(user_id=str(user.pk), channel="email", categories=("<b>x</b>",))
    content = client.get(url_of(scope)).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in content and "<b>x</b>" not in content


# -- POST: one click -----------------------------------------------------------------


def test_one_click_switches_the_category_off(user, client, caplog):
    delivery = email_of(user)
    deliver_due()
    url = link_for(delivery)

    with caplog.at_level(logging.INFO, logger="django_notify.unsubscribe"):
        response = client.post(url, ONE_CLICK, content_type=FORM)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert_security_headers(response)
    rule = Preference.objects.get()
    assert (rule.user_id, rule.channel, rule.category, rule.type, rule.enabled) == (
        user.pk,
        "email",
        "orders",
        "",
        False,
    )
    assert email_status(user) == "skipped"

    event = EngagementEvent.objects.get()
    assert (event.kind, event.notification_id, event.delivery_id, event.type, event.channel) == (
        "unsubscribed",
        delivery.notification_id,
        delivery.pk,
        "order_placed",
        "email",
    )
    assert event.metadata == {"categories": ["orders"], "types": [], "method": "one-click"}

    [record] = [r for r in caplog.records if r.name == "django_notify.unsubscribe"]
    assert record.levelno == logging.INFO
    assert str(user.pk) in record.getMessage() and user.email not in record.getMessage()


def test_one_click_as_multipart(user, client):
    # RFC 8058 allows multipart/form-data as well.
    response = client.post(link_for(email_of(user)), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Preference.objects.get().enabled is False


def test_a_second_post_changes_nothing(user, client):
    url = link_for(email_of(user))
    assert client.post(url, ONE_CLICK, content_type=FORM).status_code == 200
    before = list(Preference.objects.values())

    assert client.post(url, ONE_CLICK, content_type=FORM).status_code == 200
    response = client.post(url, {"action": "unsubscribe"})

    assert "You were already unsubscribed" in response.content.decode()
    assert list(Preference.objects.values()) == before
    assert EngagementEvent.objects.count() == 1


def test_one_click_slashless(user, client):
    url = link_for(email_of(user)).rstrip("/")
    assert client.post(url, ONE_CLICK, content_type=FORM).status_code == 200
    assert Preference.objects.get().enabled is False


def test_a_post_without_an_action_changes_nothing(user, client):
    response = client.post(link_for(email_of(user)), {"action": "other"})
    assert response.status_code == 400
    assert 'value="unsubscribe"' in response.content.decode()
    assert not Preference.objects.exists()


def test_keeps_the_digest_frequency(user, client):
    Preference.objects.create(user=user, channel="email", category="orders", frequency="daily")
    client.post(link_for(email_of(user)), ONE_CLICK, content_type=FORM)
    rule = Preference.objects.get()
    assert (rule.enabled, rule.frequency) == (False, "daily")


def test_deleted_notification_still_unsubscribes_without_an_event(user, client):
    delivery = email_of(user)
    url = link_for(delivery)
    Notification.objects.all().delete()

    assert client.post(url, ONE_CLICK, content_type=FORM).status_code == 200
    assert Preference.objects.get().enabled is False
    assert not EngagementEvent.objects.exists()


def test_deleted_delivery_keeps_the_event(user, client):
    delivery = email_of(user)
    url = link_for(delivery)
    Delivery.objects.all().delete()

    client.post(url, ONE_CLICK, content_type=FORM)
    event = EngagementEvent.objects.get()
    assert (event.notification_id, event.delivery_id) == (delivery.notification_id, None)


# -- POST: the form and undo ---------------------------------------------------------


def test_form_post_and_undo(user, client):
    url = link_for(email_of(user))

    response = client.post(url, {"action": "unsubscribe"})
    assert response.status_code == 200
    assert_security_headers(response)
    content = response.content.decode()
    assert "You are unsubscribed" in content and 'name="action" value="resubscribe"' in content
    assert EngagementEvent.objects.get().metadata["method"] == "form"
    assert email_status(user) == "skipped"

    response = client.post(url, {"action": "resubscribe"})
    assert response.status_code == 200
    assert "You are subscribed again" in response.content.decode()
    assert not Preference.objects.exists()
    assert email_status(user) == "sent"


def test_undo_keeps_the_digest_frequency(user, client):
    Preference.objects.create(user=user, channel="email", category="orders", frequency="weekly")
    url = link_for(email_of(user))
    client.post(url, {"action": "unsubscribe"})
    client.post(url, {"action": "resubscribe"})
    rule = Preference.objects.get()
    assert (rule.enabled, rule.frequency) == (None, "weekly")


# -- what a link covers --------------------------------------------------------------


def test_category_scope_covers_the_whole_category(user, client):
    with registered(ORDER_SHIPPED):
        client.post(link_for(email_of(user)), ONE_CLICK, content_type=FORM)
        assert email_status(user) == "skipped"
        assert email_status(user, "order_shipped", {}) == "skipped"


def test_type_scope_covers_only_the_type(user, client, set_notify):
    set_notify(UNSUBSCRIBE_SCOPE="type")
    with registered(ORDER_SHIPPED):
        delivery = email_of(user)
        client.post(link_for(delivery), ONE_CLICK, content_type=FORM)

        rule = Preference.objects.get()
        # The row the settings API writes for a type, so the user can switch it back there.
        assert (rule.channel, rule.category, rule.type, rule.enabled) == ("email", "", "order_placed", False)
        assert EngagementEvent.objects.get().metadata == {
            "categories": [],
            "types": ["order_placed"],
            "method": "one-click",
        }
        assert email_status(user) == "skipped"
        assert email_status(user, "order_shipped", {}) == "sent"


def test_only_the_links_channel_is_switched_off(user, client):
    client.post(link_for(email_of(user)), ONE_CLICK, content_type=FORM)
    notify("order_placed", user, context=ORDER, channels=["sms"])
    deliver_due()
    assert Delivery.objects.get(channel="sms").status == "sent"


def test_a_critical_type_is_still_delivered(user, client):
    with registered(PAYMENT_FAILED):
        client.post(link_for(email_of(user)), ONE_CLICK, content_type=FORM)
        assert email_status(user) == "skipped"
        assert email_status(user, "payment_failed", {}) == "sent"


def test_a_type_switched_on_by_the_settings_api_is_outranked(user, client, api_client):
    # A preference center that saves every switch writes a rule per type; it must not
    # keep a category link from working.
    response = api_client.patch(
        "/api/notifications/settings/", {"types": {"order_placed": {"email": True}}}, format="json"
    )
    assert response.status_code == 200
    url = link_for(email_of(user))

    client.post(url, ONE_CLICK, content_type=FORM)
    assert email_status(user) == "skipped"
    assert api_client.get("/api/notifications/settings/").json()["types"]["order_placed"]["email"] is False

    client.post(url, {"action": "resubscribe"})
    assert email_status(user) == "sent"


def test_a_rule_for_every_channel_is_outranked_for_this_channel_only(user, client, set_notify):
    set_notify(UNSUBSCRIBE_SCOPE="type")
    Preference.objects.create(user=user, channel="", category="orders", type="order_placed", enabled=True)
    url = link_for(email_of(user))

    client.post(url, ONE_CLICK, content_type=FORM)
    assert email_status(user) == "skipped"
    notify("order_placed", user, context=ORDER, channels=["sms"])
    deliver_due()
    assert Delivery.objects.get(channel="sms").status == "sent"

    client.post(url, {"action": "resubscribe"})
    assert email_status(user) == "sent"


def test_apply_and_resubscribe_report_changes(user):
    scope = UnsubscribeScope(user_id=str(user.pk), channel="email", categories=("orders",))
    assert unsubscribe.apply(scope, method="test") is True
    assert unsubscribe.apply(scope, method="test") is False
    assert unsubscribe.resubscribe(scope) is True
    assert unsubscribe.resubscribe(scope) is False
    assert not EngagementEvent.objects.exists()  # no notification named


def test_a_type_the_user_muted_stays_muted_after_undoing_its_category(user, client, api_client):
    api_client.patch("/api/notifications/settings/", {"types": {"order_placed": {"email": False}}}, format="json")
    with registered(ORDER_SHIPPED):
        url = link_for(email_of(user, "order_shipped", {}))
        client.post(url, {"action": "unsubscribe"})
        client.post(url, {"action": "resubscribe"})
        assert email_status(user, "order_shipped", {}) == "sent"
        assert email_status(user) == "skipped"


@pytest.mark.django_db
def test_the_pages_speak_the_language_of_the_recipient(set_notify, client, user_factory):
    from django.utils import translation

    from tests.testapp.models import Profile

    set_notify(RECIPIENT_LANGUAGE="profile__language")
    user = user_factory()
    Profile.objects.create(user=user, language="de")
    scope = UnsubscribeScope(user_id=str(user.pk), channel="email", categories=("orders",))
    with translation.override("de"):
        german = translation.gettext("Unsubscribe?")
    assert german != "Unsubscribe?"  # the app ships German
    page = client.get(url_of(scope))
    assert page.status_code == 200 and german in page.content.decode()
