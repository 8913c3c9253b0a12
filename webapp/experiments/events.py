"""Messages to browsers through the Channels layer: group names and payloads in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

if TYPE_CHECKING:
    from webapp.experiments.models import Experiment


def run_group(experiment_id: int) -> str:
    """Everyone watching one run."""
    return f"run-{experiment_id}"


def project_group(project_id: int) -> str:
    """Everyone watching the run list of one project."""
    return f"project-{project_id}"


def status_payload(experiment: Experiment) -> dict[str, Any]:
    """What a page needs to redraw a run's status: the same fields for the run and list pages."""
    return {
        "id": experiment.pk,
        "status": experiment.status,
        "error": experiment.error,
        "progress": experiment.progress,
        "summary": experiment.summary,
        "best_metric_name": experiment.best_metric_name,
        "best_metric_value": experiment.best_metric_value,
        "checkpoints": sorted(experiment.checkpoints.values_list("tag", flat=True)),
    }


def publish_status(experiment: Experiment) -> None:
    """Tell run and list pages that a run changed status (call after commit)."""
    layer = get_channel_layer()
    if layer is None:
        return
    payload = status_payload(experiment)
    async_to_sync(layer.group_send)(run_group(experiment.pk), {"type": "run.status", **payload})
    async_to_sync(layer.group_send)(
        project_group(experiment.project_id), {"type": "list.update", **payload}
    )
