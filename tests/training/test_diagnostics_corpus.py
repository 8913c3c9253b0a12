"""The diagnosis on a labelled corpus of real learning curves it was not tuned on.

``curves/corpus.json`` holds short real trainings over 8 data sets, 5 model families and 4
optimizers, each made to show one verdict and kept only when its curves pass that verdict's
numeric check (``curves/corpus.py``). A seeded split sets 40% of each verdict's runs aside;
the thresholds in ``training/diagnostics.py`` were tuned on the rest. Each run is diagnosed as
a finished one, from its per-epoch lists and task only (no spec), with and without its data
set's reference model.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from training.diagnostics import KINDS, TaskInfo, diagnose
from training.reference import Reference
from training.spec import ExperimentSpec

from .curves import corpus

RUNS = corpus.load()
TUNING, HELD_OUT = corpus.split(RUNS)


def verdict_kind(item: dict[str, Any], with_reference: bool) -> str:
    reference = Reference(**item["reference"]) if with_reference else None
    return diagnose(item["history"], TaskInfo(**item["task"]), None, final=True,
                    reference=reference).kind


def scores(items: list[dict[str, Any]], with_reference: bool
           ) -> tuple[float, dict[str, float], list[str]]:
    """(overall accuracy, accuracy per verdict, the misses as "name: label -> verdict")."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    misses = []
    for item in items:
        kind = verdict_kind(item, with_reference)
        total[item["label"]] += 1
        if kind == item["label"]:
            right[item["label"]] += 1
        else:
            misses.append(f"{item['name']}: {item['label']} -> {kind}")
    per_verdict = {label: right[label] / total[label] for label in sorted(total)}
    return sum(right.values()) / len(items), per_verdict, misses


def report(name: str, items: list[dict[str, Any]], with_reference: bool) -> str:
    overall, per_verdict, misses = scores(items, with_reference)
    verdicts = ", ".join(f"{label} {share:.0%}" for label, share in per_verdict.items())
    return f"{name}: {overall:.1%} of {len(items)} ({verdicts}); missed {misses}"


def test_the_corpus_spans_200_runs_6_data_sets_4_model_families_and_every_verdict() -> None:
    # given the recorded corpus
    datasets = {item["patch"]["data"]["dataset"] for item in RUNS}
    families = {item["patch"]["model"]["arch"] for item in RUNS}
    labels = Counter(item["label"] for item in RUNS)

    # then it is as large and as varied as the diagnosis must hold across
    assert len(RUNS) >= 200
    assert len(datasets) >= 6, datasets
    assert len(families) >= 4, families
    assert set(labels) == set(KINDS) - {"undetermined"}
    assert min(labels.values()) >= 25, labels


def test_the_split_is_fixed_and_disjoint() -> None:
    # given the split drawn twice
    tuning, held_out = corpus.split(RUNS)

    # then it is the same split, with no run on both sides
    assert [i["name"] for i in held_out] == [i["name"] for i in HELD_OUT]
    assert not {i["name"] for i in tuning} & {i["name"] for i in held_out}
    assert len(tuning) + len(held_out) == len(RUNS)


@pytest.mark.parametrize("item", RUNS[:: max(1, len(RUNS) // 20)], ids=lambda i: i["name"])
def test_a_stored_run_passes_the_numeric_check_of_its_label(item: dict[str, Any]) -> None:
    # given a stored run, when its curves are measured plainly, then they show its label
    assert corpus.check(item["label"], item)


def test_held_out_runs_are_diagnosed_with_95_percent_accuracy_against_the_reference(
        capsys: pytest.CaptureFixture[str]) -> None:
    # given the held-out runs, never used to set a threshold
    # when each is diagnosed with its data set's reference model
    overall, per_verdict, misses = scores(HELD_OUT, with_reference=True)

    # then 95% are right overall and 90% of each verdict's runs; the figures without the
    # reference and on the tuning part are printed beside them
    with capsys.disabled():
        print()
        for name, items in (("held out", HELD_OUT), ("tuning", TUNING)):
            for with_reference in (True, False):
                how = "with the reference" if with_reference else "curves only"
                print(report(f"{name}, {how}", items, with_reference))
    assert overall >= 0.95, misses
    assert min(per_verdict.values()) >= 0.90, (per_verdict, misses)


def live_kinds(item: dict[str, Any]) -> list[str]:
    """The live verdicts of a run epoch by epoch, as the loop makes them (spec, reference),
    each run of one kind told once."""
    spec = ExperimentSpec().patched(
        {**item["patch"], "run": {**item["patch"]["run"], "device": "cpu"}})
    history, reference = item["history"], Reference(**item["reference"])
    kinds = [diagnose({key: values[:epochs] for key, values in history.items()},
                      TaskInfo(**item["task"]), spec, reference=reference).kind
             for epochs in range(1, len(history["train_loss"]) + 1)]
    return [kind for i, kind in enumerate(kinds)
            if kind != "undetermined" and (i == 0 or kind != kinds[i - 1])]


def test_live_verdicts_seldom_return_to_a_kind_they_left() -> None:
    # given the real runs that log a validation loss, diagnosed after every epoch
    runs = [item for item in RUNS if "val_loss" in item["history"]]

    # when their live verdicts are followed
    back = [item["name"] for item in runs if len(set(kinds := live_kinds(item))) < len(kinds)]

    # then at most 1 run in 16 goes back to a kind it had left (a healthy run that looked
    # underfitting while its loss was still slowing down, then healthy again, did in 36 of
    # 250 before the live underfitting rule asked whether the pace could still get there)
    assert len(back) <= len(runs) / 16, back
