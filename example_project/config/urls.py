"""URLs of the example project."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from restaurant.views import home

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/notifications/", include("django_notify.urls")),
    path("api-auth/", include("rest_framework.urls")),
]
