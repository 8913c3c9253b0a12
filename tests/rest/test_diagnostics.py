"""The run's diagnostics page through /api/v1/: the verdict (made from the stored history for
a run that ended before it was diagnosed), the history, the generalisation gap beside the
parent's for a remedy's run, and the runs its remedies started."""

from __future__ import annotations

import pytest

from webapp.experiments.models import Experiment

from ..webapp.test_diagnostics_pages import OVERFIT_SPEC, TRAIN_LOSS, VAL_LOSS, store_history

VAL_ACC = [0.5, 0.6, 0.7, 0.78, 0.82, 0.84, 0.84, 0.83, 0.83, 0.82, 0.82, 0.81]


@pytest.fixture
def undiagnosed(make_run) -> Experiment:
    """A wide MLP that overfits, ended without a stored verdict."""
    run = make_run("wide mlp", Experiment.Status.SUCCEEDED, spec=OVERFIT_SPEC.to_dict(),
                   summary={"final_metrics": {"train_loss": TRAIN_LOSS[-1],
                                              "val_loss": VAL_LOSS[-1]}})
    store_history(run, {"train_loss": TRAIN_LOSS, "val_loss": VAL_LOSS,
                        "train_acc": [min(0.5 + 0.05 * i, 1.0) for i in range(12)],
                        "val_acc": VAL_ACC})
    return run


def test_a_run_ended_undiagnosed_gets_its_verdict_and_history(api, undiagnosed):
    response = api.get(f"runs/{undiagnosed.pk}/diagnostics/")

    assert response.status_code == 200
    answer = response.json()
    assert answer["verdict"]["kind"] == "overfitting"
    assert answer["history"]["val_loss"] == VAL_LOSS
    assert answer["gap"] == pytest.approx(VAL_LOSS[-1] - TRAIN_LOSS[-1])
    assert answer["parent"] is None and answer["remedy_runs"] == []


def test_a_remedys_run_shows_its_parents_gap_and_the_parent_lists_it(api, undiagnosed,
                                                                     make_run):
    remedy = {"key": "dropout", "title": "Add dropout", "patch": {"model": {"dropout": 0.3}}}
    child = make_run("wide + dropout", parent=undiagnosed, remedy=remedy,
                     spec=OVERFIT_SPEC.patched(remedy["patch"]).to_dict())

    parent = api.get(f"runs/{undiagnosed.pk}/diagnostics/").json()
    answer = api.get(f"runs/{child.pk}/diagnostics/").json()

    assert parent["remedy_runs"] == [child.pk]
    assert answer["parent"] == undiagnosed.pk and answer["parent_gap"] == parent["gap"]
    assert answer["verdict"] is None and answer["history"] == {}  # still queued


def test_a_study_has_no_diagnostics_of_its_own(api, make_run, undiagnosed):
    study = make_run("sweep", kind=Experiment.Kind.TUNE, parent=undiagnosed,
                     spec={"base": undiagnosed.spec, "space": {}})

    assert api.get(f"runs/{study.pk}/diagnostics/").status_code == 404
