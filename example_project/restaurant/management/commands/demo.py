"""``manage.py demo``: set up the example restaurant and serve it.

Migrates the database, creates the demo users, stock, orders and notifications
(idempotently: running it again adds nothing), prints where to look, then runs
the development server and a django-q2 worker (``qcluster``) together until
Ctrl-C. ``--no-server`` stops after the set-up; ``--no-worker`` runs the server
alone.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.utils import timezone

from django_notify import notify
from restaurant.models import InventoryItem, Order

DEFAULT_ADDRPORT = "127.0.0.1:8000"

#: username, role shown in the output, is_staff, is_superuser
USERS = [
    ("admin", "superuser", True, True),
    ("chef", "staff: stock and orders in the admin", True, False),
    ("waiter", "normal user: the API only", False, False),
]

#: name, quantity, reorder level, expires in (days from the first run) or None
INVENTORY = [
    ("Flour (kg)", 4, 10, None),
    ("Tomatoes (kg)", 6, 20, 2),
    ("Olive oil (l)", 12, 5, None),
    ("Mozzarella (kg)", 8, 6, 1),
    ("Basil (bunches)", 2, 5, 3),
]

#: number, total, status
ORDERS = [
    ("A-1001", "42.50", Order.Status.NEW),
    ("A-1002", "18.00", Order.Status.PREPARING),
    ("A-1003", "63.20", Order.Status.COMPLETED),
    ("A-1004", "27.90", Order.Status.COMPLETED),
]

EXPIRY_WARNING_DAYS = 3


class Command(BaseCommand):
    help = "Set up the example restaurant (users, stock, orders, notifications) and run the development server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--addrport",
            default=DEFAULT_ADDRPORT,
            help=f"Address and port of the development server (default {DEFAULT_ADDRPORT}).",
        )
        parser.add_argument(
            "--no-server",
            action="store_true",
            help="Set up the data and exit without running the server.",
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Run the server without the django-q2 worker (emails then wait in the outbox).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        self.stdout.write(f"Database: {connection.settings_dict['NAME']}")
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0), stdout=self.stdout)

        users = self.create_users()
        items = self.create_inventory()
        orders = self.create_orders()
        created, existing = self.send_notifications(users, items, orders)
        self.stdout.write(
            f"Demo data: {len(users)} users, {len(items)} inventory items, {len(orders)} orders; "
            f"notifications: {created} created, {existing} already there."
        )

        addrport = options["addrport"]
        base = f"http://{_browsable_host(addrport)}"
        self.stdout.write("")
        self.stdout.write(f"  Home          {base}/")
        self.stdout.write(f"  Admin         {base}/admin/")
        self.stdout.write(f"  Inbox API     {base}/api/notifications/")
        self.stdout.write(f"  Unread count  {base}/api/notifications/unread-count/")
        self.stdout.write(f"  Types         {base}/api/notifications/types/")
        self.stdout.write(f"  API login     {base}/api-auth/login/")
        self.stdout.write("")
        self.stdout.write("Logins (the password is the user name):")
        width = max(len(username) for username, *_ in USERS) * 2 + 3
        for username, role, _staff, _superuser in USERS:
            self.stdout.write(f"  {f'{username} / {username}':<{width}}  {role}")
        self.stdout.write("")
        if options["no_server"]:
            return
        worker = None if options["no_worker"] else self.start_worker()
        if worker is not None:
            self.stdout.write(
                f"Worker: qcluster running (pid {worker.pid}); email notifications are printed below as they are sent."
            )
        self.stdout.write("")
        # A SIGTERM (from a process manager or a test) ends the demo like Ctrl-C, so
        # the worker is stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            if worker is not None:
                self.stop_worker(worker)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """``manage.py qcluster`` beside the server, in the same process group: Ctrl-C
        in the terminal reaches both."""
        manage = Path(__file__).resolve().parents[3] / "manage.py"
        return subprocess.Popen([sys.executable, str(manage), "qcluster"], env=os.environ.copy())

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        if worker.poll() is not None:
            return
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    def create_users(self) -> dict[str, Any]:
        user_model = get_user_model()
        kitchen_permissions = Permission.objects.filter(content_type__app_label="restaurant")
        users = {}
        for username, _role, is_staff, is_superuser in USERS:
            user, created = user_model._default_manager.get_or_create(
                username=username,
                defaults={"email": f"{username}@example.com", "is_staff": is_staff, "is_superuser": is_superuser},
            )
            # The printed logins must work, so restore what a previous session changed.
            changed = created or not user.check_password(username)
            if changed:
                user.set_password(username)
            if (user.is_staff, user.is_superuser, user.is_active) != (is_staff, is_superuser, True):
                user.is_staff, user.is_superuser, user.is_active = is_staff, is_superuser, True
                changed = True
            if changed:
                user.save()
            if username == "chef":
                user.user_permissions.add(*kitchen_permissions)
            users[username] = user
        return users

    def create_inventory(self) -> list[InventoryItem]:
        today = timezone.localdate()
        items = []
        for name, quantity, reorder_level, expires_in in INVENTORY:
            item, _created = InventoryItem.objects.get_or_create(
                name=name,
                defaults={
                    "quantity": quantity,
                    "reorder_level": reorder_level,
                    "expires_on": today + datetime.timedelta(days=expires_in) if expires_in is not None else None,
                },
            )
            items.append(item)
        return items

    def create_orders(self) -> list[Order]:
        orders = []
        for number, total, status in ORDERS:
            order, _created = Order.objects.get_or_create(
                number=number, defaults={"total": Decimal(total), "status": status}
            )
            orders.append(order)
        return orders

    def send_notifications(
        self, users: dict[str, Any], items: list[InventoryItem], orders: list[Order]
    ) -> tuple[int, int]:
        """Notify as the real triggers will; each idempotency key makes a re-run a no-op."""
        kitchen = [users["admin"], users["chef"]]
        today = timezone.localdate()
        results = []
        for item in items:
            if item.is_low:
                results.append(
                    notify(
                        "low_stock_alert",
                        kitchen,
                        context={
                            "item_name": item.name,
                            "quantity": item.quantity,
                            "reorder_level": item.reorder_level,
                        },
                        target=item,
                        idempotency_key=f"demo-low-stock-{item.pk}",
                    )
                )
            if item.expires_on is not None and item.expires_on <= today + datetime.timedelta(days=EXPIRY_WARNING_DAYS):
                results.append(
                    notify(
                        "item_expiring",
                        users["chef"],
                        context={"item_name": item.name, "quantity": item.quantity, "expires_on": item.expires_on},
                        target=item,
                        idempotency_key=f"demo-expiring-{item.pk}",
                    )
                )
        for order in orders:
            results.append(
                notify(
                    "new_order",
                    kitchen,
                    context={"order_number": order.number, "total": order.total},
                    actor=users["waiter"],
                    target=order,
                    idempotency_key=f"demo-new-order-{order.pk}",
                )
            )
            if order.status == Order.Status.COMPLETED:
                results.append(
                    notify(
                        "order_completed",
                        users["waiter"],
                        context={"order_number": order.number},
                        actor=users["chef"],
                        target=order,
                        idempotency_key=f"demo-order-completed-{order.pk}",
                    )
                )
        return sum(r.created for r in results), sum(r.existing for r in results)


def _browsable_host(addrport: str) -> str:
    """``host:port`` to print for a runserver ``addrport`` (a wildcard address becomes 127.0.0.1)."""
    host, _, port = addrport.rpartition(":")
    if host in ("", "0", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"{host}:{port}"
