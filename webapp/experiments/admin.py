from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from webapp.experiments.models import Checkpoint, Experiment


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name", "project", "kind", "status", "created_at"]
    list_filter = ["status", "kind", "project"]
    # The spec is what the run was trained with and what its checkpoints carry: an edit here
    # would make the page describe a run that never happened, and a pasted document that is no
    # valid spec broke every page that reads it. Remedy and verdict are read by pages the same
    # way. Jobs are rows that own their status, created through the forms (which validate the
    # spec and enqueue the job), never added here.
    readonly_fields = ["status", "started_at", "finished_at", "error", "progress", "summary",
                       "spec", "remedy", "verdict", "verdict_kind", "kind"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["experiment", "tag", "size", "updated_at"]
