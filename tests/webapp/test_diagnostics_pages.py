"""The diagnostics page and "Apply remedy": verdicts from stored histories, remedies as new runs."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.experiments import diagnosis, metric_store
from webapp.experiments.models import Experiment
from webapp.tracking import ingest

# An MLP on digits that overfits: training loss keeps falling, validation loss turns at epoch 6.
TRAIN_LOSS = [2.0, 1.2, 0.8, 0.5, 0.32, 0.2, 0.12, 0.07, 0.04, 0.02, 0.01, 0.006]
VAL_LOSS = [2.05, 1.3, 0.95, 0.75, 0.66, 0.64, 0.67, 0.72, 0.79, 0.86, 0.94, 1.02]
OVERFIT_SPEC = ExperimentSpec().patched({"model": {"arch": "mlp", "hidden_sizes": [512, 512]}})


def store_history(experiment: Experiment, history: dict[str, list[float]],
                  steps_per_epoch: int = 10) -> None:
    """Log epoch metrics the way the loop does: at each epoch's last step, with "epoch"."""
    points: dict[str, list[metric_store.Point]] = {}
    for index in range(len(history["train_loss"])):
        step = (index + 1) * steps_per_epoch
        for key, values in {**history, "epoch": [i + 1.0 for i in range(99)]}.items():
            points.setdefault(key, []).append((step, values[index], 1e9 + step))
    metric_store.append(experiment.pk, points)


@pytest.fixture
def overfit_run(make_experiment) -> Experiment:
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED, name="wide mlp",
                                 spec=OVERFIT_SPEC.to_dict())
    store_history(experiment, {
        "train_loss": TRAIN_LOSS, "val_loss": VAL_LOSS,
        "train_acc": [min(0.5 + 0.05 * i, 1.0) for i in range(12)],
        "val_acc": [0.5, 0.6, 0.7, 0.78, 0.82, 0.84, 0.84, 0.83, 0.83, 0.82, 0.82, 0.81],
    })
    experiment.verdict = diagnosis.final_verdict(experiment, nonfinite_loss=False)
    experiment.verdict_kind = experiment.verdict["kind"]
    experiment.summary = {"final_metrics": {"train_loss": TRAIN_LOSS[-1], "val_loss": VAL_LOSS[-1]}}
    experiment.save()
    return experiment


def test_the_stored_history_is_read_back_one_value_per_epoch(overfit_run):
    history = diagnosis.epoch_history(overfit_run.pk)

    assert history["train_loss"] == TRAIN_LOSS
    assert history["val_loss"] == VAL_LOSS


def test_the_diagnostics_page_shows_the_verdict_its_evidence_and_remedies(owner_client,
                                                                          overfit_run):
    body = owner_client.get(reverse("experiment-diagnostics", args=[overfit_run.pk])).content
    page = body.decode()

    assert overfit_run.verdict["kind"] == "overfitting"
    assert 'id="verdict-kind">overfitting<' in page
    assert overfit_run.verdict["headline"] in page
    assert f"onset at epoch {overfit_run.verdict['onset_epoch']}" in page
    for remedy in overfit_run.verdict["remedies"]:
        assert remedy["title"] in page
        if remedy["patch"]:
            assert reverse("remedy-apply", args=[overfit_run.pk, remedy["key"]]) in page


def test_a_failed_run_on_a_nan_loss_is_diagnosed_diverging(make_experiment):
    experiment = make_experiment(status=Experiment.Status.FAILED)
    store_history(experiment, {
        "train_loss": [2.3, 2.1, 2.6, 9.0], "val_loss": [2.2, 2.2, 3.0, 12.0],
        "train_acc": [0.2, 0.3, 0.2, 0.1], "val_acc": [0.2, 0.3, 0.2, 0.1],
    })

    verdict = diagnosis.final_verdict(experiment, nonfinite_loss=True)

    assert verdict["kind"] == "diverging"


