"""``manage.py notify_cleanup``: apply the retention settings now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_notify.retention import purge


class Command(BaseCommand):
    help = "Delete notifications, finished deliveries and engagement events older than their retention settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = purge(dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(
            f"{verb} {counts['notifications']} notifications, {counts['deliveries']} deliveries, "
            f"{counts['events']} engagement events."
        )
