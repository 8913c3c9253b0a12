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
from django.db.models import F, QuerySet

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


def run_page(user: Any, query: Any) -> tuple[RunFilterForm, Page[Experiment]]:
    """The filter form for ``query`` (request.GET) and the page of runs it selects."""
    form = RunFilterForm(query, user)
    runs = form.filter(
        Experiment.objects.visible_to(user).select_related("project").prefetch_related("tags")
    )
    paginator = Paginator(runs, PAGE_SIZE)
    page = paginator.get_page(query.get("page"))
    label_rows(page.object_list)
    return form, page


def label_rows(runs: Iterable[Experiment]) -> None:
    """Give each listed run what its row shows: ``shown_status`` (a pruned trial is "pruned",
    as on its study's page), ``dataset_label`` (an upload by its name, a study by its base
    run's dataset and model) and ``progress_label`` ("epoch 3/10"; nothing for a job that
    does not train in epochs). The uploads' names come in one query for the whole page."""
    runs = list(runs)
    specs = {e.pk: e.spec.get("base", e.spec) if e.kind == Experiment.Kind.TUNE else e.spec
             for e in runs}
    names = upload_names(str(s.get("data", {}).get("dataset", "")) for s in specs.values())
    for e in runs:
        spec = specs[e.pk]
        dataset = str(spec.get("data", {}).get("dataset", ""))
        arch = spec.get("model", {}).get("arch", "")
        e.dataset_label = f"{names.get(dataset, dataset)} / {arch}"  # type: ignore[attr-defined]
        trial = e.summary.get("trial", {}) if e.kind == Experiment.Kind.TRIAL else {}
        e.shown_status = "pruned" if trial.get("state") == "pruned" else e.status  # type: ignore[attr-defined]
        e.epochless = epochless(e)  # type: ignore[attr-defined]
        epochs = e.progress.get("epochs")
        e.progress_label = (  # type: ignore[attr-defined]
            f"epoch {e.progress.get('epoch', 0)}/{epochs}" if epochs and not e.epochless
            else "")


def epochless(e: Experiment) -> bool:
    """Whether the job does not train in epochs (dynamic int8 quantization converts at once)."""
    return bool(e.spec.get("compression", {}).get("method") == "quantize_dynamic")


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
