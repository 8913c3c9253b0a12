"""What the API reads and answers, described once for the views and the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from webapp.datasets.models import Dataset, DatasetVersion, LabelScan
from webapp.experiments import events, groups
from webapp.experiments.models import Experiment, RunGroup
from webapp.notifications.models import Event
from webapp.projects.models import Membership


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


class GroupLaunchSerializer(LaunchSerializer):
    """A new spec over several seeds at once (the launch form's "Repeat over seeds"): its
    seed and the next ``count - 1``."""

    count = serializers.IntegerField(min_value=2, help_text="at most FITBOARD_MAX_REPEATS")

    def validate_count(self, count: int) -> int:
        return RepeatSerializer().validate_count(count)


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


class NameSerializer(serializers.Serializer[Any]):
    """The new run's name (default: one made from the source's)."""

    name = serializers.CharField(max_length=200, required=False)


class ChangeSerializer(serializers.Serializer[Any]):
    field = serializers.CharField(help_text="dotted spec field, e.g. regularization.dropout")
    before = serializers.JSONField()
    after = serializers.JSONField()


class RemedySerializer(serializers.Serializer[Any]):
    """A remedy of the run's verdict: a patch of its spec, applied as a new run."""

    key = serializers.CharField()
    title = serializers.CharField()
    why = serializers.CharField()
    patch = serializers.JSONField()
    changes = ChangeSerializer(many=True)


class DiagnosticsSerializer(serializers.Serializer[Any]):
    """The run's diagnostics page as data."""

    verdict = serializers.JSONField(allow_null=True, help_text="{kind, headline, evidence, "
                                    "remedies, …}; null when none can be made")
    history = serializers.DictField(child=serializers.ListField(
        child=serializers.FloatField(allow_null=True)), help_text="metric → one value an epoch")
    gap = serializers.FloatField(allow_null=True, help_text="final val_loss − train_loss")
    parent = serializers.IntegerField(allow_null=True, help_text="the run a remedy patched")
    parent_gap = serializers.FloatField(allow_null=True)
    remedy_runs = serializers.ListField(child=serializers.IntegerField(),
                                        help_text="runs its remedies started")
    remedy_groups = serializers.ListField(child=serializers.IntegerField(),
                                          help_text="groups verifying its remedies")


class AnnotationSerializer(serializers.Serializer[Any]):
    """The run's tags and notes, replacing the old ones."""

    tags = serializers.JSONField(required=False, help_text='a list, or "a, b" comma-separated')
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10000)


class ArtifactSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    size = serializers.IntegerField(help_text="bytes")
    url = serializers.CharField()


class RepeatSerializer(serializers.Serializer[Any]):
    """How many seeds: the run's own and the next ones."""

    count = serializers.IntegerField(min_value=2, help_text="at most FITBOARD_MAX_REPEATS")
    name = serializers.CharField(max_length=200, required=False)

    def validate_count(self, count: int) -> int:
        most = settings.FITBOARD_MAX_REPEATS
        if count > most:
            raise serializers.ValidationError(f"at most {most} seeds (FITBOARD_MAX_REPEATS)")
        return count


class StudyCheckSerializer(serializers.Serializer[Any]):
    """Which of a study's best trials to repeat, and over how many seeds (the study page's
    "Check the best trials")."""

    top = serializers.IntegerField(min_value=1, max_value=10, default=3,
                                   help_text="the best trials to repeat")
    count = serializers.IntegerField(min_value=2, default=3,
                                     help_text="seeds each, at most FITBOARD_MAX_REPEATS")

    def validate_count(self, count: int) -> int:
        return RepeatSerializer().validate_count(count)


class GroupRunSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    seed = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(Experiment.Status.choices)
    url = serializers.CharField()


class FinalSerializer(serializers.Serializer[Any]):
    """One final metric over the group's succeeded seeds."""

    metric = serializers.CharField()
    mean = serializers.FloatField()
    std = serializers.FloatField()
    n = serializers.IntegerField()
    values = serializers.ListField(child=serializers.FloatField())


