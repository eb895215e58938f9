"""``manage.py notify_process``: deliver what is due, in this process, without a cluster."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from django_notify import delivery, queue


class Command(BaseCommand):
    help = (
        "Do one sweep inline: reclaim expired leases, expire overdue deliveries, send due digests, "
        "then deliver everything due. For hosts without a django-q2 cluster, and for debugging."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--watch",
            type=float,
            metavar="SECONDS",
            help="Repeat every SECONDS until interrupted (a worker for hosts without a cluster).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            now = timezone.now()
            queue.beat("sweeper", now)
            released = delivery.release_expired_leases(now=now)
            expired = delivery.expire_overdue(now=now)
            digests = delivery.send_digests(now=now)
            report = delivery.deliver_due()
            queue.beat("worker")
            self.stdout.write(
                f"{report.claimed} claimed: {report.sent} sent, {report.retried} to retry, "
                f"{report.deferred} deferred, {report.skipped} skipped, {report.failed} failed, "
                f"{report.expired + expired} expired; {released} leases reclaimed; {digests.sent} digest items sent."
            )
            if not options["watch"]:
                return
            time.sleep(options["watch"])
