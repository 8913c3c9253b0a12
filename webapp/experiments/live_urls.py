"""The URLs a live page's script needs, handed to it in a json_script block: the script holds
no URL pattern of its own."""

from __future__ import annotations

from django.urls import reverse

from webapp.experiments.routing import socket_path

_ANY_ID = 987_654_321  # reversed in place of an id, then replaced by the placeholder


def for_any_id(name: str) -> str:
    """The named page's URL with ``{id}`` where its id goes, for the script to fill in."""
    return str(reverse(name, args=[_ANY_ID])).replace(str(_ANY_ID), "{id}")


def run_page(experiment_id: int, task: str) -> dict[str, object]:
    return {"id": experiment_id, "task": task,
            "socket": socket_path("run-socket", pk=experiment_id),
            "metrics": reverse("experiment-metrics", args=[experiment_id])}


def run_list_page() -> dict[str, object]:
    return {"socket": socket_path("run-list-socket"),
            "diagnostics": for_any_id("experiment-diagnostics")}


def study_page(study_id: int) -> dict[str, object]:
    return {"id": study_id, "socket": socket_path("study-socket", pk=study_id),
            "data": reverse("study-data", args=[study_id]),
            "run": for_any_id("experiment-detail")}
