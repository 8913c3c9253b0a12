"""The REST API's JSON parser: DRF's, refusing (400) a body nested past the tracking API's
``MAX_DEPTH`` instead of recursing into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from webapp.tracking.api import MAX_DEPTH, nested_deeper_than


class JSONParser(parsers.JSONParser):
    """Parses with orjson, which stops at 1,024 levels where Python's json parser recursed
    until it raised RecursionError (a server error), and checks the depth of what it read.
    Like DRF's strict parser, NaN and Infinity are refused."""

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if nested_deeper_than(data, MAX_DEPTH):
            raise ParseError(f"the body nests arrays and objects more than {MAX_DEPTH} levels "
                             "deep")
        return data
