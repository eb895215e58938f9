"""URLconf of the browser tests: the test project's URLs and a page using ``{% load notify %}``."""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import path

from tests.urls import urlpatterns as project_urlpatterns

PAGE = Path(__file__).with_name("page.html")


def page(request: HttpRequest) -> HttpResponse:
    """A page of the host site: the client script, the server-rendered count and a live badge."""
    return HttpResponse(engines["django"].from_string(PAGE.read_text()).render({}, request))


urlpatterns = [
    path("page/", page, name="page"),
    *project_urlpatterns,
]
