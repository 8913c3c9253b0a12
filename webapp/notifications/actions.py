"""Every change to what a user is told: e-mail choices and webhooks, each checked against the
project's membership here (views only validate forms)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from webapp.notifications import webhooks
from webapp.notifications.models import EmailSubscription, Webhook
from webapp.projects import access
from webapp.projects.models import Project


class NotAllowed(PermissionError):
    """The user may not do this to the project (a member who does not maintain it)."""


class TooManyWebhooks(ValueError):
    """The project has FITBOARD_MAX_WEBHOOKS_PER_PROJECT webhooks already (a form's error on
    ``url``)."""


def may_manage_webhooks(user: Any, project: Project) -> bool:
    """Maintainers manage a project's webhooks (members see that there are some)."""
    return project.pk in access.maintained_project_ids(user)


def email_choices(user: Any, project: Project) -> list[str]:
    row = EmailSubscription.objects.filter(user=user, project=project).first()
    return list(row.events) if row else []


def set_email_choices(user: Any, project: Project, events: list[str]) -> None:
    """The events of ``project`` ``user`` wants by e-mail (none: the row goes)."""
    if not access.may_see_project(user, project):
        raise NotAllowed("only a project's members choose its e-mail")
    if events:
        EmailSubscription.objects.update_or_create(user=user, project=project,
                                                   defaults={"events": sorted(events)})
    else:
        EmailSubscription.objects.filter(user=user, project=project).delete()


def create_webhook(user: Any, project: Project, url: str, events: list[str]
                   ) -> tuple[Webhook, str]:
    """A new webhook of ``project`` and its signing secret (to show once); TooManyWebhooks
    past FITBOARD_MAX_WEBHOOKS_PER_PROJECT."""
    if not may_manage_webhooks(user, project):
        raise NotAllowed("only a project's maintainers manage its webhooks")
    secret = webhooks.new_secret()
    limit = settings.FITBOARD_MAX_WEBHOOKS_PER_PROJECT
    with transaction.atomic():
        # Counted under the project's row lock, so webhooks added at once cannot all pass it.
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk"))
        if limit and Webhook.objects.filter(project=project).count() >= limit:
            raise TooManyWebhooks(f"this project has {limit} webhooks, the most it may have "
                                  "(FITBOARD_MAX_WEBHOOKS_PER_PROJECT): delete one first")
        hook = Webhook.objects.create(project=project, url=url, secret=secret,
                                      events=sorted(events), created_by=user)
    return hook, secret


def delete_webhook(user: Any, webhook_id: int) -> Webhook | None:
    """Delete a webhook of a project ``user`` maintains; None for any other (or none)."""
    hook = Webhook.objects.filter(
        pk=webhook_id, project_id__in=access.maintained_project_ids(user)).first()
    if hook is not None:
        hook.delete()
    return hook
