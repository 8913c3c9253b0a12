"""A project's notification settings, for scripts: the events you are e-mailed about (any
member) and its webhooks (its maintainers manage them). Thin views over
``notifications.actions`` and its forms, the pages' own code."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.notifications import actions
from webapp.notifications.forms import EmailChoicesForm, WebhookForm
from webapp.notifications.models import EVENT_CHOICES, Webhook
from webapp.projects.models import Project
from webapp.rest import errors
from webapp.rest import serializers as s
from webapp.rest.views import BAD, READ_ONLY, REFUSED, _project

NOT_A_MAINTAINER = {403: OpenApiResponse(s.DetailSerializer, "a read-only token, or not one of "
                                         "the project's maintainers")}


class ProjectEmail(APIView):
    @extend_schema(operation_id="projects_email_read",
                   responses={200: s.EmailChoicesSerializer, **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """The events of the project you are e-mailed about."""
        return Response({"events": actions.email_choices(request.user,
                                                         _project(request, pk))})

    @extend_schema(operation_id="projects_email_set", request=s.EmailChoicesSerializer,
                   responses={200: s.EmailChoicesSerializer, **BAD, **REFUSED, **READ_ONLY})
    def put(self, request: Request, pk: int) -> Response:
        """Choose the events you are e-mailed about (an empty list: none), as on the
        project's notifications page."""
        project = _project(request, pk)
        body = s.EmailChoicesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = EmailChoicesForm(body.validated_data)
        if not form.is_valid():
            raise errors.form_invalid(form)
        actions.set_email_choices(request.user, project, form.cleaned_data["events"])
        return Response({"events": actions.email_choices(request.user, project)})


def _maintained(request: Request, pk: int) -> Project:
    project = _project(request, pk)
    if not actions.may_manage_webhooks(request.user, project):
        raise PermissionDenied("only the project's maintainers manage its webhooks")
    return project


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.pk, "url": hook.url, "events": hook.events, "created_at": hook.created_at,
            "recent": [{"event": d.notification.event, "attempt": d.attempt,
                        "status_code": d.status_code, "succeeded": d.succeeded,
                        "error": d.error, "will_retry": d.will_retry,
                        "created_at": d.created_at}
                       for d in hook.deliveries.select_related("notification")[:5]]}


class ProjectWebhooks(APIView):
    @extend_schema(operation_id="projects_webhooks",
                   responses={200: s.WebhookSerializer(many=True), **REFUSED,
                              **NOT_A_MAINTAINER})
    def get(self, request: Request, pk: int) -> Response:
        """The project's webhooks, each with its latest deliveries (maintainers only, as on
        the notifications page)."""
        project = _maintained(request, pk)
        return Response([_webhook_json(hook)
                         for hook in Webhook.objects.filter(project=project)])

    @extend_schema(operation_id="projects_webhooks_create", request=s.WebhookCreateSerializer,
                   responses={201: s.WebhookCreatedSerializer, **BAD, **REFUSED,
                              **NOT_A_MAINTAINER})
    def post(self, request: Request, pk: int) -> Response:
        """Add a webhook (maintainers only): its events are POSTed to ``url`` as JSON signed
        with ``secret``, which this answer alone shows."""
        project = _maintained(request, pk)
        body = s.WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = WebhookForm({"events": [value for value, _ in EVENT_CHOICES],
                            **body.validated_data})
        if not form.is_valid():
            raise errors.form_invalid(form)
        try:
            hook, secret = actions.create_webhook(request.user, project,
                                                  form.cleaned_data["url"],
                                                  form.cleaned_data["events"])
        except actions.TooManyWebhooks as exc:
            raise errors.invalid({"url": str(exc)}) from None
        response = Response({**_webhook_json(hook), "secret": secret},
                            status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"  # the secret is in this answer only
        return response


class ProjectWebhook(APIView):
    @extend_schema(operation_id="projects_webhooks_delete",
                   responses={204: None, **REFUSED, **READ_ONLY})
    def delete(self, request: Request, pk: int, hook: int) -> Response:
        """Delete a webhook of a project you maintain (404 for any other, as on the page)."""
        project = _project(request, pk)
        if not Webhook.objects.filter(pk=hook, project=project).exists():
            raise NotFound("no such webhook")
        if actions.delete_webhook(request.user, hook) is None:  # a project you only belong to
            raise NotFound("no such webhook")
        return Response(status=status.HTTP_204_NO_CONTENT)
