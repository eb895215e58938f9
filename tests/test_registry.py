from __future__ import annotations

import pytest

from django_notify import NotificationType, content, registry
from django_notify.exceptions import AlreadyRegistered, MissingContextError, UnknownNotificationType
from django_notify.registry import NotificationTypeRegistry
from django_notify.testing import registered


def test_types_in_app_notifications_modules_are_discovered():
    # tests/testapp/notifications.py registers both, one as an instance, one as a class.
    assert {"order_placed", "low_stock"} <= set(registry.keys())
    assert registry.get("low_stock").priority == "high"


def test_unknown_key_lists_known_keys():
    with pytest.raises(UnknownNotificationType) as info:
        registry.get("no_such_type")
    message = str(info.value)
    assert "no_such_type" in message
    assert "low_stock" in message and "order_placed" in message
    assert isinstance(info.value, LookupError)


def test_register_as_decorator_returns_the_class():
    local = NotificationTypeRegistry()

    @local.register
    class Shipped(NotificationType):
        key = "shipped"
        title = "Shipped"

    assert isinstance(Shipped, type)
    assert local.get("shipped").title == "Shipped"
    assert local.get(Shipped).key == "shipped"


def test_register_instance_returns_it_and_duplicate_key_is_refused():
    local = NotificationTypeRegistry()
    first = local.register(NotificationType(key="ping", title="Ping"))
    assert local.get("ping") is first
    local.register(first)  # the same object again is harmless
    with pytest.raises(AlreadyRegistered):
        local.register(NotificationType(key="ping", title="Another"))


def test_unregister():
    local = NotificationTypeRegistry()
    local.register(NotificationType(key="ping"))
    local.unregister("ping")
    assert "ping" not in local
    with pytest.raises(UnknownNotificationType):
        local.unregister("ping")


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"key": ""}, "key"),
        ({"key": "Has Space"}, "key"),
        ({"key": "x" * 101}, "key"),
        ({"key": "ok", "category": "Bad Category"}, "category"),
        ({"key": "ok", "priority": "urgent"}, "priority"),
        ({"key": "ok", "channels": "email"}, "channels"),
        ({"key": "ok", "title": None}, "title"),
        ({"key": "ok", "defaults": {"recipient": 1}}, "recipient"),
        ({"key": "ok", "push": ["icon"]}, "push must be a dict"),
        ({"key": "ok", "push": {"colour": "red"}}, "unknown option"),
        ({"key": "ok", "push": {"icon": 1}}, "icon must be a URL"),
        ({"key": "ok", "push": {"silent": "yes"}}, "silent must be True or False"),
        ({"key": "ok", "push": {"vibrate": [100, -1]}}, "vibrate"),
        ({"key": "ok", "push": {"vibrate": [True]}}, "vibrate"),
        ({"key": "ok", "push": {"actions": [{"title": "Open"}]}}, "actions"),
        ({"key": "ok", "push": {"actions": [{"action": "open", "title": "Open", "colour": "red"}]}}, "actions"),
    ],
)
def test_invalid_attributes_are_refused(attributes, message):
    with pytest.raises(ValueError, match=message):
        NotificationType(**attributes)


def test_push_options_are_accepted():
    push = {
        "icon": "/static/icon.png",
        "badge": "/static/badge.png",
        "image": "https://cdn.example.com/photo.jpg",
        "actions": [{"action": "open", "title": "Open", "url": "/orders/"}],
        "require_interaction": True,
        "silent": False,
        "vibrate": [100, 50, 100],
    }
    assert NotificationType(key="ok", push=push).push == push


def test_unknown_attribute_is_a_type_error():
    with pytest.raises(TypeError, match="titel"):
        NotificationType(key="ok", titel="typo")


def test_channels_default_to_setting(settings):
    settings.DJANGO_NOTIFY = {**settings.DJANGO_NOTIFY, "DEFAULT_CHANNELS": ["in_app", "sms"]}
    assert NotificationType(key="x").get_channels() == ("in_app", "sms")
    assert NotificationType(key="y", channels=["email"]).get_channels() == ("email",)


def test_iteration_is_sorted_by_category_then_key():
    keys = [(t.category, t.key) for t in registry]
    assert keys == sorted(keys)
    assert registry.categories() == sorted({t.category for t in registry})


