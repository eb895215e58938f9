"""The JSON parser of every endpoint: bounded size, and bad input is a 400."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's ``JSONParser``, with two holes closed.

    DRF catches only ``ValueError``: a deeply nested body raises ``RecursionError``,
    a 500. And it reads the whole body whatever its size. This parser reads at most
    :attr:`max_bytes` (a 400 beyond) and turns any parse failure into a 400;
    ``NaN`` and ``Infinity``, which are not JSON, are refused too.
    """

    max_bytes: ClassVar[int] = 256 * 1024

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        body = stream.read(self.max_bytes + 1) if stream is not None else b""
        if len(body) > self.max_bytes:
            raise ParseError(f"The body is larger than {self.max_bytes} bytes.")
        try:
            return json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