class GroupSerializer(serializers.Serializer[Any]):
    """A run group: one spec over several seeds, as its page shows it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    project = serializers.IntegerField()
    source = serializers.IntegerField(allow_null=True, help_text="the run it repeats")
    baseline = serializers.IntegerField(allow_null=True,
                                        help_text="a verified remedy's original group")
    remedy = serializers.JSONField()
    seeds = serializers.ListField(child=serializers.IntegerField())
    runs = GroupRunSerializer(many=True)
    finals = FinalSerializer(many=True)
    remedy_verdicts = serializers.ListField(child=serializers.JSONField(),
                                            help_text="Welch's comparisons with the baseline")


def group_json(group: RunGroup) -> dict[str, Any]:
    """What ``GroupSerializer`` describes."""
    runs = groups.ordered_runs(group)
    return {"id": group.pk, "name": group.name, "project": group.project_id,
            "source": group.source_id, "baseline": group.baseline_id, "remedy": group.remedy,
            "seeds": list(group.seeds),
            "runs": [{"id": run.pk, "seed": groups.seed_of(run), "status": run.status,
                      "url": f"/api/v1/runs/{run.pk}/"} for run in runs],
            "finals": groups.final_table(runs),
            "remedy_verdicts": [events.json_safe(c.to_dict())
                                for c in groups.remedy_verdicts(group)]}


class CompareQuerySerializer(serializers.Serializer[Any]):
    ids = serializers.CharField(help_text="2 to 20 run ids, comma-separated")
    key = serializers.CharField(required=False, help_text="a metric to return the curves of")
    x = serializers.ChoiceField(["step", "epoch", "time"], required=False, default="step")


class CompareSerializer(serializers.Serializer[Any]):
    """The compare page as data: one record per run (status, verdict, the metrics table's
    figures and every spec field), the spec fields that differ, and one metric's curves."""

    runs = serializers.ListField(child=serializers.JSONField())
    differences = serializers.ListField(child=serializers.JSONField(),
                                        help_text="{field, values: one per run}")
    curves = serializers.ListField(child=serializers.JSONField(), required=False)


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    """An uploaded data set; train on it with ``"data": {"dataset": "upload:<id>"}``."""

    project = serializers.IntegerField(source="project_id", read_only=True)
    spec_name = serializers.CharField(read_only=True, help_text="its name in a spec")
    latest_version = serializers.IntegerField(read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "project", "kind", "spec_name", "size", "created_at",
                  "latest_version"]
        read_only_fields = fields


class VersionSerializer(serializers.ModelSerializer[DatasetVersion]):
    class Meta:
        model = DatasetVersion
        fields = ["number", "changes", "note", "created_at", "info"]
        read_only_fields = fields


class DatasetDetailSerializer(DatasetSerializer):
    """A data set with its facts (rows, classes), the cleaning report and its versions."""

    versions = VersionSerializer(many=True, read_only=True)

    class Meta(DatasetSerializer.Meta):
        fields = [*DatasetSerializer.Meta.fields, "options", "info", "report", "versions"]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer[Any]):
    """The upload form's fields, as multipart/form-data (``webapp/datasets/forms.py``: every
    bad value is refused on its field)."""

    name = serializers.CharField(max_length=200)
    project = serializers.IntegerField()
    kind = serializers.ChoiceField(Dataset.Kind.choices)
    file = serializers.FileField(required=False, help_text="a .csv, or a .zip of class folders "
                                 "or of images beside a labels CSV")
    hf_source = serializers.CharField(required=False)
    hf_split = serializers.CharField(required=False)
    header = serializers.ChoiceField(["auto", "yes", "no"], required=False)
    label_column = serializers.CharField(required=False)
    feature_columns = serializers.CharField(required=False)
    text_column = serializers.CharField(required=False)
    class_name_column = serializers.CharField(required=False)
    class_names = serializers.CharField(required=False)
    task = serializers.ChoiceField(["classification", "regression"])
    missing = serializers.CharField()
    drop_duplicates = serializers.BooleanField(required=False, default=True)
    drop_unlabelled = serializers.BooleanField(required=False, default=True)
    standardise = serializers.BooleanField(required=False, default=True)
    image_size = serializers.IntegerField(required=False, default=32)
    image_column = serializers.CharField(required=False, help_text="a ZIP's labels CSV: its "
                                         "column of image names (label_column: of classes)")


class StudySummarySerializer(serializers.Serializer[Any]):
    """What the live study page draws (``experiments.tuning.study_data``)."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(Experiment.Status.choices)
    objective = serializers.CharField()
    direction = serializers.ChoiceField(["minimize", "maximize"])
    params = serializers.ListField(child=serializers.CharField(), help_text="the tuned fields")
    trials = serializers.ListField(child=serializers.JSONField(),
                                   help_text="{id, index, name, params, state, value, curve, …}")
    best_so_far = serializers.ListField(child=serializers.JSONField(),
                                        help_text="[trial index, best value] after each")
    best_trial = serializers.JSONField(allow_null=True)
    importances = serializers.DictField(child=serializers.FloatField())


class RankedTrialSerializer(serializers.Serializer[Any]):
    group = serializers.IntegerField(help_text="the group repeating the trial")
    trial = serializers.IntegerField(help_text="the trial's run")
    trial_value = serializers.FloatField(allow_null=True, help_text="its objective in the study")
    values = serializers.ListField(child=serializers.FloatField(),
                                   help_text="the objective of each succeeded seed")
    mean = serializers.FloatField(allow_null=True)
    std = serializers.FloatField(allow_null=True)


class RankingSerializer(serializers.Serializer[Any]):
    """Whether the study's best trials keep their order over seeds (null before a check)."""

    objective = serializers.CharField()
    rows = RankedTrialSerializer(many=True, help_text="in the study's order")
    complete = serializers.BooleanField(help_text="every check has 2 or more succeeded seeds")
    survives = serializers.BooleanField(help_text="the seeds' means keep the study's order")
    comparison = serializers.JSONField(allow_null=True, help_text="the first two by Welch's t")


