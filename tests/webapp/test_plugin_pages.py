"""Plugins on the web pages: the example's model and data set in the New experiment form with
fields generated from their configs, their options in the Tune form; with the plugin gone,
old runs stay readable and a clone says what is missing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.checkpoints import store_checkpoint
from tests.training.test_plugins import PLUGIN_SPEC
from tests.webapp.test_compare import finished_run
from tests.webapp.test_forms import form_data
from training.spec import ExperimentSpec
from webapp.experiments.compression_forms import (
    PATH_FIELDS_COMPRESS,
    CompressionForm,
    compression_initial,
)
from webapp.experiments.forms import PATH_FIELDS, ExperimentForm
from webapp.experiments.models import Experiment
from webapp.experiments.tuning_forms import TuneForm


def test_the_form_offers_the_plugins_with_fields_generated_from_their_configs(owner_client):
    # when the New experiment page is opened
    page = owner_client.get(reverse("experiment-new")).content.decode()

    # then the model and data set are choices, and each option is a field with its range,
    # unit and the plugin it applies to
    assert '<option value="mobilenet">MobileNet (plugin: depthwise-separable CNN)' in page
    assert '<option value="shapes">Shapes (plugin: synthetic images, 4 classes)' in page
    assert PATH_FIELDS["model.plugin_config.width"] == "mobilenet_width"
    assert PATH_FIELDS["data.plugin_options.rows"] == "shapes_rows"
    assert 'name="mobilenet_width" value="16" min="4" max="256"' in page
    assert "channels of the stem; between 4 and 256 channels" in page
    assert '"mobilenet_width": {"arch": ["mobilenet"]}' in page
    assert '"shapes_noise": {"dataset": ["shapes"]}' in page


def test_the_form_builds_a_plugin_spec_and_says_each_bad_option_on_its_field(owner, project):
    # when the plugins are chosen with their options, once valid and once not
    good = ExperimentForm(form_data(project, dataset="shapes", arch="mobilenet",
                                    shapes_rows="200", mobilenet_width="8", batch_size="32"),
                          user=owner)
    bad = ExperimentForm(form_data(project, dataset="shapes", arch="mobilenet",
                                   shapes_rows="20", mobilenet_width="1000"), user=owner)

    # then the spec holds just the chosen plugins' options, and each bad one is on its field
    assert good.is_valid(), good.errors
    assert good.spec is not None
    assert good.spec.model.plugin_config == {"width": 8, "blocks": 3, "dropout": 0.0}
    assert good.spec.data.plugin_options["rows"] == 200
    assert not bad.is_valid()
    assert bad.errors["mobilenet_width"] == ["must be between 4 and 256 channels"]
    assert bad.errors["shapes_rows"] == ["must be between 40 and 200000 rows"]


def test_a_built_in_model_ignores_the_plugin_fields_the_page_hides(owner, project):
    form = ExperimentForm(form_data(project, mobilenet_width="1000"), user=owner)
    assert form.is_valid(), form.errors
    assert form.spec == ExperimentSpec()


def test_a_plugin_option_left_empty_or_not_sent_takes_its_default(owner, project):
    data = form_data(project, dataset="shapes", arch="mobilenet", mobilenet_width="",
                     batch_size="32")
    del data["mobilenet_blocks"], data["shapes_rows"]
    form = ExperimentForm(data, user=owner)
    assert form.is_valid(), form.errors
    assert form.spec is not None
    assert form.spec.model.plugin_config == {"width": 16, "blocks": 3, "dropout": 0.0}
    assert form.spec.data.plugin_options["rows"] == 800


def test_the_tune_form_offers_the_plugins_numeric_options(owner, project):
    # given a plugin run as the study's base
    form = TuneForm(user=owner, base=ExperimentSpec.from_dict(PLUGIN_SPEC))

    # when its width is tuned
    paths = [row["tunable"].path for row in form.rows()]
    bound = TuneForm({"name": "s", "project": project.pk, "plugin_model_width_on": "on",
                      "plugin_model_width_low": "4", "plugin_model_width_high": "12",
                      "algorithm": "random", "objective": "val_acc", "n_trials": "2",
                      "timeout": "0", "parallelism": "1", "pruner": "none", "seed": "0"},
                     user=owner, base=ExperimentSpec.from_dict(PLUGIN_SPEC))

    # then every numeric option is a row, and the study searches it
    assert {"model.plugin_config.width", "model.plugin_config.blocks",
            "model.plugin_config.dropout", "data.plugin_options.rows"} <= set(paths)
    assert bound.is_valid(), bound.errors
    assert bound.spec is not None
    assert set(bound.spec.space) == {"model.plugin_config.width"}


# A run's spec as stored while the plugin was installed.
STORED_SPEC = ExperimentSpec.from_dict(PLUGIN_SPEC).to_dict()


@pytest.fixture
def plugin_run(make_experiment) -> Experiment:
    """A finished MobileNet run on shapes, with its curves, made while the plugin was here."""
    run = finished_run(make_experiment, "mobilenet run", 0.01, 0.9, 0.3)
    run.spec = STORED_SPEC
    run.save(update_fields=["spec"])
    return run


@pytest.mark.usefixtures("uninstalled_plugin")
def test_without_the_plugin_old_runs_stay_readable_and_a_clone_names_what_is_missing(
        owner_client, plugin_run, make_experiment):
    other = finished_run(make_experiment, "cnn run", 0.001, 0.8, 0.5)

    # when its pages are read, it is compared, and it is cloned
    detail = owner_client.get(reverse("experiment-detail", args=[plugin_run.pk]))
    diagnostics = owner_client.get(reverse("experiment-diagnostics", args=[plugin_run.pk]))
    compared = owner_client.get(reverse("compare"), {"ids": f"{plugin_run.pk},{other.pk}"})
    clone = owner_client.get(reverse("experiment-new"), {"from": plugin_run.pk}, follow=True)

    # then the pages show it, and the clone goes back to it saying which plugins are missing
    assert detail.status_code == diagnostics.status_code == compared.status_code == 200
    assert "shapes (its plugin is not installed)" in detail.content.decode()
    assert "mobilenet" in compared.content.decode()
    assert clone.redirect_chain[-1][0] == reverse("experiment-detail", args=[plugin_run.pk])
    flash = clone.content.decode()
    assert "mobilenet run cannot be cloned" in flash
    assert "no installed plugin provides a model &#x27;mobilenet&#x27;" in flash


def test_the_compress_form_offers_a_plugin_student_with_its_options(owner, make_experiment):
    # given a finished CNN run on shapes
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=ExperimentSpec.from_dict(
        {**PLUGIN_SPEC, "model": {"arch": "cnn", "width": 8}}).to_dict())
    store_checkpoint(source, b"archive")  # (not read before the job runs)

    # when it is distilled into a MobileNet student of width 4
    data = {"name": "into mobilenet", **compression_initial(source), "method": "distill",
            "student_arch": "mobilenet", "student_mobilenet_width": 4}
    data = {k: ("on" if v else "") if isinstance(v, bool) else v for k, v in data.items()}
    form = CompressionForm(data, source=source, user=owner)

    # then the job's student is that MobileNet
    assert PATH_FIELDS_COMPRESS["student.plugin_config.width"] == "student_mobilenet_width"
    assert form.is_valid(), form.errors
    assert form.spec is not None
    assert form.spec.student.plugin_config == {"width": 4, "blocks": 3, "dropout": 0.0}
