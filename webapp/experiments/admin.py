from django.contrib import admin

from webapp.experiments.models import Checkpoint, Experiment


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name", "project", "kind", "status", "created_at"]
    list_filter = ["status", "kind", "project"]
    readonly_fields = ["status", "started_at", "finished_at", "error", "progress", "summary"]


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["experiment", "tag", "size", "updated_at"]