class RankingAnswerSerializer(serializers.Serializer[Any]):
    ranking = RankingSerializer(allow_null=True)


class GroupCompareQuerySerializer(serializers.Serializer[Any]):
    a = serializers.IntegerField(help_text="a group id")
    b = serializers.IntegerField(help_text="another group id")
    metric = serializers.ChoiceField(["gap", *groups.EPOCH_METRICS], required=False,
                                     default="val_acc")


class GroupComparisonSerializer(serializers.Serializer[Any]):
    metric = serializers.CharField()
    a = GroupSerializer()
    b = GroupSerializer()
    comparison = serializers.JSONField(allow_null=True, help_text="Welch's t: the difference, "
                                       "its interval and the verdict in words")
    problem = serializers.CharField(allow_null=True, help_text="why two groups get no verdict: "
                                    "they train on different data sets (null otherwise)")


class ProjectCreateSerializer(serializers.Serializer[Any]):
    """A new project; its creator is its first member and maintainer (the projects page)."""

    name = serializers.CharField(max_length=100)


class InvitationSerializer(serializers.Serializer[Any]):
    """An invitation into a project: its user is a member once they accept it."""

    project = serializers.IntegerField(help_text="the project's id")
    project_name = serializers.CharField()
    invited_by = serializers.CharField(allow_null=True, help_text="the maintainer's username")
    created_at = serializers.DateTimeField()


class InvitationAnswerSerializer(serializers.Serializer[Any]):
    accept = serializers.BooleanField(default=True, help_text="false declines it")


class MemberSerializer(serializers.Serializer[Any]):
    """A member of a project: a maintainer manages its members and cancels any of its runs,
    a member cancels their own."""

    id = serializers.IntegerField(help_text="the user's id")
    username = serializers.CharField()
    role = serializers.ChoiceField(Membership.Role.choices)


class MemberRoleSerializer(serializers.Serializer[Any]):
    """A member's new role (the project page's "Make maintainer" and "Make member")."""

    role = serializers.ChoiceField(Membership.Role.choices)


class MemberAddSerializer(serializers.Serializer[Any]):
    """An active user to add, by username, as a member (the project page's form)."""

    username = serializers.CharField(max_length=150)


class QueueRowSerializer(serializers.Serializer[Any]):
    """A job on the queue page: running ones first, then queued ones in the order they
    start."""

    id = serializers.IntegerField()
    url = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(Experiment.Kind.choices)
    status = serializers.ChoiceField(Experiment.Status.choices)
    project = serializers.IntegerField()
    project_name = serializers.CharField()
    created_by = serializers.CharField(allow_null=True, help_text="the username")
    worker = serializers.CharField(help_text="the Celery worker running it (empty while queued)")
    host = serializers.CharField(help_text="the machine it reports from")
    position = serializers.IntegerField(allow_null=True, help_text="1 = next to start; counts "
                                        "every project's queued jobs; null while running")
    elapsed_s = serializers.FloatField(help_text="running: since it started; queued: since "
                                       "it was submitted")
    remaining_s = serializers.FloatField(allow_null=True, help_text="running: the rest at its "
                                         "pace so far; null before its first progress report")
    may_cancel = serializers.BooleanField()


class PredictionSerializer(serializers.Serializer[Any]):
    """One input for the run's best checkpoint (the run page's "Try it"): ``text`` for a text
    model, ``image`` (multipart/form-data) for an image model."""

    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="at most 2000 characters")
    image = serializers.FileField(required=False, help_text="PNG, JPEG, GIF, BMP or WebP; at "
                                  "most 2 MiB and 4096×4096 pixels")
    invert = serializers.BooleanField(required=False, default=False,
                                      help_text="dark ink on white paper → light on black")


class PredictedSerializer(serializers.Serializer[Any]):
    label = serializers.CharField()
    probability = serializers.FloatField()


class PredictionsSerializer(serializers.Serializer[Any]):
    """The most probable classes (a classifier), or the value (a regression)."""

    predictions = PredictedSerializer(many=True, required=False)
    value = serializers.FloatField(required=False)


