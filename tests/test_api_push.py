"""The push subscription API: ``push/public-key/``, ``subscribe/``, ``unsubscribe/``,
``subscriptions/``, ``preferences/`` and ``test/``."""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_notify import NotificationType, notify
from django_notify.api.push import browser_label
from django_notify.models import Delivery, DeliveryStatus, PushSubscription
from django_notify.models.push import endpoint_digest
from django_notify.push import push_channel, vapid
from django_notify.registry import registry
from django_notify.testing import registered

PRIVATE_KEY = vapid.generate_private_key()
PUBLIC_KEY = base64.urlsafe_b64encode(
    PRIVATE_KEY.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
).rstrip(b"=")
WEBPUSH = {
    "BACKEND": "django_notify.backends.webpush.WebPushBackend",
    "OPTIONS": {
        "vapid_private_key": vapid.private_key_b64(PRIVATE_KEY),
        "vapid_public_key": vapid.public_key_b64(PRIVATE_KEY),
        "vapid_subject": "mailto:ops@example.com",
        "allowed_endpoint_hosts": ["fcm.googleapis.com", "*.push.services.mozilla.com", "127.0.0.1"],
    },
}
BASE_CHANNELS = {
    "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
    "email": {"BACKEND": "django_notify.backends.locmem.LocMemBackend"},
}

PREFIX = "/api/notifications/push/"
PUBLIC = PREFIX + "public-key/"
SUBSCRIBE = PREFIX + "subscribe/"
UNSUBSCRIBE = PREFIX + "unsubscribe/"
SUBSCRIPTIONS = PREFIX + "subscriptions/"
PREFERENCES = PREFIX + "preferences/"
TEST = PREFIX + "test/"

CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"

SUBSCRIPTION_FIELDS = [
    "id",
    "browser",
    "user_agent",
    "is_active",
    "created_at",
    "last_success_at",
    "expiration_time",
    "preferences",
]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_keys() -> dict[str, str]:
    """A browser's real ``keys``: a fresh P-256 point and a 16-byte secret."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {
        "p256dh": b64url(point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)),
        "auth": b64url(os.urandom(16)),
    }


def fcm_endpoint() -> str:
    return f"https://fcm.googleapis.com/fcm/send/{secrets.token_urlsafe(96)}"


def browser_subscription(endpoint: str | None = None, **extra):
    """``PushSubscription.toJSON()`` as a browser sends it."""
    return {"endpoint": endpoint or fcm_endpoint(), "expirationTime": None, "keys": browser_keys(), **extra}


def secrets_of(subscription) -> list[str]:
    """The parts of a subscription that must never come back: the endpoint's path and the keys."""
    endpoint = subscription["endpoint"]
    return [endpoint, endpoint.rsplit("/", 1)[-1], subscription["keys"]["p256dh"], subscription["keys"]["auth"]]


def assert_no_secrets(response, *subscriptions) -> None:
    content = response.content.decode()
    for subscription in subscriptions:
        for secret in secrets_of(subscription):
            assert secret not in content


@pytest.fixture(autouse=True)
def webpush(settings):
    """A Web Push channel ``webpush`` next to the inbox and email; throttles start empty."""
    settings.DJANGO_NOTIFY = {"CHANNELS": {**BASE_CHANNELS, "webpush": WEBPUSH}}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def not_configured(settings):
    settings.DJANGO_NOTIFY = {"CHANNELS": BASE_CHANNELS}


def subscribe(client, body, **headers):
    return client.post(SUBSCRIBE, body, format="json", **headers)


def make_subscription(user, **fields) -> PushSubscription:
    keys = browser_keys()
    values = {"endpoint": fcm_endpoint(), "p256dh": keys["p256dh"], "auth": keys["auth"], **fields}
    return PushSubscription.objects.create(user=user, **values)


# -- public key -----------------------------------------------------------------------


def test_public_key_is_public_and_cacheable(db):
    assert reverse("django_notify:push-public-key") == PUBLIC
    client = APIClient()
    response = client.get(PUBLIC)
    assert response.status_code == 200
    assert response.json() == {"public_key": PUBLIC_KEY.decode()}
    assert response["Cache-Control"] == "public, max-age=300"
    # No session is read, so the answer does not vary by cookie.
    assert "Cookie" not in response.get("Vary", "")
    assert client.get(PUBLIC.rstrip("/")).json() == response.json()


