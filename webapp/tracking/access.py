"""Who may reach what through the API: the pages' own access rules (a member sees their
projects' runs), narrowed to the token's projects. Every API view asks here and only here."""

from __future__ import annotations

from django.db.models import QuerySet

from webapp.experiments.models import Experiment
from webapp.projects import access
from webapp.projects import actions as project_actions
from webapp.projects.forms import ProjectForm
from webapp.projects.models import Project
from webapp.tracking.api import ApiError
from webapp.tracking.models import ApiToken, LoggedModel


def projects(token: ApiToken) -> QuerySet[Project]:
    """The projects the token reaches: its user's (as the pages list them), within its scope."""
    mine = access.projects_visible_to(token.user)
    return mine if token.all_projects else mine.filter(pk__in=token.projects.values("pk"))


def project_named(token: ApiToken, name: str) -> Project | None:
    """The project of that name the token reaches; names are unique whatever their case, so
    "MNIST" is the project a script asking for "mnist" means. Read without the spaces around
    it, as a project is named (``ProjectForm``): ``set_experiment(" mnist ")`` created
    "mnist", then found no " mnist " on the script's next run, created it again (taken) and
    crashed in the client (AttributeError on the experiment it read back as None)."""
    name = name.strip()
    return (projects(token).filter(name=name).first()
            or projects(token).filter(name__iexact=name).first())


def create_project(token: ApiToken, name: str) -> Project:
    """A new project of the token's user (mlflow's ``create_experiment``, the native client's
    ``init`` of a project not made yet): only a token for all of its user's projects may make
    one (a token limited to some projects reaches no new one)."""
    if not token.all_projects:
        raise ApiError("PERMISSION_DENIED", f"there is no project {name[:100]!r} this token "
                       "reaches, and a token limited to chosen projects cannot create one: "
                       "create it on the Projects page, or use a token for all your projects")
    form = ProjectForm({"name": name})
    if not form.is_valid():
        raise name_refused(token, name, form)
    try:
        return project_actions.create_project(token.user, form.cleaned_data["name"])
    except project_actions.TooManyProjects as exc:
        raise ApiError("INVALID_PARAMETER_VALUE", str(exc)) from None


def name_refused(token: ApiToken, name: str, form: ProjectForm) -> ApiError:
    """The error for a project name the form refused. Taken by a project the token reaches:
    RESOURCE_ALREADY_EXISTS, on which mlflow's ``set_experiment`` reads it by name (two
    scripts creating it at once). Taken by other users' project: not that, which would send the
    client to read a project it cannot see (and fail with an AttributeError), but what to do."""
    message = " ".join(form.errors.get("name", ["invalid name"]))
    if "exists" not in message:
        return ApiError("INVALID_PARAMETER_VALUE", f"experiment {name[:100]!r}: {message}")
    if project_named(token, name) is not None:
        return ApiError("RESOURCE_ALREADY_EXISTS", f"experiment {name[:100]!r}: {message}")
    return ApiError("PERMISSION_DENIED", f"project {name[:100]!r}: project names are shared "
                    "by every user of this Fitboard, and this one is another team's project: "
                    "ask one of its maintainers to add you, or choose another name")


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
