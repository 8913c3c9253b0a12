"""The Compress form: method and parameters, and a student built from the same model fields as
the experiment form. The spec does the validating; each error lands on its field."""

from __future__ import annotations

import copy
from typing import Any

from django import forms

from training.compression.spec import METHODS, CompressionSpec
from training.spec import SpecError
from webapp.experiments.compression import check_job
from webapp.experiments.forms import FIELD_PATHS, ExperimentForm, spec_initial
from webapp.experiments.models import Experiment
from webapp.experiments.ownership import reference_problem

METHOD_LABELS = {
    "prune_weights": "Weight pruning (unstructured, by magnitude)",
    "prune_channels": "Neuron / channel pruning (layers shrink)",
    "distill": "Knowledge distillation into a smaller student",
    "quantize_dynamic": "Dynamic int8 quantization (Linear, LSTM and GRU layers)",
}
# The experiment form's model fields, offered again for the student ("student_<field>").
STUDENT_FIELDS = {f"student_{name}": path.split(".", 1)[1]
                  for name, path in FIELD_PATHS.items() if path.startswith("model.")}
# Form field → compression spec path; the spec's defaults are the initial values.
FIELD_PATHS_COMPRESS = {
    **{name: name for name in ("method", "sparsity", "scope", "steps", "finetune_epochs", "lr",
                               "temperature", "alpha", "epochs")},
    **{name: f"student.{field}" for name, field in STUDENT_FIELDS.items()},
}
PATH_FIELDS_COMPRESS = {path: name for name, path in FIELD_PATHS_COMPRESS.items()}

FIELDSETS = [
    ("Job", ["name", "method", "lr"]),
    ("Pruning", ["sparsity", "scope", "steps", "finetune_epochs"]),
    ("Distillation", ["temperature", "alpha", "epochs"]),
    ("Student model (distillation)", list(STUDENT_FIELDS)),
]


def compression_initial(source: Experiment) -> dict[str, Any]:
    """Initial values: the spec's defaults, and the source's model fields for the student."""
    spec = CompressionSpec(source=source.pk)
    model_initial = spec_initial(source.experiment_spec)
    initial: dict[str, Any] = {"name": f"{source.name} · compressed"[:200]}
    for name, path in FIELD_PATHS_COMPRESS.items():
        if path.startswith("student."):
            initial[name] = model_initial[name.removeprefix("student_")]
        else:
            initial[name] = getattr(spec, path)
    # A student about ten times smaller than a default teacher to start from.
    if "student_hidden_sizes" in initial:
        initial["student_hidden_sizes"] = "32"
    if isinstance(initial.get("student_width"), int):
        initial["student_width"] = max(4, initial["student_width"] // 4)
    return initial


class CompressionForm(forms.Form):
    name = forms.CharField(max_length=200)
    method = forms.ChoiceField(choices=[(m, METHOD_LABELS.get(m, m)) for m in METHODS])
    lr = forms.FloatField(label="Learning rate",
                          help_text="for fine-tuning or distillation; 0 = the source's")
    sparsity = forms.FloatField(help_text="share of weights (or channels) removed, in (0, 1)")
    scope = forms.ChoiceField(choices=[("global", "Global: rank across all layers"),
                                       ("layer", "Per layer")])
    steps = forms.IntegerField(help_text="pruning steps to reach the sparsity; 1 = one-shot")
    finetune_epochs = forms.IntegerField(label="Fine-tuning epochs",
                                         help_text="after each pruning step; 0 = none")
    temperature = forms.FloatField(help_text="softens the teacher's probabilities")
    alpha = forms.FloatField(help_text="weight of the teacher's soft targets; the rest on labels")
    epochs = forms.IntegerField(
        label="Student epochs",
        help_text="soft targets keep a student learning after labels alone would overfit it: "
                  "give it more epochs than it needs from scratch")

    def __init__(self, *args: Any, source: Experiment, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source, self.user = source, user
        for name, field in STUDENT_FIELDS.items():
            student_field = copy.deepcopy(ExperimentForm.base_fields[name.removeprefix("student_")])
            student_field.label = f"Student {student_field.label or field}".replace(
                "Student Model", "Student model")
            self.fields[name] = student_field
        self.spec: CompressionSpec | None = None

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in FIELDSETS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if any(name in self.errors for name in FIELD_PATHS_COMPRESS):
            return cleaned  # type errors already sit on their fields
        # The job goes to the teacher's project; the data it distils or fine-tunes on is the
        # teacher's, which must be of that project and visible to the user.
        problem = reference_problem(self.user, self.source.project,
                                    self.source.experiment_spec.data.dataset, self.source)
        if problem:
            self.add_error(None, problem)
            return cleaned
        data: dict[str, Any] = {"source": self.source.pk, "student": {}}
        for name, path in FIELD_PATHS_COMPRESS.items():
            if path.startswith("student."):
                data["student"][path.split(".", 1)[1]] = cleaned.get(name)
            else:
                data[path] = cleaned.get(name)
        try:
            spec = CompressionSpec.from_dict(data)
        except SpecError as exc:
            errors = exc.errors
            # Also say at once whether the method suits the source at all.
            method = CompressionSpec(source=self.source.pk, method=data["method"])
            errors.update({k: v for k, v in _job_problems(self.source, method).items()
                           if k in ("source", "method")})
        else:
            errors = _job_problems(self.source, spec)
            self.spec = None if errors else spec
        for path, message in errors.items():
            self.add_error(PATH_FIELDS_COMPRESS.get(path), message)
        return cleaned


def _job_problems(source: Experiment, spec: CompressionSpec) -> dict[str, str]:
    try:
        check_job(source, spec)
    except SpecError as exc:
        return exc.errors
    return {}
