"""EmailBackend through Django's real SMTP backend, against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import socket
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from django_notify import NotificationType, delivery, notify
from django_notify.backends.base import Outcome
from django_notify.backends.email import EmailBackend
from django_notify.exceptions import InvalidBackendError
from django_notify.models import Delivery
from django_notify.testing import registered
from django_notify.unsubscribe import read_token
from tests.smtp import SMTPServer

ORDER = {"order_number": "A-7", "total": "9.90"}
EMAIL_CHANNEL = "django_notify.backends.email.EmailBackend"


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def email_settings(settings: Any, smtp: SMTPServer) -> Callable[..., None]:
    """Django's SMTP backend pointed at ``smtp``, an ``email`` channel; returns a setter of its OPTIONS."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp.port
    settings.DEFAULT_FROM_EMAIL = "Notify Example <noreply@notify.example>"

    def configure(**options: Any) -> None:
        settings.DJANGO_NOTIFY = {
            "CHANNELS": {
                "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
                "email": {"BACKEND": EMAIL_CHANNEL, "OPTIONS": options},
            },
            "DELIVERY_MODE": "manual",
            "BASE_URL": "https://notify.example",
            "SITE_NAME": "Notify Example",
        }

    configure()
    return configure


@pytest.fixture
def templates_dir(settings: Any, tmp_path: Path) -> Callable[[dict[str, str]], None]:
    """Write template files into a directory the project's engine searches first."""

    def write(files: dict[str, str]) -> None:
        for name, source in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]

    return write


def send(users: list[Any], context: dict[str, Any] | None = None, type: str = "order_placed", **kwargs: Any) -> Any:
    notify(type, users, context=ORDER if context is None else context, channels=["in_app", "email"], **kwargs)
    return delivery.deliver_due()


def email_rows() -> list[Delivery]:
    return list(Delivery.objects.filter(channel="email").select_related("notification").order_by("pk"))


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    # As sent: CRLF line ends.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


# The message ---------------------------------------------------------------------------


def test_message_structure_and_headers(email_settings, smtp, user):
    report = send([user], url="/orders/7/")

    assert report.sent == 1
    [row] = email_rows()
    [received] = smtp.messages
    message = received.message
    assert received.rcpt_tos == [user.email]
    assert received.mail_from == "noreply@notify.example"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert {part.get_content_charset() for part in message.iter_parts()} == {"utf-8"}
    assert message["Subject"] == "Order A-7 placed"
    assert message["From"] == "Notify Example <noreply@notify.example>"
    assert message["To"] == user.email
    message_id = f"<dn.{row.notification_id}.{row.pk}@notify.example>"
    assert message["Message-ID"] == message_id
    assert message["Auto-Submitted"] == "auto-generated"
    assert row.status == "sent"
    assert row.destination == user.email
    assert row.provider_response == {"message_id": message_id}
    text, html = parts(message)
    assert text.startswith("Order A-7 for 9.90.\n\nhttps://notify.example/orders/7/\n")
    assert "Notify Example" in text
    assert '<a href="https://notify.example/orders/7/"' in html
    assert '<a href="https://notify.example"' in html


