"""The diagnosis on probe curves (``curves/probe.json``, real runs recorded by
``bench/probe_curves.py`` and labelled from their numbers before the diagnosis was read):
regression on diabetes, 23-36 validation rows, learning rates from 1e-6 to 5, heavy dropout
and weight decay, cosine, one-cycle and step schedules with warmups, early stopping, runs of
2 and 3 epochs, text models on SST-2 subsets, 30% flipped labels. Engine runs are judged with
their spec and reference, as the loop judges them; plain loops with their task."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from training.diagnostics import TaskInfo, Verdict, diagnose
from training.reference import Reference
from training.spec import ExperimentSpec

CURVES = json.loads((Path(__file__).parent / "curves" / "probe.json").read_text())


def verdict(item: dict[str, Any]) -> Verdict:
    history = {
        key: [math.nan if v is None else v for v in values]
        for key, values in item["history"].items()
    }
    spec = reference = None
    if "patch" in item:
        patch = item["patch"]
        spec = ExperimentSpec().patched({**patch, "run": {**patch.get("run", {}), "device": "cpu"}})
        reference = Reference.from_dict(item["reference"])
    return diagnose(history, TaskInfo(**item["task"]), spec, final=True, reference=reference)


def named(name: str) -> dict[str, Any]:
    return next(item for item in CURVES if item["name"] == name)


@pytest.mark.parametrize("item", [pytest.param(item, id=item["name"]) for item in CURVES])
def test_a_probe_curve_gets_its_call_or_one_an_expert_could_defend(item: dict[str, Any]) -> None:
    assert verdict(item).kind in {item["label"], *item["also"]}, item["why"]


def test_a_validation_loss_climbing_after_a_one_cycle_high_rate_phase_is_overfitting() -> None:
    # given one-cycle SGD on digits: the high-rate phase's training loss wanders by 0.15 near
    # 0.3; after it validation is lowest at 0.13-0.15 (epochs 15-17) and climbs to 0.177,
    # where it stays, while the training loss falls from 0.01 to 1e-4
    item = named("digits_one_cycle_sgd")

    # when it is diagnosed once finished
    result = verdict(item)

    # then the fall after the onset is measured against the noise after it, not the high-rate
    # phase's (it read as noise, and the run as healthy)
    assert result.kind == "overfitting", result.headline
    assert result.onset_epoch == 15
    assert "fell 99% since" in result.headline


def test_a_loss_bouncing_under_a_learning_rate_too_high_is_not_learning_slowly() -> None:
    # given SGD at 4 on iris: the training loss jumps from 0.11 to 0.59 and back within the
    # last third, validation loss between 0.08 and 3.4
    item = named("iris_sgd_lr_4_oscillating")

    # when it is diagnosed once finished
    result = verdict(item)

    # then a slope fitted through a spike's recovery is no steady fall: it read "learning
    # slowly ... a higher learning rate would help"
    assert result.kind != "slow", result.headline


def test_a_blow_up_that_ends_in_nan_is_diverging_from_its_first_epoch_above_chance() -> None:
    # given SGD at 5 on wine: a first epoch averaging 3.8e4, 3.5e4 times chance, climbing to
    # 8.7e31 and NaN in epoch 6
    item = named("wine_sgd_lr_5")

    # when it is diagnosed once finished
    result = verdict(item)

    # then it diverged from epoch 1, where it passed three times chance (the onset was the
    # NaN's epoch, 6)
    assert (result.kind, result.onset_epoch, result.confidence) == ("diverging", 1, 1.0)
    assert result.headline.startswith("Diverging since epoch 1: the training loss was 3.81e+04")
    assert "the loss became NaN or infinite in epoch 6" in result.headline


def test_a_loss_that_never_moved_gets_a_learning_rate_ten_times_higher() -> None:
    # given Adam at 1e-6 on digits: the training loss 2.343 to 2.336 in 15 epochs, 0.3% of
    # the baseline
    item = named("digits_adam_lr_1e_6")

    # when it is diagnosed once finished
    result = verdict(item)

    # then the step size comes first, a decade up: ×3 (3e-6) would barely move it either
    assert result.kind == "underfitting", result.headline
    assert result.remedies[0].key == "higher_lr"
    assert result.remedies[0].patch == {"optim": {"lr": 1e-05}}
    assert "barely moved in 15 epochs" in result.remedies[0].why


def test_a_live_run_stuck_at_chance_for_its_first_epochs_is_not_healthy() -> None:
    # given six sigmoid layers on digits: both losses at ln 10 (2.30-2.34) from epoch 1
    item = named("digits_deep_sigmoid_plateau")
    task = TaskInfo(**item["task"])

    # when it is diagnosed live after epochs 3, 4 and 5
    kinds = [diagnose({key: values[:epochs] for key, values in item["history"].items()}, task,
                      final=False)
             for epochs in (3, 4, 5)]

    # then it is too early to tell while the underfitting rule waits (5 epochs), not
    # "healthy" with confidence 0.8, and underfitting once it may say so
    assert [v.kind for v in kinds] == ["undetermined", "undetermined", "underfitting"]
    assert kinds[0].confidence == 0.0
    assert "still at the chance level" in kinds[0].headline


def test_a_loss_swinging_up_again_and_again_is_unstable() -> None:
    # given SGD at 4 on iris: in the last 13 epochs validation loss jumps 0.31 -> 0.68,
    # 0.41 -> 1.10 and 0.08 -> 1.26, falling back between, the training loss 0.11 -> 0.59
    item = named("iris_sgd_lr_4_oscillating")

    # when it is diagnosed once finished, and with a spec to remedy
    result = verdict(item)
    spec = ExperimentSpec().patched({
        "data": {"dataset": "iris"}, "model": {"arch": "mlp"},
        "optim": {"optimizer": "sgd", "lr": 4.0}, "run": {"device": "cpu", "epochs": 40}})
    remedied = diagnose(item["history"], TaskInfo(**item["task"]), spec, final=True)

    # then it is diverging, unstable: neither rule for a climb or a blow-up caught it, and it
    # read "healthy"; the first remedy is a lower learning rate
    assert result.kind == "diverging", result.headline
    assert result.headline.startswith("Diverging: unstable, the validation loss at least "
                                      "doubled from one epoch to the next 3 times")
    assert result.onset_epoch == 32
    assert remedied.remedies[0].key == "lower_lr"
