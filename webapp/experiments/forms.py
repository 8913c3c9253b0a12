"""The experiment form: its fields are spec fields, and the spec does the validating."""

from __future__ import annotations

from typing import Any

from django import forms

from training.data.catalog import CATALOG
from training.spec import ExperimentSpec, ModelSpec, OptimSpec, RunSpec, ScheduleSpec, SpecError
from webapp.experiments.models import Project

# Form field → spec path. The spec's own defaults are the form's initial values.
FIELD_PATHS = {
    "dataset": "data.dataset",
    "val_fraction": "data.val_fraction",
    "test_fraction": "data.test_fraction",
    "subset": "data.subset",
    "augment_crop": "data.augment_crop",
    "augment_flip": "data.augment_flip",
    "augment_rotation": "data.augment_rotation",
    "augment_noise": "data.augment_noise",
    "arch": "model.arch",
    "hidden_sizes": "model.hidden_sizes",
    "width": "model.width",
    "blocks": "model.blocks",
    "depth": "model.depth",
    "batch_norm": "model.batch_norm",
    "dropout": "model.dropout",
    "embed_dim": "model.embed_dim",
    "hidden_size": "model.hidden_size",
    "layers": "model.layers",
    "bidirectional": "model.bidirectional",
    "heads": "model.heads",
    "positional": "model.positional",
    "pretrained": "model.pretrained",
    "freeze_encoder": "model.freeze_encoder",
    "max_length": "model.max_length",
    "vocab_size": "model.vocab_size",
    "min_freq": "model.min_freq",
    "loss": "optim.loss",
    "optimizer": "optim.optimizer",
    "lr": "optim.lr",
    "momentum": "optim.momentum",
    "weight_decay": "optim.weight_decay",
    "nesterov": "optim.nesterov",
    "label_smoothing": "optim.label_smoothing",
    "class_weights": "optim.class_weights",
    "huber_delta": "optim.huber_delta",
    "schedule": "schedule.kind",
    "warmup": "schedule.warmup",
    "warmup_unit": "schedule.warmup_unit",
    "step_epochs": "schedule.step_epochs",
    "step_factor": "schedule.step_factor",
    "decay_per_epoch": "schedule.decay_per_epoch",
    "min_lr": "schedule.min_lr",
    "pct_start": "schedule.pct_start",
    "plateau_factor": "schedule.plateau_factor",
    "plateau_patience": "schedule.plateau_patience",
    "l1": "regularization.l1",
    "epochs": "run.epochs",
    "batch_size": "run.batch_size",
    "seed": "run.seed",
    "grad_clip": "run.grad_clip",
    "early_stopping_patience": "run.early_stopping_patience",
    "monitor": "run.monitor",
    "restore_best": "run.restore_best",
    "grad_accumulation": "run.grad_accumulation",
    "precision": "run.precision",
    "compile": "run.compile",
    "device": "run.device",
    "devices": "run.devices",
}
PATH_FIELDS = {path: name for name, path in FIELD_PATHS.items()}

