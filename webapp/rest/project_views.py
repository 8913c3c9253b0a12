"""The projects page and the queue page, for scripts: a project created, its members listed,
added, removed and given roles, and the jobs queued and running. Thin views over the pages' own
code (``projects.actions``, its forms, ``experiments.queue``): as on the pages, only a
project's maintainers (and staff) manage its members, any member may leave, and a project
keeps at least one maintainer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.experiments import queue
from webapp.projects import access, actions
from webapp.projects.forms import MemberForm, ProjectForm
from webapp.projects.models import Invitation, Project
from webapp.rest import auth, errors
from webapp.rest import serializers as s
from webapp.rest.views import BAD, REFUSED, _project


class LastMaintainer(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "a project keeps at least one maintainer"
    default_code = "last_maintainer"


NOT_A_MAINTAINER = {403: OpenApiResponse(s.DetailSerializer, "a read-only token, or not one of "
                                         "the project's maintainers")}
LAST = {409: OpenApiResponse(s.DetailSerializer, "the project's last maintainer")}


class Projects(APIView):
    @extend_schema(operation_id="projects_list", responses={200: s.ProjectSerializer(many=True),
                                                            401: REFUSED[401]})
    def get(self, request: Request) -> Response:
        """The projects you may see and launch runs into."""
        return Response(list(auth.projects(request).order_by("name").values("id", "name")))

    @extend_schema(operation_id="projects_create", request=s.ProjectCreateSerializer,
                   responses={201: s.ProjectSerializer, **BAD, 401: REFUSED[401],
                              403: OpenApiResponse(description="a read-only token, or one "
                                                   "limited to chosen projects")})
    def post(self, request: Request) -> Response:
        """Create a project whose first member and maintainer is you (the projects page)."""
        if not auth.reaches_every_project(request):
            raise PermissionDenied("this token is limited to chosen projects and cannot "
                                   "create one; use a token for all your projects")
        body = s.ProjectCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = ProjectForm(body.validated_data)
        if not form.is_valid():
            raise errors.form_invalid(form)
        try:
            project = actions.create_project(request.user, form.cleaned_data["name"])
        except actions.TooManyProjects as exc:
            raise errors.invalid({"name": str(exc)}) from None
        return Response({"id": project.pk, "name": project.name},
                        status=status.HTTP_201_CREATED)


def _members(project: Project) -> list[dict[str, Any]]:
    return [{"id": m.user_id, "username": m.user.username, "role": m.role}
            for m in actions.memberships_of(project)]


class ProjectMembers(APIView):
    @extend_schema(operation_id="projects_members",
                   responses={200: s.MemberSerializer(many=True), **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """The project's members and their roles."""
        return Response(_members(_project(request, pk)))

    @extend_schema(operation_id="projects_members_add", request=s.MemberAddSerializer,
                   responses={201: s.MemberSerializer(many=True), **BAD, **REFUSED,
                              **NOT_A_MAINTAINER})
    def post(self, request: Request, pk: int) -> Response:
        """Invite an active user (the project's maintainers and staff, as on the project
        page): a member once they accept (``POST /api/v1/invitations/{project}/``); the answer
        is the members."""
        project = _project(request, pk)
        if not access.may_manage_members(request.user, project):  # before the form's errors
            raise actions.NotAllowed(actions.NOT_A_MAINTAINER)
        body = s.MemberAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = MemberForm(body.validated_data, project=project)
        if not form.is_valid():
            raise errors.form_invalid(form)
        actions.add_member(request.user, project, form.cleaned_data["username"])
        return Response(_members(project), status=status.HTTP_201_CREATED)


