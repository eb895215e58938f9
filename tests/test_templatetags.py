"""``{% load notify %}``: ``unread_count``, ``notify_badge`` and ``notify_client``.

What the rendered script and badge do in a browser is in ``tests/browser/``.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.middleware.csrf import _unmask_cipher_token
from django.template import TemplateSyntaxError, engines
from django.test import RequestFactory
from django.utils import timezone

from django_notify.models import Notification

#: A URLconf without django_notify (``@pytest.mark.urls(__name__)``).
urlpatterns: list[Any] = []


def render(source: str, user: Any = None, **context: Any) -> str:
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()
    return engines["django"].from_string("{% load notify %}" + source).render(context, request)


def add(user: Any, count: int = 1, **fields: Any) -> None:
    fields.setdefault("visible_at", timezone.now())
    for number in range(count):
        Notification.objects.create(
            recipient=user, type="order_placed", category="orders", title=f"Order {number}", **fields
        )


def client_config(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="django-notify-config" type="application/json">(.*?)</script>', html)
    assert match, html
    config: dict[str, Any] = json.loads(match.group(1))
    return config


@pytest.fixture(autouse=True)
def _static_url(settings):
    settings.STATIC_URL = "/static/"


# -- unread_count ------------------------------------------------------------------------


def test_unread_count_counts_what_the_api_counts(user, other_user):
    add(user, 2)
    add(user, read_at=timezone.now())
    add(user, archived_at=timezone.now())
    add(user, visible_at=timezone.now() + timedelta(hours=1))  # not shown yet
    add(other_user, 5)
    assert render("{% unread_count %}", user) == "2"


def test_unread_count_of_an_anonymous_visitor_is_0(db):
    assert render("{% unread_count %}") == "0"


def test_one_query_for_every_tag_of_a_page(user, django_assert_num_queries):
    add(user, 3)
    with django_assert_num_queries(1):
        html = render("{% unread_count %} {% notify_badge %} {% unread_count %}", user)
    assert html.startswith("3 <span") and html.endswith("</span>\n 3")


# -- notify_badge ----------------------------------------------------------------------


def test_badge_markup(user):
    add(user, 3)
    assert render("{% notify_badge %}", user).strip() == (
        '<span class="notify-badge" data-notify-badge data-count="3" data-notify-max="99">3</span>'
    )


def test_badge_is_hidden_at_0(user):
    html = render("{% notify_badge %}", user)
    assert 'data-count="0"' in html and html.strip().endswith(" hidden>0</span>")


def test_badge_caps_the_number_it_shows(user):
    add(user, 12)
    html = render("{% notify_badge max=9 %}", user)
    assert 'data-count="12" data-notify-max="9">9+</span>' in html
    assert ">12</span>" in render("{% notify_badge max=0 %}", user)


def test_badge_poll_interval_and_class_are_escaped(user):
    html = render("{% notify_badge poll=5 css_class=cls %}", user, cls='bell" onclick="alert(1)')
    assert 'class="bell&quot; onclick=&quot;alert(1)"' in html
    assert 'data-notify-poll="5"' in html


def test_badge_of_an_anonymous_visitor_does_not_poll(db):
    assert 'data-notify-poll="0"' in render("{% notify_badge poll=5 %}")


@pytest.mark.parametrize("source", ["{% notify_badge max=-1 %}", '{% notify_badge poll="soon" %}'])
def test_badge_refuses_bad_numbers(user, source):
    with pytest.raises(TemplateSyntaxError, match=r"must be a whole number of 0 or more, not "):
        render(source, user)


# -- notify_client ---------------------------------------------------------------------


def test_client_renders_its_config_and_the_module(user):
    request = RequestFactory().get("/")
    request.user = user
    html = engines["django"].from_string("{% load notify %}{% notify_client %}").render({}, request)

    config = client_config(html)
    token = config.pop("csrfToken")
    assert config == {
        "baseUrl": "/api/notifications/",
        "serviceWorkerUrl": "/api/notifications/sw.js",
        "scope": "/",
        "csrfCookieName": "csrftoken",
        "pollInterval": 30,
    }
    # The page's CSRF token: the one the response's csrftoken cookie will carry.
    assert _unmask_cipher_token(token) == request.META["CSRF_COOKIE"]
    assert '<script type="module">\nimport { autoInit } from "/static/django_notify/notify.js";' in html
    assert 'autoInit(document.getElementById("django-notify-config"));' in html


def test_client_options(db):
    html = render('{% notify_client poll=5 service_worker_url="/sw.js" scope="/app/" nonce="n0nce" %}')
    config = client_config(html)
    assert (config["pollInterval"], config["serviceWorkerUrl"], config["scope"]) == (5, "/sw.js", "/app/")
    assert '<script type="module" nonce="n0nce">' in html


def test_client_takes_the_csp_nonce_from_the_context(db):
    assert '<script type="module" nonce="abc">' in render("{% notify_client %}", csp_nonce="abc")


def test_client_config_is_escaped(db):
    html = render("{% notify_client service_worker_url=url %}", url='/sw.js?x=</script><script>alert("1")')
    assert "</script><script>" not in html
    assert client_config(html)["serviceWorkerUrl"] == '/sw.js?x=</script><script>alert("1")'


def test_a_renamed_csrf_cookie_reaches_the_client_and_the_worker(settings, db):
    settings.CSRF_COOKIE_NAME = "site_csrf"
    config = client_config(render("{% notify_client %}"))
    assert config["csrfCookieName"] == "site_csrf"
    assert config["serviceWorkerUrl"] == "/api/notifications/sw.js?csrf_cookie=site_csrf"


def test_client_poll_must_be_at_least_a_second(db):
    with pytest.raises(TemplateSyntaxError, match=r"notify_client poll must be at least 1 second, not 0\."):
        render("{% notify_client poll=0 %}")


@pytest.mark.urls(__name__)
def test_client_says_to_include_the_urlconf(db):
    with pytest.raises(ImproperlyConfigured, match=r"include django_notify.urls in your URLconf, e\.g\. path\("):
        render("{% notify_client %}")


def test_client_without_a_request_reads_the_cookie(db):
    html = engines["django"].from_string("{% load notify %}{% notify_client %}").render({})
    assert "csrfToken" not in client_config(html)
