"""The diagnosis on learning curves it was not tuned on (``curves/stress.json``): the shapes
users produce, from real training, each labelled with an expert's call and its reason before
the diagnosis was run on it (``curves/stress.py``). Each is judged as a finished run, as a
script's run that says neither its classes nor its units (an external run), and live, epoch by
epoch, where its verdicts must change only as the expert expects."""

from __future__ import annotations

import math
from typing import Any

import pytest

from training.diagnostics import KINDS, TaskInfo, Verdict, diagnose, task_from_curves
from training.reference import Reference

from .curves import stress

CURVES = stress.load()
SCRIPTS = [item for item in CURVES if "patch" not in item]  # plain PyTorch loops
LIVE = [item for item in CURVES if item["live"]]
LETTERS = {"diverging": "D", "overfitting": "O", "underfitting": "U", "slow": "S",
           "healthy": "h"}


def history_of(item: dict[str, Any]) -> dict[str, list[float]]:
    """The stored lists, a null (a non-finite loss) read back as NaN."""
    return {key: [math.nan if v is None else v for v in values]
            for key, values in item["history"].items()}


def engine_verdict(item: dict[str, Any], epochs: int | None = None, final: bool = True
                   ) -> Verdict:
    """As the loop and the web app judge it: with its task, spec (engine runs) and reference."""
    history = {key: values[:epochs] for key, values in history_of(item).items()}
    spec = stress.spec_of(item["patch"]) if "patch" in item else None
    reference = Reference(**item["reference"]) if "reference" in item else None
    return diagnose(history, TaskInfo(**item["task"]), spec, final=final, reference=reference)


def script_verdict(item: dict[str, Any], epochs: int | None = None, final: bool = True
                   ) -> Verdict:
    """As an external run without tags: classes or units read from its own first losses."""
    history = {key: values[:epochs] for key, values in history_of(item).items()}
    task = task_from_curves(history, item["task"]["kind"], start=item["start"])
    return diagnose(history, task, None, final=final)


def accepted(item: dict[str, Any]) -> set[str]:
    return {item["label"], *item["also"]}


def live_kinds(item: dict[str, Any]) -> str:
    """The live verdicts' kinds in order, each run of one kind told once ("hOh")."""
    judge = engine_verdict if "patch" in item else script_verdict
    epochs = len(item["history"]["train_loss"])
    letters = [LETTERS.get(judge(item, n, final=False).kind, "") for n in range(1, epochs + 1)]
    return "".join(k for i, k in enumerate(letters) if k and (i == 0 or k != letters[i - 1]))


def test_the_new_curves_span_every_verdict_and_say_how_they_were_made() -> None:
    # given the stored curves
    labels = {item["label"] for item in CURVES}

    # then every verdict is someone's call, and each curve says how it was made and why
    assert labels == set(KINDS)
    assert all(item["how"] and item["why"] for item in CURVES)


@pytest.mark.parametrize("item", CURVES, ids=[i["name"] for i in CURVES])
def test_a_finished_run_gets_the_experts_call(item: dict[str, Any]) -> None:
    # given a run the diagnosis was not tuned on, with its task (and spec and reference for
    # an engine run)
    # when it is diagnosed once finished
    verdict = engine_verdict(item)

    # then the verdict is the expert's call, or another one the expert could defend
    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


@pytest.mark.parametrize("item", SCRIPTS, ids=[i["name"] for i in SCRIPTS])
def test_a_scripts_run_judged_from_its_curves_alone_gets_the_experts_call(
        item: dict[str, Any]) -> None:
    # given the same run logged from a script that names neither its classes nor its units
    # when it is diagnosed from its curves and its first training loss
    verdict = script_verdict(item)

    # then the call is the same
    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


@pytest.mark.parametrize("item", LIVE, ids=[i["name"] for i in LIVE])
def test_live_verdicts_change_only_as_the_expert_expects(item: dict[str, Any]) -> None:
    # given a run whose live verdicts the expert expects to be steady (or to change once)
    # when it is diagnosed after every epoch, as the loop or the tracking API does
    # then the kinds come in the expected order, never back to an earlier one
    assert live_kinds(item) == item["live"], item["why"]


def logged_per_epoch(item: dict[str, Any], told: bool, keys: tuple[str, ...] | None = None
                     ) -> Verdict:
    """As an external run logged once per epoch (Keras): its first point an epoch's mean, not
    the untrained network's loss; its classes ``told`` (a param or tag) or not; only ``keys``
    of its history when given (the training loss alone)."""
    history = {key: values for key, values in history_of(item).items()
               if keys is None or key in keys}
    classes = item["task"].get("num_classes") if told else None
    task = task_from_curves(history, item["task"]["kind"], classes)
    return diagnose(history, task, None, final=True)


@pytest.mark.parametrize("item", SCRIPTS, ids=[i["name"] for i in SCRIPTS])
def test_a_run_logged_per_epoch_that_says_its_classes_gets_the_experts_call(
        item: dict[str, Any]) -> None:
    # given a run logged once per epoch whose script says its classes (num_classes, id2label)
    # when it is diagnosed without its untrained loss
    verdict = logged_per_epoch(item, told=True)

    # then the call is the expert's
    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


def test_a_run_logged_per_epoch_without_its_classes_is_judged_without_a_guessed_chance() -> None:
    # given the runs logged once per epoch with nothing that says their classes
    # when they are diagnosed with the chance level unknown
    missed = sorted(item["name"] for item in SCRIPTS
                    if logged_per_epoch(item, told=False).kind not in accepted(item))

    # then the expert's call holds but for one: a run stuck at its majority class no longer
    # reads as underfitting (nothing says what chance is); runs that learned much in their first
    # epoch are measured by the start their first epochs tell, not by that epoch's mean
    assert missed == ["imbalanced_majority_only"]


def training_only_calls(item: dict[str, Any]) -> set[str]:
    """What the training loss alone can tell of a run: overfitting cannot be seen, so a run
    that overfits or is healthy is healthy, or slow while its training loss still falls."""
    calls = accepted(item)
    if calls & {"healthy", "overfitting"}:
        calls |= {"healthy", "slow"}
    return calls - {"overfitting"}


@pytest.mark.parametrize("item", SCRIPTS, ids=[i["name"] for i in SCRIPTS])
@pytest.mark.parametrize("told", [True, False], ids=["classes told", "classes unknown"])
def test_a_runs_training_loss_alone_gets_what_it_can_tell(item: dict[str, Any],
                                                          told: bool) -> None:
    # given only the training loss of a run (a script that does not evaluate)
    # when it is diagnosed
    verdict = logged_per_epoch(item, told, keys=("train_loss",))

    # then the call is the expert's where the training loss can make it, and the verdict says
    # overfitting was not judged
    calls = training_only_calls(item)
    if item["name"] == "imbalanced_majority_only" and not told:
        calls = {"healthy"}  # stuck at the majority class: only chance would tell
    assert verdict.kind in calls, (item["why"], verdict.headline)
    assert ("overfitting", "not judged") in [(e.label, e.value) for e in verdict.evidence]
