"""Host-app models used by the tests as actors and targets."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Order(models.Model):
    number = models.CharField(max_length=20)

    def __str__(self) -> str:
        return f"Order {self.number}"

    def get_absolute_url(self) -> str:
        return f"/orders/{self.pk}/"


class Document(models.Model):
    """A model with a UUID key, to prove generic references store string ids."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """Where the tests keep a user's language (``RECIPIENT_LANGUAGE = "profile__language"``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    language = models.CharField(max_length=15, blank=True, null=True)  # noqa: DJ001  (NULL is a case to test)

    def __str__(self) -> str:
        return f"profile of user {self.user_id}"