class LabelScanStartSerializer(serializers.Serializer[Any]):
    """A scan of the data set's latest version for suspicious labels (cleanlab's confident
    learning over a quick cross-fitted model)."""

    folds = serializers.IntegerField(min_value=2, max_value=10, default=5,
                                     help_text="cross-fitting folds")


class LabelScanSerializer(serializers.Serializer[Any]):
    """A label scan: queued, running (``progress``), done (``flagged`` rows) or failed."""

    id = serializers.IntegerField()
    url = serializers.CharField()
    dataset = serializers.IntegerField()
    version = serializers.IntegerField(help_text="the data set version it scanned")
    folds = serializers.IntegerField()
    status = serializers.ChoiceField(LabelScan.Status.choices)
    progress = serializers.JSONField(help_text="{folds_done, folds}")
    flagged = serializers.IntegerField(allow_null=True, help_text="suspicious rows found")
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class SuspectSerializer(serializers.Serializer[Any]):
    """A row whose label looks wrong."""

    row = serializers.IntegerField(help_text="the row's id (its position in version 1)")
    position = serializers.IntegerField(help_text="its position in the scanned version")
    given = serializers.IntegerField()
    given_name = serializers.CharField()
    suggested = serializers.IntegerField()
    suggested_name = serializers.CharField()
    confidence = serializers.FloatField(help_text="how sure the quick model is of "
                                        "``suggested``")
    given_probability = serializers.FloatField(help_text="its probability of ``given``")


class LabelScanResultSerializer(LabelScanSerializer):
    """A scan with its suspicious rows (best first, filtered by class pair, less those a later
    version already relabelled or removed) and its confusion matrix."""

    label_names = serializers.ListField(child=serializers.CharField())
    confusion = serializers.ListField(child=serializers.ListField(
        child=serializers.IntegerField()), help_text="[given][predicted] counts")
    rows = SuspectSerializer(many=True)


class LabelScanQuerySerializer(serializers.Serializer[Any]):
    given = serializers.IntegerField(required=False, min_value=0,
                                     help_text="only rows given this class")
    suggested = serializers.IntegerField(required=False, min_value=0,
                                         help_text="only rows this class is suggested for")


class PreviewQuerySerializer(serializers.Serializer[Any]):
    rows = serializers.CharField(help_text="row ids of the scan's suspicious rows, "
                                 "comma-separated, at most 100")


class PreviewSerializer(serializers.Serializer[Any]):
    """What the labels page shows of a row: an image as a PNG data URI, or a text (a table
    row: its first features)."""

    row = serializers.IntegerField()
    src = serializers.CharField(required=False, help_text="data:image/png;base64,…")
    text = serializers.CharField(required=False)


class VersionCreateSerializer(serializers.Serializer[Any]):
    """Relabel or remove rows of the latest version: the next version (the labels page's
    "Relabel" and "Exclude")."""

    relabel = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False,
                                    help_text="{row id: new class index}")
    exclude = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False,
                                    help_text="row ids to remove")
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class DiffQuerySerializer(serializers.Serializer[Any]):
    """Two versions of a data set (default: the first and the latest)."""

    from_ = serializers.IntegerField(required=False, min_value=1)
    to = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # a Python keyword as the query's name
        return fields


class DiffSerializer(serializers.Serializer[Any]):
    """Rows relabelled, removed and added between two versions."""

    from_ = serializers.IntegerField()
    to = serializers.IntegerField()
    relabelled = serializers.ListField(child=serializers.JSONField(),
                                       help_text="[row id, old class, new class]")
    removed = serializers.ListField(child=serializers.IntegerField())
    added = serializers.ListField(child=serializers.IntegerField())

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class EmailChoicesSerializer(serializers.Serializer[Any]):
    """The project's events you are e-mailed about (none: no e-mail from it)."""

    events = serializers.ListField(child=serializers.CharField(), help_text=", ".join(Event.values))


class DeliverySerializer(serializers.Serializer[Any]):
    """One attempt to POST an event to the webhook."""

    event = serializers.CharField()
    attempt = serializers.IntegerField(help_text="1 for the first")
    status_code = serializers.IntegerField(allow_null=True)
    succeeded = serializers.BooleanField()
    error = serializers.CharField()
    will_retry = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WebhookSerializer(serializers.Serializer[Any]):
    """A URL the project's events are POSTed to as signed JSON (docs/notifications.md)."""

    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    recent = DeliverySerializer(many=True, help_text="its 5 latest deliveries")


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="signs every payload; shown this once")


class WebhookCreateSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2000, help_text="https://…; no private address")
    events = serializers.ListField(child=serializers.CharField(), required=False,
                                   help_text="default: every event")
