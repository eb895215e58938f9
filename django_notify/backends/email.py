"""Email through Django's own mail settings: any SMTP server, or a provider's backend.

The message is rendered when it is sent (see :mod:`django_notify.content`): the
context given to ``notify()`` is rebuilt from the notification
(:mod:`django_notify.context`) and completed with what only sending knows
(``recipient``, absolute ``url``, ``unsubscribe_url``…; :data:`~django_notify.content.SEND_TIME_NAMES`).
The parts are wrapped in the layouts ``django_notify/email/message.txt`` and
``message.html`` (``digest.txt``/``digest.html`` for digests), which a project
overrides like any app template.

A batch is rendered first, then sent over a few connections of ``OPTIONS["backend"]``
(default ``EMAIL_BACKEND``) at once (``concurrency``, default 4; each connection in
a thread of its own, sending one message after another), so the round trips of a
distant relay overlap; each message is sent on its own, so each delivery gets its
own result. SMTP
answers are classified by their code: ``4xx`` retries, ``5xx`` fails; a dropped or
silent connection retries that message and opens a new connection for the next.
The ``Message-ID`` is derived from the delivery, so a message sent again after a
crash has the same one and a receiving system can tell it is a duplicate.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import smtplib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPEmailBackend
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.utils import translation
from django.utils.module_loading import import_string
from django.utils.translation import ngettext

from django_notify import content, languages, rendering, sites, unsubscribe
from django_notify.backends.base import CONTROL_CHARACTERS_RE, BaseChannelBackend, DeliveryResult, headers_problem
from django_notify.context import thaw_many
from django_notify.exceptions import InvalidBackendError, MissingContextError, UnknownNotificationType
from django_notify.registry import registry

if TYPE_CHECKING:
    from django_notify.models import Delivery
    from django_notify.registry import NotificationType

#: Used when neither ``OPTIONS["timeout"]`` nor ``EMAIL_TIMEOUT`` is set: Django's
#: default (``None``) lets a hung SMTP server block a worker forever.
DEFAULT_TIMEOUT = 10.0
#: Headers the backend computes; ``OPTIONS["headers"]`` cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        "auto-submitted",
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "message-id",
        "mime-version",
        "reply-to",
        "subject",
        "to",
    }
)
#: The layouts that wrap a message's parts, and a digest's items.
MESSAGE_LAYOUTS = ("django_notify/email/message.txt", "django_notify/email/message.html")
DIGEST_LAYOUTS = ("django_notify/email/digest.txt", "django_notify/email/digest.html")
_BLANK_LINES_RE = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
#: Statuses of a provider backend (django-anymail) that mean "will never be delivered".
REJECTED_STATUSES = frozenset({"rejected", "invalid"})


class EmailBackend(BaseChannelBackend):
    """Send each delivery as an email (text, and an HTML alternative) through Django's mail.

    ``OPTIONS``: ``backend`` (a Django email backend path; default ``EMAIL_BACKEND``),
    ``from_email`` (default ``DEFAULT_FROM_EMAIL``), ``reply_to`` (addresses),
    ``timeout`` (seconds; default ``EMAIL_TIMEOUT``, else 10), ``html`` (send the
    HTML alternative), ``headers`` (more headers for every message) and
    ``concurrency`` (connections a batch is sent over at once, default 4).
    """

    default_options: ClassVar[dict[str, Any]] = {
        "backend": None,
        "from_email": None,
        "reply_to": [],
        "timeout": None,
        "html": True,
        "headers": {},
        "concurrency": 4,
    }
    supports_digest = True
    renders_own_text = True

    # Options ---------------------------------------------------------------------

    def validate_options(self) -> None:
        path = self.options["backend"]
        if path is not None:
            if not isinstance(path, str) or not path:
                raise self._invalid("backend", "must be the dotted path of a Django email backend, or None")
            try:
                backend_class = import_string(path)
            except ImportError as exc:
                raise self._invalid("backend", f"cannot be imported ({exc})") from None
            if not (isinstance(backend_class, type) and issubclass(backend_class, BaseEmailBackend)):
                raise self._invalid("backend", f"is not a Django email backend (BaseEmailBackend): {path}")
        from_email = self.options["from_email"]
        if from_email is not None and (not isinstance(from_email, str) or not from_email.strip()):
            raise self._invalid("from_email", "must be an address such as 'Shop <noreply@example.com>', or None")
        if isinstance(from_email, str) and CONTROL_CHARACTERS_RE.search(from_email):
            raise self._invalid("from_email", "must not contain CR, LF or other control characters")
        reply_to = self.options["reply_to"]
        if isinstance(reply_to, str) or not isinstance(reply_to, (list, tuple)):
            raise self._invalid("reply_to", f"must be a list of addresses, not {type(reply_to).__name__}")
        for address in reply_to:
            if not isinstance(address, str) or not address.strip() or CONTROL_CHARACTERS_RE.search(address):
                raise self._invalid("reply_to", f"has an invalid address {address!r}")
        timeout = self.options["timeout"]
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
                raise self._invalid("timeout", f"must be a number of seconds or None, not {timeout!r}")
            if timeout <= 0:
                raise self._invalid("timeout", f"must be more than 0 seconds, not {timeout!r}")
        concurrency = self.options["concurrency"]
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
            raise self._invalid("concurrency", f"must be a whole number from 1 to 64, not {concurrency!r}")
        if not isinstance(self.options["html"], bool):
            raise self._invalid("html", f"must be True or False, not {self.options['html']!r}")
        self._validate_headers(self.options["headers"])

    def _validate_headers(self, headers: Any) -> None:
        problem = headers_problem(headers, RESERVED_HEADERS)
        if problem:
            raise self._invalid("headers", problem)

    def _invalid(self, option: str, problem: str) -> InvalidBackendError:
        return InvalidBackendError(
            f"OPTIONS[{option!r}] of channel {self.alias!r} ({type(self).__qualname__}) {problem}."
        )

    @property
    def timeout(self) -> float:
        """Seconds each SMTP operation may take: the option, ``EMAIL_TIMEOUT``, else 10."""
        configured = self.options["timeout"]
        if configured is None:
            configured = getattr(settings, "EMAIL_TIMEOUT", None)
        return float(configured) if configured else DEFAULT_TIMEOUT

    def open_connection(self) -> BaseEmailBackend:
        """A new, opened connection of the email backend; raises if it cannot be opened."""
        path = self.options["backend"] or settings.EMAIL_BACKEND
        kwargs: dict[str, Any] = {}
        # Only backends that take a timeout get one: locmem or anymail would reject it.
        if _accepts_timeout(import_string(path)):
            kwargs["timeout"] = self.timeout
        connection: BaseEmailBackend = get_connection(path, fail_silently=False, **kwargs)
        try:
            connection.open()
        except BaseException:
            _close_quietly(connection)  # a half-open SMTP session (e.g. after a failed login)
            raise
        return connection

    # One message per delivery -------------------------------------------------------

    def send_batch(self, deliveries: Sequence[Delivery], *, deadline: float | None = None) -> list[DeliveryResult]:
        """Render every delivery, then send them over up to ``concurrency`` connections.

        Rendering happens here, in the calling thread, since templates may touch the
        database; the sending threads only talk to the mail server.
        """
        if not deliveries:
            return []
        users = _load_users(deliveries)
        contexts = thaw_many([delivery.notification.context for delivery in deliveries])
        shared = _site_context()
        results: dict[int, DeliveryResult] = {}
        outgoing: list[tuple[Delivery, EmailMultiAlternatives]] = []
        for delivery, stored in zip(deliveries, contexts, strict=True):
            if deadline is not None and time.monotonic() >= deadline:
                results[delivery.pk] = DeliveryResult.deferred(delivery, "the batch ran out of time")
                continue
            try:
                message = self.build_message(delivery, users.get(delivery.notification.recipient_id), stored, shared)
            except _Unsendable as exc:
                results[delivery.pk] = DeliveryResult.failed(delivery, str(exc))
            except Exception as exc:
                results[delivery.pk] = self.result_for_exception(delivery, exc)
            else:
                outgoing.append((delivery, message))
        self._send_all(outgoing, results, deadline)
        return [results[delivery.pk] for delivery in deliveries]

    def _send_all(
        self,
        outgoing: Sequence[tuple[Delivery, EmailMultiAlternatives]],
        results: dict[int, DeliveryResult],
        deadline: float | None,
    ) -> None:
        """Send ``outgoing`` over up to ``concurrency`` connections, each in its own thread."""
        queue = _Queue(outgoing)
        workers = min(int(self.options["concurrency"]), len(outgoing))
        if workers <= 1:
            self._send_from(queue, results, deadline)
            return
        # smtplib blocks on the network and releases the GIL meanwhile: threads overlap
        # the round trips of several SMTP sessions.
        threads = [
            threading.Thread(target=self._send_from, args=(queue, results, deadline), name=f"{self.alias}-smtp-{n}")
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _send_from(self, queue: _Queue, results: dict[int, DeliveryResult], deadline: float | None) -> None:
        """Send messages from ``queue`` over one connection until it is empty."""
        connection: BaseEmailBackend | None = None
        try:
            while (item := queue.next()) is not None:
                delivery, message = item
                if deadline is not None and time.monotonic() >= deadline:
                    results[delivery.pk] = DeliveryResult.deferred(delivery, "the batch ran out of time")
                    continue
                if queue.dead:
                    results[delivery.pk] = DeliveryResult.retry(delivery, queue.dead)
                    continue
                if connection is None:
                    try:
                        connection = self.open_connection()
                    except Exception as exc:
                        # The server cannot be reached: the rest of the batch waits for a retry.
                        queue.dead = self._scrub(f"cannot connect: {_describe(exc, self.timeout)}")
                        results[delivery.pk] = DeliveryResult.retry(delivery, queue.dead)
                        continue
                result, broken = self._send(connection, delivery, message)
                results[delivery.pk] = result
                if broken:
                    # The session is in an unknown state: the next message gets a new one.
                    _close_quietly(connection)
                    connection = None
        finally:
            if connection is not None:
                _close_quietly(connection)

    def build_message(
        self,
        delivery: Delivery,
        user: Any,
        stored: Mapping[str, Any],
        shared: Mapping[str, str],
    ) -> EmailMultiAlternatives:
        """The message of one delivery; raises ``_Unsendable`` for what no retry can fix."""
        notification = delivery.notification
        address = _address_of(user)
        notification_type = _type_of(notification.type)
        language = notification.language or languages.site_language()
        link = unsubscribe.unsubscribe_link([delivery], [notification_type])
        context = {
            **stored,
            **shared,
            "recipient": user,
            "notification": notification,
            "notification_type": notification_type,
            "url": sites.absolute_url(notification.url),
            "unsubscribe_url": link,
        }
        parts = self._render_parts(notification_type, context, language)
        layout_context = {**context, "title": parts.title, "body": parts.body, "html": parts.html}
        text, html = self._render_layouts(MESSAGE_LAYOUTS, notification_type.key, layout_context, language)
        return self._message(
            subject=parts.title,
            text=text,
            html=html,
            to=address,
            message_id=f"<dn.{notification.pk}.{delivery.pk}@{sites.mail_domain()}>",
            unsubscribe_url=link,
        )

    def _render_parts(
        self, notification_type: NotificationType, context: Mapping[str, Any], language: str
    ) -> content.Content:
        try:
            return content.render(notification_type, self.alias, context, language=language)
        except MissingContextError as exc:
            part = exc.part.rsplit(" ", 1)[-1]
            source = content.resolve(notification_type, self.alias, language).get(part)
            where = f" ({source.origin} {source.name})" if source is not None and source.name else ""
            raise _Unsendable(f"cannot render the email{where}: {exc}") from exc
        except (TemplateSyntaxError, TemplateDoesNotExist) as exc:
            raise _Unsendable(f"cannot render the email: {type(exc).__name__}: {exc}") from exc

    def _render_layouts(
        self, names: tuple[str, str], type_key: str, context: Mapping[str, Any], language: str
    ) -> tuple[str, str]:
        """The text and (if ``OPTIONS["html"]``) HTML layouts, rendered in ``language``."""
        outputs = []
        with translation.override(language or None):
            for name, html in zip(names, (False, True), strict=True):
                if html and not self.options["html"]:
                    outputs.append("")
                    continue
                try:
                    template = rendering.get_engine(autoescape=html).get_template(name)
                    output, missing = rendering.render_compiled(template, context)
                except (TemplateSyntaxError, TemplateDoesNotExist) as exc:
                    raise _Unsendable(f"cannot render the layout {name}: {type(exc).__name__}: {exc}") from exc
                if missing:
                    error = MissingContextError(type_key, f"layout {name}", missing, context.keys())
                    raise _Unsendable(f"cannot render the email: {error}")
                outputs.append(output.strip() + "\n" if html else _tidy_text(output))
        return outputs[0], outputs[1]

    def _message(
        self, *, subject: str, text: str, html: str, to: str, message_id: str, unsubscribe_url: str | None
    ) -> EmailMultiAlternatives:
        headers = {
            **self.options["headers"],
            "Message-ID": message_id,
            # RFC 3834: autoresponders (out of office) should not answer.
            "Auto-Submitted": "auto-generated",
        }
        if unsubscribe_url:
            # RFC 8058 one-click: mail providers show an unsubscribe button that POSTs.
            headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        # The subject is one line (content.render collapses whitespace), so no CR or
        # LF from a context value can reach the headers.
        message = EmailMultiAlternatives(
            subject=subject,
            body=text,
            from_email=self.options["from_email"] or settings.DEFAULT_FROM_EMAIL,
            to=[to],
            reply_to=list(self.options["reply_to"]),
            headers=headers,
        )
        if html:
            message.attach_alternative(html, "text/html")
        return message

    # Sending and classifying -----------------------------------------------------------

    def _send(
        self, connection: BaseEmailBackend, delivery: Delivery, message: EmailMultiAlternatives
    ) -> tuple[DeliveryResult, bool]:
        """Send one message; return its result and whether the connection must be replaced."""
        address = message.to[0]
        message_id = str(message.extra_headers["Message-ID"])
        try:
            sent = connection.send_messages([message])
        except Exception as exc:
            result, broken = self.classify_exception(delivery, exc)
            return result, broken
        if not sent:
            return DeliveryResult.retry(delivery, "the email backend sent nothing and gave no reason"), True
        response: dict[str, Any] = {"message_id": message_id}
        status = getattr(message, "anymail_status", None)
        if status is not None:
            statuses = {str(s) for s in (getattr(status, "status", None) or ())}
            if statuses & REJECTED_STATUSES:
                reason = f"the email provider {'/'.join(sorted(statuses))} the message to {address}"
                return DeliveryResult.failed(delivery, reason, response={**response, "status": sorted(statuses)}), False
            provider_id = getattr(status, "message_id", None)
            if provider_id is not None:
                response["provider_message_id"] = str(provider_id)
        return DeliveryResult.sent(delivery, response=response, destination=address), False

    def classify_exception(self, delivery: Delivery, exc: Exception) -> tuple[DeliveryResult, bool]:
        """Turn a sending error into a result, and say whether the connection is broken.

        ``4xx`` answers retry and ``5xx`` fail; timeouts and dropped connections
        retry. Override to treat a provider's errors differently.
        """
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refusals = [(int(code), _text(reply), address) for address, (code, reply) in exc.recipients.items()]
            code, reply, address = refusals[0] if refusals else (0, str(exc), "")
            reason = self._scrub(f"SMTP {code} {reply} (recipient {address} refused)")
            if 400 <= code < 500:
                return DeliveryResult.retry(delivery, reason), False
            return DeliveryResult.failed(delivery, reason), False
        if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data error, ...
            code = int(exc.smtp_code)
            reason = self._scrub(f"SMTP {code} {_text(exc.smtp_error)} ({type(exc).__name__})")
            # 421: the server is closing the session.
            broken = code == 421 or not 200 <= code < 600
            if 500 <= code < 600:
                return DeliveryResult.failed(delivery, reason), broken
            return DeliveryResult.retry(delivery, reason), broken
        if isinstance(exc, OSError):  # SMTPServerDisconnected, timeouts, resets
            return DeliveryResult.retry(delivery, self._scrub(_describe(exc, self.timeout))), True
        # A provider's backend (django-anymail and the like).
        if type(exc).__name__.endswith("RecipientsRefused"):
            return DeliveryResult.failed(delivery, self._scrub(f"{type(exc).__name__}: {exc}")), False
        status_code = getattr(exc, "status_code", None)
        if isinstance(status_code, int) and not isinstance(status_code, bool):
            reason = self._scrub(f"HTTP {status_code} from the email provider ({type(exc).__name__}: {exc})"[:1000])
            if status_code == 429 or status_code >= 500:
                return DeliveryResult.retry(delivery, reason), False
            if 400 <= status_code < 500:
                return DeliveryResult.failed(delivery, reason), False
        return DeliveryResult.retry(delivery, self._scrub(f"{type(exc).__name__}: {exc}"[:1000])), False

    def result_for_exception(self, delivery: Delivery, exc: Exception) -> DeliveryResult:
        return DeliveryResult.retry(delivery, self._scrub(f"{type(exc).__name__}: {exc}"[:1000]))

    def _scrub(self, reason: str) -> str:
        """``reason`` without the SMTP password, should a server or library echo it."""
        password = getattr(settings, "EMAIL_HOST_PASSWORD", "")
        if isinstance(password, str) and len(password) >= 3:
            reason = reason.replace(password, "********")
        return reason

    # Digests ---------------------------------------------------------------------------

    def send_digest(self, deliveries: Sequence[Delivery]) -> DeliveryResult:
        """One message listing every item of one recipient's digest."""
        first = deliveries[0]
        try:
            message = self.build_digest(deliveries)
        except _Unsendable as exc:
            return DeliveryResult.failed(first, str(exc))
        except Exception as exc:
            return self.result_for_exception(first, exc)
        try:
            connection = self.open_connection()
        except Exception as exc:
            return DeliveryResult.retry(first, self._scrub(f"cannot connect: {_describe(exc, self.timeout)}"))
        try:
            result, _broken = self._send(connection, first, message)
        finally:
            _close_quietly(connection)
        return result

    def build_digest(self, deliveries: Sequence[Delivery]) -> EmailMultiAlternatives:
        """The digest message of ``deliveries`` (one recipient's, oldest first)."""
        items = sorted(deliveries, key=lambda d: (d.notification.created_at, d.pk))
        first = deliveries[0]
        user = _load_users(deliveries).get(first.notification.recipient_id)
        address = _address_of(user)
        types = [_type_of(d.notification.type) for d in items]
        language = items[-1].notification.language or languages.site_language()
        link = unsubscribe.unsubscribe_link(deliveries, types)
        count = len(items)
        with translation.override(language or None):
            if first.digest == "weekly":
                subject = ngettext(
                    "Your weekly digest: %(count)d notification", "Your weekly digest: %(count)d notifications", count
                ) % {"count": count}
            else:
                subject = ngettext(
                    "Your daily digest: %(count)d notification", "Your daily digest: %(count)d notifications", count
                ) % {"count": count}
        context = {
            **_site_context(),
            "recipient": user,
            "title": subject,
            "count": count,
            "digest": first.digest,
            "unsubscribe_url": link,
            "items": [
                {
                    "title": d.notification.title,
                    "body": d.notification.body,
                    "url": sites.absolute_url(d.notification.url),
                    "time": d.notification.created_at,
                    "notification": d.notification,
                    "notification_type": t,
                }
                for d, t in zip(items, types, strict=True)
            ],
        }
        text, html = self._render_layouts(DIGEST_LAYOUTS, "digest", context, language)
        return self._message(
            subject=rendering.one_line(subject),
            text=text,
            html=html,
            to=address,
            message_id=f"<dn.digest.{first.pk}@{sites.mail_domain()}>",
            unsubscribe_url=link,
        )


