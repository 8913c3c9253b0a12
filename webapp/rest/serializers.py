"""What the API reads and answers, described once for the views and the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webapp.experiments import events
from webapp.experiments.models import Experiment


class RunSerializer(serializers.ModelSerializer[Experiment]):
    """A run as the list shows it."""

    project = serializers.IntegerField(source="project_id", read_only=True)
    project_name = serializers.CharField(source="project.name", read_only=True)
    parent = serializers.IntegerField(source="parent_id", read_only=True, allow_null=True)
    tags = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = ["id", "url", "name", "project", "project_name", "kind", "status", "parent",
                  "created_at", "started_at", "finished_at", "best_metric_name",
                  "best_metric_value", "verdict_kind", "tags"]
        read_only_fields = fields

    def get_tags(self, run: Experiment) -> list[str]:
        return [tag.name for tag in run.tags.all()]  # prefetched by the list

    def get_url(self, run: Experiment) -> str:
        return f"/api/v1/runs/{run.pk}/"


class RunDetailSerializer(RunSerializer):
    """A run as its page shows it: the spec, status, live or final verdict and summary."""

    verdict = serializers.SerializerMethodField()
    checkpoints = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "spec", "error", "cancel_requested", "progress",
                  "summary", "verdict", "remedy", "notes", "checkpoints"]
        read_only_fields = fields

    def get_verdict(self, run: Experiment) -> dict[str, Any] | None:
        """The ended run's verdict, else the live one (the run page's)."""
        return events.current_verdict(run)

    def get_checkpoints(self, run: Experiment) -> list[str]:
        return sorted(run.checkpoints.values_list("tag", flat=True))


class RunFilterSerializer(serializers.Serializer[Any]):
    """The run list's query string: the list page's filters (``browse.RunFilterForm``)."""

    project = serializers.IntegerField(required=False, help_text="project id")
    status = serializers.ChoiceField(Experiment.Status.choices, required=False)
    kind = serializers.ChoiceField(Experiment.Kind.choices, required=False)
    tag = serializers.CharField(required=False)
    q = serializers.CharField(required=False, help_text="part of the run's name")
    verdict = serializers.CharField(required=False)
    dataset = serializers.CharField(required=False)
    arch = serializers.CharField(required=False)
    sort = serializers.CharField(required=False, help_text="newest (default), oldest, name, "
                                 "-name, best-high, best-low")
    metric = serializers.CharField(required=False, help_text="the metric best-high/low sort by")
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)


class MetricsQuerySerializer(serializers.Serializer[Any]):
    x0 = serializers.FloatField(required=False, help_text="first step of a zoomed range")
    x1 = serializers.FloatField(required=False, help_text="last step of a zoomed range")
    keys = serializers.CharField(required=False, help_text="comma-separated metric names")


class ChartSerializer(serializers.Serializer[Any]):
    """One metric's points, at most ~2000 (min/max buckets, as the run page draws them)."""

    steps = serializers.ListField(child=serializers.FloatField())
    values = serializers.ListField(child=serializers.FloatField(allow_null=True))
    times = serializers.ListField(child=serializers.FloatField())
    total = serializers.IntegerField(help_text="points the chart stands for")
    bucketed = serializers.BooleanField(help_text="true when fewer points than logged are sent")


class MetricsSerializer(serializers.Serializer[Any]):
    metrics = serializers.DictField(child=ChartSerializer())


class LaunchSerializer(serializers.Serializer[Any]):
    """A new training run: an ExperimentSpec as JSON (``training/spec.py``; missing fields
    take their defaults)."""

    project = serializers.IntegerField(help_text="id of a project of yours")
    name = serializers.CharField(max_length=200)
    spec = serializers.JSONField(help_text="an ExperimentSpec: {data, model, optim, run, "
                                 "schedule, regularization}")


class StudySerializer(serializers.Serializer[Any]):
    """A tuning study around the run: its spec is the base, ``spec`` a TuningSpec's search
    space and settings (``training/tuning.py``; the direction follows from the objective)."""

    name = serializers.CharField(max_length=200)
    project = serializers.IntegerField(required=False, help_text="default: the run's")
    spec = serializers.JSONField(help_text="{space: {dotted field: {type, low, high, log, step}"
                                 " or {type: categorical, choices}}, algorithm, objective, "
                                 "n_trials, timeout, parallelism, pruner, seed}")


class CompressionSerializer(serializers.Serializer[Any]):
    """A compression job of the run (the teacher): a CompressionSpec without its source
    (``training/compression/spec.py``)."""

    name = serializers.CharField(max_length=200)
    spec = serializers.JSONField(help_text="{method, sparsity, scope, steps, finetune_epochs, "
                                 "lr, student, temperature, alpha, epochs}")


class CancelSerializer(serializers.Serializer[Any]):
    cancelled = serializers.BooleanField(help_text="false when the run had already ended")
    status = serializers.ChoiceField(Experiment.Status.choices)


class ProjectSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ErrorsSerializer(serializers.Serializer[Any]):
    """A 400: one message per dotted field path (``spec.optim.lr``, ``name``)."""

    errors = serializers.DictField(child=serializers.CharField())


class DetailSerializer(serializers.Serializer[Any]):
    """A refusal (401, 403, 404, 409, 429)."""

    detail = serializers.CharField()
