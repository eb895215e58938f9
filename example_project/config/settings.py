"""Settings of the example project: a small restaurant back office using django_notify.

For development only (DEBUG on, a fixed secret key). ``NOTIFY_DEMO_DB`` chooses the
SQLite file; the default is ``example_project/db.sqlite3``.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-example-project-do-not-use-in-production"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    "django_notify",
    "restaurant",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("NOTIFY_DEMO_DB") or str(BASE_DIR / "db.sqlite3"),
        # The web server and the worker write to the same file: wait for locks, and take
        # the write lock when a transaction begins, so that a transaction that has read
        # never fails at once with "database is locked" when it comes to write.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        "CONN_MAX_AGE": 60,
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

LOGIN_URL = "rest_framework:login"
LOGIN_REDIRECT_URL = "/"

# Emails (a later issue switches the email channel to EmailBackend) go to the console.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "kitchen@example.com"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
}

# django-q2 with the ORM broker: the queue lives in the database (no Redis).
# save_limit 0 keeps no successful task results, which avoids django-q2 pruning
# them under a lock that SQLite handles badly.
Q_CLUSTER = {
    "name": "example",
    "orm": "default",
    "timeout": 60,
    "retry": 120,
    # One worker: SQLite writes one transaction at a time (use PostgreSQL to scale).
    "workers": 1,
    "save_limit": 0,
    "queue_limit": 1,  # prefetch no more tasks than there are workers (docs/howto/deploying.rst)
}

DJANGO_NOTIFY = {
    "CHANNELS": {
        "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
        # The real email channel; EMAIL_BACKEND above prints each message (text and HTML).
        "email": {"BACKEND": "django_notify.backends.email.EmailBackend"},
    },
    # Links in emails, including the one-click unsubscribe link, point at the demo server.
    "BASE_URL": "http://127.0.0.1:8000",
    "SITE_NAME": "the restaurant back office",
}
