"""The JSON document a service worker receives in a push message (SPEC 2.3).

It carries what the browser shows and what the worker reports back with: ``id`` (the
notification), ``title``, ``body``, ``url``, ``tag``, ``icon``, ``badge``, ``actions``,
``data`` and ``token`` (the signed tracking token) always, and ``image``, ``events``,
``timestamp`` (ms), ``requireInteraction``, ``silent``, ``renotify``, ``vibrate``,
``lang`` and ``dir`` when given.

Push services need not accept more than 4,096 bytes of encrypted body, which leaves
3,993 bytes of plaintext (RFC 8291 §4), and some refuse less (Mozilla on Android
answered 413 above 3,070), so the document is kept to ``max_bytes`` of UTF-8 JSON,
3,000 by default. A document that is too long has its text shortened, never its
structure: the body first, then the title, then the action titles, each cut where a
character or a visible symbol (emoji sequence, flag, accented letter) ends, and
marked with "…". When even empty texts do not fit (a large ``data`` or very long
URLs), :class:`PayloadTooLarge` names the largest fields: that is a permanent failure
of the delivery, and the fix is to send less (the worker can fetch the rest).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

DEFAULT_MAX_BYTES = 3000
#: 4,096 bytes of body minus the aes128gcm header (86), padding (1) and tag (16).
HARD_MAX_BYTES = 3993
#: Ends every shortened text.
ELLIPSIS = "…"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# Keys with a string value (or None, as for a notification without a URL).
_OPTIONAL_STRINGS = ("url", "tag", "icon", "badge", "image", "token", "events", "lang", "dir")
_ALWAYS = ("id", "title", "body", "url", "tag", "icon", "badge", "actions", "data", "token")
_FLAGS = ("requireInteraction", "silent", "renotify")
_KEYS = frozenset(_ALWAYS + _OPTIONAL_STRINGS + _FLAGS + ("vibrate", "timestamp"))
_ACTION_KEYS = frozenset({"action", "title", "icon", "url"})
# What json escapes when ensure_ascii is off; anything else is written as its UTF-8 bytes.
_JSON_ESCAPED_RE = re.compile(r'["\\\x00-\x1f]')


class PayloadTooLarge(ValueError):
    """The push message does not fit in the byte limit even with its texts emptied."""


def build_payload(message: Mapping[str, Any], *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The push message as compact UTF-8 JSON of at most ``max_bytes``, texts shortened if needed.

    ``message`` needs ``id`` and ``title``; the other keys are listed in the module
    docstring. Raise ``ValueError`` for a malformed message or limit, and
    :class:`PayloadTooLarge` when the structure alone is over the limit.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 0 < max_bytes <= HARD_MAX_BYTES:
        raise ValueError(
            f"max_bytes must be an integer from 1 to {HARD_MAX_BYTES} (the most a push service must accept "
            f"once encrypted), not {max_bytes!r}; {DEFAULT_MAX_BYTES} is a safe value."
        )
    document = _document(message)
    encoded = _encode(document)
    if len(encoded) <= max_bytes:
        return encoded
    return _shorten(document, len(encoded), max_bytes)


def _document(message: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh dict in a fixed key order, checked key by key (the caller's objects are not modified)."""
    if not isinstance(message, Mapping):
        raise ValueError(f"The push message must be a mapping, not {type(message).__name__}.")
    unknown = message.keys() - _KEYS
    if unknown:
        raise ValueError(
            f"The push message has unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"valid keys are {', '.join(sorted(_KEYS))} (put anything else in 'data')."
        )
    if "id" not in message or "title" not in message:
        raise ValueError("The push message needs an 'id' (the notification's) and a 'title'.")
    notification_id = message["id"]
    if isinstance(notification_id, bool) or not isinstance(notification_id, (int, str)):
        raise ValueError(
            f"The push message's 'id' must be an integer or a string, not {type(notification_id).__name__}."
        )
    document: dict[str, Any] = {"id": notification_id, "title": _text(message, "title"), "body": _text(message, "body")}
    for key in _OPTIONAL_STRINGS:
        value = message.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"The push message's {key!r} must be a string or None, not {type(value).__name__}.")
        if value is not None or key in _ALWAYS:
            document[key] = value
    document["actions"] = _actions(message.get("actions"))
    data = message.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"The push message's 'data' must be a mapping (a JSON object), not {type(data).__name__}.")
    document["data"] = {} if data is None else data
    for key in _FLAGS:
        value = message.get(key)
        if value is not None:
            if not isinstance(value, bool):
                raise ValueError(f"The push message's {key!r} must be True or False, not {value!r}.")
            document[key] = value
    if message.get("vibrate") is not None:
        document["vibrate"] = _vibrate(message["vibrate"])
    if message.get("timestamp") is not None:
        document["timestamp"] = _timestamp(message["timestamp"])
    return document


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"The push message's {key!r} must be a string, not {type(value).__name__}.")
    return value


def _actions(actions: Any) -> list[dict[str, str]]:
    if actions is None:
        return []
    if not isinstance(actions, (list, tuple)):
        raise ValueError(f"The push message's 'actions' must be a list, not {type(actions).__name__}.")
    checked = []
    for action in actions:
        if (
            not isinstance(action, Mapping)
            or not action.keys() <= _ACTION_KEYS
            or not isinstance(action.get("action"), str)
            or not isinstance(action.get("title"), str)
            or not all(isinstance(value, str) for value in action.values())
        ):
            raise ValueError(
                "Each push message action must be a mapping of strings with 'action' and 'title' "
                "and optionally 'icon' and 'url'."
            )
        checked.append(dict(action))
    return checked


