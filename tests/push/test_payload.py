"""The push message JSON: its shape, its byte limit, and how long texts are shortened."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timezone

import pytest

from django_notify.push.payload import (
    DEFAULT_MAX_BYTES,
    ELLIPSIS,
    HARD_MAX_BYTES,
    PayloadTooLarge,
    build_payload,
)

ACTIONS = [
    {"action": "reorder", "title": "Reorder", "icon": "/static/reorder.png", "url": "/inventory/42/reorder/"},
    {"action": "dismiss", "title": "Dismiss"},
]
MESSAGE = {
    "id": 12345,
    "title": "Low stock: Tomatoes",
    "body": "Only 3 crates left at the Main Street kitchen.",
    "url": "/inventory/items/42/",
    "tag": "notification-12345",
    "icon": "/static/icon-192.png",
    "badge": "/static/badge-72.png",
    "actions": ACTIONS,
    "data": {"item_id": 42, "kitchen": "main", "nested": {"list": [1, 2, 3]}},
    "token": "eyJkIjoxMjM0NX0:1vABCD:abcdefghijklmnopqrstuvwxyz012345",
    "events": "https://shop.example/api/notifications/events/",
    "timestamp": 1_767_225_600_000,
}
# Every key except title and body, which may be shortened: these must come through unchanged.
STRUCTURE = {key: value for key, value in MESSAGE.items() if key not in ("title", "body")}


def parsed(payload: bytes) -> dict:
    return json.loads(payload.decode("utf-8", errors="strict"))


def size(message: dict) -> int:
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())


def with_body_of_size(total: int, char: str = "a") -> dict:
    """MESSAGE with a body of ``char`` repeated so the JSON is exactly ``total`` bytes."""
    rest = size({**MESSAGE, "body": ""})
    count = (total - rest) / len(char.encode())
    assert count == int(count), "pick a total the character's width divides"
    return {**MESSAGE, "body": char * int(count)}


def assert_structure_intact(document: dict) -> None:
    for key, value in STRUCTURE.items():
        if key == "actions":
            assert [{k: v for k, v in a.items() if k != "title"} for a in document["actions"]] == [
                {k: v for k, v in a.items() if k != "title"} for a in ACTIONS
            ]
        else:
            assert document[key] == value, key


# --- shape -----------------------------------------------------------------------------------


def test_a_message_that_fits_is_compact_json_with_every_key():
    payload = build_payload({**MESSAGE, "body": "Crème brûlée: 3 left — 東京 🍅"})
    document = parsed(payload)
    assert document == {**MESSAGE, "body": "Crème brûlée: 3 left — 東京 🍅"}
    assert payload == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    assert "東京 🍅".encode() in payload  # not \u-escaped: a third of the bytes


def test_the_always_present_keys_get_defaults():
    document = parsed(build_payload({"id": "n-1", "title": "Hello"}))
    assert document == {
        "id": "n-1",
        "title": "Hello",
        "body": "",
        "url": None,
        "tag": None,
        "icon": None,
        "badge": None,
        "actions": [],
        "data": {},
        "token": None,
    }


def test_optional_keys_are_passed_when_given():
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    document = parsed(
        build_payload(
            {
                **MESSAGE,
                "image": "/media/tomatoes.jpg",
                "requireInteraction": True,
                "silent": False,
                "renotify": True,
                "vibrate": [100, 50, 100],
                "timestamp": when,
                "lang": "fr",
                "dir": "ltr",
            }
        )
    )
    assert document["image"] == "/media/tomatoes.jpg"
    assert (document["requireInteraction"], document["silent"], document["renotify"]) == (True, False, True)
    assert document["vibrate"] == [100, 50, 100]
    assert document["timestamp"] == 1_767_225_600_000
    assert (document["lang"], document["dir"]) == ("fr", "ltr")


def test_optional_keys_given_as_none_are_left_out():
    document = parsed(build_payload({"id": 1, "title": "x", "image": None, "silent": None, "timestamp": None}))
    assert not {"image", "silent", "timestamp"} & document.keys()


BAD_MESSAGES = [
    ("not-a-mapping", ["id", 1], "must be a mapping"),
    ("no-id", {"title": "x"}, "needs an 'id'"),
    ("no-title", {"id": 1}, "needs an 'id'"),
    ("bool-id", {"id": True, "title": "x"}, "'id' must be"),
    ("unknown-key", {"id": 1, "title": "x", "requireinteraction": True}, "unknown key.*'requireinteraction'.*data"),
    ("title-not-text", {"id": 1, "title": 3}, "'title' must be a string"),
    ("url-not-text", {"id": 1, "title": "x", "url": ["/a"]}, "'url' must be a string or None"),
    ("actions-not-list", {"id": 1, "title": "x", "actions": "reply"}, "'actions' must be a list"),
    ("action-without-title", {"id": 1, "title": "x", "actions": [{"action": "a"}]}, "'action' and 'title'"),
    ("action-extra-key", {"id": 1, "title": "x", "actions": [{"action": "a", "title": "A", "x": "y"}]}, "'title'"),
    ("data-not-object", {"id": 1, "title": "x", "data": [1, 2]}, "'data' must be a mapping"),
    ("data-not-json", {"id": 1, "title": "x", "data": {"when": datetime(2026, 1, 1)}}, "cannot be written as JSON"),
    ("data-nan", {"id": 1, "title": "x", "data": {"ratio": math.nan}}, "cannot be written as JSON"),
    ("flag-not-bool", {"id": 1, "title": "x", "silent": "yes"}, "'silent' must be True or False"),
    ("vibrate-negative", {"id": 1, "title": "x", "vibrate": [100, -1]}, "'vibrate'"),
    ("vibrate-bool", {"id": 1, "title": "x", "vibrate": True}, "'vibrate'"),
    ("timestamp-naive", {"id": 1, "title": "x", "timestamp": datetime(2026, 1, 1)}, "naive"),
    ("timestamp-text", {"id": 1, "title": "x", "timestamp": "2026-01-01"}, "'timestamp'"),
    ("lone-surrogate", {"id": 1, "title": "bad \ud800 text"}, "lone surrogate"),
]


@pytest.mark.parametrize(
    ("message", "match"), [case[1:] for case in BAD_MESSAGES], ids=[case[0] for case in BAD_MESSAGES]
)
def test_malformed_messages_are_refused_with_a_clear_message(message, match):
    with pytest.raises(ValueError, match=match) as info:
        build_payload(message)
    assert not isinstance(info.value, PayloadTooLarge)


@pytest.mark.parametrize("max_bytes", [0, -1, HARD_MAX_BYTES + 1, 10_000, True, 3000.0, "3000", None])
def test_max_bytes_must_be_within_the_hard_ceiling(max_bytes):
    with pytest.raises(ValueError, match=f"from 1 to {HARD_MAX_BYTES}") as info:
        build_payload(MESSAGE, max_bytes=max_bytes)
    assert not isinstance(info.value, PayloadTooLarge)


def test_the_hard_ceiling_itself_is_accepted():
    message = with_body_of_size(HARD_MAX_BYTES)
    assert len(build_payload(message, max_bytes=HARD_MAX_BYTES)) == HARD_MAX_BYTES
    assert DEFAULT_MAX_BYTES == 3000


# --- the byte limit ------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["a", "é", "東", "🍅"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_exactly_max_bytes_fits_untouched(char):
    limit = size({**MESSAGE, "body": ""}) + 1200  # 1200 bytes: a whole number of each character
    message = with_body_of_size(limit, char)
    payload = build_payload(message, max_bytes=limit)
    assert len(payload) == limit
    assert parsed(payload) == message


@pytest.mark.parametrize("char", ["a", "é", "東", "🍅"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_one_byte_over_is_shortened_to_fit(char):
    limit = size({**MESSAGE, "body": ""}) + 1200
    message = with_body_of_size(limit, char)
    message["body"] += "a"
    payload = build_payload(message, max_bytes=limit)
    document = parsed(payload)
    assert len(payload) <= limit
    assert document["body"].endswith(ELLIPSIS)
    kept = document["body"][: -len(ELLIPSIS)]
    assert message["body"].startswith(kept)
    # As long as possible: one more character would not fit.
    longer = {**document, "body": message["body"][: len(kept) + 1] + ELLIPSIS}
    assert size(longer) > limit
    assert document["title"] == MESSAGE["title"]
    assert_structure_intact(document)


def test_the_default_limit_is_3000_bytes():
    payload = build_payload(with_body_of_size(3001))
    assert len(payload) <= 3000
    assert parsed(payload)["body"].endswith(ELLIPSIS)
    payload = build_payload(with_body_of_size(3000))
    assert len(payload) == 3000
    assert parsed(payload) == with_body_of_size(3000)


# Visible symbols (grapheme clusters) made of several code points: a cut must fall between them.
GRAPHEMES = [
    ("cjk", ("東", "京")),
    ("emoji", ("🍅",)),
    ("zwj-family", ("👩\u200d👩\u200d👧\u200d👦",)),
    ("zwj-profession", ("🧑🏽\u200d🚒",)),
    ("skin-tone", ("👍🏿",)),
    ("flags", ("🇫🇷", "🇩🇪")),
    ("subdivision-flag", ("🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",)),
    ("keycap", ("1\ufe0f\u20e3",)),
    ("emoji-presentation", ("\u2764\ufe0f",)),
    ("combining-acute", ("e\u0301",)),
    ("stacked-marks", ("a\u0301\u0323\u0308",)),
    ("devanagari", ("\u0915\u094d", "\u0937\u093f")),
    ("hangul-jamo", ("\u1100\u1161\u11a8",)),
    ("json-escapes", ('"', "h", "\\", "\x01", "/")),
]


@pytest.mark.parametrize("graphemes", [case[1] for case in GRAPHEMES], ids=[case[0] for case in GRAPHEMES])
def test_multi_byte_text_is_never_split(graphemes):
    sequence = list(graphemes) * 400
    text = "".join(sequence)
    prefixes = {"".join(sequence[:count]): count for count in range(100)}
    rest = size({**MESSAGE, "body": ""})
    for limit in range(rest + 4, rest + 90):
        payload = build_payload({**MESSAGE, "body": text}, max_bytes=limit)
        assert len(payload) <= limit
        document = parsed(payload)  # strict UTF-8: a split sequence would raise
        body = document["body"]
        assert body == "" or body.endswith(ELLIPSIS)
        kept = body[: -len(ELLIPSIS)] if body else ""
        assert kept in prefixes, (limit, kept)  # whole symbols only
        # As long as possible: one more symbol would not fit.
        one_more = kept + sequence[prefixes[kept]] + ELLIPSIS
        assert size({**document, "body": one_more}) > limit, limit
        assert_structure_intact(document)


def test_a_body_with_no_room_for_one_symbol_is_emptied():
    rest = size({**MESSAGE, "body": ""})
    document = parsed(build_payload({**MESSAGE, "body": "👩\u200d👩\u200d👧\u200d👦" * 10}, max_bytes=rest + 20))
    assert document["body"] == ""
    assert document["title"] == MESSAGE["title"]


def test_trailing_whitespace_is_dropped_before_the_ellipsis():
    limit = size({**MESSAGE, "body": ""}) + 12
    document = parsed(build_payload({**MESSAGE, "body": "Hello      world, again and again"}, max_bytes=limit))
    assert document["body"] == "Hello" + ELLIPSIS


# --- what is shortened, in which order -------------------------------------------------------


def test_the_body_is_shortened_before_the_title():
    message = {**MESSAGE, "title": "T" * 300, "body": "B" * 3000}
    document = parsed(build_payload(message))
    assert document["title"] == "T" * 300
    assert document["body"].startswith("BBB") and document["body"].endswith(ELLIPSIS)
    assert_structure_intact(document)


def test_the_title_is_shortened_once_the_body_is_gone():
    message = {**MESSAGE, "title": "T" * 4000, "body": "B" * 4000}
    payload = build_payload(message)
    document = parsed(payload)
    assert len(payload) <= DEFAULT_MAX_BYTES
    assert document["body"] == ""
    assert document["title"].startswith("TTT") and document["title"].endswith(ELLIPSIS)
    assert [a["title"] for a in document["actions"]] == ["Reorder", "Dismiss"]
    assert_structure_intact(document)


def test_action_titles_are_shortened_last():
    actions = [{"action": "yes", "title": "Y" * 1600}, {"action": "no", "title": "N" * 1600, "url": "/no/"}]
    message = {**MESSAGE, "title": "T" * 100, "body": "B" * 100, "actions": actions}
    payload = build_payload(message)
    document = parsed(payload)
    assert len(payload) <= DEFAULT_MAX_BYTES
    assert (document["title"], document["body"]) == ("", "")
    assert [a["action"] for a in document["actions"]] == ["yes", "no"]
    assert document["actions"][1]["url"] == "/no/"
    for action in document["actions"]:
        assert action["title"].endswith(ELLIPSIS)
        assert len(action["title"]) > 100
    # The caller's message is never modified.
    assert actions[0]["title"] == "Y" * 1600


def test_the_callers_message_is_not_modified():
    message = copy.deepcopy({**MESSAGE, "body": "B" * 5000})
    before = copy.deepcopy(message)
    build_payload(message)
    assert message == before


# --- too large even when emptied --------------------------------------------------------------


def test_data_too_big_alone_raises_payload_too_large_naming_it():
    message = {**MESSAGE, "data": {"blob": "x" * 5000}, "body": "B" * 100}
    with pytest.raises(PayloadTooLarge) as info:
        build_payload(message)
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "data (" in text.split("largest fields are")[1].split(",")[0]
    assert "3,000-byte limit" in text


def test_a_long_url_names_the_url():
    message = {**MESSAGE, "url": "/" + "u" * 3500}
    with pytest.raises(PayloadTooLarge, match=r"largest fields are url \(3,5\d\d bytes\)"):
        build_payload(message)


def test_a_limit_too_small_for_the_structure_raises():
    with pytest.raises(PayloadTooLarge):
        build_payload(MESSAGE, max_bytes=100)
