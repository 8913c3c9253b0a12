"""The experiment form: its fields are spec fields, and the spec does the validating."""

from __future__ import annotations

from typing import Any

from django import forms

from training.data.catalog import CATALOG
from training.spec import ExperimentSpec, ModelSpec, OptimSpec, SpecError
from webapp.experiments.models import Project

# Form field → spec path. The spec's own defaults are the form's initial values.
FIELD_PATHS = {
    "dataset": "data.dataset",
    "val_fraction": "data.val_fraction",
    "arch": "model.arch",
    "hidden_sizes": "model.hidden_sizes",
    "width": "model.width",
    "blocks": "model.blocks",
    "batch_norm": "model.batch_norm",
    "dropout": "model.dropout",
    "loss": "optim.loss",
    "optimizer": "optim.optimizer",
    "lr": "optim.lr",
    "momentum": "optim.momentum",
    "weight_decay": "optim.weight_decay",
    "epochs": "run.epochs",
    "batch_size": "run.batch_size",
    "seed": "run.seed",
    "grad_clip": "run.grad_clip",
    "early_stopping_patience": "run.early_stopping_patience",
}
PATH_FIELDS = {path: name for name, path in FIELD_PATHS.items()}

LABELS = {
    "arch": {"mlp": "MLP", "cnn": "CNN"},
    "loss": {"cross_entropy": "Cross-entropy (classification)", "mse": "MSE (regression)"},
    "optimizer": {"adam": "Adam", "sgd": "SGD with momentum"},
}


def _choices(field: str, values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, LABELS.get(field, {}).get(v, v)) for v in values]


def spec_initial(spec: ExperimentSpec) -> dict[str, Any]:
    """Form initial values from a spec (defaults for a new run, or a run being cloned)."""
    data = spec.to_dict()
    initial = {}
    for name, path in FIELD_PATHS.items():
        section, field = path.split(".")
        value = data[section][field]
        initial[name] = ", ".join(map(str, value)) if isinstance(value, list) else value
    return initial


# How the form is laid out: a legend per group of fields.
FIELDSETS = [
    ("Experiment", ["name", "project"]),
    ("Data", ["dataset", "val_fraction"]),
    ("Model", ["arch", "hidden_sizes", "width", "blocks", "batch_norm", "dropout"]),
    ("Loss and optimizer", ["loss", "optimizer", "lr", "momentum", "weight_decay"]),
    ("Run", ["epochs", "batch_size", "seed", "grad_clip", "early_stopping_patience"]),
]


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    dataset = forms.ChoiceField(choices=[(k, v.title) for k, v in CATALOG.items()])
    val_fraction = forms.FloatField(label="Validation fraction",
                                    help_text="Share of rows held out, between 0 and 1")
    arch = forms.ChoiceField(label="Model", choices=_choices("arch", ModelSpec.choices["arch"]))
    hidden_sizes = forms.CharField(label="MLP hidden sizes", help_text="e.g. 256, 128")
    width = forms.IntegerField(label="CNN width", help_text="channels of the first block")
    blocks = forms.IntegerField(label="CNN blocks")
    batch_norm = forms.BooleanField(label="Batch normalization (CNN)", required=False)
    dropout = forms.FloatField(help_text="probability before the output layer, in [0, 1)")
    loss = forms.ChoiceField(choices=_choices("loss", OptimSpec.choices["loss"]))
    optimizer = forms.ChoiceField(choices=_choices("optimizer", OptimSpec.choices["optimizer"]))
    lr = forms.FloatField(label="Learning rate")
    momentum = forms.FloatField(help_text="SGD only")
    weight_decay = forms.FloatField(label="Weight decay (L2)")
    epochs = forms.IntegerField()
    batch_size = forms.IntegerField()
    seed = forms.IntegerField()
    grad_clip = forms.FloatField(label="Gradient clipping",
                                 help_text="max global gradient norm; 0 = off")
    early_stopping_patience = forms.IntegerField(
        label="Early stopping patience",
        help_text="epochs without validation improvement before stopping; 0 = off")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.filter(members=user).order_by("name")  # type: ignore[attr-defined]
        self.spec: ExperimentSpec | None = None

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in FIELDSETS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if any(name in self.errors for name in FIELD_PATHS):
            return cleaned  # type errors already sit on their fields
        data: dict[str, dict[str, Any]] = {}
        for name, path in FIELD_PATHS.items():
            section, field = path.split(".")
            data.setdefault(section, {})[field] = cleaned.get(name)
        try:
            self.spec = ExperimentSpec.from_dict(data)
        except SpecError as exc:
            for path, message in exc.errors.items():
                self.add_error(PATH_FIELDS.get(path), message)
        return cleaned


class RemedyForm(forms.Form):
    """Confirms "Apply remedy": only the new run's name is asked; the spec is the patch's."""

    name = forms.CharField(max_length=200)
