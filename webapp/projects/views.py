"""Projects page: the user's projects, their members, and (for maintainers) adding and removing
members and changing their roles; any member may leave."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.projects import access, actions
from webapp.projects.forms import MemberForm, MemberRoleForm, ProjectForm
from webapp.projects.models import Membership, Project


def _member_project(request: HttpRequest, pk: int) -> Project:
    """A project the user is a member of; 404 for any other, so ids reveal nothing."""
    return get_object_or_404(access.projects_visible_to(request.user), pk=pk)


@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = actions.create_project(request.user, form.cleaned_data["name"])
        except actions.TooManyProjects as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(request, f"Project {project.name} created.")
            return redirect("project-detail", pk=project.pk)
    return render(request, "projects/projects.html", {
        "projects": actions.projects_of(request.user), "form": form,
        "invitations": actions.invitations_of(request.user),
    })


@require_POST
def project_invitation(request: HttpRequest, pk: int) -> HttpResponse:
    """Accept (``answer=accept``) or decline the user's invitation into project ``pk``; 404
    without one."""
    accept = request.POST.get("answer") == "accept"
    project = actions.answer_invitation(request.user, pk, accept)
    if not accept:
        messages.info(request, f"You declined to join {project.name}.")
        return redirect("project-list")
    messages.success(request, f"You joined {project.name}.")
    return redirect("project-detail", pk=project.pk)


@require_http_methods(["GET", "POST"])
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = _member_project(request, pk)
    manages = access.may_manage_members(request.user, project)
    if request.method == "POST" and not manages:  # before the form, whose errors name users
        raise actions.NotAllowed(actions.NOT_A_MAINTAINER)
    form = MemberForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        actions.add_member(request.user, project, form.cleaned_data["username"])
        messages.success(request, f"{form.cleaned_data['username'].username} invited: a member "
                                  "once they accept, on their Projects page.")
        return redirect("project-detail", pk=project.pk)
    memberships = actions.memberships_of(project)
    maintainers = [m.user_id for m in memberships if m.role == Membership.Role.MAINTAINER]
    return render(request, "projects/project_detail.html", {
        "project": project, "memberships": memberships, "form": form, "manages": manages,
        "invited": actions.invited_to(project) if manages else [],
        "has_runs": actions.has_runs(project),
        # The action refuses to demote or remove the only maintainer: no button offers it.
        "only_maintainer": maintainers[0] if len(maintainers) == 1 else None,
    })


@require_POST
def project_member_remove(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """Remove a member (maintainers), or leave the project (anyone, their own row). A refusal
    is the action's: NotAllowed is a 403, NotAMember a 404."""
    project = _member_project(request, pk)
    member = actions.member_of(project, user_id)
    try:
        actions.remove_member(request.user, project, member)
    except actions.WouldOrphan as exc:
        messages.error(request, str(exc))
        return redirect("project-detail", pk=project.pk)
    if member.pk == request.user.pk:
        messages.success(request, f"You left {project.name}.")
        return redirect("project-list")
    messages.success(request, f"{member.username} removed.")
    return redirect("project-detail", pk=project.pk)


@require_POST
def project_member_role(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    """Make a member a maintainer, or a maintainer a plain member (maintainers only)."""
    project = _member_project(request, pk)
    member = actions.member_of(project, user_id)
    if not access.may_manage_members(request.user, project):  # before the form, as above
        raise actions.NotAllowed(actions.NOT_A_MAINTAINER)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["role"]))
        return redirect("project-detail", pk=project.pk)
    role = form.cleaned_data["role"]
    try:
        actions.set_role(request.user, project, member, role)
    except actions.WouldOrphan as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{member.username} is now a {role}.")
    return redirect("project-detail", pk=project.pk)
