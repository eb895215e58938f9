from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_notify import notify
from django_notify.models import Delivery, Notification
from django_notify.signals import notification_read
from tests.testapp.models import Order

LIST = "/api/notifications/"
LOW_STOCK = {"item": "Flour", "quantity": 3}
ORDER = {"order_number": "A-7", "total": "9.90"}
FIELDS = {
    "id", "type", "category", "title", "body", "url", "data", "actor", "target", "unread",
    "created_at", "visible_at", "seen_at", "read_at", "archived_at", "expires_at",
}  # fmt: skip


def make(user, count=1, key="low_stock", **kwargs):
    context = LOW_STOCK if key == "low_stock" else ORDER
    for _ in range(count):
        notify(key, user, context=context, **kwargs)
    return list(Notification.objects.filter(recipient=user).order_by("-id")[:count])


def detail(pk, action=None):
    return f"{LIST}{pk}/" + (f"{action}/" if action else "")


# -- list, filters, pagination -----------------------------------------------------


def test_list_shows_only_own_notifications_newest_first(api_client, user, other_user, staff_user):
    order = Order.objects.create(number="A-1")
    make(other_user, 2)
    mine = make(user, 3)
    notify("low_stock", user, context=LOW_STOCK, actor=staff_user, target=order, data={"sku": 9})
    response = api_client.get(LIST)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results][1:] == [n.pk for n in mine]
    first = results[0]
    assert set(first) == FIELDS
    assert first["actor"] == {"type": "auth.user", "id": str(staff_user.pk), "display": str(staff_user)}
    assert first["target"] == {"type": "testapp.order", "id": str(order.pk), "display": "Order A-1"}
    assert (first["data"], first["unread"], first["url"]) == ({"sku": 9}, True, f"/orders/{order.pk}/")
    assert results[1]["actor"] is None and results[1]["target"] is None
    assert response.json()["next"] is None


def test_cursor_pagination_visits_each_row_once_even_with_inserts(api_client, user):
    created = make(user, 7)
    seen, url = [], LIST + "?page_size=3"
    while url:
        page = api_client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        if len(seen) == 3:
            make(user, 2)  # new rows arrive while the client scrolls
        url = page["next"]
    assert seen == [n.pk for n in created]


def test_same_timestamp_rows_are_paginated_by_id(api_client, user, user_factory):
    # One fan-out gives every row of the call the same time; a user may get several.
    when = timezone.now()
    for _ in range(4):
        make(user, 1)
    Notification.objects.update(visible_at=when)
    ids = []
    url = LIST + "?page_size=1"
    while url:
        page = api_client.get(url).json()
        ids += [row["id"] for row in page["results"]]
        url = page["next"]
    assert ids == sorted(Notification.objects.values_list("pk", flat=True), reverse=True)


def test_filters(api_client, user):
    stock = make(user, 2)
    orders = make(user, 1, key="order_placed")
    stock[0].mark_read()
    Notification.objects.filter(pk=stock[1].pk).update(archived_at=timezone.now())

    def ids(query):
        response = api_client.get(LIST + query)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("") == {stock[0].pk, orders[0].pk}
    assert ids("?unread=true") == {orders[0].pk}
    assert ids("?unread=false") == {stock[0].pk}
    assert ids("?archived=true") == {stock[1].pk}
    assert ids("?category=orders") == {orders[0].pk}
    assert ids("?category=orders,inventory") == {stock[0].pk, orders[0].pk}
    assert ids("?type=low_stock&type=order_placed&unread=1") == {orders[0].pk}


def test_future_and_expired_notifications_are_not_listed(api_client, user):
    notify("low_stock", user, context=LOW_STOCK, send_at=timezone.now() + dt.timedelta(hours=1))
    notify("low_stock", user, context=LOW_STOCK, expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert api_client.get(LIST).json()["results"] == []
    hidden = Notification.objects.first()
    assert api_client.get(detail(hidden.pk)).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?unread=maybe", "unread"),
        ("?archived=2", "archived"),
        ("?page_size=0", "page_size"),
        ("?page_size=101", "page_size"),
        ("?page_size=abc", "page_size"),
        ("?cursor=garbage", "cursor"),
        ("?cursor=WyJub3QgYSBkYXRlIiwgMV0=", "cursor"),
        ("?category=" + "x" * 51, "category"),
    ],
)
def test_bad_query_parameters_are_400_with_the_field(api_client, user, query, field):
    make(user)
    response = api_client.get(LIST + query)
    assert response.status_code == 400
    assert field in response.json()


