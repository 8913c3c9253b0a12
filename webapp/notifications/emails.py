"""E-mail of a notification, through Django's mail backend, one message per recipient (no
recipient sees another's address)."""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMessage, get_connection

from webapp.notifications.models import EmailSubscription, Notification


def recipients(notification: Notification) -> list[Any]:
    """The users who chose this event of this project and are still its members, with an
    e-mail address."""
    chosen = EmailSubscription.objects.filter(
        project_id=notification.project_id, user__projects=notification.project_id,
        user__is_active=True).exclude(user__email="").select_related("user")
    return [row.user for row in chosen if notification.event in row.events]


def subject_and_text(notification: Notification) -> tuple[str, str]:
    """The message's subject and plain text, from the payload (what webhooks get too)."""
    payload = notification.payload
    run, project = payload["run"], payload["project"]
    what = "study" if payload["event"] == "study.ended" else "run"
    headline = {
        "run.succeeded": "succeeded", "run.failed": "failed",
        "run.overfitting": "is overfitting", "run.diverging": "is diverging",
        "study.ended": f"ended ({run['status']})",
    }[payload["event"]]
    # A run's name comes from a form or a script: a line break in a header is refused.
    subject = " ".join(f"[Fitboard] {what} {run['name']} {headline}".split())
    lines = [f"The {what} {run['name']} (#{run['id']}) in project {project['name']} {headline}.",
             ""]
    if run.get("verdict"):
        lines.append(f"Verdict: {run['verdict']}" + ("" if payload.get("final", True)
                                                      else " (live, while it trains)"))
    if run.get("best_metric"):
        lines.append(f"Best {run['best_metric']['name']}: {run['best_metric']['value']:.4g}")
    if run.get("error"):
        lines.append(f"Reason: {run['error']}")
    lines += ["", f"Open it: {run['url']}", "",
              "You get this because you chose it on Fitboard's notification settings: "
              f"{payload['settings_url']}"]
    return subject, "\n".join(lines) + "\n"


def send(notification_id: int) -> int:
    """Mail the notification to its recipients; the number of messages sent."""
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return 0
    users = recipients(notification)
    if not users:
        return 0
    subject, text = subject_and_text(notification)
    with get_connection() as connection:
        return int(connection.send_messages(
            [EmailMessage(subject, text, to=[user.email]) for user in users]) or 0)
