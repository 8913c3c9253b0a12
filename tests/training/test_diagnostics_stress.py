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
