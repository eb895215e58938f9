"""Settings (and URLconf) of the Web Push benchmark, ``bench_push.py``.

A ``webpush`` channel allowed to reach push receivers on 127.0.0.1, with a VAPID
key made afresh for each run. ``DATABASE_URL`` names the database (default: SQLite
in memory, enough for the backend alone; ``--engine`` points it at a scratch one).
"""

from __future__ import annotations

import base64
import os
from typing import Any

import dj_database_url
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import include, path

SECRET_KEY = "django_notify-bench-push"
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", "sqlite://:memory:"), conn_max_age=600)}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "django_q",
    "django_notify",
]
# This module is the URLconf too: the API is mounted so every payload carries the
# engagement URL, as in a real project.
ROOT_URLCONF = __name__

_vapid_key = ec.generate_private_key(ec.SECP256R1())
#: Raw 32-byte scalar, base64url: the form ``generate_vapid_keys`` prints, and pywebpush reads.
VAPID_PRIVATE_KEY = (
    base64.urlsafe_b64encode(_vapid_key.private_numbers().private_value.to_bytes(32, "big")).rstrip(b"=").decode()
)
_WEBPUSH_OPTIONS: dict[str, Any] = {
    "vapid_private_key": VAPID_PRIVATE_KEY,
    "vapid_subject": "mailto:bench@example.com",
    "allowed_endpoint_hosts": ["127.0.0.1"],
}
if "DN_BENCH_PUSH_CONCURRENCY" in os.environ:  # bench_push.py --concurrency; else the backend's default
    _WEBPUSH_OPTIONS["concurrency"] = int(os.environ["DN_BENCH_PUSH_CONCURRENCY"])
DJANGO_NOTIFY = {
    "CHANNELS": {
        "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
        "webpush": {"BACKEND": "django_notify.backends.webpush.WebPushBackend", "OPTIONS": _WEBPUSH_OPTIONS},
    },
    "DELIVERY_MODE": "manual",  # --engine calls deliver_due() itself
}
# Unused (nothing is queued) but read by django_q on import; its defaults draw a warning.
Q_CLUSTER = {"name": "dn_bench_push", "orm": "default", "timeout": 60, "retry": 120}
# W045 warns that loopback endpoints are allowed with DEBUG off: the receivers are on
# loopback on purpose, and DEBUG stays off so the engine run does not log every query.
SILENCED_SYSTEM_CHECKS = ["django_notify.W045"]


def __getattr__(name: str) -> Any:
    # ``urlpatterns`` is built on first use: include() imports models, which cannot
    # happen while the settings themselves are being read.
    if name == "urlpatterns":
        return [path("api/notifications/", include("django_notify.urls"))]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
