"""Email through a real cluster to a real SMTP server on loopback.

The test process commits ``notify()`` with an ``email`` channel; its ``on_commit``
kick queues a ``deliver`` task; the ``qcluster`` subprocess renders each message
(from the context stored with the notification, in the recipient's language) and
sends it with Django's SMTP backend to ``tests/smtp.py``'s aiosmtpd server, which
the test inspects. Unsubscribing goes through the URL the email itself carries.
"""

from __future__ import annotations

import re
import time
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import translation
from django.utils.translation import gettext

from django_notify import notify
from django_notify.models import Delivery, EngagementEvent, Notification, Preference
from tests.e2e.conftest import TERMINAL
from tests.e2e.harness import wait_until
from tests.smtp import SMTPServer
from tests.testapp.models import Profile

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BASE_URL = "https://notify.example"
#: Seconds every SMTP operation may take in the cluster.
SMTP_TIMEOUT = 1.0
HOSTILE_TITLE = '<script>alert("x")</script>\r\nBcc: evil@example.com'

#: A type of the test app's ``orders`` category, registered in both processes by
#: ``tests/testapp/notifications.py``; its title shows the language it was rendered in.
TYPE = "order_placed"
LANGUAGE_OF = {"de": "de", "fr": "fr", "en": "en", "": "en"}


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def mail(e2e, smtp):
    """The harness with an ``email`` channel that sends to the loopback server."""
    channels = {
        **e2e.notify_settings["CHANNELS"],
        "email": {"BACKEND": "django_notify.backends.email.EmailBackend", "OPTIONS": {"timeout": SMTP_TIMEOUT}},
    }
    e2e.configure(
        notify={"CHANNELS": channels, "BASE_URL": BASE_URL, "RECIPIENT_LANGUAGE": "profile__language"},
    )
    e2e.env["DN_E2E_SMTP_PORT"] = str(smtp.port)
    return e2e


def users_speaking(e2e: Any, languages: list[str], prefix: str) -> list[Any]:
    users = list(e2e.users(len(languages), prefix).order_by("pk"))
    Profile.objects.bulk_create(
        [Profile(user=user, language=code) for user, code in zip(users, languages, strict=True)]
    )
    return users


def email_rows(ids: list[int] | None = None) -> Any:
    rows = Delivery.objects.filter(channel="email")
    return rows if ids is None else rows.filter(pk__in=ids)


def settle(ids: list[int], timeout: float) -> None:
    wait_until(
        lambda: not email_rows(ids).exclude(status__in=TERMINAL).exists(),
        timeout,
        interval=0.2,
        describe=lambda: f"statuses {list(email_rows(ids).values_list('status', flat=True))}",
    )


def by_recipient(smtp: SMTPServer) -> dict[str, Any]:
    return {received.rcpt_tos[0]: received for received in smtp.messages}


def test_emails_are_rendered_per_language_and_sent_safely(mail, smtp):
    users = users_speaking(mail, ["de", "fr", "en", ""] * 5, "lang")
    mail.cluster()
    notify(
        TYPE,
        users,
        context={"order_number": HOSTILE_TITLE, "total": "{0.__class__}"},
        url="/orders/7/",
        channels=["in_app", "email"],
    )
    ids = list(email_rows().values_list("pk", flat=True))
    assert len(ids) == 20
    settle(ids, timeout=30)
    assert set(email_rows().values_list("status", flat=True)) == {"sent"}
    assert mail.log_problems() == []
    received = by_recipient(smtp)
    assert len(smtp.messages) == 20 and set(received) == {u.email for u in users}
    # One connection per batch, not one per message.
    assert smtp.counters()["sessions"] <= 4
    # Nobody else was ever a recipient: the CR/LF in the title injected no Bcc.
    assert sorted(smtp.rcpts) == sorted(u.email for u in users)

    for user in users:
        row = email_rows().get(notification__recipient=user)
        notification = row.notification
        message = received[user.email].message
        assert message["To"] == user.email
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
        assert message["Bcc"] is None
        assert message["Message-ID"] == f"<dn.{notification.pk}.{row.pk}@notify.example>"
        assert row.provider_response["message_id"] == message["Message-ID"]
        assert row.destination == user.email
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        # The text part is literal, the HTML part escaped; format fields stay text.
        assert '<script>alert("x")</script>' in text and "{0.__class__}" in text
        assert "<script>" not in html and "&lt;script&gt;" in html and "{0.__class__}" in html
        assert f"{BASE_URL}/orders/7/" in text and f'href="{BASE_URL}/orders/7/"' in html  # absolute links
        unsubscribe = str(message["List-Unsubscribe"]).strip()  # a long header is folded
        assert unsubscribe.startswith(f"<{BASE_URL}/") and unsubscribe.endswith(">")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Auto-Submitted"] == "auto-generated"
        # Blank means the site's language (LANGUAGE_CODE "en-us" is served by "en").
        language = LANGUAGE_OF[Profile.objects.get(user=user).language]
        assert notification.language == language
        # The worker rendered the layout in the recipient's language.
        with translation.override(language):
            unsubscribe_label = gettext("Unsubscribe:")
        assert (unsubscribe_label == "Unsubscribe:") == (language == "en")
        assert unsubscribe_label in text


