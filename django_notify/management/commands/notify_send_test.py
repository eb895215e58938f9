"""``manage.py notify_send_test <user>``: send a test notification to one user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_notify.channels import channels
from django_notify.exceptions import UnknownChannel
from django_notify.registry import TEST_TYPE
from django_notify.service import notify


class Command(BaseCommand):
    help = "Send the built-in test notification to a user, on every configured channel or on those given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="The user's primary key or username (USERNAME_FIELD).")
        parser.add_argument(
            "--channel", action="append", dest="channels", metavar="ALIAS", help="A channel to use (repeatable)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._find_user(options["user"])
        aliases = options["channels"] or list(channels)
        try:
            result = notify(TEST_TYPE, user, channels=aliases)
        except UnknownChannel as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Test notification {result.notification.pk if result.notification else '?'} for {user}: "
            f"{result.deliveries} deliveries on {', '.join(a for a in aliases if not channels[a].is_inbox) or 'no external channel'}."
        )

    def _find_user(self, value: str) -> Any:
        user_model = get_user_model()
        manager = user_model._default_manager
        found = manager.filter(**{user_model.USERNAME_FIELD: value}).first()
        if found is None:
            try:
                found = manager.filter(pk=user_model._meta.pk.to_python(value)).first()
            except ValidationError:
                found = None
        if found is None:
            raise CommandError(f"No user with primary key or {user_model.USERNAME_FIELD} {value!r}.")
        return found