@pytest.mark.django_db  # template overrides are read from the database
def test_render_uses_django_templates_and_defaults():
    kind = NotificationType(
        key="t",
        title="Hello {{ name|upper }}",
        body="{% for i in items %}{{ i }};{% endfor %}{% if note %} {{ note }}{% endif %}",
        url="/x/{{ pk }}/",
        defaults={"note": "n/a"},
    )
    rendered = content.render_inbox(kind, kind.get_context({"name": "ann", "items": [1, 2], "pk": 7}))
    assert (rendered.title, rendered.body, rendered.url) == ("Hello ANN", "1;2; n/a", "/x/7/")


@pytest.mark.django_db  # template overrides are read from the database
def test_missing_variable_is_an_error_naming_it():
    kind = NotificationType(key="t", title="Low stock: {{ item }}", body="{{ qty }} left")
    with pytest.raises(MissingContextError) as info:
        content.render_inbox(kind, {"qty": 1})
    assert info.value.missing == ["item"]
    assert "{{ item }}" in str(info.value) and "title" in str(info.value)


@pytest.mark.django_db  # template overrides are read from the database
def test_missing_attribute_of_present_variable_is_an_error():
    kind = NotificationType(key="t", title="{{ order.numbr }}")
    with pytest.raises(MissingContextError, match=r"order\.numbr"):
        content.render_inbox(kind, {"order": {"number": 1}})


@pytest.mark.django_db  # template overrides are read from the database
def test_optional_variables_if_and_default_filter_do_not_error():
    kind = NotificationType(
        key="t",
        title="{{ note|default:'none' }}",
        body="{% if extra %}{{ extra }}{% endif %}{{ maybe|default_if_none:'-' }}",
    )
    rendered = content.render_inbox(kind, {})
    assert rendered.title == "none"
    assert rendered.body == "-"


@pytest.mark.django_db  # template overrides are read from the database
def test_title_is_one_line_and_truncated():
    kind = NotificationType(key="t", title="{{ text }}")
    rendered = content.render_inbox(kind, {"text": "a\n  b " + "x" * 400})
    assert "\n" not in rendered.title
    assert rendered.title.startswith("a b x")
    assert len(rendered.title) == 255 and rendered.title.endswith("\u2026")


@pytest.mark.django_db  # template overrides are read from the database
def test_plain_text_is_not_html_escaped():
    kind = NotificationType(key="t", title="{{ name }}", body="{{ name }}")
    rendered = content.render_inbox(kind, {"name": "Tom & <Jerry>"})
    assert rendered.title == "Tom & <Jerry>"
    assert rendered.body == "Tom & <Jerry>"


@pytest.mark.parametrize(
    "hostile",
    ["{0.__class__}", "{user.password}", "{{ settings.SECRET_KEY }}", "{% debug %}", "%(x)s {}"],
)
@pytest.mark.django_db  # template overrides are read from the database
def test_context_values_are_data_never_template_source(hostile):
    kind = NotificationType(key="t", title="Hi {{ name }}", body="{{ name }}")
    rendered = content.render_inbox(kind, {"name": hostile})
    assert rendered.body == hostile
    assert rendered.title == f"Hi {hostile}"


@pytest.mark.django_db  # template overrides are read from the database
def test_render_shared_detects_use_of_recipient():
    shared = NotificationType(key="a", title="Hi {{ name }}")
    personal = NotificationType(key="b", title="Hi {{ recipient.first_name }}")
    conditional = NotificationType(key="c", title="Hi", body="{% if recipient %}x{% endif %}")
    assert content.render_inbox_shared(shared, {"name": "x"}).title == "Hi x"
    assert content.render_inbox_shared(personal, {}) is None
    assert content.render_inbox_shared(conditional, {}) is None


def test_context_may_not_set_recipient():
    with pytest.raises(ValueError, match="recipient"):
        NotificationType(key="t").get_context({"recipient": 1})


def test_registered_helper_registers_for_the_block_only():
    with registered(NotificationType(key="temp_type", title="T")):
        assert "temp_type" in registry
    assert "temp_type" not in registry
