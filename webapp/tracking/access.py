"""Who may reach what through the API: the pages' own access rules (a member sees their
projects' runs), narrowed to the token's projects. Every API view asks here and only here."""

from __future__ import annotations

from django.db.models import QuerySet

from webapp.experiments.models import Experiment
from webapp.projects import access
from webapp.projects.models import Project
from webapp.tracking.api import ApiError
from webapp.tracking.models import ApiToken, LoggedModel


def projects(token: ApiToken) -> QuerySet[Project]:
    """The projects the token reaches: its user's (as the pages list them), within its scope."""
    mine = access.projects_visible_to(token.user)
    return mine if token.all_projects else mine.filter(pk__in=token.projects.values("pk"))


def runs(token: ApiToken, deleted: bool = False) -> QuerySet[Experiment]:
    """The runs the token reaches: those visible to its user (``visible_to``, the pages'
    check), in the token's projects; with ``deleted``, also those deleted through the API."""
    visible = Experiment.objects.visible_to(token.user, deleted=deleted)
    return visible if token.all_projects else visible.filter(
        project_id__in=token.projects.values("pk"))


def logged_models(token: ApiToken) -> QuerySet[LoggedModel]:
    """The logged models the token reaches: those of its projects, not deleted."""
    return LoggedModel.objects.filter(project__in=projects(token), deleted_at=None)


def check_change(token: ApiToken, job: access.Job, what: str) -> None:
    """PERMISSION_DENIED unless the token's user may change ``job`` (a run or a logged model
    the token reaches): its creator, the project's maintainers and staff, as on the pages
    (``access.may_change``). Another member reads it, but does not log into, rename, tag,
    end, delete, restore or overwrite it. Every caller found ``job`` within the token's reach
    (``runs``, ``logged_models``), which its user sees."""
    if not access.may_change(token.user, job, seen=True):
        raise ApiError("PERMISSION_DENIED", f"{what} belongs to another member of the project: "
                       "only its creator and the project's maintainers change it")
