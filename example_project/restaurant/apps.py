from __future__ import annotations

from django.apps import AppConfig


class RestaurantConfig(AppConfig):
    name = "restaurant"
    verbose_name = "Restaurant"
    default_auto_field = "django.db.models.BigAutoField"