def test_public_key_is_the_application_server_key_of_the_channel(api_client):
    raw = base64.urlsafe_b64decode(api_client.get(PUBLIC).json()["public_key"] + "==")
    assert len(raw) == 65 and raw[0] == 0x04
    # The same key signs the VAPID header (RFC 8292 "k=").
    assert push_channel().signer.public_key == b64url(raw)


def test_public_key_accepts_only_get(api_client):
    assert api_client.post(PUBLIC, {}, format="json").status_code == 405


# -- not configured -------------------------------------------------------------------

ROUTES = [
    ("get", PUBLIC),
    ("post", SUBSCRIBE),
    ("post", UNSUBSCRIBE),
    ("get", SUBSCRIPTIONS),
    ("delete", SUBSCRIPTIONS + "1/"),
    ("put", PREFERENCES),
    ("post", TEST),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_route_is_404_without_a_webpush_channel(not_configured, api_client, method, url):
    body = browser_subscription() if method != "get" else None
    response = getattr(api_client, method)(url, body, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Web Push is not configured."}


def test_not_configured_stores_nothing(not_configured, api_client):
    assert subscribe(api_client, browser_subscription()).status_code == 404
    assert not PushSubscription.objects.exists()


def test_anonymous_not_configured_public_key_is_404(not_configured, db):
    assert APIClient().get(PUBLIC).status_code == 404


@pytest.mark.parametrize(("method", "url"), ROUTES[1:])
def test_anonymous_callers_are_refused(db, method, url):
    body = browser_subscription() if method != "get" else None
    response = getattr(APIClient(), method)(url, body, format="json")
    assert response.status_code == 403
    assert "credentials" in response.json()["detail"]
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_options_describes_every_route(api_client, method, url):
    response = api_client.options(url)
    assert response.status_code == 200
    assert method.upper() in response["Allow"]


def test_url_names():
    assert reverse("django_notify:push-subscribe") == SUBSCRIBE
    assert reverse("django_notify:push-unsubscribe") == UNSUBSCRIBE
    assert reverse("django_notify:push-subscription-list") == SUBSCRIPTIONS
    assert reverse("django_notify:push-subscription-detail", kwargs={"pk": 7}) == SUBSCRIPTIONS + "7/"
    assert reverse("django_notify:push-preferences") == PREFERENCES
    assert reverse("django_notify:push-test") == TEST
    assert reverse("django_notify:service-worker") == "/api/notifications/sw.js"


# -- subscribe ------------------------------------------------------------------------


def test_subscribe_bare_subscription_json(api_client, user):
    body = browser_subscription()
    response = subscribe(api_client, body, HTTP_USER_AGENT=CHROME_ANDROID)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert list(data) == SUBSCRIPTION_FIELDS
    row = PushSubscription.objects.get()
    assert data["id"] == row.pk
    assert data["browser"] == "Chrome on Android"
    assert (data["is_active"], data["preferences"], data["expiration_time"]) == (True, {}, None)
    assert (row.user, row.endpoint, row.endpoint_sha256) == (user, body["endpoint"], endpoint_digest(body["endpoint"]))
    assert (row.p256dh, row.auth) == (body["keys"]["p256dh"], body["keys"]["auth"])
    assert row.vapid_key_id == push_channel().signer.key_id != ""
    assert row.user_agent == CHROME_ANDROID
    assert_no_secrets(response, body)


def test_subscribe_wrapped_with_preferences(api_client, user):
    body = browser_subscription()
    preferences = {"categories": {"inventory": False}, "types": {"order_placed": False}}
    response = subscribe(api_client, {"subscription": body, "preferences": preferences})
    assert response.status_code == 201, response.json()
    assert response.json()["preferences"] == preferences
    assert PushSubscription.objects.get(user=user).preferences == preferences
    assert_no_secrets(response, body)


def test_subscribe_stores_padded_keys_unpadded(api_client):
    body = browser_subscription()
    padded = {"p256dh": body["keys"]["p256dh"] + "=", "auth": body["keys"]["auth"] + "=="}
    assert subscribe(api_client, {**body, "keys": padded}).status_code == 201
    row = PushSubscription.objects.get()
    assert (row.p256dh, row.auth) == (body["keys"]["p256dh"], body["keys"]["auth"])


def test_subscribe_stores_the_expiration_time(api_client):
    when = timezone.now() + timedelta(days=30)
    body = browser_subscription(expirationTime=int(when.timestamp() * 1000))
    response = subscribe(api_client, body)
    assert response.status_code == 201
    stored = PushSubscription.objects.get().expiration_time
    assert abs((stored - when).total_seconds()) < 0.002
    assert response.json()["expiration_time"] is not None


def test_user_agent_is_truncated(api_client):
    assert subscribe(api_client, browser_subscription(), HTTP_USER_AGENT="x" * 1000).status_code == 201
    assert PushSubscription.objects.get().user_agent == "x" * 255


def test_subscribe_trailing_slash_is_optional(api_client):
    assert api_client.post(SUBSCRIBE.rstrip("/"), browser_subscription(), format="json").status_code == 201


def test_subscribing_again_updates_the_row_and_reactivates_it(api_client, user):
    first = browser_subscription()
    preferences = {"categories": {"orders": False}, "types": {}}
    created = subscribe(api_client, {"subscription": first, "preferences": preferences}).json()
    PushSubscription.objects.update(
        is_active=False, deactivated_at=timezone.now(), deactivation_reason="HTTP 410", failure_count=3
    )
    again = {**first, "keys": browser_keys()}

    response = subscribe(api_client, again, HTTP_USER_AGENT=FIREFOX_WINDOWS)

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    row = PushSubscription.objects.get()
    assert (row.p256dh, row.auth, row.user_agent) == (again["keys"]["p256dh"], again["keys"]["auth"], FIREFOX_WINDOWS)
    assert (row.is_active, row.deactivated_at, row.deactivation_reason, row.failure_count) == (True, None, "", 0)
    assert row.preferences == preferences  # kept: the body gave none
    changed = {"categories": {}, "types": {"order_placed": False}}
    assert subscribe(api_client, {"subscription": again, "preferences": changed}).json()["preferences"] == changed


def test_identical_requests_leave_one_row(api_client):
    body = browser_subscription()
    codes = [subscribe(api_client, body).status_code for _ in range(3)]
    assert codes == [201, 200, 200]
    assert PushSubscription.objects.count() == 1


def test_another_users_endpoint_moves_to_the_caller(api_client_factory, user, other_user):
    body = browser_subscription()
    theirs = subscribe(
        api_client_factory(other_user), {"subscription": body, "preferences": {"categories": {"orders": False}}}
    ).json()
    pending = notify("django_notify.test", other_user, channels=["webpush"])
    assert pending.deliveries == 1

    response = subscribe(api_client_factory(user), body)

    # The browser is the authority: the endpoint now reaches the caller only.
    assert response.status_code == 201
    mine = PushSubscription.objects.get()
    assert (mine.user, mine.preferences) == (user, {})
    assert mine.pk != theirs["id"] and response.json()["id"] == mine.pk
    # The former owner's pending push is no longer tied to the browser: it is skipped, not shown to the caller.
    assert Delivery.objects.get().subscription_id is None
    assert api_client_factory(other_user).get(SUBSCRIPTIONS).json() == []


def test_race_safe_upsert_with_concurrent_requests(transactional_db, api_client_factory, user):
    if connection.vendor == "sqlite":
        pytest.skip("needs concurrent connections with row locks: run with DATABASE_URL for PostgreSQL or MariaDB")
    body = browser_subscription()
    clients = [api_client_factory(user) for _ in range(8)]
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def post(client):
        try:
            start.wait()
            codes.append(subscribe(client, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [200] * 7 + [201]
    assert PushSubscription.objects.filter(endpoint_sha256=endpoint_digest(body["endpoint"])).count() == 1


# -- subscribe: bad input -------------------------------------------------------------

HOSTILE_ENDPOINTS = {
    "http": "http://fcm.googleapis.com/fcm/send/SECRETTOKEN",
    "other host": "https://evil.example.com/fcm/send/SECRETTOKEN",
    "suffix trick": "https://fcm.googleapis.com.evil.example/SECRETTOKEN",
    "ipv4 literal": "https://10.0.0.5/SECRETTOKEN",
    "metadata service": "https://169.254.169.254/latest/SECRETTOKEN",
    "ipv6 literal": "https://[fd00::1]/SECRETTOKEN",
    "userinfo": "https://user:pass@fcm.googleapis.com/fcm/send/SECRETTOKEN",
    "port": "https://fcm.googleapis.com:8443/fcm/send/SECRETTOKEN",
    "not a url": "SECRETTOKEN",
    "too long": "https://fcm.googleapis.com/fcm/send/SECRETTOKEN" + "a" * 5000,
}


@pytest.mark.parametrize("endpoint", HOSTILE_ENDPOINTS.values(), ids=HOSTILE_ENDPOINTS.keys())
def test_hostile_endpoints_are_refused(api_client, endpoint):
    for body in (browser_subscription(endpoint), {"subscription": browser_subscription(endpoint)}):
        response = subscribe(api_client, body)
        assert response.status_code == 400
        errors = response.json()
        messages = (errors.get("subscription") or errors)["endpoint"]
        assert messages and all(isinstance(message, str) and message for message in messages)
        assert "SECRETTOKEN" not in response.content.decode()
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize("endpoint", [None, 42, "", ["https://fcm.googleapis.com/x"]])
def test_endpoint_of_the_wrong_type(api_client, endpoint):
    response = subscribe(api_client, browser_subscription() | {"endpoint": endpoint})
    assert response.status_code == 400
    assert list(response.json()) == ["endpoint"]


def off_curve_point() -> str:
    raw = b"\x04" + b"\x01" * 64
    with pytest.raises(ValueError):
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return b64url(raw)


def compressed_point() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return b64url(key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))


BAD_KEYS = {
    "p256dh off the curve": ({"p256dh": off_curve_point()}, "p256dh", "curve"),
    "p256dh compressed": ({"p256dh": compressed_point()}, "p256dh", "65 bytes"),
    "p256dh not base64url": ({"p256dh": "not+base64/at all!"}, "p256dh", "base64url"),
    "p256dh blank": ({"p256dh": ""}, "p256dh", "blank"),
    "p256dh number": ({"p256dh": 5}, "p256dh", "base64url"),
    "auth of 15 bytes": ({"auth": b64url(os.urandom(15))}, "auth", "16-byte"),
    "auth of 17 bytes": ({"auth": b64url(os.urandom(17))}, "auth", "16-byte"),
    "auth not base64url": ({"auth": "%%%%"}, "auth", "base64url"),
}


@pytest.mark.parametrize(("change", "field", "words"), BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_keys_are_refused_naming_the_field(api_client, change, field, words):
    body = browser_subscription()
    body["keys"].update(change)
    response = subscribe(api_client, body)
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["keys"] and list(errors["keys"]) == [field]
    assert words in errors["keys"][field][0]
    value = change[field]
    if isinstance(value, str) and value:
        assert value not in response.content.decode()
    assert body["endpoint"] not in response.content.decode()
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"endpoint": "https://fcm.googleapis.com/fcm/send/x"}, {"keys": ["This field is required."]}),
        (browser_subscription() | {"keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, {"keys": {"p256dh": None}}),
        (browser_subscription() | {"keys": {"p256dh": "x"}}, {"keys": {"auth": None}}),
        (browser_subscription() | {"keys": "p256dh"}, {"keys": {"non_field_errors": None}}),
        ({}, {"endpoint": None, "keys": None}),
        ({"subscription": []}, {"subscription": {"non_field_errors": None}}),
        ({"subscription": None}, {"subscription": None}),
    ],
    ids=["no keys", "no p256dh", "no auth", "keys not an object", "empty", "subscription a list", "subscription null"],
)
def test_missing_or_malformed_parts(api_client, body, errors):
    response = subscribe(api_client, body)
    assert response.status_code == 400
    data = response.json()
    assert set(data) == set(errors)
    for key, expected in errors.items():
        if isinstance(expected, dict):
            assert set(expected) <= set(data[key]), data
        elif expected is not None:
            assert data[key] == expected


def test_body_must_be_a_json_object(api_client):
    response = api_client.post(SUBSCRIBE, [browser_subscription()], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    malformed = api_client.post(SUBSCRIBE, '{"endpoint": ', content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.json()["detail"].startswith("JSON parse error")
    form = api_client.post(SUBSCRIBE, {"endpoint": "https://fcm.googleapis.com/x"})
    assert form.status_code == 415
    assert "detail" in form.json()
    huge = api_client.post(SUBSCRIBE, json.dumps({"pad": "x" * 70_000}), content_type="application/json")
    assert huge.status_code == 400
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "value",
    [True, "1700000000000", -1, 1e20, 1000],
    ids=["bool", "string", "negative", "huge", "1970"],
)
def test_bad_expiration_time(api_client, value):
    response = subscribe(api_client, browser_subscription(expirationTime=value))
    assert response.status_code == 400
    assert list(response.json()) == ["expirationTime"]


def test_expired_subscription_is_refused(api_client):
    past = int((timezone.now() - timedelta(minutes=1)).timestamp() * 1000)
    response = subscribe(api_client, browser_subscription(expirationTime=past))
    assert response.json() == {"expirationTime": ["This subscription has expired already: subscribe again."]}


def test_bad_preferences_on_subscribe_store_nothing(api_client):
    body = {"subscription": browser_subscription(), "preferences": {"types": {"nope": False}}}
    response = subscribe(api_client, body)
    assert response.status_code == 400
    assert list(response.json()) == ["preferences"]
    assert not PushSubscription.objects.exists()


# -- cap ------------------------------------------------------------------------------


def test_cap_evicts_least_recently_used_subscriptions(settings, api_client, user, other_user):
    options = {**WEBPUSH["OPTIONS"], "max_subscriptions_per_user": 3}
    settings.DJANGO_NOTIFY = {"CHANNELS": {**BASE_CHANNELS, "webpush": {**WEBPUSH, "OPTIONS": options}}}
    now = timezone.now()
    used_long_ago = make_subscription(user, last_success_at=now - timedelta(days=30))
    used_lately = make_subscription(user, last_success_at=now - timedelta(hours=1))
    dead = make_subscription(user, is_active=False, last_success_at=now)
    # updated_at is set on save: make the three look untouched for a month.
    PushSubscription.objects.filter(user=user).update(updated_at=now - timedelta(days=30))
    theirs = make_subscription(other_user)

    first = subscribe(api_client, browser_subscription())
    assert first.status_code == 201
    # Inactive rows go first, whatever their age.
    assert set(PushSubscription.objects.filter(user=user).values_list("pk", flat=True)) == {
        used_long_ago.pk,
        used_lately.pk,
        first.json()["id"],
    }
    assert not PushSubscription.objects.filter(pk=dead.pk).exists()

    second = subscribe(api_client, browser_subscription())
    assert set(PushSubscription.objects.filter(user=user).values_list("pk", flat=True)) == {
        used_lately.pk,
        first.json()["id"],
        second.json()["id"],
    }
    # Re-subscribing an endpoint creates nothing, so evicts nothing.
    PushSubscription.objects.filter(pk=used_lately.pk).update(updated_at=now - timedelta(days=60))
    again = browser_subscription(PushSubscription.objects.get(pk=used_lately.pk).endpoint)
    assert subscribe(api_client, again).status_code == 200
    assert PushSubscription.objects.filter(user=user).count() == 3
    assert PushSubscription.objects.filter(pk=theirs.pk).exists()


# -- oldEndpoint ----------------------------------------------------------------------


def test_old_endpoint_is_replaced_in_place(api_client, user):
    old = browser_subscription()
    created = subscribe(api_client, {"subscription": old, "preferences": {"types": {"order_placed": False}}}).json()
    new = browser_subscription()

    response = subscribe(api_client, {"subscription": new, "oldEndpoint": old["endpoint"]})

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    row = PushSubscription.objects.get()
    assert (row.endpoint, row.endpoint_sha256) == (new["endpoint"], endpoint_digest(new["endpoint"]))
    assert row.p256dh == new["keys"]["p256dh"]
    assert row.preferences == {"categories": {}, "types": {"order_placed": False}}
    assert_no_secrets(response, old, new)


def test_old_endpoint_in_the_bare_form(api_client):
    old = browser_subscription()
    subscribe(api_client, old)
    new = browser_subscription(oldEndpoint=old["endpoint"])
    assert subscribe(api_client, new).status_code == 200
    assert PushSubscription.objects.get().endpoint == new["endpoint"]


def test_old_endpoint_when_the_new_one_is_stored_already(api_client, user):
    old, new = browser_subscription(), browser_subscription()
    subscribe(api_client, old)
    kept = subscribe(api_client, new).json()["id"]
    response = subscribe(api_client, {"subscription": new, "oldEndpoint": old["endpoint"]})
    assert response.status_code == 200
    assert list(PushSubscription.objects.values_list("pk", flat=True)) == [kept]


def test_old_endpoint_of_another_user_is_ignored(api_client_factory, user, other_user):
    theirs = browser_subscription()
    subscribe(api_client_factory(other_user), theirs)
    before = PushSubscription.objects.values().get()

    response = subscribe(
        api_client_factory(user), {"subscription": browser_subscription(), "oldEndpoint": theirs["endpoint"]}
    )

    assert response.status_code == 201
    assert PushSubscription.objects.filter(user=other_user).values().get() == before
    assert PushSubscription.objects.filter(user=user).count() == 1


def test_unknown_old_endpoint_is_ignored(api_client):
    body = {"subscription": browser_subscription(), "oldEndpoint": fcm_endpoint()}
    assert subscribe(api_client, body).status_code == 201
    assert PushSubscription.objects.count() == 1


# -- unsubscribe ----------------------------------------------------------------------


def test_unsubscribe_deletes_the_callers_row(api_client, user):
    body = browser_subscription()
    subscribe(api_client, body)
    response = api_client.post(UNSUBSCRIBE, {"endpoint": body["endpoint"]}, format="json")
    assert response.status_code == 204
    assert not PushSubscription.objects.exists()
    again = api_client.post(UNSUBSCRIBE, {"endpoint": body["endpoint"]}, format="json")
    assert again.status_code == 404
    assert again.json() == {"detail": "No push subscription of yours has this endpoint."}
    assert body["endpoint"] not in again.content.decode()


def test_unsubscribe_another_users_endpoint_is_404(api_client_factory, user, other_user):
    theirs = make_subscription(other_user)
    response = api_client_factory(user).post(UNSUBSCRIBE, {"endpoint": theirs.endpoint}, format="json")
    assert response.status_code == 404
    assert PushSubscription.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize(
    "body", [{}, {"endpoint": ""}, {"endpoint": None}, {"endpoint": {"a": 1}}, [], {"endpoint": "x" * 5000}]
)
def test_unsubscribe_bad_body(api_client, body):
    response = api_client.post(UNSUBSCRIBE, body, format="json")
    assert response.status_code == 400
    assert response.json()


# -- subscriptions --------------------------------------------------------------------


def test_list_shows_the_callers_subscriptions_without_secrets(api_client, user, other_user):
    mine = [browser_subscription(), browser_subscription()]
    subscribe(api_client, mine[0], HTTP_USER_AGENT=FIREFOX_WINDOWS)
    subscribe(api_client, mine[1], HTTP_USER_AGENT=CHROME_ANDROID)
    theirs = make_subscription(other_user)

    response = api_client.get(SUBSCRIPTIONS)

    assert response.status_code == 200
    rows = response.json()
    assert [row["browser"] for row in rows] == ["Chrome on Android", "Firefox on Windows"]
    assert all(list(row) == SUBSCRIPTION_FIELDS for row in rows)
    assert theirs.pk not in [row["id"] for row in rows]
    assert_no_secrets(response, *mine)
    assert api_client.get(SUBSCRIPTIONS.rstrip("/")).json() == rows


def test_list_takes_a_constant_number_of_queries(api_client, user):
    for _ in range(5):
        make_subscription(user)
    with CaptureQueriesContext(connection) as queries:
        assert len(api_client.get(SUBSCRIPTIONS).json()) == 5
    few = len(queries)
    for _ in range(5):
        make_subscription(user)
    with CaptureQueriesContext(connection) as queries:
        assert len(api_client.get(SUBSCRIPTIONS).json()) == 10
    assert len(queries) == few


def test_delete_one_subscription(api_client, user, other_user):
    mine, theirs = make_subscription(user), make_subscription(other_user)
    response = api_client.delete(SUBSCRIPTIONS + f"{theirs.pk}/")
    assert (response.status_code, response.json()) == (404, {"detail": "No PushSubscription matches the given query."})
    assert PushSubscription.objects.filter(pk=theirs.pk).exists()
    assert api_client.delete(SUBSCRIPTIONS + f"{mine.pk}/").status_code == 204
    assert not PushSubscription.objects.filter(pk=mine.pk).exists()
    assert api_client.delete(SUBSCRIPTIONS + f"{mine.pk}/").status_code == 404
    other = api_client.delete(SUBSCRIPTIONS + "abc/")
    assert (other.status_code, other.json()) == (404, {"detail": "Not found."})


def test_subscriptions_have_no_other_methods(api_client, user):
    mine = make_subscription(user)
    assert api_client.post(SUBSCRIPTIONS, browser_subscription(), format="json").status_code == 405
    assert api_client.get(SUBSCRIPTIONS + f"{mine.pk}/").status_code == 405
    assert api_client.put(SUBSCRIPTIONS + f"{mine.pk}/", {}, format="json").status_code == 405


# -- preferences ----------------------------------------------------------------------


def put_preferences(client, body):
    return client.put(PREFERENCES, body, format="json")


def test_put_preferences_by_endpoint_and_by_id(api_client, user):
    body = browser_subscription()
    row_id = subscribe(api_client, body).json()["id"]
    preferences = {"categories": {"inventory": False, "orders": True}, "types": {"low_stock": True}}

    response = put_preferences(api_client, {"endpoint": body["endpoint"], "preferences": preferences})

    assert response.status_code == 200
    assert response.json()["preferences"] == preferences
    assert PushSubscription.objects.get().preferences == preferences
    assert_no_secrets(response, body)
    # PUT replaces: what the body leaves out is gone.
    response = put_preferences(api_client, {"id": row_id, "preferences": {"types": {"order_placed": False}}})
    assert response.json()["preferences"] == {"categories": {}, "types": {"order_placed": False}}
    assert put_preferences(api_client, {"id": row_id, "preferences": {}}).json()["preferences"] == {
        "categories": {},
        "types": {},
    }


def test_put_preferences_of_another_user_is_404(api_client, user, other_user):
    theirs = make_subscription(other_user, preferences={"types": {"order_placed": False}})
    for body in ({"id": theirs.pk}, {"endpoint": theirs.endpoint}):
        response = put_preferences(api_client, {**body, "preferences": {}})
        assert response.status_code == 404
        assert "detail" in response.json()
    theirs.refresh_from_db()
    assert theirs.preferences == {"types": {"order_placed": False}}


@pytest.fixture
def locked_types():
    required = NotificationType(
        key="security_alert", category="account", channels=["webpush"], required_channels=["webpush"]
    )
    with registered(required):
        yield


@pytest.mark.parametrize(
    ("preferences", "errors"),
    [
        ({"categories": {"nope": False}}, {"categories": {"nope": None}}),
        ({"types": {"nope": False}}, {"types": {"nope": None}}),
        (
            {"types": {"django_notify.test": False}},
            {"types": {"django_notify.test": ["django_notify.test is critical: it cannot be muted."]}},
        ),
        (
            {"types": {"security_alert": False}},
            {"types": {"security_alert": ["security_alert is locked on for webpush (required_channels)."]}},
        ),
        ({"types": {"order_placed": "no"}}, {"types": {"order_placed": ["Must be true or false."]}}),
        ({"colour": {}}, {"colour": ["Unknown field. Valid fields: categories, types."]}),
        ({"types": []}, {"types": None}),
    ],
    ids=["unknown category", "unknown type", "critical", "required channel", "not a boolean", "unknown field", "list"],
)
def test_bad_preferences(api_client, user, locked_types, preferences, errors):
    row = make_subscription(user)
    response = put_preferences(api_client, {"id": row.pk, "preferences": preferences})
    assert response.status_code == 400
    data = response.json()["preferences"]
    assert set(data) == set(errors)
    for key, expected in errors.items():
        if isinstance(expected, dict):
            assert set(data[key]) == set(expected)
            assert all(message for messages in data[key].values() for message in messages)
            expected = {name: data[key][name] if text is None else text for name, text in expected.items()}
        if expected is not None:
            assert data[key] == expected
    row.refresh_from_db()
    assert row.preferences == {}


def test_unknown_names_are_listed_with_the_known_ones(api_client, user):
    row = make_subscription(user)
    body = {"id": row.pk, "preferences": {"categories": {"nope": False}, "types": {"nah": True}}}
    errors = put_preferences(api_client, body).json()["preferences"]
    categories = ", ".join(registry.categories())
    assert errors["categories"] == {"nope": [f"Unknown category 'nope'. Categories: {categories}."]}
    assert errors["types"] == {"nah": [f"Unknown notification type 'nah'. Known types: {', '.join(registry.keys())}."]}


def test_critical_types_may_be_switched_on(api_client, user):
    row = make_subscription(user)
    preferences = {"types": {"django_notify.test": True}}
    assert put_preferences(api_client, {"id": row.pk, "preferences": preferences}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"preferences": {}},
        {"id": 1, "endpoint": "https://fcm.googleapis.com/x", "preferences": {}},
        {"id": 1},
        {"id": "x", "preferences": {}},
    ],
    ids=["neither", "both", "no preferences", "bad id"],
)
def test_put_preferences_bad_body(api_client, user, body):
    response = put_preferences(api_client, body)
    assert response.status_code == 400
    assert response.json()


def test_preferences_accept_only_put(api_client):
    assert api_client.get(PREFERENCES).status_code == 405
    assert api_client.post(PREFERENCES, {}, format="json").status_code == 405


# -- test push ------------------------------------------------------------------------


def test_test_push_creates_deliveries_for_active_subscriptions_only(api_client, user, other_user):
    active = [make_subscription(user), make_subscription(user)]
    make_subscription(user, is_active=False, deactivation_reason="HTTP 410")
    make_subscription(other_user)

    response = api_client.post(TEST)

    assert response.status_code == 202
    assert response.json() == {"subscriptions": 2}
    deliveries = Delivery.objects.select_related("notification")
    assert {d.subscription_id for d in deliveries} == {row.pk for row in active}
    assert {(d.channel, d.status, d.notification.type, d.notification.recipient_id) for d in deliveries} == {
        ("webpush", DeliveryStatus.PENDING, "django_notify.test", user.pk)
    }


def test_test_push_without_an_active_subscription_is_400(api_client, user):
    make_subscription(user, is_active=False)
    response = api_client.post(TEST)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "You have no active push subscription: allow notifications in a browser first."
    }
    assert not Delivery.objects.exists()


