"""Settings of the delivery benchmark: its driver and its ``qcluster`` subprocess.

Used by ``bench_delivery.py`` only. ``DATABASE_URL`` names the scratch database.
Unlike ``tests.settings`` the cluster really runs tasks: no ``"sync": True``,
persistent connections (``CONN_MAX_AGE`` 600) and ``save_limit`` 0, the
configuration the performance reference recommends for the ORM broker.
"""

from __future__ import annotations

import os

import dj_database_url

SECRET_KEY = "django_notify-bench"
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=600)}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "django_q",
    "django_notify",
    "tests.testapp",
    "tests.benchmarks",  # its notifications.py registers the benchmark's type
]
Q_CLUSTER = {
    "name": "dn_bench",
    "orm": "default",
    "workers": 2,
    "timeout": 60,
    "retry": 120,
    "save_limit": 0,
    "guard_cycle": 0.1,
}
DJANGO_NOTIFY = {
    "CHANNELS": {
        "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
        "sink": {"BACKEND": "tests.benchmarks.sink.SinkBackend"},
        # tests.testapp's types list "email"; qcluster's system checks (E010) need it configured.
        "email": {"BACKEND": "tests.benchmarks.sink.SinkBackend"},
    },
    "DELIVERY_MODE": "queue",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # INFO in the cluster (one line per task, counted by the benchmark), quiet in the driver.
    "loggers": {"django-q": {"level": os.environ.get("DN_BENCH_Q_LOG_LEVEL", "WARNING")}},
}
