from __future__ import annotations

import pytest

from django_notify import notify
from django_notify.backends.base import BaseChannelBackend, DeliveryResult, Outcome
from django_notify.backends.console import ConsoleBackend
from django_notify.backends.in_app import InAppBackend
from django_notify.backends.locmem import LocMemBackend
from django_notify.exceptions import InvalidBackendError
from django_notify.models import Delivery

ORDER = {"order_number": "A-7", "total": "9.90"}


@pytest.fixture
def deliveries(user_factory):
    users = [user_factory() for _ in range(3)]
    notify("order_placed", users, context=ORDER, url="/orders/7/", data={"n": 7})
    return list(Delivery.objects.select_related("notification").order_by("pk"))


class Flaky(BaseChannelBackend):
    """Fails on the second delivery of a batch only."""

    default_options = {"explode_on": 1}

    def open(self):
        self.events = ["open"]

    def close(self):
        self.events.append("close")

    def send(self, delivery):
        self.events.append(delivery.pk)
        if len(self.events) - 2 == self.options["explode_on"]:
            raise ConnectionError("reset by peer")
        return DeliveryResult.sent(delivery)


def test_one_failure_does_not_affect_the_rest_of_the_batch(deliveries):
    backend = Flaky("flaky")
    results = backend.send_batch(deliveries)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert results[1].reason == "ConnectionError: reset by peer"
    assert [r.delivery_id for r in results] == [d.pk for d in deliveries]
    assert backend.events == ["open", *[d.pk for d in deliveries], "close"]


def test_close_runs_even_if_open_fails_later(deliveries):
    class Broken(Flaky):
        def send_batch(self, batch):
            return super().send_batch(batch)

        def result_for_exception(self, delivery, exc):
            raise RuntimeError("bug in the backend")

    backend = Broken("broken")
    with pytest.raises(RuntimeError):
        backend.send_batch(deliveries)
    assert backend.events[-1] == "close"


def test_send_must_be_implemented(deliveries):
    class Lazy(BaseChannelBackend):
        pass

    [result] = Lazy("lazy").send_batch(deliveries[:1])
    assert result.outcome is Outcome.RETRY and "must implement send()" in result.reason


def test_unknown_options_are_refused():
    with pytest.raises(InvalidBackendError, match=r"Unknown OPTIONS colour .*Valid options: explode_on"):
        Flaky("flaky", colour="red")
    assert Flaky("flaky", explode_on=2).options == {"explode_on": 2}


def test_locmem_collects_messages(deliveries, notify_outbox):
    results = LocMemBackend("email").send_batch(deliveries)
    assert all(r.outcome is Outcome.SENT for r in results)
    assert [m.delivery_id for m in notify_outbox] == [d.pk for d in deliveries]
    message = notify_outbox[0]
    assert (message.channel, message.title, message.url, message.data) == (
        "email",
        "Order A-7 placed",
        "/orders/7/",
        {"n": 7},
    )
    assert message.recipient_id == deliveries[0].notification.recipient_id


@pytest.mark.parametrize("outcome", ["retry", "failed", "gone"])
def test_locmem_can_simulate_failures(deliveries, notify_outbox, outcome):
    results = LocMemBackend("email", outcome=outcome).send_batch(deliveries)
    assert {r.outcome for r in results} == {Outcome(outcome)}
    assert notify_outbox == []


def test_locmem_rejects_unknown_outcome():
    with pytest.raises(InvalidBackendError, match="outcome"):
        LocMemBackend("email", outcome="maybe")


def test_console_prints(deliveries, capsys):
    ConsoleBackend("console").send_batch(deliveries[:1])
    out = capsys.readouterr().out
    assert "Title: Order A-7 placed" in out and "Link: /orders/7/" in out


def test_in_app_creates_no_outbox_rows(user):
    assert InAppBackend.is_inbox is True
    notify("low_stock", user, context={"item": "x", "quantity": 1})
    assert not Delivery.objects.exists()


def test_result_constructors(deliveries):
    delivery = deliveries[0]
    assert DeliveryResult.sent(delivery, destination="a@b").destination == "a@b"
    assert DeliveryResult.failed(delivery, "550").outcome is Outcome.FAILED
    assert DeliveryResult.gone(delivery, "410").outcome is Outcome.GONE
    assert DeliveryResult.retry(delivery, "503").retry_at is None
