"""From the experiments app's signals to notifications: which event happened, who asked for
it, the payload, and the Celery messages that deliver it (sent after commit)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from webapp.experiments.models import Experiment
from webapp.notifications import enqueue
from webapp.notifications.models import (
    Delivery,
    EmailSubscription,
    Event,
    Notification,
    Webhook,
)

logger = logging.getLogger(__name__)

ENDED = {Experiment.Status.SUCCEEDED: Event.RUN_SUCCEEDED,
         Experiment.Status.FAILED: Event.RUN_FAILED}
FLAGGED = {"overfitting": Event.RUN_OVERFITTING, "diverging": Event.RUN_DIVERGING}


def on_run_ended(experiment_id: int, kind: str, status: str, **_: Any) -> None:
    # A study's trials end by the dozen: the study's own end is the news.
    if kind != Experiment.Kind.TRIAL and status in ENDED:
        notify(experiment_id, ENDED[status])


def on_study_ended(experiment_id: int, **_: Any) -> None:
    notify(experiment_id, Event.STUDY_ENDED)


def on_verdict_flagged(experiment_id: int, verdict: str, final: bool, **_: Any) -> None:
    if verdict in FLAGGED:
        notify(experiment_id, FLAGGED[verdict], final=final, skip_kinds=(Experiment.Kind.TRIAL,))


def notify(experiment_id: int, event: str, final: bool = True,
           skip_kinds: tuple[str, ...] = ()) -> Notification | None:
    """Record ``event`` of the experiment and queue its webhook deliveries and e-mail; None
    (and nothing stored) when nobody asked for it."""
    run = Experiment.objects.select_related("project").filter(pk=experiment_id).first()
    if run is None or run.kind in skip_kinds or over_hourly_limit(run):
        return None
    hooks = [h.pk for h in Webhook.objects.filter(project_id=run.project_id)
             if event in h.events and not paused(h)]
    mailed = any(event in row.events for row in EmailSubscription.objects.filter(
        project_id=run.project_id, user__projects=run.project_id))
    if not hooks and not mailed:
        return None
    with transaction.atomic():
        notification = Notification.objects.create(project=run.project, experiment=run,
                                                   caused_by_id=run.created_by_id, event=event)
        notification.payload = payload(notification, run, final)
        notification.save(update_fields=["payload"])
        transaction.on_commit(lambda: _queue(notification.pk, hooks, mailed))
    return notification


# A webhook whose last PAUSE_AFTER deliveries all failed for good (every retry spent) is sent
# nothing for PAUSE_FOR after the latest, then tried again with the next event: each failed
# delivery holds a worker for up to FITBOARD_WEBHOOK_TIMEOUT_S per attempt, retries included,
# and a receiver that never answers would otherwise cost that for every event, for ever.
PAUSE_AFTER = 5
PAUSE_FOR = timedelta(hours=1)


def paused(webhook: Webhook) -> bool:
    """Whether ``webhook`` is resting after PAUSE_AFTER deliveries that failed for good."""
    finals = list(Delivery.objects.filter(webhook=webhook, will_retry=False)
                  .order_by("-created_at", "-id").values_list("succeeded", "created_at")
                  [:PAUSE_AFTER])
    return (len(finals) == PAUSE_AFTER and not any(ok for ok, _ in finals)
            and finals[0][1] > timezone.now() - PAUSE_FOR)


def over_hourly_limit(run: Experiment) -> bool:
    """Whether the runs of ``run``'s creator caused FITBOARD_NOTIFY_MAX_PER_HOUR notifications
    in the last hour already: the rest of that hour's news of their runs is not sent (their run
    pages still show it), so no member can flood the project's inboxes and webhooks, while
    the other members' runs are told as before."""
    limit = settings.FITBOARD_NOTIFY_MAX_PER_HOUR
    if not limit or run.created_by_id is None:
        return False
    since = timezone.now() - timedelta(hours=1)
    # Counted by the row's own creator: the runs told may have been deleted since.
    sent = Notification.objects.filter(caused_by_id=run.created_by_id,
                                       created_at__gte=since).count()
    if sent < limit:
        return False
    logger.warning("notification of run %s not sent: its creator's runs caused %s in the last "
                   "hour (FITBOARD_NOTIFY_MAX_PER_HOUR)", run.pk, sent)
    return True


def _queue(notification_id: int, hooks: list[int], mailed: bool) -> None:
    for hook in hooks:
        enqueue.send(enqueue.DELIVER, hook, notification_id, 1)
    if mailed:
        enqueue.send(enqueue.EMAIL, notification_id)


def payload(notification: Notification, run: Experiment, final: bool) -> dict[str, Any]:
    """What a webhook receives (and the e-mail says): the event and the run, with links."""
    page = "study-detail" if run.kind == Experiment.Kind.TUNE else "experiment-detail"
    site = settings.FITBOARD_SITE_URL
    best = ({"name": run.best_metric_name, "value": run.best_metric_value}
            if run.best_metric_name and run.best_metric_value is not None else None)
    verdict = run.verdict_kind or None
    return {
        "id": str(notification.uid),
        "event": notification.event,
        "created_at": notification.created_at.isoformat(),
        "final": final,
        "project": {"id": run.project_id, "name": run.project.name},
        "run": {
            "id": run.pk, "name": run.name, "kind": run.kind, "status": run.status,
            "verdict": verdict, "best_metric": best, "error": run.error or None,
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "url": site + reverse(page, args=[run.pk]),
        },
        "settings_url": site + reverse("project-notifications", args=[run.project_id]),
    }


def _iso(when: Any) -> str | None:
    return timezone.localtime(when).isoformat() if when else None