def test_one_click_unsubscribe_headers(email_settings, smtp, user):
    send([user])

    [row] = email_rows()
    message = smtp.messages[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = message["List-Unsubscribe"].strip()  # a long value is folded onto its own line
    match = re.fullmatch(r"<https://notify\.example/api/notifications/unsubscribe/([^/]+)/>", header)
    assert match, header
    scope = read_token(match.group(1))
    assert (scope.user_id, scope.channel, scope.categories) == (str(user.pk), "email", ("orders",))
    assert (scope.notification_id, scope.delivery_id) == (row.notification_id, row.pk)
    text, html = parts(message)
    url = header[1:-1]
    assert url in text
    assert f'href="{url}"' in html


def test_critical_type_has_no_unsubscribe_link(email_settings, smtp, user):
    alert = NotificationType(
        key="security_alert", category="security", title="New sign-in", channels=["in_app", "email"], critical=True
    )
    with registered(alert):
        send([user], context={}, type="security_alert")

    message = smtp.messages[0].message
    assert message["Subject"] == "New sign-in"
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message
    assert "unsubscribe" not in parts(message)[0].lower()


def test_hostile_title_is_escaped_in_html_and_literal_in_text(email_settings, smtp, user):
    send([user], context={**ORDER, "order_number": "<script>alert(1)</script>"})

    message = smtp.messages[0].message
    assert message["Subject"] == "Order <script>alert(1)</script> placed"
    text, html = parts(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Order <script>alert(1)</script> for 9.90." in text


def test_header_injection_through_the_title_is_impossible(email_settings, smtp, user):
    send([user], context={**ORDER, "order_number": "A-7\r\nBcc: evil@example.com"})

    [received] = smtp.messages
    message = received.message
    assert message["Subject"] == "Order A-7 Bcc: evil@example.com placed"
    assert "Bcc" not in message
    assert smtp.rcpts == [user.email]
    assert received.rcpt_tos == [user.email]


def test_html_part_from_a_template_file(email_settings, smtp, user, templates_dir):
    templates_dir({"django_notify/order_placed/email_body.html": "<p>Order <strong>{{ order_number }}</strong></p>"})
    send([user], context={**ORDER, "order_number": "<A-7>"})

    text, html = parts(smtp.messages[0].message)
    assert "<p>Order <strong>&lt;A-7&gt;</strong></p>" in html
    assert "Order <A-7> for 9.90." in text  # the text part keeps the plain body


def test_stored_datetime_decimal_and_model_values(email_settings, smtp, user_factory, templates_dir):
    buyer = user_factory(username="grace")
    templates_dir(
        {
            "django_notify/paid/email_body.txt": (
                '{{ buyer.username }} paid {{ amount|floatformat:2 }} ({{ amount }}) on {{ when|date:"Y-m-d H:i" }}'
            )
        }
    )
    paid = NotificationType(key="paid", category="orders", title="Paid", body="Paid", channels=["in_app", "email"])
    when = dt.datetime(2025, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    with registered(paid):
        send([user_factory()], context={"buyer": buyer, "amount": decimal.Decimal("12.5"), "when": when}, type="paid")

    text, _html = parts(smtp.messages[0].message)
    assert "grace paid 12.50 (12.5) on 2025-03-04 05:06" in text


def test_template_needing_a_missing_variable_fails_the_delivery(email_settings, smtp, user, templates_dir):
    notify("order_placed", [user], context=ORDER, channels=["in_app", "email"])
    # Deployed after the notification was stored: its context has no coupon.
    templates_dir({"django_notify/order_placed/email_body.txt": "Use {{ coupon }} for order {{ order_number }}."})
    delivery.deliver_due()

    [row] = email_rows()
    assert row.status == "failed"
    assert "{{ coupon }}" in row.last_error
    assert "django_notify/order_placed/email_body.txt" in row.last_error
    assert smtp.messages == []


def test_recipient_without_an_email_address_fails(email_settings, smtp, user_factory):
    report = send([user_factory(email=""), user_factory()])

    first, second = email_rows()
    assert (first.status, first.last_error) == ("failed", "the recipient has no email address")
    assert second.status == "sent"
    assert (report.sent, len(smtp.messages)) == (1, 1)


# One connection, one result per message ---------------------------------------------


def test_a_batch_shares_one_connection(email_settings, smtp, user_factory):
    email_settings(concurrency=1)
    users = [user_factory() for _ in range(20)]
    report = send(users)

    assert report.sent == 20
    assert smtp.sessions == 1
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted(u.email for u in users)
    assert len({r.message["Message-ID"] for r in smtp.messages}) == 20


def test_permanent_refusal_fails_only_that_delivery(email_settings, smtp, user_factory):
    email_settings(concurrency=1)
    users = [user_factory() for _ in range(3)]
    smtp.refuse(users[1].email, 550, "5.1.1 <nobody> No such user here")
    send(users)

    rows = email_rows()
    assert [r.status for r in rows] == ["sent", "failed", "sent"]
    assert "550" in rows[1].last_error
    assert "No such user here" in rows[1].last_error
    assert smtp.sessions == 1  # a refusal leaves the session usable


def test_transient_refusal_retries_with_the_same_message_id(email_settings, smtp, user):
    smtp.refuse(user.email, 451, "4.7.1 Greylisted, try again later")
    before = timezone.now()
    send([user])

    [row] = email_rows()
    assert row.status == "pending"
    assert row.next_attempt_at > before
    assert "451" in row.last_error and "Greylisted" in row.last_error
    assert smtp.messages == []

    smtp.accept(user.email)  # greylisting passed
    delivery.deliver_due(now_func=lambda: timezone.now() + dt.timedelta(hours=1))
    row.refresh_from_db()
    assert row.status == "sent", row.last_error
    assert smtp.messages[0].message["Message-ID"] == f"<dn.{row.notification_id}.{row.pk}@notify.example>"


def test_a_stalled_recipient_times_out_and_the_rest_are_sent(email_settings, smtp, user_factory):
    email_settings(timeout=0.5, concurrency=1)
    users = [user_factory() for _ in range(3)]
    smtp.stall_rcpt(users[1].email, 5)
    send(users)

    rows = email_rows()
    assert [r.status for r in rows] == ["sent", "pending", "sent"]
    assert "no answer from the mail server within 0.5 s" in rows[1].last_error
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted([users[0].email, users[2].email])
    assert smtp.sessions == 2  # a new connection after the stalled one


def test_a_batch_is_sent_over_several_connections_at_once(email_settings, smtp, user_factory):
    smtp.latency = 0.05  # a distant relay: every reply takes 50 ms
    email_settings(concurrency=4)
    users = [user_factory() for _ in range(12)]
    started = time.monotonic()
    report = send(users)
    elapsed = time.monotonic() - started

    assert report.sent == 12
    assert smtp.max_open == 4 and smtp.sessions == 4
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted(u.email for u in users)
    # Alone, 12 messages of ~5 round trips each would take 12 * 5 * 50 ms = 3 s.
    assert elapsed < 12 * 5 * 0.05 / 2


def test_a_stalled_connection_holds_up_none_of_the_others(email_settings, smtp, user_factory):
    email_settings(timeout=1.0, concurrency=3)
    users = [user_factory() for _ in range(9)]
    smtp.stall_rcpt(users[0].email, 3)
    report = send(users)

    assert (report.sent, report.retried) == (8, 1)
    assert len(smtp.messages) == 8


def test_server_not_listening_retries_everything(email_settings, settings, user_factory):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = sock.getsockname()[1]  # bound, not listening: refused
        report = send([user_factory() for _ in range(3)])

    rows = email_rows()
    assert report.retried == 3
    assert {r.status for r in rows} == {"pending"}
    assert all(r.last_error.startswith("cannot connect: ConnectionRefusedError") for r in rows)


def test_deliveries_past_the_deadline_are_deferred(email_settings, smtp, user_factory):
    notify("order_placed", [user_factory(), user_factory()], context=ORDER, channels=["in_app", "email"])
    results = EmailBackend("email").send_batch(email_rows(), deadline=0.0)

    assert {r.outcome for r in results} == {Outcome.DEFERRED}
    assert smtp.sessions == 0


# Digests ------------------------------------------------------------------------------


def test_digest_lists_every_item_in_one_message(email_settings, smtp, user):
    notify("order_placed", [user], context=ORDER, channels=["in_app", "email"], url="/orders/7/")
    notify("order_placed", [user], context={**ORDER, "order_number": "B-8"}, channels=["in_app", "email"])
    Delivery.objects.filter(channel="email").update(digest="daily")
    report = delivery.send_digests()

    assert report.sent == 2
    [received] = smtp.messages
    message = received.message
    first = email_rows()[0]
    assert message["Subject"] == "Your daily digest: 2 notifications"
    assert message["Message-ID"] == f"<dn.digest.{first.pk}@notify.example>"
    assert message["List-Unsubscribe"].strip().startswith("<https://notify.example/api/notifications/unsubscribe/")
    text, html = parts(message)
    assert text.index("Order A-7 placed") < text.index("Order B-8 placed")
    assert "https://notify.example/orders/7/" in text
    assert "Order A-7 placed" in html and "Order B-8 placed" in html
    assert {r.status for r in email_rows()} == {"sent"}


# Options and other email backends -----------------------------------------------------


def test_timeout_defaults_to_ten_seconds(settings):
    settings.EMAIL_TIMEOUT = None
    assert EmailBackend("email").timeout == 10.0
    settings.EMAIL_TIMEOUT = 3
    assert EmailBackend("email").timeout == 3.0
    assert EmailBackend("email", timeout=0.5).timeout == 0.5


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"backend": "no.such.Backend"}, "backend"),
        ({"backend": "django_notify.backends.email.EmailBackend"}, "backend"),
        ({"from_email": "a@example.com\r\nBcc: x@example.com"}, "from_email"),
        ({"reply_to": "a@example.com"}, "reply_to"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"html": "yes"}, "html"),
        ({"headers": {"Message-ID": "<x@y>"}}, "headers"),
        ({"headers": {"X-Tag": "a\r\nBcc: x@example.com"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 65}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
    ],
)
def test_invalid_options_name_the_option(options, option):
    with pytest.raises(InvalidBackendError, match=rf"OPTIONS\['{option}'\] of channel 'email'"):
        EmailBackend("email", **options)