LABELS = {
    "arch": {"mlp": "MLP", "cnn": "CNN", "resnet": "ResNet", "lstm": "LSTM", "gru": "GRU",
             "transformer": "Transformer (from scratch)",
             "pretrained": "Pretrained (Hugging Face)"},
    "positional": {"learned": "Learned", "sinusoidal": "Sinusoidal (fixed)"},
    "loss": {"cross_entropy": "Cross-entropy (classification)", "mse": "MSE (regression)",
             "mae": "MAE / L1 (regression)", "huber": "Huber (regression)"},
    "optimizer": {"adam": "Adam", "adamw": "AdamW (decoupled weight decay)",
                  "sgd": "SGD with momentum", "rmsprop": "RMSprop"},
    "class_weights": {"none": "None", "balanced": "Balanced (from the training split)"},
    "schedule": {"constant": "Constant", "step": "Step decay", "exponential": "Exponential decay",
                 "cosine": "Cosine annealing", "one_cycle": "One-cycle",
                 "plateau": "Reduce on plateau"},
    "monitor": {"auto": "Auto (accuracy, or loss for regression)",
                "val_loss": "Validation loss", "val_acc": "Validation accuracy",
                "val_rmse": "Validation RMSE", "val_mae": "Validation MAE"},
    "precision": {"auto": "Auto (bf16 on CUDA, float32 on CPU)", "bf16": "bf16 autocast (CUDA)",
                  "fp32": "float32"},
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


# The architectures each model field applies to (fields not listed apply to all); the page's
# script shows only the relevant ones.
ARCH_FIELDS = {
    "hidden_sizes": ["mlp"],
    "width": ["cnn", "resnet"],
    "blocks": ["cnn", "resnet"],
    "depth": ["resnet"],
    "batch_norm": ["cnn", "resnet"],
    "embed_dim": ["lstm", "gru", "transformer"],
    "hidden_size": ["lstm", "gru"],
    "layers": ["lstm", "gru", "transformer"],
    "bidirectional": ["lstm", "gru"],
    "heads": ["transformer"],
    "positional": ["transformer"],
    "pretrained": ["pretrained"],
    "freeze_encoder": ["pretrained"],
    "max_length": ["lstm", "gru", "transformer", "pretrained"],
    "vocab_size": ["lstm", "gru", "transformer"],
    "min_freq": ["lstm", "gru", "transformer"],
}


# How the form is laid out: a legend per group of fields.
FIELDSETS = [
    ("Experiment", ["name", "project"]),
    ("Data", ["dataset", "val_fraction", "test_fraction", "subset"]),
    ("Augmentation (images, training batches only)",
     ["augment_crop", "augment_flip", "augment_rotation", "augment_noise"]),
    ("Model", ["arch", "hidden_sizes", "width", "blocks", "depth", "batch_norm", "embed_dim",
               "hidden_size", "layers", "bidirectional", "heads", "positional", "pretrained",
               "freeze_encoder", "dropout"]),
    ("Text input", ["max_length", "vocab_size", "min_freq"]),
    ("Loss and optimizer", ["loss", "optimizer", "lr", "momentum", "weight_decay"]),
    ("Loss and optimizer options", ["nesterov", "label_smoothing", "class_weights",
                                    "huber_delta"]),
    ("Learning-rate schedule", ["schedule", "warmup", "warmup_unit", "step_epochs",
                                "step_factor", "decay_per_epoch", "min_lr", "pct_start",
                                "plateau_factor", "plateau_patience"]),
    ("Run", ["epochs", "batch_size", "seed", "grad_clip", "early_stopping_patience", "device",
             "devices"]),
    ("Training control", ["monitor", "restore_best", "l1", "grad_accumulation", "precision",
                          "compile"]),
]


def dataset_choices(user: Any) -> list[tuple[str, Any]]:
    """Built-in datasets, then the uploads of the user's projects ("upload:<id>")."""
    from webapp.datasets.models import Dataset

    uploads = [(d.spec_name, f"{d.name} (#{d.pk}, {d.project.name})")
               for d in Dataset.objects.visible_to(user).select_related("project")]
    builtin = [(k, v.title) for k, v in CATALOG.items()]
    return [("Built-in", builtin), ("Uploaded", uploads)] if uploads else builtin


def upload_in_other_project(name: str, project: Project | None) -> str:
    """Why an uploaded dataset cannot be used in ``project`` ("" when it can): a run may only
    read data of its own project."""
    from webapp.datasets.models import Dataset, upload_id

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
    dataset = forms.ChoiceField(choices=[(k, v.title) for k, v in CATALOG.items()])
    val_fraction = forms.FloatField(label="Validation fraction",
                                    help_text="Share of rows held out, between 0 and 1")
    test_fraction = forms.FloatField(
        label="Test fraction",
        help_text="held out and evaluated once at the end; 0 = none. MNIST and Fashion-MNIST "
                  "use their official test set")
    subset = forms.IntegerField(label="Subset (rows)",
                                help_text="train on a stratified sample of this many rows; 0 = all")
    augment_crop = forms.IntegerField(label="Random crop padding",
                                      help_text="pixels of padding; 0 = off")
    augment_flip = forms.BooleanField(label="Horizontal flip", required=False)
    augment_rotation = forms.FloatField(label="Rotation", help_text="max degrees; 0 = off")
    augment_noise = forms.FloatField(label="Gaussian noise", help_text="std; 0 = off")
    arch = forms.ChoiceField(label="Model", choices=_choices("arch", ModelSpec.choices["arch"]))
    hidden_sizes = forms.CharField(label="MLP hidden sizes", help_text="e.g. 256, 128")
    width = forms.IntegerField(label="Width", help_text="channels of the first block or stage")
    blocks = forms.IntegerField(label="Blocks / stages",
                                help_text="CNN blocks, or ResNet stages; each halves the size")
    depth = forms.IntegerField(label="ResNet depth", help_text="residual blocks per stage")
    batch_norm = forms.BooleanField(label="Batch normalization", required=False)
    embed_dim = forms.IntegerField(label="Embedding size",
                                   help_text="Transformer: the model width")
    hidden_size = forms.IntegerField(label="Hidden size", help_text="units per direction")
    layers = forms.IntegerField(label="Layers")
    bidirectional = forms.BooleanField(required=False)
    heads = forms.IntegerField(label="Attention heads", help_text="must divide the embedding size")
    positional = forms.ChoiceField(label="Position embedding",
                                   choices=_choices("positional", ModelSpec.choices["positional"]))
    pretrained = forms.CharField(label="Pretrained model",
                                 help_text="Hugging Face hub name or a local model directory")
    freeze_encoder = forms.BooleanField(label="Freeze the encoder", required=False,
                                        help_text="train only the new classifier head")
    max_length = forms.IntegerField(label="Max length", help_text="tokens per text")
    vocab_size = forms.IntegerField(label="Vocabulary size", help_text="most frequent words kept")
    min_freq = forms.IntegerField(label="Min word frequency",
                                  help_text="rarer words become <unk>")
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
    nesterov = forms.BooleanField(label="Nesterov momentum (SGD)", required=False)
    label_smoothing = forms.FloatField(
        help_text="cross-entropy: share of the target spread over all classes, in [0, 1)")
    class_weights = forms.ChoiceField(
        label="Class weights (cross-entropy)",
        choices=_choices("class_weights", OptimSpec.choices["class_weights"]))
    huber_delta = forms.FloatField(
        label="Huber delta", help_text="where the loss turns linear, in standard deviations")
    schedule = forms.ChoiceField(label="Schedule",
                                 choices=_choices("schedule", ScheduleSpec.choices["kind"]))
    warmup = forms.IntegerField(label="Linear warmup",
                                help_text="length in the unit below, in front of the schedule; "
                                          "0 = off")
    warmup_unit = forms.ChoiceField(label="Warmup unit",
                                    choices=_choices("warmup_unit",
                                                     ScheduleSpec.choices["warmup_unit"]))
    step_epochs = forms.IntegerField(label="Step decay: epochs between decays")
    step_factor = forms.FloatField(label="Step decay: factor",
                                   help_text="learning rate multiplier at each decay")
    decay_per_epoch = forms.FloatField(label="Exponential: factor per epoch")
    min_lr = forms.FloatField(label="Cosine: final learning rate")
    pct_start = forms.FloatField(label="One-cycle: rising share",
                                 help_text="share of the steps spent rising to the learning "
                                           "rate")
    plateau_factor = forms.FloatField(label="Plateau: factor",
                                      help_text="multiplier when the monitored metric stalls")
    plateau_patience = forms.IntegerField(label="Plateau: patience",
                                          help_text="epochs without improvement before "
                                                    "reducing")
    monitor = forms.ChoiceField(label="Monitored metric",
                                choices=_choices("monitor", RunSpec.choices["monitor"]),
                                help_text="picks the best checkpoint; early stopping and "
                                          "reduce-on-plateau watch it")
    restore_best = forms.BooleanField(label="Restore the best weights after early stopping",
                                      required=False)
    l1 = forms.FloatField(label="L1 penalty", help_text="coefficient of Σ|w| added to the loss; "
                                                       "0 = off")
    grad_accumulation = forms.IntegerField(label="Gradient accumulation",
                                           help_text="batches per optimizer step")
    precision = forms.ChoiceField(label="Mixed precision",
                                  choices=_choices("precision", RunSpec.choices["precision"]))
    compile = forms.BooleanField(label="torch.compile", required=False,
                                 help_text="slow to start; faster steps on a GPU")
    device = forms.ChoiceField(label="Device", choices=_choices("device",
                                                                RunSpec.choices["device"]),
                               help_text="auto: a GPU worker's GPU, else the CPU; cpu runs go "
                                         "to CPU workers")
    devices = forms.IntegerField(label="Devices", initial=1,
                                 help_text="GPUs for one data-parallel run (DDP); the job waits "
                                           "for a worker that has that many")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.filter(members=user).order_by("name")  # type: ignore[attr-defined]
        self.fields["dataset"].choices = dataset_choices(user)  # type: ignore[attr-defined]
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
        upload = upload_in_other_project(cleaned.get("dataset", ""), cleaned.get("project"))
        if upload:
            self.add_error("dataset", upload)
            return cleaned
        try:
            self.spec = ExperimentSpec.from_dict(data)
        except SpecError as exc:
            for path, message in exc.errors.items():
                self.add_error(PATH_FIELDS.get(path), message)
        return cleaned


class RemedyForm(forms.Form):
    """Confirms "Apply remedy": only the new run's name is asked; the spec is the patch's."""

    name = forms.CharField(max_length=200)
