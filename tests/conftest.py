"""Factory fixtures shared by the test modules."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

_sequence = itertools.count(1)


@pytest.fixture(autouse=True)
def _close_push_connections() -> Iterator[None]:
    """Each test's push receivers are its own: drop connections the sender keeps alive."""
    yield
    from django_notify.push.sender import close_connections

    close_connections()


@pytest.fixture
def user_factory(db: None) -> Callable[..., Any]:
    """Create users: ``user_factory()``, ``user_factory(is_staff=True)``."""

    def create(**fields: Any) -> Any:
        number = next(_sequence)
        fields.setdefault("username", f"user{number}")
        fields.setdefault("email", f"user{number}@example.com")
        password = fields.pop("password", "secret")
        user = get_user_model()(**fields)
        user.set_password(password)
        user.save()
        return user

    return create


@pytest.fixture
def user(user_factory: Callable[..., Any]) -> Any:
    return user_factory()


@pytest.fixture
def other_user(user_factory: Callable[..., Any]) -> Any:
    return user_factory()


@pytest.fixture
def staff_user(user_factory: Callable[..., Any]) -> Any:
    return user_factory(is_staff=True)


@pytest.fixture
def api_client_factory() -> Callable[..., APIClient]:
    """An API client logged in as ``user`` (session auth, CSRF enforced if asked)."""

    def create(user: Any = None, *, enforce_csrf_checks: bool = False) -> APIClient:
        client = APIClient(enforce_csrf_checks=enforce_csrf_checks)
        if user is not None:
            client.force_login(user)
        return client

    return create


@pytest.fixture
def api_client(api_client_factory: Callable[..., APIClient], user: Any) -> APIClient:
    return api_client_factory(user)
