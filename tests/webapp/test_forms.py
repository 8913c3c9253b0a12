"""The experiment form validates through the spec and puts each error on its field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from training.compression.spec import CompressionSpec
from training.fieldmeta import field_meta
from training.spec import ARCH_MODALITIES, ExperimentSpec, ModelSpec
from training.tuning import TuningSpec
from webapp.experiments.compression_forms import APPLIES as COMPRESSION_APPLIES
from webapp.experiments.compression_forms import FIELDSETS as COMPRESSION_FIELDSETS
from webapp.experiments.compression_forms import PATH_FIELDS_COMPRESS, CompressionForm
from webapp.experiments.forms import (
    APPLIES,
    FIELD_PATHS,
    FIELDSETS,
    PATH_FIELDS,
    ExperimentForm,
    spec_initial,
)
from webapp.experiments.models import Experiment
from webapp.experiments.tuning_forms import STUDY_FIELDS, TuneForm
from webapp.projects.models import Project


def form_data(own_project: Project, **overrides: Any) -> dict[str, Any]:
    data = {"name": "run", "project": own_project.pk, **spec_initial(ExperimentSpec())}
    data["batch_norm"] = "on" if data["batch_norm"] else ""
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_defaults_build_the_default_spec(owner, project):
    form = ExperimentForm(form_data(project), user=owner)

    assert form.is_valid(), form.errors
    assert form.spec == ExperimentSpec()


def test_every_field_reaches_the_spec(owner, project):
    form = ExperimentForm(form_data(
        project, dataset="wine", arch="mlp", hidden_sizes="64, 32", optimizer="sgd", lr="0.05",
        momentum="0.8", weight_decay="0.001", epochs="3", batch_size="16", seed="7",
        val_fraction="0.25", dropout="0.1", batch_norm="", grad_clip="2.5",
        early_stopping_patience="4",
    ), user=owner)

    assert form.is_valid(), form.errors
    spec = form.spec
    assert spec is not None
    assert (spec.data.dataset, spec.data.val_fraction) == ("wine", 0.25)
    assert (spec.model.arch, spec.model.hidden_sizes, spec.model.dropout) == ("mlp", (64, 32), 0.1)
    assert spec.model.batch_norm is False
    assert (spec.optim.optimizer, spec.optim.lr, spec.optim.momentum) == ("sgd", 0.05, 0.8)
    assert spec.optim.weight_decay == 0.001
    assert (spec.run.epochs, spec.run.batch_size, spec.run.seed) == (3, 16, 7)
    assert (spec.run.grad_clip, spec.run.early_stopping_patience) == (2.5, 4)


# The choices under which a field is shown, and read: a bad value in a field the chosen model,
# schedule or optimizer hides is set back to its default (tests/webapp/test_form_errors.py).
SHOWN_UNDER = {"hidden_sizes": {"arch": "mlp"}, "step_factor": {"schedule": "step"}}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", "-0.1"),
        ("lr", "0"),
        ("lr", "abc"),
        ("epochs", "0"),
        ("epochs", "ten"),
        ("val_fraction", "0"),
        ("val_fraction", "1.5"),
        ("batch_size", "5000"),
        ("dropout", "1"),
        ("hidden_sizes", "64, x"),
        ("grad_clip", "-1"),
        ("early_stopping_patience", "-2"),
        ("early_stopping_patience", str(2**63)),
        ("weight_decay", "1e9"),
        ("grad_clip", "1e300"),
        ("lr", "5e-324"),
        ("seed", "123456789012345678901234567890"),
    ],
)
def test_a_bad_value_is_reported_on_its_field(owner, project, field, value):
    form = ExperimentForm(form_data(project, **SHOWN_UNDER.get(field, {}), **{field: value}),
                          user=owner)

    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_a_batch_larger_than_the_training_split_names_the_split_size(owner, project):
    form = ExperimentForm(form_data(project, batch_size="1500"), user=owner)

    assert not form.is_valid()
    assert "1437 rows" in form.errors["batch_size"][0]


def test_a_cnn_on_tabular_data_is_refused_on_the_model_field(owner, project):
    form = ExperimentForm(form_data(project, dataset="wine", arch="cnn"), user=owner)

    assert not form.is_valid()
    assert "needs image data" in form.errors["arch"][0]


def test_mse_on_a_classification_label_is_refused_on_the_loss_field(owner, project):
    form = ExperimentForm(form_data(project, loss="mse"), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["loss"]


def test_only_the_users_projects_can_be_chosen(owner, stranger, project):
    foreign = Project.objects.create(name="theirs")
    foreign.members.add(stranger)

    data = {**form_data(project), "project": foreign.pk}

    form = ExperimentForm(data, user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["project"]


# --- losses, optimizers, schedules and training control ------------------------------------


def test_every_training_option_reaches_the_spec(owner, project):
    form = ExperimentForm(form_data(
        project, dataset="iris", arch="mlp", optimizer="sgd", nesterov="on",
        label_smoothing="0.1", class_weights="balanced", huber_delta="2", schedule="one_cycle",
        warmup="3", warmup_unit="epochs", step_epochs="4", step_factor="0.5",
        decay_per_epoch="0.9", min_lr="0.0001", pct_start="0.2", plateau_factor="0.2",
        plateau_patience="2", l1="0.001", monitor="val_loss", restore_best="",
        grad_accumulation="2", precision="fp32", compile="on", batch_size="16",
    ), user=owner)

    assert form.is_valid(), form.errors
    spec = form.spec
    assert spec is not None
    assert (spec.optim.optimizer, spec.optim.nesterov) == ("sgd", True)
    assert (spec.optim.label_smoothing, spec.optim.class_weights) == (0.1, "balanced")
    assert spec.optim.huber_delta == 2.0
    assert spec.schedule.to_dict() == {
        "kind": "one_cycle", "warmup": 3, "warmup_unit": "epochs", "step_epochs": 4,
        "step_factor": 0.5, "decay_per_epoch": 0.9, "min_lr": 0.0001, "pct_start": 0.2,
        "plateau_factor": 0.2, "plateau_patience": 2}
    assert spec.regularization.l1 == 0.001
    assert (spec.run.monitor, spec.run.restore_best) == ("val_loss", False)
    assert (spec.run.grad_accumulation, spec.run.precision, spec.run.compile) == (2, "fp32",
                                                                                  True)


def test_every_spec_field_has_a_form_field_in_a_fieldset():
    # given every field of every section of the experiment spec (but the plugin options'
    # dicts, whose form fields are each plugin's options: tests/webapp/test_plugin_pages.py)
    spec_paths = {f"{section}.{f.name}" for section, cls in ExperimentSpec.sections.items()
                  for f in dataclasses.fields(cls)
                  if f.name not in ("plugin_config", "plugin_options")}

    # then each has a form field, and each form field sits in a fieldset
    assert spec_paths - set(PATH_FIELDS) == set()
    assert all(PATH_FIELDS[path] in ExperimentForm.base_fields for path in spec_paths)
    assert {name for _, names in FIELDSETS for name in names} >= set(FIELD_PATHS)


def test_every_numeric_field_shows_its_range_on_the_page(owner):
    # given the rendered form
    form = ExperimentForm(initial=spec_initial(ExperimentSpec()), user=owner)

    for section, cls in ExperimentSpec.sections.items():
        for f in dataclasses.fields(cls):
            meta = field_meta(f)
            if str(f.type) not in ("int", "float") or meta is None:
                continue
            # when a number field is rendered
            html = str(form[PATH_FIELDS[f"{section}.{f.name}"]])

            # then the browser knows its bounds
            assert 'min="' in html and 'max="' in html, (section, f.name, html)


def test_a_field_without_a_real_maximum_says_or_more_not_the_inputs_bound(owner, project):
    # given the forms that start runs: New experiment, Tune and Compress (its student's fields)
    fields = [ExperimentForm.base_fields, TuneForm(user=owner, base=ExperimentSpec()).fields,
              CompressionForm.base_fields]

    # then no help text names the number input's exact limit (2**53 - 1) as a bound
    hints = {name: str(field.help_text) for form in fields for name, field in form.items()}
    assert [name for name, hint in hints.items() if str(2**53 - 1) in hint] == []
    # and "Start from run #" says what it takes
    assert hints[PATH_FIELDS["model.init_from"]].endswith("; 0 or more")

    # when a negative run number is submitted, the error says the same
    form = ExperimentForm(form_data(project, **{PATH_FIELDS["model.init_from"]: "-1"}),
                          user=owner)
    assert not form.is_valid()
    assert form.errors[PATH_FIELDS["model.init_from"]] == ["must be 0 or more"]


# A non-default value for each field type, so a field the form drops shows in the round trip.
def _changed(spec: ExperimentSpec) -> ExperimentSpec:
    return spec.patched({
        "model": {"activation": "gelu", "dropout": 0.25, "width": 16, "blocks": 3, "depth": 3,
                  "hidden_sizes": [64, 32], "embed_dim": 96, "hidden_size": 48, "layers": 2,
                  "heads": 3, "bidirectional": False, "positional": "sinusoidal",
                  "max_length": 48, "vocab_size": 5000, "min_freq": 3, "freeze_encoder": True,
                  "batch_norm": False},
        "optim": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.8, "weight_decay": 1e-4,
                  "nesterov": True, "label_smoothing": 0.05},
        "schedule": {"kind": "cosine", "min_lr": 1e-5, "warmup": 10, "step_epochs": 4,
                     "step_factor": 0.5, "decay_per_epoch": 0.9, "pct_start": 0.2,
                     "plateau_factor": 0.2, "plateau_patience": 2},
        "run": {"epochs": 3, "batch_size": 32, "seed": 4294967295, "grad_clip": 1.5,
                "early_stopping_patience": 2, "restore_best": False, "grad_accumulation": 2,
                "monitor": "val_loss", "precision": "fp32", "compile": True, "device": "cpu"},
        "data": {"val_fraction": 0.25, "subset": 400},
        "regularization": {"l1": 1e-5},
    })


@pytest.mark.parametrize("arch", ModelSpec.choices["arch"])
def test_a_cloned_spec_comes_back_identical_for_every_architecture(owner, project, arch):
    # given a run of this architecture with GELU and non-default values everywhere
    dataset = "digits" if "image" in ARCH_MODALITIES[arch] else "sst2"
    spec = _changed(ExperimentSpec()).patched({"model": {"arch": arch},
                                               "data": {"dataset": dataset}})

    # when it is cloned: its values fill the form, and the form is posted as it is
    initial = spec_initial(spec)
    post = {k: ("on" if v is True else "" if v is False else v) for k, v in initial.items()}
    form = ExperimentForm({"name": "clone", "project": project.pk, **post}, user=owner)

    # then the new run's spec is the same spec
    assert form.is_valid(), form.errors
    assert form.spec == spec


def test_the_tune_form_starts_from_the_tuning_spec_defaults(owner):
    # given the Tune form of a default run
    form = TuneForm(user=owner, base=ExperimentSpec())
    defaults = TuningSpec()

    # then each study field starts at the spec's default
    for name in STUDY_FIELDS:
        assert form[name].initial == getattr(defaults, name), name
    # and every TuningSpec field is either on the form or derived by it
    for f in dataclasses.fields(TuningSpec):
        meta = field_meta(f)
        assert meta is not None and (f.name in STUDY_FIELDS or not meta.form), f.name


def test_every_compression_spec_field_has_a_form_field():
    # given every field of the compression spec, the student's model fields included
    paths = {f.name for f in dataclasses.fields(CompressionSpec)} - {"student", "source"}
    paths |= {f"student.{f.name}" for f in dataclasses.fields(ModelSpec)
              if f.name != "plugin_config"}  # its plugins' options: test_plugin_pages.py

    # then each has a form field in a fieldset
    assert paths - set(PATH_FIELDS_COMPRESS) == set()
    in_fieldsets = {name for _, names in COMPRESSION_FIELDSETS for name in names}
    assert {PATH_FIELDS_COMPRESS[p] for p in paths} <= in_fieldsets <= set(
        CompressionForm.base_fields)


def test_fields_that_do_not_apply_are_marked_for_hiding():
    # the page's script hides schedule parameters under "Constant", momentum under Adam and
    # the student's fields under pruning
    assert "constant" not in APPLIES["min_lr"]["schedule"]
    assert "adam" not in APPLIES["momentum"]["optimizer"]
    assert COMPRESSION_APPLIES["student_width"] == {"method": ["distill"],
                                                    "student_arch": ["cnn", "resnet"]}
    assert COMPRESSION_APPLIES["sparsity"] == {"method": ["prune_weights", "prune_channels"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # one per section and kind of check; tests/training/test_optimization_spec.py has
        # every field
        ("label_smoothing", "1"),
        ("warmup", "1.5"),
        ("step_factor", "2"),
        ("l1", "-0.5"),
        ("grad_accumulation", "0"),
        ("monitor", "val_rmse"),  # digits is a classification task
        ("schedule", "cyclic"),
    ],
)
def test_a_bad_training_option_is_reported_on_its_field(owner, project, field, value):
    form = ExperimentForm(form_data(project, **SHOWN_UNDER.get(field, {}), **{field: value}),
                          user=owner)

    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_a_warmup_longer_than_the_run_is_refused_on_the_warmup_field(owner, project):
    form = ExperimentForm(form_data(project, warmup="15", warmup_unit="epochs"), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["warmup"]
    assert "345 steps" in form.errors["warmup"][0]


def test_class_weights_left_under_a_regression_loss_are_not_applied(owner, project):
    # given balanced class weights chosen before a regression loss hid the field
    form = ExperimentForm(form_data(project, dataset="diabetes", arch="mlp", loss="huber",
                                    class_weights="balanced"), user=owner)

    # then the run has none, as its page showed
    assert form.is_valid(), form.errors
    assert form.spec is not None and form.spec.optim.class_weights == "none"


def test_a_model_no_worker_can_hold_is_refused_on_its_field_with_the_estimate(owner, project):
    # given the finding's MLP on MNIST: 16 layers of 65,536 units
    form = ExperimentForm(form_data(project, dataset="mnist", arch="mlp",
                                    hidden_sizes=", ".join(["65536"] * 16)), user=owner)

    # then the form refuses it on the sizes, with the estimate and the limit
    assert not form.is_valid()
    (message,) = form.errors["hidden_sizes"]
    assert message.startswith("about 6.4e10 parameters")
    assert "the limit is 64 GB per run" in message


def test_more_devices_than_the_workers_have_are_refused_on_the_field(owner, project, settings):
    form = ExperimentForm(form_data(project, device="cpu", devices="64"), user=owner)

    assert not form.is_valid()
    assert form.errors["devices"] == [
        f"this deployment's workers have at most {settings.FITBOARD_MAX_DEVICES} devices for "
        "one run"]


def test_the_compress_form_says_a_text_student_reads_its_teachers_vocabulary(owner,
                                                                             make_experiment):
    # given a finished LSTM teacher (up to 5,000 words seen twice, cut at 40 tokens)
    teacher = make_experiment(status=Experiment.Status.SUCCEEDED, spec=ExperimentSpec.from_dict(
        {"data": {"dataset": "sst2"}, "model": {"arch": "lstm", "vocab_size": 5000,
                                                "min_freq": 2, "max_length": 40}}).to_dict())
    # when its Compress form is drawn, the student's vocabulary fields say the teacher's is used
    form = CompressionForm(source=teacher, user=owner)
    said = {name: form.fields[name].help_text
            for name in ("student_vocab_size", "student_min_freq", "student_max_length")}
    assert "teacher's is used (up to 5,000 words)" in said["student_vocab_size"]
    assert "(2)" in said["student_min_freq"] and "40 tokens" in said["student_max_length"]
    # and an image teacher's form says nothing of the kind
    image = make_experiment(status=Experiment.Status.SUCCEEDED)
    assert "teacher's" not in CompressionForm(source=image, user=owner).fields[
        "student_vocab_size"].help_text