def test_a_run_that_overflowed_in_its_first_epoch_is_diverging_not_too_short(make_experiment):
    # Given a run (SGD at lr 10) whose loss became inf at step 4, before any epoch ended
    experiment = make_experiment(status=Experiment.Status.FAILED)
    metric_store.append(experiment.pk, {"loss": [(1, 2.0, 1e9), (2, 40.0, 1e9 + 1)]})

    # When its final verdict is taken
    verdict = diagnosis.final_verdict(experiment, nonfinite_loss=True)

    # Then it says diverging, with remedies, not "too short to tell"
    assert verdict["kind"] == "diverging"
    assert "epoch 1" in verdict["headline"]
    assert verdict["remedies"]


def test_applying_a_remedy_shows_the_diff_then_queues_a_linked_run(owner_client, overfit_run):
    remedy = next(r for r in overfit_run.verdict["remedies"] if r["patch"])
    url = reverse("remedy-apply", args=[overfit_run.pk, remedy["key"]])
    expected = OVERFIT_SPEC.patched(remedy["patch"])

    preview = owner_client.get(url).content.decode()
    response = owner_client.post(url, {"name": "wide mlp, remedied"})

    # the preview lists each changed field with its old and new value
    for path, old, new in diagnosis.spec_changes(OVERFIT_SPEC, expected):
        assert f"<code>{path}</code>" in preview
        assert f'class="old">{old}<' in preview and f'class="new">{new}<' in preview
    child = Experiment.objects.get(name="wide mlp, remedied")
    assert response.status_code == 302 and response["Location"] == f"/experiments/{child.pk}/"
    assert (child.parent_id, child.status, child.project_id) == (
        overfit_run.pk, Experiment.Status.QUEUED, overfit_run.project_id)
    assert child.spec == expected.to_dict()
    assert child.remedy == {k: remedy[k] for k in ("key", "title", "patch")}


def test_a_remedy_run_shows_whether_the_gap_shrank(owner_client, overfit_run, make_experiment):
    remedy = next(r for r in overfit_run.verdict["remedies"] if r["patch"])
    child = make_experiment(status=Experiment.Status.SUCCEEDED, parent=overfit_run,
                            remedy={k: remedy[k] for k in ("key", "title", "patch")},
                            summary={"final_metrics": {"train_loss": 0.3, "val_loss": 0.45}})

    page = owner_client.get(reverse("experiment-diagnostics", args=[child.pk])).content.decode()

    parent_gap = VAL_LOSS[-1] - TRAIN_LOSS[-1]
    assert f"{parent_gap:.4f} → <strong>0.1500</strong>" in page
    assert "the gap shrank" in page


def test_a_remedy_run_of_a_slow_run_shows_whether_the_validation_loss_fell(
        owner_client, make_experiment):
    # given a run that learned slowly (loss 0.62, gap 0.011), and its higher learning rate
    # run, which reached a lower loss with a wider gap
    slow = make_experiment(status=Experiment.Status.SUCCEEDED, name="slow",
                           verdict={"kind": "slow", "headline": "Learning slowly"},
                           summary={"final_metrics": {"train_loss": 0.608, "val_loss": 0.619}})
    child = make_experiment(status=Experiment.Status.SUCCEEDED, parent=slow,
                            remedy={"key": "higher_lr", "title": "Raise the learning rate",
                                    "patch": {"optim": {"lr": 3e-05}}},
                            summary={"final_metrics": {"train_loss": 0.550, "val_loss": 0.566}})

    # when its diagnostics are shown
    page = owner_client.get(reverse("experiment-diagnostics", args=[child.pk])).content.decode()

    # then it is measured on the validation loss, which fell, not on the gap
    assert "Final validation loss: 0.6190 → <strong>0.5660</strong>" in page
    assert '<span class="good">it fell</span>' in page
    assert "gap" not in page.split('id="remedy-result"')[1].split("</section>")[0]