class _Queue:
    """The messages of a batch, handed out one at a time to the sending threads."""

    def __init__(self, items: Sequence[tuple[Delivery, EmailMultiAlternatives]]) -> None:
        self._items = iter(items)
        self._lock = threading.Lock()
        #: Why the mail server cannot be reached; set, the remaining messages are retried.
        self.dead = ""

    def next(self) -> tuple[Delivery, EmailMultiAlternatives] | None:
        with self._lock:
            return next(self._items, None)


class _Unsendable(Exception):
    """This delivery can never be sent as it is (no address, a template gap): it fails."""


def _load_users(deliveries: Sequence[Delivery]) -> dict[Any, Any]:
    ids = {delivery.notification.recipient_id for delivery in deliveries}
    users: dict[Any, Any] = get_user_model()._default_manager.in_bulk(list(ids))
    return users


def _address_of(user: Any) -> str:
    if user is None:
        raise _Unsendable("the recipient no longer exists")
    address = getattr(user, get_user_model().get_email_field_name(), None)
    if not isinstance(address, str) or not address.strip():
        raise _Unsendable("the recipient has no email address")
    return address.strip()


def _type_of(key: str) -> NotificationType:
    try:
        return registry.get(key)
    except UnknownNotificationType:
        raise _Unsendable(f"the notification type {key!r} is no longer registered") from None


