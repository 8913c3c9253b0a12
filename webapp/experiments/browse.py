"""The run list's filters, search, sort and pages, and the tags and notes users put on runs.

The list costs a fixed number of queries whatever the number of runs: one count, one page of
rows (project joined), one for the page's tags, one for the names of the uploads its rows
train on, and one each for the filter menus (projects, tags, uploaded datasets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.paginator import Page, Paginator
from django.db.models import Case, F, QuerySet, TextField, When
from django.db.models.fields.json import KT

from training.data.catalog import CATALOG, dataset_plugins
from training.spec import arch_names
from webapp.datasets.models import Dataset, upload_names
from webapp.experiments.models import Experiment, Tag
from webapp.projects import access
from webapp.projects.models import Project

PAGE_SIZE = 50
MAX_TAGS = 20  # per run
TAG_PATTERN = re.compile(r"^[\w .:+-]{1,40}$")  # letters, digits and a little punctuation
VERDICTS = ("healthy", "overfitting", "underfitting", "diverging", "slow", "undetermined")
SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "name": ("name", "-id"),
    "-name": ("-name", "-id"),
    "best-high": (F("best_metric_value").desc(nulls_last=True), "-id"),
    "best-low": (F("best_metric_value").asc(nulls_last=True), "-id"),
}
SORT_LABELS = {"newest": "newest first", "oldest": "oldest first", "name": "name A→Z",
               "-name": "name Z→A", "best-high": "best metric, highest first",
               "best-low": "best metric, lowest first"}  # best metric: the sort metric's if given


def _choices(values: Any) -> list[tuple[str, str]]:
    return [("", "any")] + [(v, v) for v in values]


class RunFilterForm(forms.Form):
    """The list's query string: every field optional, an unknown value is a field error."""

    q = forms.CharField(required=False, max_length=200, label="Search name")
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False,
                                     empty_label="any")
    kind = forms.ChoiceField(choices=_choices(Experiment.Kind.values), required=False)
    status = forms.ChoiceField(choices=_choices(Experiment.Status.values), required=False)
    dataset = forms.ChoiceField(choices=(), required=False)
    arch = forms.ChoiceField(choices=(), required=False, label="Model")
    verdict = forms.ChoiceField(choices=_choices(VERDICTS), required=False)
    tag = forms.ModelChoiceField(queryset=Tag.objects.none(), required=False, empty_label="any",
                                 to_field_name="name")
    sort = forms.ChoiceField(choices=list(SORT_LABELS.items()), required=False)
    metric = forms.RegexField(regex=r"^[A-Za-z0-9_]{1,64}$", required=False,
                              label="Sort metric", help_text="e.g. val_loss",
                              error_messages={"invalid": "a metric name, e.g. val_loss"})

    def __init__(self, data: Any, user: Any) -> None:
        super().__init__(data)
        visible = Experiment.objects.visible_to(user)
        fields: Any = self.fields
        fields["project"].queryset = access.projects_visible_to(user).order_by("name")
        fields["tag"].queryset = Tag.objects.filter(experiments__in=visible).distinct()
        # Choices are read when the form is built (other apps may register more of them).
        uploads = Dataset.objects.visible_to(user).only("pk", "name").order_by("name")
        fields["dataset"].choices = _choices([*sorted(CATALOG), *sorted(dataset_plugins())]) + [
            (d.spec_name, f"{d.name} (uploaded)") for d in uploads
        ]
        fields["arch"].choices = _choices(arch_names())

    def filter(self, runs: QuerySet[Experiment]) -> QuerySet[Experiment]:
        """``runs`` narrowed and ordered by the valid fields (an invalid field is ignored and
        shown with its error)."""
        self.is_valid()  # cleans once; a field that fails is left out of cleaned_data
        data = {k: v for k, v in self.cleaned_data.items() if v}
        lookups = {"project": "project", "kind": "kind", "status": "status",
                   "dataset": "spec__data__dataset", "arch": "spec__model__arch",
                   "verdict": "verdict_kind", "tag": "tags"}
        for name, lookup in lookups.items():
            if name in data:
                runs = runs.filter(**{lookup: data[name]})
        if "q" in data:
            runs = runs.filter(name__icontains=data["q"].strip())
        sort = data.get("sort") or "newest"
        if "metric" in data and sort.startswith("best-"):
            # Each run's best value of that metric, from its summary (runs without it last).
            value = F(f"summary__best_metrics__{data['metric']}")
            first = value.desc(nulls_last=True) if sort == "best-high" else value.asc(
                nulls_last=True)
            return runs.order_by(first, "-id")
        return runs.order_by(*SORTS[sort])


