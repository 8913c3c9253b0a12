"""The REST API's parsers: DRF's, refusing (400) a body nested past the tracking API's
``MAX_DEPTH`` instead of recursing into it, and text the database cannot store (the tracking
API's ``storable``: a NUL, half a surrogate pair) on the field that holds it, where PostgreSQL
raised a server error on the write. ``refuse_unstorable_url`` does the same for the query
string and the path of every route (``webapp.rest.urls``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import IO, Any

import orjson
from django.http import HttpRequest, JsonResponse, QueryDict
from django.http.response import HttpResponseBase
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.utils import json
from rest_framework.utils.json import strict_constant

from webapp.tracking.api import MAX_DEPTH, UNSTORABLE, all_storable, nested_deeper_than, storable


class JSONParser(parsers.JSONParser):
    """Parses with orjson, which stops at 1,024 levels where Python's json parser recursed
    until it raised RecursionError (a server error), and checks the depth of what it read;
    DRF's strict parser reads what orjson does not (NaN and Infinity stay refused)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        raw = stream.read()
        try:
            data = orjson.loads(raw)
            # orjson refuses half a surrogate pair, and JSON has a NUL only as an escape: a
            # body without one is storable, not walked (as the tracking API's).
            plainly_storable = b"\\u0000" not in raw
        except orjson.JSONDecodeError:
            # What orjson refuses that DRF's parser reads (an integer past 64 bits, which the
            # spec's ranges then refuse on their field; half a surrogate pair, refused below),
            # or nothing reads.
            try:
                data = json.loads(raw, parse_constant=strict_constant)
            except (ValueError, RecursionError) as exc:
                raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
            plainly_storable = False
        if nested_deeper_than(data, MAX_DEPTH):
            raise ParseError(f"the body nests arrays and objects more than {MAX_DEPTH} levels "
                             "deep")
        if not plainly_storable and not all_storable(data):
            raise ValidationError({first_unstorable(data) or "request": UNSTORABLE})
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's, refusing a form field or file name holding a NUL (Django's multipart parser
    already replaces what is not UTF-8, half a surrogate pair included)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> parsers.DataAndFiles:
        parsed = super().parse(stream, media_type, parser_context)
        refuse_unstorable_fields(parsed.data)
        names = QueryDict(mutable=True)
        for field, file in parsed.files.items():
            names.appendlist(field, file.name or "")
        refuse_unstorable_fields(names)
        return parsed


class FormParser(parsers.FormParser):
    """DRF's, refusing a form field holding a NUL (as ``MultiPartParser``)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> QueryDict:
        data = super().parse(stream, media_type, parser_context)
        refuse_unstorable_fields(data)
        return data


def first_unstorable(value: Any) -> str | None:
    """The dotted path (``spec.run.device``, ``tags.0``; as ``errors.flatten`` names fields)
    of the first text of parsed JSON that is not ``storable``, a name of an object on its
    object's path; None when all are. Walked without recursion, and only once a body was
    found to hold one: building paths costs what the plain walk does not."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str) and not storable(item):
            return path or "request"
        children = (item.items() if isinstance(item, dict) else
                    enumerate(item) if isinstance(item, list) else ())
        for key, child in children:
            if isinstance(key, str) and not storable(key):
                return path or "request"
            stack.append((child, f"{path}.{key}" if path else str(key)))
    return None


def refuse_unstorable_fields(fields: QueryDict) -> None:
    """Raises the API's 400 on the first field of a form or query string whose name or one of
    whose values is not ``storable`` (on ``request`` for a name)."""
    problem = _unstorable_field(fields)
    if problem is not None:
        raise ValidationError({problem: UNSTORABLE})


def _unstorable_field(fields: QueryDict) -> str | None:
    for name, values in fields.lists():
        if not storable(name):
            return "request"
        if not all(storable(value) for value in values):
            return name
    return None


def refuse_unstorable_url(view: Callable[..., HttpResponseBase]
                          ) -> Callable[..., HttpResponseBase]:
    """``view`` answering the API's 400 to a query string or path holding a NUL (what Django
    decodes is otherwise storable: it replaces bytes that are not UTF-8). A filter on one was
    a server error on PostgreSQL, an artifact's path with one a 404 by chance."""

    @wraps(view)
    def checked(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        problem = _unstorable_field(request.GET) or next((name for name, value in kwargs.items()
                                   if isinstance(value, str) and not storable(value)), None)
        if problem is not None:
            return JsonResponse({"errors": {problem: UNSTORABLE}}, status=400)
        return view(request, **kwargs)

    return checked