class ProjectMember(APIView):
    @extend_schema(operation_id="projects_members_remove",
                   responses={204: None, **REFUSED, **NOT_A_MAINTAINER, **LAST})
    def delete(self, request: Request, pk: int, user_id: int) -> Response:
        """Remove a member (the project's maintainers and staff), or leave the project (any
        member, their own id), as on the project page; a project keeps at least one
        maintainer."""
        project = _project(request, pk)
        try:
            actions.remove_member(request.user, project, actions.member_of(project, user_id))
        except actions.WouldOrphan as exc:
            raise LastMaintainer(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="projects_members_role", request=s.MemberRoleSerializer,
                   responses={200: s.MemberSerializer(many=True), **BAD, **REFUSED,
                              **NOT_A_MAINTAINER, **LAST})
    def patch(self, request: Request, pk: int, user_id: int) -> Response:
        """Make a member a maintainer, or a maintainer a plain member (the project's
        maintainers and staff, as on the project page); the answer is the members after. A
        project keeps at least one maintainer."""
        project = _project(request, pk)
        member = actions.member_of(project, user_id)
        if not access.may_manage_members(request.user, project):  # before the body's errors
            raise actions.NotAllowed(actions.NOT_A_MAINTAINER)
        body = s.MemberRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            actions.set_role(request.user, project, member, body.validated_data["role"])
        except actions.WouldOrphan as exc:
            raise LastMaintainer(str(exc)) from exc
        return Response(_members(project))


def _invitation_json(invitation: Invitation) -> dict[str, Any]:
    return {"project": invitation.project_id, "project_name": invitation.project.name,
            "invited_by": invitation.invited_by.username if invitation.invited_by else None,
            "created_at": invitation.created_at}


class Invitations(APIView):
    @extend_schema(operation_id="invitations_list",
                   responses={200: s.InvitationSerializer(many=True), 401: REFUSED[401]})
    def get(self, request: Request) -> Response:
        """The projects you are invited into (the projects page lists them): a member of one
        once you accept."""
        return Response([_invitation_json(i) for i in actions.invitations_of(request.user)])


class InvitationAnswer(APIView):
    @extend_schema(operation_id="invitations_answer", request=s.InvitationAnswerSerializer,
                   responses={201: s.ProjectSerializer, 204: None, **BAD, **REFUSED,
                              403: OpenApiResponse(description="a read-only token, or one "
                                                   "limited to chosen projects")})
    def post(self, request: Request, pk: int) -> Response:
        """Accept your invitation into project ``pk`` (201 with the project: a member from
        now on), or decline it with ``{"accept": false}`` (204)."""
        if actions.invitation_of(request.user, pk) is None:
            raise NotFound("no invitation into this project")  # before its body is read
        if not auth.reaches_every_project(request):
            raise PermissionDenied("this token is limited to chosen projects: answer "
                                   "invitations on the Projects page, or with a token for all "
                                   "your projects")
        body = s.InvitationAnswerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        accept = body.validated_data["accept"]
        project = actions.answer_invitation(request.user, pk, accept)
        if not accept:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"id": project.pk, "name": project.name},
                        status=status.HTTP_201_CREATED)


def _queue_row(row: queue.QueueRow) -> dict[str, Any]:
    job = row.job
    return {"id": job.pk, "url": f"/api/v1/runs/{job.pk}/", "name": job.name, "kind": job.kind,
            "status": job.status, "project": job.project_id, "project_name": job.project.name,
            "created_by": job.created_by.username if job.created_by else None,
            "worker": job.worker, "host": row.host, "position": row.position,
            "elapsed_s": row.elapsed.total_seconds(),
            "remaining_s": None if row.remaining is None else row.remaining.total_seconds(),
            "may_cancel": row.may_cancel}


class Queue(APIView):
    @extend_schema(operation_id="queue_list",
                   responses={200: s.QueueRowSerializer(many=True), 401: REFUSED[401]})
    def get(self, request: Request) -> Response:
        """What the queue page shows: the jobs running on the workers, then the queued ones in
        the order they start, of your projects (staff: of every project, unless the token is
        limited to chosen projects)."""
        rows = queue.queue_rows(request.user, within=auth.chosen_projects(request))
        return Response([_queue_row(row) for row in rows])