def test_other_email_backends_get_no_timeout_and_options_apply(email_settings, smtp, user):
    email_settings(
        backend="django.core.mail.backends.locmem.EmailBackend",
        from_email="Shop <shop@notify.example>",
        reply_to=["help@notify.example"],
        headers={"X-Campaign": "orders"},
        html=False,
    )
    send([user])

    [message] = mail.outbox
    assert smtp.sessions == 0
    assert message.from_email == "Shop <shop@notify.example>"
    assert message.reply_to == ["help@notify.example"]
    assert message.extra_headers["X-Campaign"] == "orders"
    assert message.alternatives == []
    assert email_rows()[0].status == "sent"


class ProviderError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"provider said {status_code}")
        self.status_code = status_code


class ProviderRecipientsRefused(Exception):
    pass


class Status:
    def __init__(self, status: str) -> None:
        self.status = {status}
        self.message_id = "provider-1"


class ProviderBackend(BaseEmailBackend):
    """A provider's backend (like django-anymail's): answers as ``script`` says per address."""

    script: dict[str, Any] = {}

    def send_messages(self, email_messages: Any) -> int:
        for message in email_messages:
            step = self.script.get(message.to[0], "queued")
            if isinstance(step, Exception):
                raise step
            message.anymail_status = Status(step)
        return len(email_messages)


