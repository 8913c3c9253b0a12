"""Who is asking: an API token (the tracking API's, hashed, scoped to projects and to reading
or writing) or the browser's session, and what each may reach.

The reach is the pages' own rule (``webapp.projects.access``), narrowed to a token's projects
by ``webapp.tracking.access``: every view asks here and only here."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment, RunGroup
from webapp.projects import access
from webapp.projects.models import Project
from webapp.tracking import access as token_access
from webapp.tracking import tokens
from webapp.tracking.models import ApiToken


class TokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>`` (or Basic with the token as the password). A header
    that names no live token is refused outright rather than passed on to the session: a
    script with a revoked token must hear so, not act as whoever is logged in."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        token = tokens.authenticate(header)
        if token is None:
            raise exceptions.AuthenticationFailed("the API token is not valid, or was revoked")
        if not tokens.within_rate(token):
            raise exceptions.Throttled(detail="too many requests for this token this minute "
                                              "(FITBOARD_API_RATE_PER_MIN); try again shortly")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="fitboard"'


class TokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """How the OpenAPI schema describes the tokens (registered by being defined)."""

    target_class = "webapp.rest.auth.TokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "an API token made on the API tokens page (fb_…); a read "
                               "token only reads"}


class TokenScope(BasePermission):
    """A logged-in user, or a token; a read-only token only reads."""

    message = "this token is read-only"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 with the authenticate header
        token = request.auth
        return not (isinstance(token, ApiToken) and request.method not in SAFE_METHODS
                    and not token.may_write)


def _token(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def runs(request: Request) -> QuerySet[Experiment]:
    """The runs the request may see: its user's projects' (the pages' rule), within the
    token's projects."""
    token = _token(request)
    return token_access.runs(token) if token else Experiment.objects.visible_to(request.user)


def projects(request: Request) -> QuerySet[Project]:
    """The projects the request may see and launch into."""
    token = _token(request)
    return token_access.projects(token) if token else access.projects_visible_to(request.user)


def reaches_every_project(request: Request) -> bool:
    """Whether the request speaks for its user in all of their projects (a session, or a token
    not limited to chosen ones): only then may it create a project, which no chosen list
    holds."""
    token = _token(request)
    return token is None or token.all_projects


def chosen_projects(request: Request) -> QuerySet[Project] | None:
    """The projects a token is limited to; None when it reaches all of its user's."""
    token = _token(request)
    return None if token is None or token.all_projects else projects(request)


def cancellable(request: Request) -> QuerySet[Experiment]:
    """The jobs the request may ask to cancel (``access.may_cancel`` then says whether it may):
    as on the queue page, staff reach every project's, unless their token is narrowed to some
    projects."""
    if not reaches_every_project(request):
        return runs(request)
    return access.overseen(Experiment.objects.all(), request.user)


def datasets(request: Request) -> QuerySet[Dataset]:
    """The uploaded data sets the request may see and train on: those of its projects."""
    return Dataset.objects.filter(project__in=projects(request))


def groups(request: Request) -> QuerySet[RunGroup]:
    """The run groups (repeats over seeds) the request may see: those of its projects."""
    return RunGroup.objects.filter(project__in=projects(request))
