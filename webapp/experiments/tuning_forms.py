"""The Tune form: chosen spec fields become a search space; the TuningSpec does the validating.

Each tunable field is one row: a "tune" box, then a range (low, high, log, step) or a list of
choices separated by ";". Errors of ``space.<path>`` land on that row; budget, algorithm and
objective errors on their own fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from django import forms

from training.fieldmeta import FieldMeta, field_meta
from training.loop import primary_metric
from training.spec import ExperimentSpec, RunSpec, SpecError
from training.tuning import (
    OBJECTIVES,
    TuningSpec,
    field_type,
    field_types,
    new_study_spec,
    plugin_config_class,
    unused_fields,
)
from webapp.datasets import availability
from webapp.experiments import spec_forms, warmstart
from webapp.experiments.models import Experiment
from webapp.experiments.ownership import reference_problem
from webapp.projects import access
from webapp.projects.models import Project


@dataclass(frozen=True)
class Tunable:
    """A spec field the form offers to tune, with the range or choices it suggests."""

    name: str  # form prefix
    path: str  # dotted spec field
    label: str
    kind: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: str = ""  # categorical: values separated by ";"
    meta: FieldMeta | None = None  # a plugin's option: its field's metadata


TUNABLES = (
    Tunable("lr", "optim.lr", "Learning rate", "float", 1e-4, 1e-1, log=True),
    Tunable("weight_decay", "optim.weight_decay", "Weight decay", "float", 1e-6, 1e-2, log=True),
    Tunable("momentum", "optim.momentum", "Momentum (SGD)", "float", 0.5, 0.95),
    Tunable("optimizer", "optim.optimizer", "Optimizer", "categorical", choices="adam; sgd"),
    Tunable("schedule", "schedule.kind", "LR schedule", "categorical",
            choices="constant; cosine; one_cycle"),
    Tunable("label_smoothing", "optim.label_smoothing", "Label smoothing", "float", 0.0, 0.2,
            step=0.05),
    Tunable("dropout", "model.dropout", "Dropout", "float", 0.0, 0.5, step=0.1),
    Tunable("width", "model.width", "CNN width", "int", 8, 64, log=True),
    Tunable("blocks", "model.blocks", "CNN blocks", "int", 1, 3),
    Tunable("hidden_sizes", "model.hidden_sizes", "MLP hidden sizes", "categorical",
            choices="64; 128; 256; 128, 64"),
    Tunable("activation", "model.activation", "Activation", "categorical",
            choices="relu; gelu; tanh"),
    Tunable("batch_size", "run.batch_size", "Batch size", "categorical", choices="32; 64; 128"),
)
BY_PATH = {t.path: t for t in TUNABLES}
# The study's own fields (algorithm, objective, budget, seed) from TuningSpec's field metadata,
# with its defaults; the base is the source run, the space the table, the direction follows
# from the objective.
STUDY_SPEC_FIELDS = spec_forms.spec_fields(TuningSpec)
STUDY_FIELDS = tuple(sf.name for sf in STUDY_SPEC_FIELDS)
EPOCHS_FIELD = next(sf for sf in spec_forms.spec_fields(RunSpec, path="run.")
                    if sf.name == "epochs")

def _parse_choice(text: str, kind: str | None) -> Any:
    """One choice as Optuna stores it: numbers for number fields, text otherwise (hidden sizes
    stay "128, 64": the spec reads that text)."""
    if kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            return text  # the spec reports it on the row
        return int(number) if kind == "int" and number.is_integer() else number
    return text


def plugin_tunables(base: ExperimentSpec) -> tuple[Tunable, ...]:
    """The numeric options of the base run's model and data set plugins, each a range over its
    declared bounds (log-scaled when they span more than a factor of 100)."""
    out = []
    for option in ("model.plugin_config", "data.plugin_options"):
        config = plugin_config_class(base, option)
        if config is None:
            continue
        for f in dataclasses.fields(config):
            m, kind = field_meta(f), field_types(config)[f.name]
            if m is None or kind not in ("int", "float") or m.min is None or m.max is None:
                continue
            log = m.min > 0 and m.max / m.min > 100
            out.append(Tunable(f"plugin_{option.split('.')[0]}_{f.name}", f"{option}.{f.name}",
                               m.label, kind, m.min, m.max, log=log, meta=m))
    return tuple(out)


def _meta(path: str) -> FieldMeta | None:
    """The FieldMeta of a dotted experiment spec field."""
    section, _, name = path.partition(".")
    found = [f for f in dataclasses.fields(ExperimentSpec.sections[section]) if f.name == name]
    return field_meta(found[0]) if found else None


class TuneForm(forms.Form):
    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)

    def __init__(self, *args: Any, user: Any, base: ExperimentSpec,
                 source: Experiment | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user, self.source = user, source
        self.fields["project"].queryset = access.projects_visible_to(  # type: ignore[attr-defined]
            user).order_by("name")
        self.base = base
        # Only rows the base run reads: an MLP is offered no CNN width, a regression no label
        # smoothing; momentum stays for Adam, as the optimizer may be searched with it.
        offered = (*TUNABLES, *plugin_tunables(base))
        unused = unused_fields(base, [t.path for t in offered])
        self.tunables = tuple(t for t in offered if f"space.{t.path}" not in unused)
        # Epochs of every trial: a short study of a long source run needs no short run first.
        epochs = spec_forms.form_field(EPOCHS_FIELD)
        epochs.initial, epochs.required = base.run.epochs, False  # empty: the source's
        epochs.label, epochs.help_text = "Epochs per trial", (
            f"each trial trains this long (the source run: {base.run.epochs}); "
            + (EPOCHS_FIELD.meta.help_text() or ""))
        self.fields["epochs"] = epochs
        # The objective starts as the base run's own best-epoch metric: val_acc, TuningSpec's
        # default, was refused at the first submit of a regression's study.
        try:
            task = base.data.info().task
        except KeyError:  # its data set is gone: the submit says so on the project
            task = "classification"
        else:
            # Only the metrics the run logs: a regression's list offered val_acc, then refused
            # it on submit.
            objective = self.fields["objective"]
            objective.choices = [  # type: ignore[attr-defined]
                (key, text) for key, text in objective.choices  # type: ignore[attr-defined]
                if OBJECTIVES[key][1] in (None, task)]
        self.fields["objective"].initial = primary_metric(task)[0]
        for t in self.tunables:
            self.fields[f"{t.name}_on"] = forms.BooleanField(required=False, label=t.label)
            if t.kind == "categorical":
                self.fields[f"{t.name}_choices"] = forms.CharField(
                    required=False, initial=t.choices, help_text="separated by ;")
            else:
                number = forms.IntegerField if t.kind == "int" else forms.FloatField
                # The bounds of a range are values of the field: its range is theirs.
                bounds = spec_forms.html_range(t.meta or _meta(t.path), t.kind)
                self.fields[f"{t.name}_low"] = number(
                    required=False, initial=t.low, widget=forms.NumberInput(attrs=bounds))
                self.fields[f"{t.name}_high"] = number(
                    required=False, initial=t.high, widget=forms.NumberInput(attrs=bounds))
                self.fields[f"{t.name}_log"] = forms.BooleanField(required=False, initial=t.log)
                self.fields[f"{t.name}_step"] = number(required=False, initial=t.step)
            # The table's boxes sit under one column head each ("Low"): each names its row's
            # field too, for a screen reader and for the error summary ("Learning rate: low").
            for part in ("choices", "low", "high", "log", "step"):
                if (box := self.fields.get(f"{t.name}_{part}")) is not None:
                    box.label = f"{t.label}: {part}"
                    box.widget.attrs["aria-label"] = box.label
        self.spec: TuningSpec | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The search-space table: one row of bound fields per tunable."""
        out = []
        for t in self.tunables:
            names = (["choices"] if t.kind == "categorical" else ["low", "high", "log", "step"])
            out.append({"tunable": t, "on": self[f"{t.name}_on"],
                        "fields": {n: self[f"{t.name}_{n}"] for n in names}})
        return out

    def study_fields(self) -> list[forms.BoundField]:
        return [self["epochs"], *(self[name] for name in STUDY_FIELDS)]

    def space(self, cleaned: dict[str, Any]) -> dict[str, dict[str, Any]]:
        space: dict[str, dict[str, Any]] = {}
        for t in self.tunables:
            if not cleaned.get(f"{t.name}_on"):
                continue
            if t.kind == "categorical":
                text = cleaned.get(f"{t.name}_choices") or ""
                kind = field_type(t.path, self.base)
                choices = [_parse_choice(c.strip(), kind) for c in text.split(";") if c.strip()]
                space[t.path] = {"type": "categorical", "choices": choices}
            else:
                entry = {"type": t.kind, "low": cleaned.get(f"{t.name}_low"),
                         "high": cleaned.get(f"{t.name}_high"),
                         "log": bool(cleaned.get(f"{t.name}_log"))}
                if cleaned.get(f"{t.name}_step") is not None:
                    entry["step"] = cleaned[f"{t.name}_step"]
                space[t.path] = entry
        return space

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Every problem in one answer: a field whose value did not convert is checked as its
        # default, and the other checks still run.
        base = self._base(cleaned)
        problem = reference_problem(self.user, cleaned.get("project"), base.data.dataset,
                                    self.source)
        if problem:
            self.add_error("project", problem)
        missing = availability.missing_problem(base.data.dataset)
        if missing:  # every trial would fail to find its data
            self.add_error(None, missing)
        study = spec_forms.defaults_for_failed(
            STUDY_SPEC_FIELDS, {name: cleaned.get(name) for name in STUDY_FIELDS}, self.errors)
        objective = study.get("objective") or "val_acc"
        data = {
            "base": base.to_dict(),
            "space": self.space(cleaned),
            **study,
            # The form asks only for the metric: its direction follows from it.
            "direction": OBJECTIVES.get(objective, ("maximize", None))[0],
        }
        try:
            spec: TuningSpec | None = new_study_spec(data)
            if spec is not None and (unfit := warmstart.study_problems(
                    self.user, cleaned.get("project"), spec)):
                raise SpecError(unfit)
        except SpecError as exc:
            spec = None
            for path, message in exc.errors.items():
                name = self._field_for(path)
                if name is None or name not in self.errors:
                    self.add_error(name, message)
        self.spec = spec if not self.errors else None
        return cleaned

    def _base(self, cleaned: dict[str, Any]) -> ExperimentSpec:
        """The source run's spec with the epochs asked for (its own when the field is empty or
        refused, the refusal said on the field)."""
        epochs = cleaned.get("epochs") or self.base.run.epochs
        try:
            return self.base.patched({"run": {"epochs": epochs}})
        except SpecError as exc:
            self.add_error("epochs", exc.errors.get("run.epochs", str(exc)))
            return self.base

    def _field_for(self, path: str) -> str | None:
        """The form field that shows a spec error (None: the form's own error list)."""
        if path.startswith("space."):
            t = {t.path: t for t in self.tunables}.get(path.removeprefix("space."))
            if t is not None:
                return f"{t.name}_choices" if t.kind == "categorical" else f"{t.name}_low"
        return path if path in STUDY_FIELDS else None


TuneForm.base_fields.update(spec_forms.form_fields(STUDY_SPEC_FIELDS))
