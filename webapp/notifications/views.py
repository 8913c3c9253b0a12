"""Notification settings: the user's projects (index) and one project's page, where a member
chooses their e-mail and a maintainer manages the webhooks."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.notifications import actions
from webapp.notifications.forms import EmailChoicesForm, WebhookForm
from webapp.notifications.models import EVENT_CHOICES, EmailSubscription, Webhook
from webapp.projects import access
from webapp.projects.models import Project


@require_GET
def notification_index(request: HttpRequest) -> HttpResponse:
    """Each of the user's projects with the events they get by e-mail."""
    projects = list(access.projects_visible_to(request.user).order_by("name"))
    chosen = {row.project_id: row.events
              for row in EmailSubscription.objects.filter(user=request.user)}
    labels = dict(EVENT_CHOICES)
    maintained = access.maintained_project_ids(request.user)
    rows = [{"project": p, "events": [labels[e] for e in chosen.get(p.pk, []) if e in labels],
             "maintainer": p.pk in maintained} for p in projects]
    return render(request, "notifications/index.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
def project_notifications(request: HttpRequest, pk: int) -> HttpResponse:
    """A project's notifications: the user's e-mail choices (any member) and its webhooks
    (maintainers manage them). A POST names its form with ``form``."""
    project = get_object_or_404(access.projects_visible_to(request.user), pk=pk)
    manages = actions.may_manage_webhooks(request.user, project)
    email_form = EmailChoicesForm(initial={"events": actions.email_choices(request.user, project)})
    hook_form = WebhookForm()
    created = None
    if request.method == "POST" and request.POST.get("form") == "webhook":
        if not manages:
            return HttpResponse("only the project's maintainers manage its webhooks",
                                status=403, content_type="text/plain; charset=utf-8")
        hook_form = WebhookForm(request.POST)
        if hook_form.is_valid():
            try:
                _, created = actions.create_webhook(request.user, project,
                                                    hook_form.cleaned_data["url"],
                                                    hook_form.cleaned_data["events"])
            except actions.TooManyWebhooks as exc:
                hook_form.add_error("url", str(exc))
            else:
                hook_form = WebhookForm()
    elif request.method == "POST":
        email_form = EmailChoicesForm(request.POST)
        if email_form.is_valid():
            actions.set_email_choices(request.user, project, email_form.cleaned_data["events"])
            messages.success(request, "E-mail choices saved.")
            return redirect("project-notifications", pk=project.pk)
    response = render(request, "notifications/project.html", _context(
        request, project, manages, email_form, hook_form, created))
    if created:
        response["Cache-Control"] = "no-store"  # the secret is on this page only
    return response


def _context(request: HttpRequest, project: Project, manages: bool, email_form: EmailChoicesForm,
             hook_form: WebhookForm, created: str | None) -> dict[str, object]:
    hooks = list(Webhook.objects.filter(project=project)) if manages else []
    for hook in hooks:
        hook.recent = list(hook.deliveries.select_related("notification")[:5])  # type: ignore[attr-defined]
    labels = dict(EVENT_CHOICES)
    return {"project": project, "manages": manages, "email_form": email_form,
            "hook_form": hook_form, "created": created, "hooks": hooks, "labels": labels,
            "hook_count": Webhook.objects.filter(project=project).count(),
            "email": request.user.email}  # type: ignore[union-attr]


@require_POST
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    hook = actions.delete_webhook(request.user, pk)
    if hook is None:  # another project's, or a project the user only belongs to
        raise Http404("no such webhook")
    messages.info(request, f"Webhook {hook.url} deleted.")
    return redirect("project-notifications", pk=hook.project_id)