def _vibrate(vibrate: Any) -> int | list[int]:
    pattern = [vibrate] if isinstance(vibrate, int) else vibrate
    if not isinstance(pattern, (list, tuple)) or not all(
        isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0 for ms in pattern
    ):
        raise ValueError("The push message's 'vibrate' must be milliseconds: an integer or a list of integers ≥ 0.")
    return vibrate if isinstance(vibrate, int) else list(vibrate)


def _timestamp(timestamp: Any) -> int:
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("The push message's 'timestamp' is a naive datetime; give an aware one or milliseconds.")
        return int(timestamp.timestamp() * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise ValueError("The push message's 'timestamp' must be milliseconds since the epoch or an aware datetime.")
    return int(timestamp)


def _encode(document: Mapping[str, Any]) -> bytes:
    try:
        return _ENCODER.encode(document).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("The push message contains a lone surrogate character, which UTF-8 cannot encode.") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The push message cannot be written as JSON: {exc}.") from None


def _json_size(value: Any) -> int:
    return len(_ENCODER.encode(value).encode("utf-8"))


def _shorten(document: dict[str, Any], size: int, max_bytes: int) -> bytes:
    """Shorten the body, then the title, then the action titles, until the document fits."""
    for key in ("body", "title"):
        text = document[key]
        if not text:
            continue
        # The size is a sum over the keys, so only this value's encoding changes.
        rest = size - _json_size(text)
        document[key] = _longest(text, max_bytes - rest)
        size = rest + _json_size(document[key])
        if size <= max_bytes:
            return _encode(document)
    if any(action["title"] for action in document["actions"]):
        originals = [action["title"] for action in document["actions"]]

        def fits(limit: int) -> bool:
            for action, title in zip(document["actions"], originals, strict=True):
                action["title"] = _shortened(title, limit)
            return len(_encode(document)) <= max_bytes

        limit = _largest(0, max(map(len, originals)), fits)
        fits(limit or 0)  # 0 empties every action title
        encoded = _encode(document)
        if len(encoded) <= max_bytes:
            return encoded
    size = len(_encode(document))
    # A field's share counts its key: "key":value,
    fields = sorted(((_json_size(key) + _json_size(value) + 2, key) for key, value in document.items()), reverse=True)
    listing = ", ".join(f"{key} ({field_size:,} bytes)" for field_size, key in fields[:3])
    raise PayloadTooLarge(
        f"The push message is {size:,} bytes even with its texts emptied, over the {max_bytes:,}-byte limit; "
        f"its largest fields are {listing}. Send less (the service worker can fetch the rest from the API)."
    )


def _longest(text: str, budget: int) -> str:
    """The longest shortened ``text`` whose JSON string takes at most ``budget`` bytes, else ``""``."""
    room = budget - len('""') - len(ELLIPSIS.encode())  # for the kept characters
    if room < 1:
        return ""
    # Each character takes at least a byte, so the first ``room`` characters hold any fit.
    head = text[:room]
    if _JSON_ESCAPED_RE.search(head) is None:
        # Without escapes a JSON string is its UTF-8 bytes in quotes: cut the bytes and
        # drop a character split at the end.
        fitting = len(head.encode("utf-8")[:room].decode("utf-8", "ignore"))
    else:
        fitting = _largest(1, len(head), lambda cut: _json_size(_cut(text, cut)) <= budget) or 0
    # Sizes grow with the cut, so the nearest boundary at or before the longest fit fits too.
    return _shortened(text, min(fitting, len(text) - 1))


def _shortened(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its longest cut within them (``""`` below one)."""
    if len(text) <= limit:
        return text
    cut = next((cut for cut in range(min(limit, len(text) - 1), 0, -1) if _can_cut(text, cut)), 0)
    return _cut(text, cut) if cut else ""


def _cut(text: str, cut: int) -> str:
    return text[:cut].rstrip() + ELLIPSIS


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest ``n`` in ``[low, high]`` for which the monotone ``fits(n)`` holds, or ``None``."""
    best = None
    while low <= high:
        middle = (low + high) // 2
        if fits(middle):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best


def _can_cut(text: str, cut: int) -> bool:
    """Whether ``text[:cut]`` ends on a boundary between visible symbols (a simplified UAX #29)."""
    before, after = ord(text[cut - 1]), ord(text[cut])
    if (
        after == 0x200D  # zero-width joiner, inside an emoji sequence
        or before == 0x200D
        or 0xFE00 <= after <= 0xFE0F  # variation selectors
        or 0x1F3FB <= after <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= after <= 0xE007F  # tags (subdivision flags)
        or 0xE0100 <= after <= 0xE01EF  # variation selectors supplement
        or 0x1160 <= after <= 0x11FF  # Hangul vowel and final jamo
        or (before == 0x0D and after == 0x0A)
    ):
        return False
    if _is_regional_indicator(before) and _is_regional_indicator(after):
        # Flags are pairs: cut only after an even number of indicators.
        run = 0
        while run < cut and _is_regional_indicator(ord(text[cut - 1 - run])):
            run += 1
        return run % 2 == 0
    return unicodedata.category(text[cut])[0] != "M"  # combining marks belong to the letter before


def _is_regional_indicator(code: int) -> bool:
    return 0x1F1E6 <= code <= 0x1F1FF
