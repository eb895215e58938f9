"""The service worker view: ``sw.js`` from the URLconf, with the headers that let it control ``/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

import django_notify
from django_notify.views import service_worker_script

PACKAGED = Path(django_notify.__file__).parent / "static" / "django_notify" / "sw.js"
URL = "/api/notifications/sw.js"


@pytest.fixture(autouse=True)
def _fresh_script():
    service_worker_script.cache_clear()
    yield
    service_worker_script.cache_clear()


def test_url_name():
    assert reverse("django_notify:service-worker") == URL


def test_serves_the_packaged_worker_with_its_headers():
    response = Client().get(URL)

    assert response.status_code == 200
    assert response.content == PACKAGED.read_bytes()
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Service-Worker-Allowed"] == "/"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["ETag"].startswith('"') and len(response["ETag"]) == 34


def test_needs_no_login_and_no_session():
    response = Client().get(URL)
    assert response.status_code == 200
    assert "sessionid" not in response.cookies


@pytest.mark.parametrize("header", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_an_unchanged_worker_is_a_304(header):
    etag = Client().get(URL)["ETag"]

    response = Client().get(URL, headers={"If-None-Match": header.format(etag=etag)})

    assert response.status_code == 304
    assert response.content == b""
    assert (response["ETag"], response["Service-Worker-Allowed"]) == (etag, "/")


def test_another_etag_gets_the_script():
    response = Client().get(URL, headers={"If-None-Match": '"0123"'})
    assert response.status_code == 200
    assert response.content == PACKAGED.read_bytes()


def test_head_and_other_methods():
    client = Client()
    head = client.head(URL)
    assert (head.status_code, head.content, head["Service-Worker-Allowed"]) == (200, b"", "/")
    assert client.post(URL).status_code == 405


def test_the_file_is_read_once_per_process():
    client = Client()
    for _ in range(3):
        client.get(URL)
    assert service_worker_script.cache_info().misses == 1


def test_a_project_may_override_the_worker_through_staticfiles(settings, tmp_path):
    (tmp_path / "django_notify").mkdir()
    (tmp_path / "django_notify" / "sw.js").write_text("// the project's own worker\n")
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django.contrib.staticfiles"]
    settings.STATICFILES_DIRS = [str(tmp_path)]

    response = Client().get(URL)

    assert response.content == b"// the project's own worker\n"
    assert response["Service-Worker-Allowed"] == "/"