def test_list_query_count_does_not_depend_on_page_size(api_client, user, staff_user):
    order = Order.objects.create(number="Q")
    for _ in range(30):
        notify("low_stock", user, context=LOW_STOCK, actor=staff_user, target=order)
    api_client.get(LIST)  # warm the content-type cache, as a running server has it
    counts = []
    for size in (2, 30):
        with CaptureQueriesContext(connection) as queries:
            response = api_client.get(f"{LIST}?page_size={size}")
        assert len(response.json()["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[0] <= 3  # session, user, page


# -- one notification --------------------------------------------------------------


def test_retrieve_read_unread(api_client, user):
    [row] = make(user)
    assert api_client.get(detail(row.pk)).json()["id"] == row.pk
    events = []
    notification_read.connect(lambda **kw: events.append(kw), weak=False, dispatch_uid="t-read")
    try:
        response = api_client.post(detail(row.pk, "read"))
        assert response.status_code == 200
        assert response.json()["unread"] is False and response.json()["read_at"]
        api_client.post(detail(row.pk, "read"))  # already read: no second signal
    finally:
        notification_read.disconnect(dispatch_uid="t-read")
    assert len(events) == 1 and list(events[0]["notifications"]) == [row]
    row.refresh_from_db()
    assert row.read_at and row.seen_at
    assert api_client.post(detail(row.pk, "unread")).json()["unread"] is True
    row.refresh_from_db()
    assert row.read_at is None and row.seen_at is not None


def test_state_never_changes_on_get(api_client, user):
    [row] = make(user)
    for action in ("read", "unread", "archive", "unarchive"):
        assert api_client.get(detail(row.pk, action)).status_code == 405
    assert api_client.get(LIST + "mark-all-read/").status_code == 405
    row.refresh_from_db()
    assert row.read_at is None and row.archived_at is None


def test_archive_unarchive_and_delete(api_client, user):
    [row] = make(user)
    assert api_client.post(detail(row.pk, "archive")).json()["archived_at"]
    assert api_client.get(LIST).json()["results"] == []
    assert api_client.post(detail(row.pk, "unarchive")).json()["archived_at"] is None
    assert api_client.delete(detail(row.pk)).status_code == 204
    assert not Notification.objects.filter(pk=row.pk).exists()


def test_delete_removes_deliveries(api_client, user):
    [row] = make(user, key="order_placed")
    assert Delivery.objects.filter(notification=row).exists()
    api_client.delete(detail(row.pk))
    assert not Delivery.objects.exists()


def test_trailing_slash_is_optional_and_reverse_gives_it(api_client, user):
    [row] = make(user)
    assert reverse("django_notify:notification-unread-count") == LIST + "unread-count/"
    assert reverse("django_notify:notification-read", kwargs={"pk": 5}) == LIST + "5/read/"
    assert api_client.get(detail(row.pk).rstrip("/")).status_code == 200
    assert api_client.post(detail(row.pk, "read").rstrip("/")).status_code == 200
    assert api_client.get(LIST + "unread-count").status_code == 200


def test_huge_or_odd_ids_are_404_not_500(api_client, user):
    for pk in ("9" * 18, "9" * 30, "-1", "abc"):
        assert api_client.get(LIST + pk + "/").status_code == 404


# -- mark all read, unread count ---------------------------------------------------


def test_mark_all_read_touches_only_the_caller(api_client, user, other_user):
    make(user, 3)
    make(user, 1, key="order_placed")
    theirs = make(other_user, 2)
    response = api_client.post(
        LIST + "mark-all-read/", {"category": "inventory", "recipient": other_user.pk}, format="json"
    )
    assert response.json() == {"updated": 3}
    assert Notification.objects.filter(recipient=user, read_at__isnull=True).count() == 1
    assert api_client.post(LIST + "mark-all-read/").json() == {"updated": 1}
    assert all(n.read_at is None for n in Notification.objects.filter(pk__in=[t.pk for t in theirs]))


def test_mark_all_read_before(api_client, user):
    old, new = make(user, 2)[::-1]
    Notification.objects.filter(pk=old.pk).update(visible_at=timezone.now() - dt.timedelta(days=1))
    before = (timezone.now() - dt.timedelta(hours=1)).isoformat()
    assert api_client.post(LIST + "mark-all-read/", {"before": before}, format="json").json() == {"updated": 1}
    assert api_client.post(LIST + "mark-all-read/", {"before": "yesterday"}, format="json").status_code == 400


def test_mark_all_read_sends_the_signal_with_the_changed_rows(api_client, user):
    rows = make(user, 2)
    rows[0].mark_read()
    received = []
    notification_read.connect(lambda **kw: received.append(list(kw["notifications"])), weak=False, dispatch_uid="t-all")
    try:
        api_client.post(LIST + "mark-all-read/")
    finally:
        notification_read.disconnect(dispatch_uid="t-all")
    assert received == [[rows[1]]]


def test_unread_count_with_etag(api_client, user, other_user):
    rows = make(user, 3)
    make(other_user, 5)
    rows[0].mark_read()
    Notification.objects.filter(pk=rows[1].pk).update(archived_at=timezone.now())
    response = api_client.get(LIST + "unread-count/")
    assert response.json() == {"count": 1}
    etag = response["ETag"]
    assert "no-cache" in response["Cache-Control"] and "private" in response["Cache-Control"]
    not_modified = api_client.get(LIST + "unread-count/", HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert api_client.get(LIST + "unread-count/", HTTP_IF_NONE_MATCH=f'W/{etag}, "x"').status_code == 304
    make(user, 1)
    changed = api_client.get(LIST + "unread-count/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.json() == {"count": 2}
    assert changed["ETag"] != etag


def test_unread_count_etag_differs_between_users(api_client_factory, user, other_user):
    make(user)
    make(other_user)
    tags = {api_client_factory(u).get(LIST + "unread-count/")["ETag"] for u in (user, other_user)}
    assert len(tags) == 2


def test_types(api_client):
    body = api_client.get(LIST + "types/").json()
    low_stock = next(t for t in body["types"] if t["key"] == "low_stock")
    assert low_stock == {
        "key": "low_stock",
        "category": "inventory",
        "verbose_name": "low_stock",
        "description": "",
        "channels": ["in_app"],
        "critical": False,
        "priority": "high",
        "locked_channels": [],
        "forbidden_channels": [],
    }
    assert {"inventory", "orders"} <= set(body["categories"])
    assert body["channels"] == ["in_app", "email", "sms"]


# -- create ------------------------------------------------------------------------


def test_create_is_staff_only(api_client, other_user):
    body = {"type": "low_stock", "recipients": [other_user.pk], "context": LOW_STOCK}
    assert api_client.post(LIST, body, format="json").status_code == 403
    assert not Notification.objects.exists()


def test_staff_creates_for_others(api_client_factory, staff_user, user, other_user):
    client = api_client_factory(staff_user)
    body = {
        "type": "order_placed",
        "recipients": [user.pk, str(other_user.pk)],
        "context": ORDER,
        "data": {"order": 7},
        "idempotency_key": "o7",
        "read_at": "2020-01-01T00:00:00Z",  # not a field: ignored
        "created_at": "2020-01-01T00:00:00Z",
    }
    response = client.post(LIST, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 2, "existing": 0, "deliveries": 2}
    rows = Notification.objects.order_by("recipient_id")
    assert [r.recipient_id for r in rows] == sorted([user.pk, other_user.pk])
    assert all(r.actor == staff_user and r.read_at is None and r.created_at.year > 2020 for r in rows)
    again = client.post(LIST, body, format="json")
    assert again.json() == {"created": 0, "existing": 2, "deliveries": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "nope", "recipients": ["{me}"]}, "type"),
        ({"type": "low_stock", "recipients": []}, "recipients"),
        ({"type": "low_stock", "recipients": ["abc"], "context": LOW_STOCK}, "recipients"),
        ({"type": "low_stock", "recipients": ["424242"], "context": LOW_STOCK}, "recipients"),
        ({"type": "low_stock", "recipients": ["{me}"], "context": {"item": "x"}}, "non_field_errors"),
        ({"type": "low_stock", "recipients": ["{me}"], "context": {**LOW_STOCK, "recipient": 1}}, "context"),
        ({"type": "low_stock", "recipients": ["{me}"], "context": "text"}, "context"),
        ({"type": "low_stock", "recipients": ["{me}"], "context": LOW_STOCK, "channels": ["pigeon"]}, "channels"),
        ({"type": "low_stock", "recipients": ["{me}"], "context": LOW_STOCK, "send_at": "soon"}, "send_at"),
        ({"type": "low_stock", "recipients": ["{me}"], "context": LOW_STOCK, "url": "x" * 2049}, "url"),
    ],
)
def test_create_bad_input_is_400(api_client_factory, staff_user, body, field):
    body = {**body, "recipients": [str(staff_user.pk) if r == "{me}" else r for r in body["recipients"]]}
    response = api_client_factory(staff_user).post(LIST, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Notification.objects.exists()


def test_create_unknown_type_lists_known_types(api_client_factory, staff_user):
    response = api_client_factory(staff_user).post(LIST, {"type": "nope", "recipients": [staff_user.pk]}, format="json")
    assert "low_stock" in response.json()["type"][0]


def test_create_recipient_limit(api_client_factory, staff_user, settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "API_MAX_RECIPIENTS": 2}
    body = {"type": "low_stock", "recipients": [1, 2, 3], "context": LOW_STOCK}
    response = api_client_factory(staff_user).post(LIST, body, format="json")
    assert response.status_code == 400 and "At most 2" in response.json()["recipients"][0]


def test_create_is_throttled(api_client_factory, staff_user, settings):
    from django.core.cache import cache

    cache.clear()
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "CREATE_THROTTLE_RATE": "2/minute"}
    client = api_client_factory(staff_user)
    body = {"type": "low_stock", "recipients": [staff_user.pk], "context": LOW_STOCK}
    codes = [client.post(LIST, body, format="json").status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    assert client.get(LIST).status_code == 200  # reading is not throttled
    cache.clear()


def test_create_permission_is_configurable(api_client, user, settings):
    settings.DJANGO_NOTIFY = {
        **settings.DJANGO_NOTIFY,
        "CREATE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    body = {"type": "low_stock", "recipients": [user.pk], "context": LOW_STOCK}
    assert api_client.post(LIST, body, format="json").status_code == 201


def test_malformed_json_is_400(api_client_factory, staff_user):
    response = api_client_factory(staff_user).post(LIST, "{not json", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()


# -- security ----------------------------------------------------------------------


def notification_routes():
    """Every route of the django_notify namespace, from the URL resolver."""
    _prefix, resolver = get_resolver().namespace_dict["django_notify"]
    # Unnamed patterns are the slash-less twins of the named ones.
    # sw.js is a plain view (the service worker script), not a DRF route.
    return [
        (pattern.name, pattern.callback)
        for pattern in resolver.url_patterns
        if pattern.name and hasattr(pattern.callback, "actions")
    ]


#: Routes open to anonymous callers by design, with the answers they may give here:
#: ``events/`` is authenticated by the signed token in its body (400 without one);
#: ``health/`` serves load balancers and holds counts only (503 while no sweeper runs).
PUBLIC_ROUTES = {"event-list": {400}, "health-list": {200, 503}, "push-public-key": {404}}

#: push/ routes answer 404 "Web Push is not configured." here: tests/settings.py has no webpush
#: channel (tests/test_api_push.py covers them, other users' rows included, with one).
PUSH_NOT_CONFIGURED = {404}


def test_every_route_is_covered_by_the_idor_matrix():
    names = {name for name, _callback in notification_routes()}
    assert {"notification-detail", "notification-read", "notification-unread", "notification-archive"} <= names
    assert {"event-list", "stats-list", "health-list"} <= names


@pytest.mark.parametrize(("name", "callback"), notification_routes(), ids=lambda v: v if isinstance(v, str) else "")
def test_idor_another_users_id_is_404_on_every_method(api_client_factory, user, other_user, name, callback):
    theirs = make(other_user, key="order_placed")[0]
    snapshot = Notification.objects.filter(pk=theirs.pk).values().get()
    client = api_client_factory(user)
    methods = list(callback.actions)
    assert methods
    if callback.initkwargs["detail"]:
        url = reverse(f"django_notify:{name}", kwargs={"pk": theirs.pk})
        for method in methods:
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code == 404, (method, url, response.status_code)
    else:
        # A list route: whatever the method, the other user's rows stay out of reach.
        url = reverse(f"django_notify:{name}")
        for method in methods:
            response = getattr(client, method)(url, {}, format="json")
            expected = {200, 201, 400, 403} | PUBLIC_ROUTES.get(name, set())
            if name.startswith("push-"):
                expected |= PUSH_NOT_CONFIGURED
            assert response.status_code in expected, (method, url, response.status_code)
            # types/ and health/ print numbers that are no one's ids.
            assert str(theirs.pk) not in response.content.decode() or name in {"type-list", "health-list"}
    assert Notification.objects.filter(pk=theirs.pk).values().get() == snapshot


def test_anonymous_is_refused_everywhere(db, user):
    [row] = make(user)
    client = APIClient()
    for name, callback in notification_routes():
        kwargs = {"pk": row.pk} if callback.initkwargs["detail"] else {}
        url = reverse(f"django_notify:{name}", kwargs=kwargs)
        for method in callback.actions:
            assert getattr(client, method)(url).status_code in PUBLIC_ROUTES.get(name, {401, 403}), (method, url)


def test_csrf_is_enforced_for_session_auth(api_client_factory, user):
    [row] = make(user)
    client = api_client_factory(user, enforce_csrf_checks=True)
    assert client.post(detail(row.pk, "read")).status_code == 403
    assert client.delete(detail(row.pk)).status_code == 403
    row.refresh_from_db()
    assert row.read_at is None
    token = "t" * 32  # a valid secret; the header must repeat the cookie
    client.cookies["csrftoken"] = token
    assert client.post(detail(row.pk, "read"), HTTP_X_CSRFTOKEN="u" * 32).status_code == 403
    assert client.post(detail(row.pk, "read"), HTTP_X_CSRFTOKEN=token).status_code == 200
    row.refresh_from_db()
    assert row.read_at is not None


@override_settings(DJANGO_NOTIFY={"CHANNELS": {"in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"}}})
def test_api_works_with_default_channels(api_client, user):
    notify("low_stock", user, context=LOW_STOCK)
    assert len(api_client.get(LIST).json()["results"]) == 1


# -- regressions -------------------------------------------------------------------


def test_repeated_create_with_the_same_key_is_200(api_client_factory, staff_user, user):
    client = api_client_factory(staff_user)
    body = {"type": "low_stock", "recipients": [user.pk], "context": LOW_STOCK, "idempotency_key": "k"}
    assert client.post(LIST, body, format="json").status_code == 201
    again = client.post(LIST, body, format="json")
    assert again.status_code == 200 and again.json()["existing"] == 1


def test_anonymous_create_when_allowed_has_no_actor(db, user, settings):
    settings.DJANGO_NOTIFY = {
        **settings.DJANGO_NOTIFY,
        "CREATE_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
        "CREATE_THROTTLE_RATE": None,
    }
    body = {"type": "low_stock", "recipients": [user.pk], "context": LOW_STOCK}
    assert APIClient().post(LIST, body, format="json").status_code == 201
    row = Notification.objects.get()
    assert row.actor_content_type_id is None and row.actor_repr == ""


def test_mark_all_read_leaves_archived_rows_like_the_count(api_client, user):
    inbox, archived = make(user, 2)
    Notification.objects.filter(pk=archived.pk).update(archived_at=timezone.now())
    assert api_client.get(LIST + "unread-count/").json() == {"count": 1}
    assert api_client.post(LIST + "mark-all-read/").json() == {"updated": 1}
    archived.refresh_from_db()
    assert archived.read_at is None


def test_actions_answer_with_the_viewsets_serializer(user):
    from rest_framework import serializers
    from rest_framework.test import APIRequestFactory, force_authenticate

    from django_notify.api.views import NotificationViewSet

    class Slim(serializers.Serializer):
        def to_representation(self, instance):
            return {"id": instance.pk, "read": instance.read_at is not None}

    class SlimViewSet(NotificationViewSet):
        serializer_class = Slim

    [row] = make(user)
    for action, expected in (("read", True), ("unread", False), ("archive", False)):
        request = APIRequestFactory().post(f"/{row.pk}/{action}/")
        force_authenticate(request, user=user)
        response = SlimViewSet.as_view({"post": action})(request, pk=str(row.pk))
        assert response.data == {"id": row.pk, "read": expected}


def test_unknown_paths_under_the_prefix_are_json_404(api_client):
    for path in ("abc/", "abc", "1/nope/", "types/x/"):
        response = api_client.get(LIST + path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not found."}


def test_model_mark_read_sends_the_signal(user):
    [row] = make(user)
    received = []
    notification_read.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t-model")
    try:
        assert row.mark_read(user=user) is True
        assert row.mark_read(user=user) is False
    finally:
        notification_read.disconnect(dispatch_uid="t-model")
    assert len(received) == 1
    assert received[0]["user"] == user and list(received[0]["notifications"]) == [row]


@pytest.mark.parametrize("path", ["mark-all-read/", "", "settings/"])
def test_deeply_nested_or_huge_json_is_400(api_client_factory, staff_user, path):
    client = api_client_factory(staff_user)
    method = client.patch if path == "settings/" else client.post
    nested = "[" * 100_000 + "]" * 100_000
    for body in (nested, '{"x": NaN}', '"' + "x" * 300_000 + '"'):
        response = method(LIST + path, body, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
        assert "detail" in response.json()