def test_provider_backend_errors_are_classified(email_settings, user_factory):
    email_settings(backend="tests.test_backends_email.ProviderBackend")
    users = [user_factory() for _ in range(6)]
    ProviderBackend.script = {
        users[1].email: ProviderError(429),
        users[2].email: ProviderError(400),
        users[3].email: ProviderRecipientsRefused("suppressed"),
        users[4].email: "rejected",
    }
    send(users)

    rows = email_rows()
    assert [r.status for r in rows] == ["sent", "pending", "failed", "failed", "failed", "sent"]
    assert rows[0].provider_response["provider_message_id"] == "provider-1"
    assert "HTTP 400" in rows[2].last_error
    assert "ProviderRecipientsRefused" in rows[3].last_error
    assert "rejected" in rows[4].last_error


def test_no_str_format_on_templates():
    source = Path(__file__).resolve().parents[1].joinpath("django_notify/backends/email.py").read_text()
    assert ".format(" not in source
    assert "format_map" not in source


def test_reasons_never_show_the_smtp_password(email_settings, settings, smtp, user_factory):
    settings.EMAIL_HOST_USER = "mailer"
    settings.EMAIL_HOST_PASSWORD = "hunter2-s3cret"
    send([user_factory()])  # the server offers no AUTH: the login fails at open
    email_settings(backend="tests.test_backends_email.ProviderBackend")
    leaky = user_factory()
    ProviderBackend.script = {leaky.email: RuntimeError("login mailer:hunter2-s3cret refused")}
    send([leaky])

    first, second = email_rows()
    assert first.status == second.status == "pending"
    assert first.last_error.startswith("cannot connect: SMTPNotSupportedError")
    assert second.last_error == "RuntimeError: login mailer:******** refused"
    assert smtp.messages == []