def test_test_push_is_throttled(api_client, user, other_user, api_client_factory):
    make_subscription(user)
    make_subscription(other_user)
    codes = [api_client.post(TEST).status_code for _ in range(6)]
    assert codes == [202] * 5 + [429]
    assert "throttled" in api_client.post(TEST).json()["detail"]
    # Per user: another caller is not held back.
    assert api_client_factory(other_user).post(TEST).status_code == 202


# -- CSRF -----------------------------------------------------------------------------


def test_csrf_is_enforced_for_session_auth(api_client_factory, user):
    client = api_client_factory(user, enforce_csrf_checks=True)
    body = browser_subscription()
    assert subscribe(client, body).status_code == 403
    assert not PushSubscription.objects.exists()
    row = make_subscription(user)
    assert client.post(UNSUBSCRIBE, {"endpoint": row.endpoint}, format="json").status_code == 403
    assert client.delete(SUBSCRIPTIONS + f"{row.pk}/").status_code == 403
    assert put_preferences(client, {"id": row.pk, "preferences": {}}).status_code == 403
    assert client.post(TEST).status_code == 403
    assert not Delivery.objects.exists()
    assert client.get(SUBSCRIPTIONS).status_code == 200  # safe methods need no token

    token = "t" * 32  # a valid secret; the header must repeat the cookie
    client.cookies["csrftoken"] = token
    assert subscribe(client, body, HTTP_X_CSRFTOKEN="u" * 32).status_code == 403
    assert subscribe(client, body, HTTP_X_CSRFTOKEN=token).status_code == 201
    assert client.delete(SUBSCRIPTIONS + f"{row.pk}/", HTTP_X_CSRFTOKEN=token).status_code == 204


# -- browser names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        (CHROME_ANDROID, "Chrome on Android"),
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
            "Opera on macOS",
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"),
        ("curl/8.5.0", "Other browser"),
        ("", ""),
    ],
)
def test_browser_label(user_agent, label):
    assert browser_label(user_agent) == label
