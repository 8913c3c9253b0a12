"""The experiment form: its fields are spec fields, and the spec does the validating."""

from __future__ import annotations

from typing import Any

from django import forms

from training.data.catalog import CATALOG
from training.spec import FIELDSET_ORDER, ExperimentSpec, SpecError
from webapp.datasets.models import Dataset, upload_id
from webapp.datasets.services import DatasetUnavailable, resolve_version
from webapp.experiments import spec_forms
from webapp.projects import access
from webapp.projects.models import Project

# Every field of every spec section, in spec order: the form's fields, their paths, fieldsets
# and show/hide rules all come from the spec's field metadata.
SPEC_FIELDS = [sf for section, cls in ExperimentSpec.sections.items()
               for sf in spec_forms.spec_fields(cls, path=f"{section}.")]
# Form field → spec path, and back.
FIELD_PATHS = {sf.name: sf.path for sf in SPEC_FIELDS}
PATH_FIELDS = {path: name for name, path in FIELD_PATHS.items()}
# How the form is laid out: a legend per group of fields.
FIELDSETS = [("Experiment", ["name", "project"]),
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
    builtin = [(k, v.title) for k, v in CATALOG.items()]
    return [("Built-in", builtin), ("Uploaded", uploads)] if uploads else builtin


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

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = access.projects_visible_to(user).order_by("name")  # type: ignore[attr-defined]
        # The spec's dataset is any catalog name or upload: offer the user's.
        dataset = self.fields["dataset"]
        self.fields["dataset"] = forms.ChoiceField(
            choices=dataset_choices(user), label=dataset.label, help_text=dataset.help_text,
            initial=dataset.initial)
        self.spec: ExperimentSpec | None = None

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in FIELDSETS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if any(name in self.errors for name in FIELD_PATHS):
            return cleaned  # type errors already sit on their fields
        data = spec_forms.spec_data(SPEC_FIELDS, cleaned)
        upload = upload_in_other_project(cleaned.get("dataset", ""), cleaned.get("project"))
        if upload:
            self.add_error("dataset", upload)
            return cleaned
        missing = missing_version(cleaned.get("dataset", ""), cleaned.get("project"),
                                  data.get("data", {}).get("version") or 0)
        if missing:
            self.add_error(PATH_FIELDS.get("data.version"), missing)
            return cleaned
        try:
            self.spec = ExperimentSpec.from_dict(data)
        except SpecError as exc:
            for path, message in exc.errors.items():
                self.add_error(PATH_FIELDS.get(path), message)
        return cleaned


ExperimentForm.base_fields.update(spec_forms.form_fields(SPEC_FIELDS))


class RemedyForm(forms.Form):
    """Confirms "Apply remedy": only the new run's name is asked; the spec is the patch's."""

    name = forms.CharField(max_length=200)