def test_a_compression_jobs_remedies_are_advice_with_no_apply(owner_client, overfit_run,
                                                                make_experiment):
    # given a pruning job of a run whose fine-tuning curves overfit (the same verdict)
    job = make_experiment(status=Experiment.Status.SUCCEEDED, name="pruned",
                          kind=Experiment.Kind.COMPRESS, parent=overfit_run,
                          spec=OVERFIT_SPEC.to_dict(), verdict=overfit_run.verdict,
                          verdict_kind=overfit_run.verdict_kind)
    key = next(r for r in job.verdict["remedies"] if r["patch"])["key"]

    # when its diagnostics page is opened and a remedy applied anyway
    page = owner_client.get(reverse("experiment-diagnostics", args=[job.pk])).content.decode()
    response = owner_client.post(reverse("remedy-apply", args=[job.pk, key]), {"name": "x"})

    # then the page says why there is no Apply (it queued the job's spec as a plain run from
    # scratch, without the pruning), and nothing is queued
    assert "Apply remedy" not in page and "Verify over" not in page
    assert f"apply it to run #{overfit_run.pk}" in page
    assert response.status_code == 404
    assert not Experiment.objects.filter(parent=job).exists()


def test_an_unknown_or_advice_only_remedy_is_not_found(owner_client, overfit_run):
    advice = [r["key"] for r in overfit_run.verdict["remedies"] if not r["patch"]]

    for key in ["no-such-remedy", *advice]:
        response = owner_client.get(reverse("remedy-apply", args=[overfit_run.pk, key]))
        assert response.status_code == 404


def test_another_users_diagnostics_and_remedies_are_not_found(stranger_client, overfit_run):
    remedy = next(r for r in overfit_run.verdict["remedies"] if r["patch"])

    page = stranger_client.get(reverse("experiment-diagnostics", args=[overfit_run.pk]))
    apply = stranger_client.post(reverse("remedy-apply", args=[overfit_run.pk, remedy["key"]]),
                                 {"name": "stolen"})

    assert (page.status_code, apply.status_code) == (404, 404)
    assert not Experiment.objects.filter(name="stolen").exists()


def test_applying_a_remedy_needs_a_csrf_token(owner, overfit_run):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    remedy = next(r for r in overfit_run.verdict["remedies"] if r["patch"])

    response = client.post(reverse("remedy-apply", args=[overfit_run.pk, remedy["key"]]),
                           {"name": "forged"})

    assert response.status_code == 403
    assert not Experiment.objects.filter(name="forged").exists()


def test_the_run_list_shows_each_runs_verdict(owner_client, overfit_run):
    page = owner_client.get("/").content.decode()

    assert f'href="/experiments/{overfit_run.pk}/diagnostics/">overfitting</a>' in page


@pytest.mark.parametrize(("status", "error", "said"), [
    (Experiment.Status.FAILED, "CUDA out of memory",
     "No curves to draw: the run failed before its first epoch completed (CUDA out of memory)."),
    (Experiment.Status.CANCELLED, "",
     "No curves to draw: the run was cancelled before its first epoch completed."),
    (Experiment.Status.QUEUED, "",
     "No verdict yet: the run has not started: its curves grow from its first epoch on."),
    (Experiment.Status.RUNNING, "",
     "No verdict yet: no epoch has completed: the curves grow from the first one on."),
])
def test_a_run_without_a_curve_says_why_in_place_of_blank_charts(
        owner_client, make_experiment, status, error, said):
    # given a run that has no epoch to draw (before: its chart cards were drawn blank)
    experiment = make_experiment(status=status, error=error)

    # when its diagnostics page is opened
    page = owner_client.get(reverse("experiment-diagnostics", args=[experiment.pk])).content

    # then the page says why there is no curve, and draws no empty chart
    assert said in page.decode()
    assert b'id="diag-loss"' not in page and b'id="diag-acc"' not in page


def test_a_scripts_run_without_metrics_says_so_once(owner_client, owner, project):
    run = ingest.create_run(owner, project, "script", {})

    page = owner_client.get(reverse("experiment-diagnostics", args=[run.pk])).content.decode()

    # the reason alone, without a "No verdict yet" beside it
    assert "No verdict: no metrics logged yet." in page and "No verdict yet" not in page
