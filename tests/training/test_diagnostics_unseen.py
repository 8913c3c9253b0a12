"""The diagnosis on curves none of the other sets use (``curves/unseen.json``, real training
recorded by ``bench/unseen_curves.py`` and labelled there by a written rule before any
diagnosis ran): generated tables (moons and circles with flipped labels, a covtype-like
7-class table, Friedman #1), MNIST MLPs under SGD with momentum, RMSprop, Adagrad, NAdam and
AdamW, label smoothing, MAE, warm restarts, a warmup too high, batches of 2, weight decay 30,
dropout 0.7, a late escape from a plateau, 50 validation rows, validation every 3rd-5th
epoch. Each run is judged once finished with its task known (as the engine's loop would judge
it, per evaluation), and as a script's run known only from its curves, with and without its
untrained network's loss."""

from __future__ import annotations

import math
from typing import Any

import pytest

from training.diagnostics import TaskInfo, Verdict, diagnose, task_from_curves

from .curves import fresh

CURVES = fresh.scripts(fresh.UNSEEN)
KNOWN_TASK = [item for item in CURVES if item.get("standardised", True)]


def accepted(item: dict[str, Any]) -> set[str]:
    return {item["label"], *item["also"]}


def script_verdict(item: dict[str, Any], untrained: bool) -> Verdict:
    history = fresh.per_evaluation(item)
    start = item["loss"][0] if untrained else math.nan
    task = task_from_curves(history, item["task"]["kind"], start=start)
    return diagnose(history, task, None, final=True)


def cases(items: list[dict[str, Any]], misses: set[str] = frozenset()) -> list[Any]:
    return [pytest.param(item, id=item["name"]) for item in items if item["name"] not in misses]


def test_the_unseen_curves_span_every_verdict_and_say_how_they_were_made() -> None:
    assert {item["label"] for item in CURVES} == {
        "overfitting", "underfitting", "diverging", "slow", "healthy"}
    assert all(item["how"] and item["why"] for item in CURVES)


@pytest.mark.parametrize("item", cases(KNOWN_TASK))
def test_a_finished_run_with_its_task_known_gets_the_rules_call(item: dict[str, Any]) -> None:
    # given a run the diagnosis was not tuned on, per evaluation, with its task
    history = fresh.per_evaluation(item)

    # when it is diagnosed once finished
    verdict = diagnose(history, TaskInfo(**item["task"]), final=True)

    # then the verdict is the rule's call, or one it could defend
    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


@pytest.mark.parametrize("item", cases(CURVES))
def test_a_scripts_run_with_its_untrained_loss_gets_the_rules_call(item: dict[str, Any]
                                                                     ) -> None:
    verdict = script_verdict(item, untrained=True)

    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


@pytest.mark.parametrize("item", cases(CURVES))
def test_a_scripts_run_logged_per_epoch_gets_the_rules_call(item: dict[str, Any]) -> None:
    verdict = script_verdict(item, untrained=False)

    assert verdict.kind in accepted(item), (item["why"], verdict.headline)
