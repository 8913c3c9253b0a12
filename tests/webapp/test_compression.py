"""Compression jobs on the web: the Compress form, its refusals, the child job and its report."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from tests.checkpoints import store_checkpoint
from training import ExperimentSpec, MemoryReporter, run
from training.data.catalog import DatasetInfo
from webapp.datasets.models import Dataset
from webapp.experiments.compression import detail_context, execute_compression
from webapp.experiments.compression_forms import compression_initial
from webapp.experiments.models import Experiment

IRIS_MLP = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [32]},
            "run": {"epochs": 3, "batch_size": 32, "device": "cpu"}}


@pytest.fixture
def finished_regression(make_experiment: Any) -> Experiment:
    """A succeeded diabetes (regression) MLP run with a stored checkpoint (not a real one:
    the form reads the spec, not the weights)."""
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=ExperimentSpec.from_dict(
        {"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
         "optim": {"loss": "mse"}}).to_dict())
    store_checkpoint(source, b"archive")
    return source


@pytest.fixture
def finished(make_experiment: Any) -> Any:
    """A succeeded iris MLP run with a real checkpoint of its own."""

    def make(spec: dict[str, Any] = IRIS_MLP, **fields: Any) -> Experiment:
        experiment = make_experiment(status=Experiment.Status.SUCCEEDED,
                                     spec=ExperimentSpec.from_dict(spec).to_dict(),
                                     best_metric_name="val_acc", best_metric_value=0.9, **fields)
        workdir = settings.MEDIA_ROOT / "scratch" / str(experiment.pk)
        torch.set_num_threads(1)
        run(ExperimentSpec.from_dict(spec), MemoryReporter(), workdir)
        store_checkpoint(experiment, (workdir / "best.zip").read_bytes())
        return experiment

    return make


def _form(source: Experiment, **changes: Any) -> dict[str, Any]:
    data = {k: v for k, v in compression_initial(source).items() if v is not False}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_compress_button_shows_only_on_finished_runs(owner_client, make_experiment):
    # given a running and a succeeded run
    running = make_experiment(status=Experiment.Status.RUNNING)
    done = make_experiment(status=Experiment.Status.SUCCEEDED)
    # when their pages are shown, then only the finished one offers Compress (the running
    # one's button waits hidden, shown by the page's script when the run succeeds)
    page = owner_client.get(reverse("experiment-detail", args=[running.pk])).content.decode()
    assert re.search(r'id="compress-button"[^>]*hidden>', page)
    page = owner_client.get(reverse("experiment-detail", args=[done.pk])).content.decode()
    assert re.search(r'id="compress-button" href="[^"]+">', page)
    assert reverse("compress-new", args=[done.pk]) in page


def test_a_valid_form_queues_a_compress_job_as_a_child(owner_client, make_experiment,
                                                       django_capture_on_commit_callbacks):
    # given a finished run with a checkpoint (its content is not read before the job runs)
    source = make_experiment(status=Experiment.Status.SUCCEEDED, name="digits")
    store_checkpoint(source, b"archive")
    # when weight pruning to 80% is submitted
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                     _form(source, method="prune_weights", sparsity="0.8"))
    # then a queued compress job, child of the source, holds the job and the target spec
    job = Experiment.objects.get(kind=Experiment.Kind.COMPRESS)
    assert response.status_code == 302
    assert response["Location"] == reverse("experiment-detail", args=[job.pk])
    assert (job.parent, job.status, job.project) == (source, "queued", source.project)
    assert job.spec["compression"]["sparsity"] == 0.8
    assert job.experiment_spec.model == source.experiment_spec.model
    assert len(callbacks) == 2  # the Celery enqueue and the list-page event


def test_an_image_cnn_teacher_may_teach_an_mlp_student(owner_client, make_experiment,
                                                       django_capture_on_commit_callbacks):
    # given a finished Fashion-MNIST CNN run (an MLP reads the same images, flattened)
    spec = {"data": {"dataset": "fashion_mnist"},
            "model": {"arch": "cnn", "width": 16, "blocks": 3, "batch_norm": True}}
    source = make_experiment(status=Experiment.Status.SUCCEEDED,
                             spec=ExperimentSpec.from_dict(spec).to_dict())
    store_checkpoint(source, b"archive")
    # when its distillation into an MLP [16] is submitted
    with django_capture_on_commit_callbacks(execute=False):
        response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                     _form(source, method="distill", student_arch="mlp",
                                           student_hidden_sizes="16"))
    # then the job is queued with the MLP as the model it trains, on the teacher's data
    job = Experiment.objects.get(kind=Experiment.Kind.COMPRESS)
    assert response.status_code == 302
    target = job.experiment_spec
    assert (target.model.arch, target.model.hidden_sizes) == ("mlp", (16,))
    assert target.data == source.experiment_spec.data


@pytest.mark.parametrize("changes, field, message", [
    ({"sparsity": "1.2"}, "sparsity", "between 0 and 1"),
    ({"sparsity": "0"}, "sparsity", "between 0 and 1"),
    ({"method": "distill", "alpha": "2"}, "alpha", "between 0 and 1"),
    ({"method": "distill", "student_width": "0"}, "student_width", "between 1 and 1024"),
    ({"method": "quantize_dynamic"}, "method", "static int8 quantization of convolutions is not"),
])
def test_bad_input_is_an_error_on_its_field_and_queues_nothing(
        owner_client, make_experiment, changes, field, message):
    # given a finished CNN run (the default spec)
    source = make_experiment(status=Experiment.Status.SUCCEEDED)
    store_checkpoint(source, b"archive")
    # when the form is posted with one bad value
    response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                 _form(source, **changes))
    # then the page shows the error on that field and no job exists
    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-field-error="{field}"' in page and message in page
    assert not Experiment.objects.filter(kind=Experiment.Kind.COMPRESS).exists()


def test_an_unsuitable_method_is_reported_with_the_other_field_errors(owner_client,
                                                                     finished_regression):
    # given a finished regression run, when its distillation is asked with a bad alpha too
    source = finished_regression
    response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                 _form(source, method="distill", alpha="2"))
    # then both fields carry their error
    page = response.content.decode()
    assert 'data-field-error="method"' in page and 'data-field-error="alpha"' in page


def test_a_bad_value_left_in_another_methods_field_does_not_hold_the_job(
        owner_client, make_experiment, django_capture_on_commit_callbacks):
    # given a finished MLP run whose form was refused for a sparsity of 1.5
    source = make_experiment(status=Experiment.Status.SUCCEEDED,
                             spec=ExperimentSpec.from_dict(IRIS_MLP).to_dict())
    store_checkpoint(source, b"archive")

    # when the method is changed to quantization, which reads no sparsity, and sent again
    with django_capture_on_commit_callbacks(execute=False):
        response = owner_client.post(reverse("compress-new", args=[source.pk]), _form(
            source, method="quantize_dynamic", sparsity="1.5", steps="many"))

    # then the job is queued, the fields it hid at their defaults
    job = Experiment.objects.get(kind=Experiment.Kind.COMPRESS)
    assert response.status_code == 302
    assert (job.spec["compression"]["sparsity"], job.spec["compression"]["steps"]) == (0.5, 1)


def test_a_student_for_another_input_shape_is_refused(owner_client, make_experiment):
    # given a finished tabular run, when a CNN student is asked for
    source = make_experiment(status=Experiment.Status.SUCCEEDED,
                             spec=ExperimentSpec.from_dict(IRIS_MLP).to_dict())
    store_checkpoint(source, b"archive")
    response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                 _form(source, method="distill", student_arch="cnn"))
    # then the student's model field says why, and nothing is queued
    assert 'data-field-error="student_arch"' in response.content.decode()
    assert not Experiment.objects.filter(kind=Experiment.Kind.COMPRESS).exists()


@pytest.mark.parametrize("status", ["running", "failed", "queued"])
def test_an_unfinished_or_failed_teacher_is_refused(owner_client, make_experiment, status):
    # given a run that has not succeeded, when distillation from it is submitted
    source = make_experiment(status=status)
    response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                 _form(source, method="distill"))
    # then the form says why and nothing is queued
    page = response.content.decode()
    assert f"has {status}, not succeeded" in page
    assert 'data-field-error="__all__"' in page
    assert not Experiment.objects.filter(kind=Experiment.Kind.COMPRESS).exists()


def test_a_compression_job_opens_in_diagnostics_and_clones_as_a_training_run(
        owner_client, make_experiment):
    # given a finished distillation job, whose spec also holds the job under "compression"
    from training.compression.spec import CompressionSpec, job_spec_dict

    source = make_experiment(status=Experiment.Status.SUCCEEDED)
    job = make_experiment(status=Experiment.Status.SUCCEEDED, kind=Experiment.Kind.COMPRESS,
                          parent=source, spec=job_spec_dict(
                              CompressionSpec(source=source.pk, method="distill"),
                              source.experiment_spec))
    # when its diagnostics and clone pages are opened, then both work on the student's spec
    assert owner_client.get(reverse("experiment-diagnostics", args=[job.pk])).status_code == 200
    page = owner_client.get(reverse("experiment-new") + f"?from={job.pk}").content.decode()
    assert 'value="mlp" selected' in page


def test_another_users_run_cannot_be_compressed(stranger_client, make_experiment):
    # given someone else's finished run
    source = make_experiment(status=Experiment.Status.SUCCEEDED)
    store_checkpoint(source, b"archive")
    # when a stranger opens or posts its Compress page, then it does not exist for them
    url = reverse("compress-new", args=[source.pk])
    assert stranger_client.get(url).status_code == 404
    assert stranger_client.post(url, _form(source)).status_code == 404
    assert not Experiment.objects.filter(kind=Experiment.Kind.COMPRESS).exists()


# The worker's reporter writes from its flusher thread: the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_a_compression_job_runs_and_both_pages_show_the_report(owner_client, owner, finished):
    # given a finished iris MLP and a queued quantization of it
    from training.compression.spec import CompressionSpec
    from webapp.experiments.actions import create_compression

    source = finished(name="iris")
    job = create_compression(owner, source, "iris int8",
                             CompressionSpec(source=source.pk, method="quantize_dynamic"))
    # when the worker runs it
    execute_compression(job.pk, worker="test")
    # then it succeeded with a report and a downloadable checkpoint
    job.refresh_from_db()
    assert job.status == Experiment.Status.SUCCEEDED, job.error
    report = job.summary["report"]
    assert report["change"]["linear_weight_bytes_ratio"] > 2  # tiny rows: scales weigh in
    assert job.checkpoints.filter(tag="best").exists()
    assert job.best_metric_name == "val_acc"
    # and the job's page has the report and the source's accuracy as a reference line, the
    # source's page the table and the trade-off chart
    page = owner_client.get(reverse("experiment-detail", args=[job.pk])).content.decode()
    assert 'id="compression-report"' in page and 'data-method="quantize_dynamic"' in page
    assert 'id="compression-reference"' in page
    page = owner_client.get(reverse("experiment-detail", args=[source.pk])).content.decode()
    assert 'id="compressed-children"' in page and 'id="chart-tradeoff-size"' in page
    assert 'data-method="source"' in page


@pytest.mark.django_db(transaction=True)
def test_a_quantized_run_cannot_be_pruned_further(owner_client, owner, finished):
    # given a finished quantization job
    from training.compression.spec import CompressionSpec
    from webapp.experiments.actions import create_compression

    source = finished()
    job = create_compression(owner, source, "int8",
                             CompressionSpec(source=source.pk, method="quantize_dynamic"))
    execute_compression(job.pk, worker="test")
    job.refresh_from_db()
    # when pruning it is submitted, then the method field refuses
    response = owner_client.post(reverse("compress-new", args=[job.pk]),
                                 _form(job, method="prune_weights"))
    assert 'data-field-error="method"' in response.content.decode()
    assert Experiment.objects.filter(kind=Experiment.Kind.COMPRESS).count() == 1


def test_the_form_says_before_a_submit_which_methods_the_run_cannot_take(owner_client,
                                                                          finished_regression):
    # given a finished regression MLP run
    source = finished_regression

    # when its Compress form is opened
    form = owner_client.get(reverse("compress-new", args=[source.pk])).context["form"]

    # then the method's help names distillation and why (it was said only after a submit)
    assert form.fields["method"].help_text == (
        "Not for this run: Knowledge distillation into a smaller student: distillation needs "
        "class probabilities; diabetes is regression")


def test_the_refusal_to_distill_names_an_uploaded_data_set_by_its_name(owner_client, project,
                                                                       make_experiment):
    # given a finished regression MLP run on an uploaded table called "houses"
    houses = Dataset.objects.create(
        project=project, name="houses", kind="csv", folder="f", prepared="f/prepared.npz",
        info=DatasetInfo("upload:0", "houses", "regression", "tabular", 200, (4,), 0).to_dict())
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=ExperimentSpec.from_dict(
        {"data": {"dataset": houses.spec_name}, "model": {"arch": "mlp"},
         "optim": {"loss": "mse"}}).to_dict())
    store_checkpoint(source, b"archive")

    # when distillation is submitted for it
    response = owner_client.post(reverse("compress-new", args=[source.pk]),
                                 _form(source, method="distill"))

    # then the refusal names the set as the pages do, not by its "upload:<id>" reference
    errors = response.context["form"].errors["method"]
    assert errors == ["distillation needs class probabilities; houses is regression"]


def test_a_regressions_report_heads_its_validation_column_rmse():
    # given the report rows of a regression: an RMSE where a classifier has an accuracy
    rows = [{"name": "houses", "method": "source", "val_acc": None, "val_rmse": 56.9}]

    # when the table is drawn
    html = render_to_string("experiments/_compression_table.html", {"rows": rows})

    # then its column says RMSE, not "Val accuracy" over numbers that were none
    assert "<th>Val RMSE</th>" in html and "Val accuracy" not in html
    assert "<td>56.9000</td>" in html


def test_a_regressions_trade_off_charts_and_change_column_show_its_rmse(make_experiment):
    # given a regression source and a finished pruning job of it, measured in RMSE (a
    # regression has no accuracy: its charts plotted nothing and its change column was empty)
    source = make_experiment(status=Experiment.Status.SUCCEEDED, name="houses")
    measured = {"parameters": 321, "nonzero_parameters": 321, "weight_bytes": 1708,
                "latency_ms": 0.1, "latency_batch": 89, "threads": 1}
    report = {"method": "prune_weights", "source": {**measured, "val_rmse": 56.0},
              "result": {**measured, "nonzero_parameters": 161, "val_rmse": 58.5},
              "change": {"val_rmse_change": 2.5, "weight_bytes_ratio": 1.0}}
    make_experiment(status=Experiment.Status.SUCCEEDED, name="pruned", parent=source,
                    kind=Experiment.Kind.COMPRESS, summary={"report": report})

    # when the source's page context is built and its table drawn
    context = detail_context(source)
    html = render_to_string("experiments/_compression_table.html",
                            {"rows": context["children_rows"]})

    # then the charts plot each model's validation RMSE, named so, and the table its change
    assert [(p["acc"], p["metric"]) for p in context["trade_off"]] == [
        (56.0, "validation RMSE"), (58.5, "validation RMSE")]
    assert "<td>2.5000</td>" in html



def test_a_source_page_with_no_finished_compression_yet_draws(owner_client, make_experiment):
    # given a finished run whose only compression job is still queued (no report yet)
    source = make_experiment(status=Experiment.Status.SUCCEEDED, name="digits")
    make_experiment(name="pruned", parent=source, kind=Experiment.Kind.COMPRESS)
    # when its page is opened, then it lists the job without a table or charts
    response = owner_client.get(reverse("experiment-detail", args=[source.pk]))
    assert response.status_code == 200
    assert 'id="compressed-children"' in response.content.decode()


def test_a_compression_job_offers_no_tuning_study_of_itself(owner_client, make_experiment):
    # given a finished weight-pruning job of a finished run
    source = make_experiment(status=Experiment.Status.SUCCEEDED, name="digits")
    job = make_experiment(status=Experiment.Status.SUCCEEDED, name="pruned", parent=source,
                          kind=Experiment.Kind.COMPRESS)

    # when its page and its Tune page are opened
    page = owner_client.get(reverse("experiment-detail", args=[job.pk])).content.decode()
    tune = owner_client.get(reverse("study-new", args=[job.pk]))

    # then neither offers a study (its trials would train a dense model from scratch), while
    # the source still does
    assert 'id="tune-button"' not in page and tune.status_code == 404
    source_page = owner_client.get(reverse("experiment-detail", args=[source.pk])).content
    assert b'id="tune-button"' in source_page
