"""The example project works from a checkout: ``check``, ``demo --no-server``, and a live ``demo``.

Every test runs ``example_project/manage.py`` in a real subprocess on a temporary
SQLite file (``NOTIFY_DEMO_DB``), so a developer's ``example_project/db.sqlite3``
is never touched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
MANAGE_PY = REPOSITORY_ROOT / "example_project" / "manage.py"
COMMAND_TIMEOUT = 120
SERVER_START_TIMEOUT = 60


def example_env(db_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    # pytest-django exports the test suite's settings; the example has its own.
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["NOTIFY_DEMO_DB"] = str(db_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def manage(db_path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        env=example_env(db_path),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def query(db_path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql, params).fetchall()


def waiter_notifications(db_path: Path) -> set[int]:
    rows = query(
        db_path,
        "SELECT n.id FROM django_notify_notification n JOIN auth_user u ON u.id = n.recipient_id WHERE u.username = ?",
        "waiter",
    )
    return {row[0] for row in rows}


def test_check_passes(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.sqlite3"
    result = manage(db_path, "check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_demo_twice_creates_no_duplicates(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.sqlite3"

    first = manage(db_path, "demo", "--no-server", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert str(db_path) in first.stdout
    assert "http://127.0.0.1:8000/admin/" in first.stdout
    assert "http://127.0.0.1:8000/api/notifications/unread-count/" in first.stdout
    assert "waiter / waiter" in first.stdout
    notifications = query(db_path, "SELECT id, recipient_id, type, idempotency_key FROM django_notify_notification")
    users = dict(query(db_path, "SELECT username, is_staff FROM auth_user"))
    assert users == {"admin": 1, "chef": 1, "waiter": 0}
    assert {row[2] for row in notifications} >= {"low_stock_alert", "new_order", "order_completed"}
    assert all(row[3] for row in notifications), "every demo notification has an idempotency key"
    assert waiter_notifications(db_path)
    deliveries = query(db_path, "SELECT COUNT(*) FROM django_notify_delivery")[0][0]
    assert deliveries > 0, "the email channel queues deliveries"

    second = manage(db_path, "demo", "--no-server", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"notifications: 0 created, {len(notifications)} already there." in second.stdout
    assert query(db_path, "SELECT id, recipient_id, type, idempotency_key FROM django_notify_notification") == (
        notifications
    )
    assert query(db_path, "SELECT COUNT(*) FROM django_notify_delivery")[0][0] == deliveries
    assert query(db_path, "SELECT COUNT(*) FROM auth_user")[0][0] == 3
    assert query(db_path, "SELECT COUNT(*) FROM restaurant_inventoryitem")[0][0] == 5
    assert query(db_path, "SELECT COUNT(*) FROM restaurant_order")[0][0] == 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``; return status, headers and body (an HTTP error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


@pytest.mark.slow
def test_demo_serves_the_api(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.sqlite3"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "demo", "--addrport", f"127.0.0.1:{port}"],
            env=example_env(db_path),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            assert server.poll() is None, f"the demo exited with {server.returncode}:\n{log_path.read_text()}"
            try:
                status, _headers, _body = request(f"{base}/admin/login/")
                break
            except (URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"the demo did not serve within 60 s:\n{log_path.read_text()}"
                time.sleep(0.25)
        assert status == 200

        output = log_path.read_text()
        assert f"{base}/api/notifications/" in output

        auth = {"Authorization": "Basic " + base64.b64encode(b"waiter:waiter").decode("ascii")}
        status, _headers, body = request(f"{base}/api/notifications/", {**auth, "Accept": "application/json"})
        assert status == 200, body
        page = json.loads(body)
        expected = waiter_notifications(db_path)
        assert expected
        assert {row["id"] for row in page["results"]} == expected
        assert {row["type"] for row in page["results"]} == {"order_completed"}

        status, _headers, _body = request(f"{base}/api/notifications/", {"Accept": "application/json"})
        assert status in (401, 403)

        status, headers, body = request(
            f"{base}/api/notifications/unread-count/", {**auth, "Accept": "application/json"}
        )
        assert status == 200, body
        assert json.loads(body) == {"count": len(expected)}
        etag = headers["ETag"]
        assert etag

        status, headers, body = request(f"{base}/api/notifications/unread-count/", {**auth, "If-None-Match": etag})
        assert status == 304
        assert body == b""
        assert headers["ETag"] == etag

        status, _headers, body = request(f"{base}/admin/login/")
        assert status == 200
        assert b"csrfmiddlewaretoken" in body

        # The demo's worker sends the email deliveries (Django's console email backend): none left pending.
        deadline = time.monotonic() + 60
        while query(db_path, "SELECT COUNT(*) FROM django_notify_delivery WHERE status != 'sent'")[0][0]:
            assert time.monotonic() < deadline, f"the worker did not send the emails:\n{log_path.read_text()}"
            time.sleep(0.5)
        assert query(db_path, "SELECT COUNT(*) FROM django_notify_delivery WHERE status = 'sent'")[0][0] > 0
        log = log_path.read_text()
        # Real emails, printed: multipart, with a one-click unsubscribe link to the demo server.
        assert "Content-Type: multipart/alternative" in log
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in log
        assert "http://127.0.0.1:8000/api/notifications/unsubscribe/" in log
    finally:
        # The server leads its own session: end it and anything it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
