"""The experiment form: its fields are spec fields, and the spec does the validating."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings

from training.data.catalog import CATALOG, DatasetInfo, dataset_info, dataset_plugins
from training.spec import (
    ARCH_MODALITIES,
    FAMILY,
    FIELDSET_ORDER,
    ExperimentSpec,
    model_plugin,
    model_plugins,
    proposed_for,
)
from webapp.datasets import availability
from webapp.datasets.models import Dataset, upload_id
from webapp.datasets.services import DatasetUnavailable, resolve_version
from webapp.experiments import spec_forms, warmstart
from webapp.projects import access
from webapp.projects.models import Project

# The installed plugins (read once, when the web process starts): their names join the
# architecture and data set choices, and their config dataclasses give form fields.
MODEL_PLUGINS = {name: model_plugin(name) for name in sorted(model_plugins())}
DATASET_PLUGINS = {name: point.load() for name, point in sorted(dataset_plugins().items())}
PLUGIN_PATHS = ("model.plugin_config", "data.plugin_options")
# Every field of every spec section, in spec order, then each plugin's options: the form's
# fields, their paths, fieldsets and show/hide rules all come from the field metadata.
SPEC_FIELDS = [
    *(sf for section, cls in ExperimentSpec.sections.items()
      for sf in spec_forms.spec_fields(cls, path=f"{section}.")),
    *(sf for name, loader in DATASET_PLUGINS.items()
      for sf in spec_forms.plugin_fields(loader.Options, "data.plugin_options.", name,
                                         "dataset")),
    *(sf for name, model in MODEL_PLUGINS.items()
      for sf in spec_forms.plugin_fields(model.Config, "model.plugin_config.", name, "arch")),
]
# Form field → spec path, and back.
FIELD_PATHS = {sf.name: sf.path for sf in SPEC_FIELDS}
PATH_FIELDS = {path: name for name, path in FIELD_PATHS.items()}
# How the form is laid out: a legend per group of fields.
FIELDSETS = [("Experiment", ["name", "project", "repeats"]),
             *spec_forms.fieldsets(SPEC_FIELDS, FIELDSET_ORDER)]
# Field → {controlling field: values}: the page's script hides fields that do not apply to the
# chosen architecture, schedule, optimizer or loss.
APPLIES = spec_forms.applies_map(SPEC_FIELDS)


def spec_initial(spec: ExperimentSpec) -> dict[str, Any]:
    """Form initial values from a spec (defaults for a new run, or a run being cloned)."""
    return spec_forms.initial_values(SPEC_FIELDS, spec)


def dataset_choices(user: Any) -> list[tuple[str, Any]]:
    """Built-in datasets, then the uploads of the user's projects ("upload:<id>")."""
    uploads = [(d.spec_name, f"{d.name} (#{d.pk}, {d.project.name})")
               for d in Dataset.objects.visible_to(user).select_related("project")]
    # Whether a worker can read each set is said in its label, before anyone submits.
    state = availability.catalog_availability()
    builtin = [(k, v.title if state[k] == availability.PRESENT else f"{v.title}: {state[k]}")
               for k, v in CATALOG.items()]
    builtin += [(name, getattr(loader, "title", name)) for name, loader in DATASET_PLUGINS.items()]
    return [("Built-in", builtin), ("Uploaded", uploads)] if uploads else builtin




def upload_info(dataset: Dataset) -> DatasetInfo:
    """An upload's facts, a table's where its row holds none (nothing is then proposed from
    its size)."""
    return DatasetInfo.from_dict({"title": dataset.name, "task": "classification",
                                  "modality": "tabular", "rows": 0, "num_classes": 0,
                                  **dataset.info, "name": dataset.spec_name})


def proposed_initial(info: DatasetInfo) -> dict[str, Any]:
    """The form's values for a new run on ``info`` (``proposed_for``'s fields, by form name)."""
    names = {sf.path: sf.name for sf in SPEC_FIELDS}
    return {names[path]: value for path, value in proposed_for(info).items()}


def dataset_fits(user: Any) -> dict[str, Any]:
    """What the page's script needs to keep the model and loss fitting the chosen data set, as
    "Train on it" chooses them: each data set's name for the run's, its modality, task and
    proposed values (``proposed_initial``: a table's epochs and weight decay); each
    architecture's modalities (the spec's own rule, ``ARCH_MODALITIES``, and each plugin's)."""
    datasets = {name: dataset_info(name) for name in [*CATALOG, *DATASET_PLUGINS]}
    default = ExperimentSpec()  # train_rows: its training split, which the batch must fit
    sets: dict[str, dict[str, Any]] = {
        name: {"name": name, "modality": info.modality, "task": info.task,
               "proposed": proposed_initial(info), "train_rows": default.train_rows(info)}
            for name, info in datasets.items()}
    for d in Dataset.objects.visible_to(user):
        info = upload_info(d)
        sets[d.spec_name] = {"name": d.name, "modality": info.modality, "task": info.task,
                             "proposed": proposed_initial(info),
                             "train_rows": default.train_rows(info)}
    archs = {**{arch: list(m) for arch, m in ARCH_MODALITIES.items()},
             **{arch: list(getattr(model, "modalities", ("image", "tabular")))
                for arch, model in MODEL_PLUGINS.items()}}
    # What a field proposed for one set goes back to for a set proposing nothing for it.
    proposed = {key for s in sets.values() for key in s["proposed"]}
    defaults = {key: value for key, value in spec_initial(ExperimentSpec()).items()
                if key in proposed}
    return {"datasets": sets, "archs": archs, "families": FAMILY, "defaults": defaults}


