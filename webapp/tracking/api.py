"""The frame of every API view: token authentication, rate limit, scope, JSON in and out, and
errors in the shape the mlflow client reads ({"error_code": ..., "message": ...})."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from webapp.tracking import tokens
from webapp.tracking.ingest import IngestError
from webapp.tracking.models import ApiToken

INT64 = 2**63  # the integers of MLflow's protocol (steps, times, page tokens) are int64
# Levels of nested arrays and objects a request body may have (MLflow's deepest, a logged
# model's, has 4; a study spec 5). Python's json parser recurses per level: a 2.5 MB body of
# "[[[[…" raised RecursionError, a server error, before any check.
MAX_DEPTH = 32
STATUS = {"INVALID_PARAMETER_VALUE": 400, "RESOURCE_ALREADY_EXISTS": 400,
          "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "RESOURCE_DOES_NOT_EXIST": 404,
          "ENDPOINT_NOT_FOUND": 404, "REQUEST_LIMIT_EXCEEDED": 429}


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def error(code: str, message: str) -> JsonResponse:
    return JsonResponse({"error_code": code, "message": message}, status=STATUS[code])


def not_found(what: str) -> ApiError:
    """The one answer for what does not exist and what the token may not reach: ids are not
    leaked."""
    return ApiError("RESOURCE_DOES_NOT_EXIST", f"{what} does not exist")


Handler = Callable[..., Any]


def endpoint(methods: tuple[str, ...], write: bool = False, raw: bool = False
             ) -> Callable[[Handler], Callable[..., HttpResponseBase]]:
    """An API view: ``view(request, token, body, **url_kwargs)`` returns the JSON answer (or,
    with ``raw``, an HttpResponse). ``write``: the token must be a read-and-write token.

    CSRF-exempt because nothing here authenticates by cookie: a request without a token is
    refused whatever session it carries, so a forged cross-site request gains nothing, and a
    browser never attaches a bearer token on its own."""

    def wrap(view: Handler) -> Callable[..., HttpResponseBase]:
        @login_not_required
        @csrf_exempt
        @wraps(view)
        def handle(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            token = tokens.authenticate(request.headers.get("Authorization", ""))
            if token is None:
                return error("UNAUTHENTICATED", "send a valid Fitboard API token: "
                             "Authorization: Bearer <token> (MLFLOW_TRACKING_TOKEN)")
            if not tokens.within_rate(token):
                return error("REQUEST_LIMIT_EXCEEDED", "too many requests for this token "
                             "this minute (FITBOARD_API_RATE_PER_MIN); try again shortly")
            if write and not token.may_write:
                return error("PERMISSION_DENIED", "this token is read-only")
            try:
                body = {} if raw else _body(request)
                answer = view(request, token, body, **kwargs)
            except ApiError as exc:
                return error(exc.code, exc.message)
            except IngestError as exc:
                return error("INVALID_PARAMETER_VALUE", str(exc))
            return answer if isinstance(answer, HttpResponseBase) else JsonResponse(answer)

        handle.api_methods = methods  # type: ignore[attr-defined]
        return handle

    return wrap


def _body(request: HttpRequest) -> dict[str, Any]:
    """The request's fields: the query string of a GET, the JSON object of a POST."""
    if request.method == "GET":
        query = {key: request.GET.get(key) for key in request.GET}
        if any(not storable(part) for item in query.items() for part in item if part):
            raise ApiError("INVALID_PARAMETER_VALUE", UNSTORABLE)
        return query
    try:
        raw = request.body
    except RequestDataTooBig:  # Django's own 400 is an HTML page no client reads
        raise ApiError("INVALID_PARAMETER_VALUE", "the request body is larger than "
                       f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes") from None
    try:
        # orjson: a log-batch of 1000 metrics parses in a fifth of json's time; json for
        # what only it reads (the NaN and Infinity a Python client's json.dumps writes).
        try:
            data = orjson.loads(raw or b"{}")
            # orjson refuses half a surrogate pair, and JSON has a NUL only as an escape: a body
            # without one is storable, not walked (1 µs a point of a log-batch).
            plainly_storable = b"\\u0000" not in raw
        except orjson.JSONDecodeError:
            data, plainly_storable = json.loads(raw), False
    except (ValueError, RecursionError):
        raise ApiError("INVALID_PARAMETER_VALUE", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError("INVALID_PARAMETER_VALUE", "the body must be a JSON object")
    if nested_deeper_than(data, MAX_DEPTH):
        raise ApiError("INVALID_PARAMETER_VALUE", f"the body nests arrays and objects more "
                       f"than {MAX_DEPTH} levels deep")
    if not plainly_storable and not all_storable(data):
        raise ApiError("INVALID_PARAMETER_VALUE", UNSTORABLE)
    return data


UNSTORABLE = ("a text holds a NUL character (\\u0000) or half of a surrogate pair, which the "
              "database cannot store")


def storable(text: str) -> bool:
    """Whether PostgreSQL stores ``text``: it refuses NUL in text and JSON, and UTF-8 has no
    lone surrogate (json reads "\\ud800"). Either, in a run's name, a tag, a param or a metric
    name, was a server error on every write route of the API, and a query string's NUL one on
    its reads."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def all_storable(value: Any) -> bool:
    """Whether every string of parsed JSON, names of objects included, is ``storable``
    (walked without recursion, as ``nested_deeper_than``)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests lists and dicts more than ``limit`` levels (counted without
    recursion, so any depth the parser returned is measured)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def text(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError("INVALID_PARAMETER_VALUE", f"missing value for parameter '{name}'")
        return ""
    if not isinstance(value, str | int):
        raise ApiError("INVALID_PARAMETER_VALUE", f"parameter '{name}' must be a string")
    return str(value)


def number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float's
        raise ApiError("INVALID_PARAMETER_VALUE",
                       f"parameter '{name}' must be a number, got {str(value)[:40]!r}") from None


def integer(value: Any, name: str, default: int = 0) -> int:
    """An int64 of MLflow's protocol (a step, a time, a page token) as MLflow's server reads
    one, through protobuf's JSON: an integer, or a number or string of one (its client sends
    "3"; 3.0 and "1e3" are read too), never a bool, a fraction (1.5, "1.5") or past 64 bits.
    int() had made a step of 1.5 step 1 and true step 1."""
    if value is None or value == "":
        return default
    number = _integral(value)
    if number is None:
        raise ApiError("INVALID_PARAMETER_VALUE",
                       f"parameter '{name}' must be an integer, got {str(value)[:40]!r}")
    if not -INT64 <= number < INT64:
        raise ApiError("INVALID_PARAMETER_VALUE", f"parameter '{name}' must be a 64-bit integer "
                       "(as in MLflow's protocol)")
    return number


def _integral(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:  # an integer-valued number in other words ("3.0", "1e3")?
            try:
                value = float(value)
            except ValueError:
                return None
    if isinstance(value, float) and value.is_integer():  # not inf nor NaN either
        return int(value)
    return None


__all__ = ["ApiError", "ApiToken", "endpoint", "error", "integer", "metric_value", "not_found",
           "number", "text"]


def metric_value(value: float) -> float | str:
    """A metric's value as protobuf's JSON writes a double (as MLflow's server answers): NaN
    and the infinities as the strings "NaN", "Infinity" and "-Infinity". A bare NaN is not
    JSON, and every mlflow client's parser refuses the whole answer that holds one."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