def one_click(message: Any) -> Any:
    """POST the message's List-Unsubscribe URL as a mail client does (RFC 8058): no cookies, no CSRF token."""
    url = str(message["List-Unsubscribe"]).strip().strip("<>")
    client = Client(enforce_csrf_checks=True)
    return client.post(
        urlsplit(url).path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )


def test_the_unsubscribe_link_of_an_email_turns_that_email_off(mail, smtp):
    leaver, stayer = mail.users(2, "unsub").order_by("pk")
    mail.cluster()
    notify(TYPE, [leaver, stayer], context={"order_number": "1", "total": "2"}, channels=["in_app", "email"])
    settle(list(email_rows().values_list("pk", flat=True)), timeout=30)
    message = by_recipient(smtp)[leaver.email].message

    response = one_click(message)
    assert response.status_code == 200
    rule = Preference.objects.get(user=leaver, channel="email")
    assert (rule.category, rule.enabled) == ("orders", False)
    event = EngagementEvent.objects.get(kind="unsubscribed")
    assert event.notification.recipient_id == leaver.pk and event.channel == "email"
    assert one_click(message).status_code == 200  # again: nothing more to do, still fine
    assert Preference.objects.filter(user=leaver).count() == 1

    # A tampered link changes nothing and says so.
    url = str(message["List-Unsubscribe"]).strip().strip("<>")
    tampered = re.sub(r"/unsubscribe/(.)", lambda m: "/unsubscribe/" + ("A" if m.group(1) != "A" else "B"), url)
    refused = Client(enforce_csrf_checks=True).post(
        urlsplit(tampered).path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert refused.status_code == 400
    assert b"link is not valid" in refused.content
    # So is the real link, once it is older than UNSUBSCRIBE_TOKEN_MAX_AGE_DAYS (90).
    with mock.patch("django.core.signing.time.time", return_value=time.time() + 91 * 86400):
        expired = one_click(message)
    assert expired.status_code == 400 and b"link has expired" in expired.content

    smtp.messages.clear()
    before = set(email_rows().values_list("pk", flat=True))
    notify(TYPE, [leaver, stayer], context={"order_number": "2", "total": "3"}, channels=["in_app", "email"])
    second = sorted(set(email_rows().values_list("pk", flat=True)) - before)
    assert len(second) == 2
    settle(second, timeout=30)
    statuses = dict(email_rows(second).values_list("notification__recipient", "status"))
    assert statuses == {leaver.pk: "skipped", stayer.pk: "sent"}
    assert [m.rcpt_tos for m in smtp.messages] == [[stayer.email]]
    # The inbox still has both: preferences gate the external channels only.
    assert Notification.objects.filter(recipient=leaver).count() == 2


def test_a_stalled_server_times_out_and_retries_while_other_mail_flows(mail, smtp):
    users = list(mail.users(6, "stall").order_by("pk"))
    slow = users[0]
    smtp.stall_rcpt(slow.email, 5 * SMTP_TIMEOUT)
    mail.cluster()
    started = time.monotonic()
    notify(TYPE, users, context={"order_number": "S", "total": "1"}, channels=["in_app", "email"])
    ids = list(email_rows().values_list("pk", flat=True))
    others = list(email_rows().exclude(notification__recipient=slow).values_list("pk", flat=True))
    slow_row = email_rows().get(notification__recipient=slow)

    # The others are sent within a few seconds, whatever the stalled recipient does.
    wait_until(
        lambda: email_rows(others).filter(status="sent").count() == len(others),
        15,
        interval=0.1,
        describe=lambda: f"statuses {list(email_rows(ids).values_list('status', flat=True))}",
    )
    assert time.monotonic() - started < 15
    wait_until(lambda: email_rows([slow_row.pk]).filter(attempts__gte=1, status="pending").exists(), 15, interval=0.1)
    slow_row.refresh_from_db()
    assert "no answer from the mail server within 1 s" in slow_row.last_error
    assert slow_row.next_attempt_at is not None

    # The server recovers; the retry (woken by the sweeper) goes through.
    smtp.stall_rcpt(slow.email, 0)
    settle([slow_row.pk], timeout=75)
    slow_row.refresh_from_db()
    assert slow_row.status == "sent" and slow_row.attempts >= 2
    assert [m.rcpt_tos for m in smtp.messages].count([slow.email]) == 1


def test_a_refused_recipient_fails_alone(mail, smtp):
    users = list(mail.users(5, "refuse").order_by("pk"))
    smtp.refuse(users[2].email, 550, "5.1.1 No such user here")
    mail.cluster()
    notify(TYPE, users, context={"order_number": "R", "total": "1"}, channels=["in_app", "email"])
    ids = list(email_rows().values_list("pk", flat=True))
    settle(ids, timeout=30)
    statuses = dict(email_rows().values_list("notification__recipient", "status"))
    assert statuses.pop(users[2].pk) == "failed"
    assert set(statuses.values()) == {"sent"}
    failed = email_rows().get(notification__recipient=users[2])
    assert "550" in failed.last_error and failed.attempts == 1
    assert len(smtp.messages) == 4


def test_a_critical_type_has_no_unsubscribe_headers(mail, smtp):
    user = mail.users(1, "critical").get()
    mail.cluster()
    notify("django_notify.test", user, channels=["in_app", "email"])
    settle(list(email_rows().values_list("pk", flat=True)), timeout=30)
    message = smtp.messages[0].message
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