def form_applies(fits: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """``APPLIES`` with the fields that depend on the chosen data set (``fits``: what
    ``dataset_fits`` gives): augmentation under the image sets, the version under uploads."""
    images = [name for name, s in fits["datasets"].items() if s["modality"] == "image"]
    uploads = [name for name in fits["datasets"] if upload_id(name) is not None]
    by_data = {**{name: images for name in AUGMENT_FIELDS}, "version": uploads}
    return {**APPLIES, **{name: {**APPLIES.get(name, {}), "dataset": sets}
                          for name, sets in by_data.items()}}


AUGMENT_FIELDS = ("augment_crop", "augment_flip", "augment_rotation", "augment_noise")


def missing_version(name: str, project: Project | None, version: Any) -> str:
    """Why an uploaded set's version cannot be trained on ("" when it can; a value that is no
    whole number is left to the spec's own check)."""
    if not str(version).isdigit() or not int(version) or project is None or upload_id(name) is None:
        return ""
    try:
        resolve_version(name, project, int(version))
    except DatasetUnavailable as exc:
        return str(exc)
    return ""


def upload_in_other_project(name: str, project: Project | None) -> str:
    """Why an uploaded dataset cannot be used in ``project`` ("" when it can): a run may only
    read data of its own project."""
    pk = upload_id(name)
    if pk is None or project is None:
        return ""
    dataset = Dataset.objects.filter(pk=pk).select_related("project").first()
    if dataset is None:
        return f"no uploaded dataset #{pk}"
    if dataset.project_id != project.pk:
        return (f"{dataset.name} belongs to project {dataset.project.name}: choose a dataset "
                f"of project {project.name}")
    return ""


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    # 1: one run; N > 1: a repeat over the spec's seed and the next N - 1 (a group page).
    repeats = forms.IntegerField(
        min_value=1, initial=1, required=False, label="Repeat over seeds",
        help_text="1 = one run; more: the same spec over that many seeds, with mean ± spread")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["repeats"].widget.attrs["max"] = settings.FITBOARD_MAX_REPEATS
        self.fields["project"].queryset = access.projects_visible_to(user).order_by("name")  # type: ignore[attr-defined]
        # The spec's dataset is any catalog name or upload: offer the user's.
        dataset = self.fields["dataset"]
        self.fields["dataset"] = forms.ChoiceField(
            choices=dataset_choices(user), label=dataset.label, help_text=dataset.help_text,
            initial=dataset.initial, widget=forms.Select(attrs={"class": "wide"}))
        self.spec: ExperimentSpec | None = None

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in FIELDSETS]

    def clean_repeats(self) -> int:
        count = int(self.cleaned_data["repeats"] or 1)
        if count > settings.FITBOARD_MAX_REPEATS:
            raise forms.ValidationError(
                f"at most {settings.FITBOARD_MAX_REPEATS} seeds (FITBOARD_MAX_REPEATS)")
        return count

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Every field's problem in one answer: fields that did not convert (or were left
        # empty) are checked as their defaults, so the range and cross-field checks of all the
        # others still run.
        fields = spec_forms.chosen_fields(SPEC_FIELDS, cleaned, PLUGIN_PATHS)
        hidden = spec_forms.hidden_fields(fields, cleaned)
        failed_hidden = spec_forms.forget_hidden_errors(self.errors, hidden)
        data = spec_forms.defaults_for_failed(
            fields, spec_forms.spec_data(fields, cleaned), {*self.errors, *failed_hidden})
        for section, option in (path.split(".") for path in PLUGIN_PATHS):
            # An option left empty (or not sent) takes the plugin's default.
            chosen = data.get(section, {}).get(option)
            if chosen is not None:
                data[section][option] = {k: v for k, v in chosen.items() if v is not None}
        dataset = cleaned.get("dataset", "")
        problem = (upload_in_other_project(dataset, cleaned.get("project"))
                   or availability.missing_problem(dataset))
        if problem:
            self.add_error("dataset", problem)
            # (the other checks run on the default data set: nothing of a data set the user
            # may not see, such as its row count, reaches another field's message)
            data["data"] = {**data.get("data", {}), "dataset": ExperimentSpec().data.dataset,
                            "version": 0}
        else:
            missing = missing_version(dataset, cleaned.get("project"),
                                      data.get("data", {}).get("version") or 0)
            if missing:
                self.add_error(PATH_FIELDS.get("data.version"), missing)
        spec, errors = spec_forms.shown_problems(ExperimentSpec.from_dict, fields, data, hidden)
        if spec is not None and not self.errors:
            # The run to start from: one of the chosen project's, that this user sees.
            if problem := warmstart.source_problem(self.user, cleaned.get("project"), spec):
                errors[warmstart.FIELD] = problem
        for path, message in errors.items():
            name = PATH_FIELDS.get(path)
            if name is None or name not in self.errors:
                self.add_error(name, message)
        self.spec = spec if not self.errors else None
        return cleaned


ExperimentForm.base_fields.update(spec_forms.form_fields(SPEC_FIELDS))
for _field in SPEC_FIELDS:
    if _field.path.startswith(PLUGIN_PATHS):  # hidden unless its plugin is chosen
        ExperimentForm.base_fields[_field.name].required = False
ExperimentForm.base_fields["arch"].choices = [  # type: ignore[attr-defined]
    *ExperimentForm.base_fields["arch"].choices,  # type: ignore[attr-defined]
    *((name, getattr(model, "title", name)) for name, model in MODEL_PLUGINS.items())]


class RemedyForm(forms.Form):
    """Confirms "Apply remedy": only the new run's name is asked; the spec is the patch's."""

    name = forms.CharField(max_length=200)
