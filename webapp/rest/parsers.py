"""The REST API's JSON parser: DRF's, refusing (400) a body nested past the tracking API's
``MAX_DEPTH`` instead of recursing into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json
from rest_framework.utils.json import strict_constant

from webapp.tracking.api import MAX_DEPTH, nested_deeper_than


class JSONParser(parsers.JSONParser):
    """Parses with orjson, which stops at 1,024 levels where Python's json parser recursed
    until it raised RecursionError (a server error), and checks the depth of what it read;
    DRF's strict parser reads what orjson does not (NaN and Infinity stay refused)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        raw = stream.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # What orjson refuses that DRF's parser reads (an integer past 64 bits, which the
            # spec's ranges then refuse on their field), or nothing reads.
            try:
                data = json.loads(raw, parse_constant=strict_constant)
            except (ValueError, RecursionError) as exc:
                raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
        if nested_deeper_than(data, MAX_DEPTH):
            raise ParseError(f"the body nests arrays and objects more than {MAX_DEPTH} levels "
                             "deep")
        return data
