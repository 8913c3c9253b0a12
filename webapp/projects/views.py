"""Projects page: the user's projects, their members, and adding or removing members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.projects import access, actions
from webapp.projects.forms import MemberForm, ProjectForm
from webapp.projects.models import Project


def _member_project(request: HttpRequest, pk: int) -> Project:
    """A project the user is a member of; 404 for any other, so ids reveal nothing."""
    return get_object_or_404(access.projects_visible_to(request.user), pk=pk)


@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = actions.create_project(request.user, form.cleaned_data["name"])
        messages.success(request, f"Project {project.name} created.")
        return redirect("project-detail", pk=project.pk)
    return render(request, "projects/projects.html", {
        "projects": actions.projects_of(request.user), "form": form,
    })


@require_http_methods(["GET", "POST"])
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = _member_project(request, pk)
    form = MemberForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        actions.add_member(project, form.cleaned_data["username"])
        messages.success(request, f"{form.cleaned_data['username'].username} added.")
        return redirect("project-detail", pk=project.pk)
    return render(request, "projects/project_detail.html", {
        "project": project, "members": project.members.order_by("username"), "form": form,
    })


@require_POST
def project_member_remove(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    project = _member_project(request, pk)
    member = get_user_model().objects.filter(pk=user_id).first()
    if member is None:
        raise Http404("no such user")
    if actions.remove_member(project, member):
        messages.success(request, f"{member.username} removed.")
    else:
        messages.error(request, "A project keeps at least one member.")
    if member.pk == request.user.pk and not access.may_see_project(member, project):
        return redirect("project-list")
    return redirect("project-detail", pk=project.pk)