def _site_context() -> dict[str, str]:
    # Once per batch: the current Site may cost a query.
    return {"site_name": sites.site_name(), "base_url": sites.base_url()}


def _tidy_text(text: str) -> str:
    # Template tags on lines of their own leave blank runs behind; one blank line is enough.
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)) + "\n"


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return rendering.one_line(text)[:500]


def _describe(exc: BaseException, timeout: float) -> str:
    name = type(exc).__name__
    detail = str(exc) or "no details"
    if isinstance(exc, TimeoutError) or detail.endswith("timed out"):
        return f"{name}: no answer from the mail server within {timeout:g} s"
    return f"{name}: {detail}"[:1000]


def _accepts_timeout(backend_class: Any) -> bool:
    if isinstance(backend_class, type) and issubclass(backend_class, SMTPEmailBackend):
        return True
    try:
        parameters = inspect.signature(backend_class).parameters
    except (TypeError, ValueError):
        return False
    return "timeout" in parameters


def _close_quietly(connection: BaseEmailBackend) -> None:
    # Closing a session the server dropped can itself fail; the result is already known.
    with contextlib.suppress(Exception):
        connection.close()
    inner = getattr(connection, "connection", None)
    if isinstance(inner, smtplib.SMTP):  # close() gave up half way: do not leak the socket
        inner.close()