# The JSON columns a list leaves in the database: a script's run holds up to 7 MB of them
# (params, tags, dataset inputs, its table of metric names), and a page of 50 such runs was
# 200 MB read and parsed, 400 MB held, for every view of the run list, the site's home page.
LISTED_WITHOUT = ("spec", "progress", "summary", "verdict", "remedy", "notes", "error")
K = Experiment.Kind
# What a row shows of them instead, read by the database for the kinds of run that hold it
# (a script's run, which shows none, is not read at all): {name: (path, kinds)}.
ROW_FIELDS = {"row_dataset": ("spec__data__dataset", (K.TRAIN, K.TRIAL, K.COMPRESS)),
              "row_arch": ("spec__model__arch", (K.TRAIN, K.TRIAL, K.COMPRESS)),
              "row_base_dataset": ("spec__base__data__dataset", (K.TUNE,)),
              "row_base_arch": ("spec__base__model__arch", (K.TUNE,)),
              "row_compression": ("spec__compression__method", (K.COMPRESS,)),
              "row_trial_state": ("summary__trial__state", (K.TRIAL,)),
              "row_epoch": ("progress__epoch", (K.TRAIN, K.TRIAL, K.COMPRESS)),
              "row_epochs": ("progress__epochs", (K.TRAIN, K.TRIAL, K.COMPRESS)),
              "row_step": ("progress__step", (K.EXTERNAL,))}


def listed(runs: QuerySet[Experiment]) -> QuerySet[Experiment]:
    """``runs`` as a list reads them: without their JSON columns (LISTED_WITHOUT), with what
    ``label_rows`` needs of them (ROW_FIELDS, as texts)."""
    return runs.defer(*LISTED_WITHOUT).annotate(**{
        name: Case(When(kind__in=kinds, then=KT(path)), output_field=TextField())
        for name, (path, kinds) in ROW_FIELDS.items()})


def run_page(user: Any, query: Any) -> tuple[RunFilterForm, Page[Experiment]]:
    """The filter form for ``query`` (request.GET) and the page of runs it selects."""
    form = RunFilterForm(query, user)
    runs = form.filter(listed(
        Experiment.objects.visible_to(user).select_related("project").prefetch_related("tags")
    ))
    paginator = Paginator(runs, PAGE_SIZE)
    page = paginator.get_page(query.get("page"))
    label_rows(page.object_list)
    return form, page


def label_rows(runs: Iterable[Experiment]) -> None:
    """Give each run (read by ``listed``) what its row shows: ``shown_status`` (a pruned trial
    is "pruned", as on its study's page), ``dataset_label`` (an upload by its name, a study by
    its base run's dataset and model) and ``progress_label`` ("epoch 3/10"; a script's run: the
    last step it logged, "step 39"; nothing for a job that does not train in epochs). The
    uploads' names come in one query for the whole page."""
    runs = list(runs)
    base = {e.pk: e.kind == Experiment.Kind.TUNE for e in runs}
    datasets = {e.pk: str((e.row_base_dataset if base[e.pk] else e.row_dataset) or "")  # type: ignore[attr-defined]
                for e in runs}
    names = upload_names(datasets.values())
    for e in runs:
        dataset = datasets[e.pk]
        arch = (e.row_base_arch if base[e.pk] else e.row_arch) or ""  # type: ignore[attr-defined]
        e.dataset_label = f"{names.get(dataset, dataset)} / {arch}"  # type: ignore[attr-defined]
        pruned = e.kind == Experiment.Kind.TRIAL and e.row_trial_state == "pruned"  # type: ignore[attr-defined]
        e.shown_status = "pruned" if pruned else e.status  # type: ignore[attr-defined]
        e.epochless = e.row_compression == QUANTIZE  # type: ignore[attr-defined]
        epochs = e.row_epochs if str(e.row_epochs).isdigit() else 0  # type: ignore[attr-defined]
        e.progress_label = (  # type: ignore[attr-defined]
            f"epoch {e.row_epoch or 0}/{epochs}" if int(epochs) and not e.epochless  # type: ignore[attr-defined]
            else f"step {e.row_step}" if e.row_step else "")  # type: ignore[attr-defined]


QUANTIZE = "quantize_dynamic"  # a compression that does not train in epochs (int8 at once)


def parse_tags(text: str) -> list[str]:
    """Tags from comma-separated text, in order, without repeats; ValueError naming the bad one."""
    tags: list[str] = []
    for raw in text.split(","):
        tag = " ".join(raw.split())
        if not tag:
            continue
        if not TAG_PATTERN.match(tag):
            raise ValueError(f"{tag!r}: a tag is at most 40 letters, digits, spaces or . : + - _")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


class AnnotationForm(forms.Form):
    """Tags and notes of a run, edited on its page."""

    tags = forms.CharField(required=False, max_length=1000,
                           help_text="comma-separated, e.g. baseline, lr-sweep")
    notes = forms.CharField(required=False, max_length=10000,
                            widget=forms.Textarea(attrs={"rows": 3}))

    def clean_tags(self) -> list[str]:
        try:
            return parse_tags(self.cleaned_data["tags"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
