"""One error shape for the whole API: ``{"detail": "..."}`` for a refusal (401, 403, 404, 405,
429), and ``{"errors": {"<field path>": "<message>"}}`` for a 400, one message per dotted path
(``spec.optim.lr``, ``spec.space.optim.lr``, ``name``), as the pages put one error on each
field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from webapp.experiments import deletion, quota


class QuotaExceeded(exceptions.APIException):
    """A launch past the user's quota of jobs (``quota.OverQuota``, raised by the actions)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "too many jobs queued or running"
    default_code = "quota"


class StillInUse(exceptions.APIException):
    """A deletion of a run or data set that a queued or running job still uses
    (``deletion.InUse``)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "a queued or running job uses it"
    default_code = "in_use"


def flatten(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error detail as {dotted path: one message}."""
    if isinstance(detail, Mapping):
        out: dict[str, str] = {}
        for key, value in detail.items():
            path = str(key) if key != "non_field_errors" else ""
            out.update(flatten(value, f"{prefix}.{path}" if prefix and path else prefix or path))
        return out
    if isinstance(detail, list | tuple):
        messages = [m for item in detail for m in flatten(item, prefix).values()]
        return {prefix or "request": " ".join(messages)} if messages else {}
    return {prefix or "request": str(detail)}


def handle(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, quota.OverQuota):
        exc = QuotaExceeded(str(exc))
    elif isinstance(exc, deletion.InUse):
        exc = StillInUse(str(exc))
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"errors": flatten(exc.detail)}
    return response


def invalid(errors: Mapping[str, str], prefix: str = "") -> exceptions.ValidationError:
    """A 400 carrying ``errors`` (already one message per path) under ``prefix``."""
    return exceptions.ValidationError({f"{prefix}{path}": message
                                       for path, message in errors.items()})



def form_invalid(form: forms.BaseForm) -> exceptions.ValidationError:
    """A 400 carrying a page's form's errors, one message per field (the form's own errors,
    on no field, under ``request``)."""
    return invalid({"request" if field in ("", NON_FIELD_ERRORS) else field:
                    " ".join(messages) for field, messages in form.errors.items()})
