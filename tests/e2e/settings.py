"""Settings of the ``qcluster`` subprocess started by the end-to-end tests.

The cluster runs ``python -m django qcluster`` with ``DJANGO_SETTINGS_MODULE =
tests.e2e.settings``. It is ``tests.settings`` (same ``SECRET_KEY``, same
``Q_CLUSTER["name"]``: django-q2 signs every task with both, and a cluster with
another key or name silently drops the test process's tasks) plus what a real
deployment has (docs/howto/deploying.rst): no ``"sync"``, ``CONN_MAX_AGE`` > 0,
``save_limit`` 0, ``catch_up`` False, and short numbers so that crashes and
retries play out in seconds.

The test process passes, in the environment:

``DN_E2E_DB_NAME``
    the *test* database pytest-django created (``connection.settings_dict["NAME"]``):
    a server database name, or on SQLite the path of the test database file;
``DN_E2E_SINK_PORT``
    the port of the loopback HTTP sink the ``webhook`` channel posts to;
``DN_E2E_SMTP_PORT``
    the port of the loopback SMTP server (``tests/smtp.py``) the ``email`` channel sends to;
``DN_E2E_Q_CLUSTER`` / ``DN_E2E_NOTIFY``
    JSON objects merged into ``Q_CLUSTER`` / ``DJANGO_NOTIFY`` (per-test values).

The test process imports :func:`q_cluster` and :func:`notify_settings` from here,
so both processes agree on the channels and the engine's numbers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES as _TEST_DATABASES
from tests.settings import DJANGO_NOTIFY as _TEST_NOTIFY
from tests.settings import Q_CLUSTER as _TEST_Q_CLUSTER

SQLITE = _TEST_DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"

#: The engine's numbers for the end-to-end runs. ``LEASE_SECONDS`` must exceed
#: ``Q_CLUSTER["timeout"]`` (check E031); retries back off 1 s, 2 s, 4 s, 4 s...
ENGINE = {
    "DELIVERY_MODE": "queue",
    "BATCH_SIZE": 100,
    "LEASE_SECONDS": 10,
    "RETRY_BASE_SECONDS": 1,
    "RETRY_MAX_SECONDS": 4,
    "MAX_ATTEMPTS": 5,
}
#: Seconds the webhook channel waits for the sink (connect and each read).
WEBHOOK_TIMEOUT = 1.0


def q_cluster(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``Q_CLUSTER`` of the cluster: the ORM broker on the test database unless overridden."""
    config: dict[str, Any] = {
        "name": _TEST_Q_CLUSTER["name"],  # the signing salt: must match the test process
        "orm": "default",
        # Two workers on SQLite too: with "transaction_mode": "IMMEDIATE" they take turns to write.
        "workers": 2,
        "timeout": 5,
        "retry": 8,  # above timeout (check E022), so a running task is never handed out twice
        "save_limit": 0,
        "catch_up": False,
        "guard_cycle": 0.1,  # notices dead or timed-out workers fast; the scheduler still ticks every ~30 s
        "poll": 0.1,
    }
    config.update(overrides or {})
    # As docs/howto/deploying.rst recommends: a task's retry clock runs while it waits in
    # the cluster's local queue, so with deep prefetching another cluster may run it again.
    config.setdefault("queue_limit", config["workers"])
    if "redis" in config:
        config.pop("orm", None)
    return config


def notify_settings(sink_port: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DJANGO_NOTIFY`` of the cluster: the test channels plus ``webhook`` to the sink."""
    channels = dict(_TEST_NOTIFY["CHANNELS"])
    channels["webhook"] = {
        "BACKEND": "django_notify.backends.webhook.WebhookBackend",
        "OPTIONS": {"url": f"http://127.0.0.1:{sink_port}/hook", "timeout": WEBHOOK_TIMEOUT},
    }
    return {**_TEST_NOTIFY, **ENGINE, "CHANNELS": channels, **(overrides or {})}


def _json_env(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(os.environ.get(name) or "{}")
    return value


DATABASES = {"default": {**_TEST_DATABASES["default"], "CONN_MAX_AGE": 600}}
if os.environ.get("DN_E2E_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DN_E2E_DB_NAME"]
if SQLITE:
    # The options docs/howto/deploying.rst recommends for SQLite (check W032).
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }

# The email channel goes through Django's SMTP backend, like a deployment's.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("DN_E2E_SMTP_PORT") or 25)

Q_CLUSTER = q_cluster(_json_env("DN_E2E_Q_CLUSTER"))
DJANGO_NOTIFY = notify_settings(int(os.environ.get("DN_E2E_SINK_PORT") or 9), _json_env("DN_E2E_NOTIFY"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django-q": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django_notify": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
