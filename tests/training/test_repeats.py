"""Repeats over seeds: trained together they are the separate runs; Welch's t tells a real
difference from seed noise; a remedy is verified over the seeds of its original."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy import stats

from tests.training.conftest import SpecFactory
from training import MemoryReporter, grouped
from training.diagnostics import _overfitting_remedies
from training.loop import run
from training.repeats import final_values, run_seeds, verify_remedy
from training.seeds import batch_problem
from training.significance import compare, welch_interval
from training.spec import ExperimentSpec


def repeat(spec: ExperimentSpec, seeds: list[int], folder: Path) -> tuple[list, list]:
    reporters = [MemoryReporter() for _ in seeds]
    results = run_seeds(spec, seeds, reporters, [folder / f"seed{s}" for s in seeds])
    return results, reporters


@pytest.mark.parametrize("patch", [
    {"model": {"arch": "mlp", "hidden_sizes": [32]}},
    # the grouped convolution (channels last) and batch norm, with fused AdamW
    {"model": {"arch": "cnn", "width": 4, "blocks": 2, "batch_norm": True},
     "optim": {"optimizer": "adamw", "weight_decay": 0.01}},
    # fused SGD with Nesterov momentum and coupled weight decay
    {"model": {"arch": "mlp", "hidden_sizes": [32]},
     "optim": {"optimizer": "sgd", "lr": 0.05, "nesterov": True, "weight_decay": 1e-4}},
    # the flatten head
    {"model": {"arch": "cnn", "width": 4, "blocks": 2, "depth": 1, "head": "flatten",
               "head_units": 8}},
    # fused SGD over the channels-last convolution weights, without batch norm (their biases)
    {"model": {"arch": "cnn", "width": 4, "blocks": 2, "batch_norm": False},
     "optim": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}},
], ids=["mlp-adam", "cnn-adamw", "mlp-sgd", "cnn-flatten", "cnn-sgd"])
def test_seeds_trained_together_log_what_their_separate_runs_log(
        make_spec: SpecFactory, tmp_path: Path, patch: dict) -> None:
    # given a spec the batched step covers, without dropout (whose masks are drawn differently)
    spec = make_spec({**patch, "run": {"epochs": 2, "batch_size": 128}})
    assert batch_problem(spec) is None

    # when its seeds train together, and each seed trains alone
    together, reporters = repeat(spec, [3, 4], tmp_path)
    alone = [MemoryReporter() for _ in range(2)]
    separate = [run(spec.patched({"run": {"seed": seed}}), reporter, tmp_path / f"alone{seed}")
                for seed, reporter in zip([3, 4], alone, strict=True)]

    # then every point of every seed is its separate run's, up to float rounding (the batched
    # kernels and the fused optimizer add up in another order)
    for batched, single in zip(reporters, alone, strict=True):
        assert [s for s, _ in batched.points] == [s for s, _ in single.points]
        for (_, a), (_, b) in zip(batched.points, single.points, strict=True):
            assert a.keys() == b.keys()
            assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    # and so are its trained weights and batch-norm statistics
    for mine, its in zip(together, separate, strict=True):
        assert mine.model is not None and its.model is not None
        theirs = its.model.state_dict()
        for name, tensor in mine.model.state_dict().items():
            torch.testing.assert_close(tensor, theirs[name], rtol=1e-4, atol=1e-5, msg=name)
    # and each seed kept its own checkpoints
    assert all(r.checkpoints for r in reporters)
    assert together[0].best_metrics != together[1].best_metrics


def test_the_vmap_step_logs_what_the_grouped_step_logs(make_spec: SpecFactory, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # given a small MLP's two seeds trained with the grouped kernels
    spec = make_spec({"model": {"arch": "mlp", "hidden_sizes": [16]},
                      "run": {"epochs": 1, "batch_size": 256}})
    _, grouped_reporters = repeat(spec, [0, 1], tmp_path / "grouped")

    # when the grouped forward pass is not known for the MLP (as for a network it does not
    # cover) and the seeds train again, through torch.func.vmap
    monkeypatch.delitem(grouped.CHAINS, "mlp")
    _, vmap_reporters = repeat(spec, [0, 1], tmp_path / "vmap")

    # then both log the same points
    for a, b in zip(grouped_reporters, vmap_reporters, strict=True):
        for (step_a, pa), (step_b, pb) in zip(a.points, b.points, strict=True):
            assert step_a == step_b and pa == pytest.approx(pb, rel=1e-4, abs=1e-5)


def test_a_spec_the_batched_step_does_not_cover_trains_its_seeds_one_by_one(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given a spec with gradient clipping (a norm per run)
    spec = make_spec({"model": {"arch": "mlp", "hidden_sizes": [16]},
                      "data": {"dataset": "iris"}, "run": {"epochs": 2, "grad_clip": 1.0}})

    # when it is repeated
    results, reporters = repeat(spec, [0, 1], tmp_path)

    # then it says why it is not batched, and each seed still trained
    assert "clipping" in (batch_problem(spec) or "")
    assert [r.epochs for r in results] == [2, 2]
    assert all(r.series("val_loss") for r in reporters)


def test_welchs_interval_is_the_textbook_one() -> None:
    # given two samples of unequal spread
    a, b = [0.80, 0.82, 0.79, 0.81, 0.83], [0.85, 0.90, 0.84, 0.88, 0.86]

    # when they are compared
    difference, low, high, df, p = welch_interval(a, b)

    # then the p-value is scipy's Welch test's, and the interval is centred on the difference
    assert p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert (low + high) / 2 == pytest.approx(difference)
    assert low > 0 and 4 < df < 8
    verdict = compare(a, b, "val_acc")
    assert verdict.verdict == "different"
    assert verdict.sentence.startswith("B is better than A on val_acc by 5.6 ± ")


def test_alike_seeds_are_no_difference_and_one_seed_is_refused() -> None:
    assert compare([0.5, 0.5], [0.5, 0.5], "val_loss").verdict == "no difference"
    with pytest.raises(ValueError, match="at least 2 seeds"):
        compare([0.5], [0.4, 0.6], "val_loss")


DIGITS_MLP = {"model": {"arch": "mlp", "hidden_sizes": [64]},
              "run": {"epochs": 3, "batch_size": 64}}


def test_learning_rates_a_hundredfold_apart_are_reported_different(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given the digits MLP at lr 1e-5 and at 1e-3, five seeds each
    slow = make_spec({**DIGITS_MLP, "optim": {"lr": 1e-5}})
    fast = make_spec({**DIGITS_MLP, "optim": {"lr": 1e-3}})
    seeds = [0, 1, 2, 3, 4]
    a, _ = repeat(slow, seeds, tmp_path / "slow")
    b, _ = repeat(fast, seeds, tmp_path / "fast")

    # when their best validation accuracies are compared
    verdict = compare(final_values(a, "val_acc"), final_values(b, "val_acc"), "val_acc",
                      names=("lr 1e-5", "lr 1e-3"))

    # then they differ, and the faster rate is the better
    assert verdict.verdict == "different", verdict.sentence
    assert verdict.sentence.startswith("lr 1e-3 is better than lr 1e-5")


def test_the_same_spec_over_two_seed_sets_is_no_difference(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given one spec over seeds 0-4 and over seeds 5-9
    spec = make_spec(DIGITS_MLP)
    a, _ = repeat(spec, [0, 1, 2, 3, 4], tmp_path / "a")
    b, _ = repeat(spec, [5, 6, 7, 8, 9], tmp_path / "b")

    # when their best validation accuracies are compared
    verdict = compare(final_values(a, "val_acc"), final_values(b, "val_acc"), "val_acc")

    # then the interval holds 0: no difference beyond seed noise
    assert verdict.verdict == "no difference", verdict.sentence
    assert verdict.low < 0 < verdict.high


def test_the_readmes_overfitting_remedy_verified_over_five_seeds(
        make_spec: SpecFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given the overfitting example (a wide MLP on a fifth of digits), shortened, and the
    # first remedy its verdict suggests (dropout)
    spec = make_spec({"data": {"dataset": "digits", "val_fraction": 0.8},
                      "model": {"arch": "mlp", "hidden_sizes": [256, 256]},
                      "run": {"epochs": 12}})
    # (the first overfitting remedy, as the verdict of any onset lists it)
    patch = _overfitting_remedies(spec, onset=6)[0].patch
    assert "dropout" in patch["model"]

    # when the remedy is verified over 5 seeds beside the original's 5
    check = verify_remedy(spec, patch, [0, 1, 2, 3, 4], tmp_path)
    print(check.report())

    # then the interval and the verdict are printed, and computed from the 10 runs
    assert len(check.original) == len(check.remedied) == 5
    gaps_before = [r.final_metrics["val_loss"] - r.final_metrics["train_loss"]
                   for r in check.original]
    gaps_after = [r.final_metrics["val_loss"] - r.final_metrics["train_loss"]
                  for r in check.remedied]
    assert list(check.problem.a) == gaps_before and list(check.problem.b) == gaps_after
    difference, low, high, _, _ = welch_interval(gaps_before, gaps_after)
    assert check.problem.metric == "gap"
    assert (check.problem.difference, check.problem.low, check.problem.high) == (
        difference, low, high)
    assert list(check.monitored.a) == [r.best_metrics["val_acc"] for r in check.original]
    out = capsys.readouterr().out
    assert "Welch's t over 5 + 5 seeds" in out and "gap: " in out
    # and dropout narrows the mean gap (whether beyond seed noise is what the verdict says)
    assert check.problem.difference < 0, check.problem.sentence


def test_a_slow_runs_remedy_is_verified_on_its_validation_loss_not_the_gap(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given a slow original (a learning rate too low) and the remedy that raises it, two seeds
    spec = make_spec({"data": {"dataset": "digits"}, "model": {"arch": "mlp"},
                      "optim": {"lr": 1e-5}, "run": {"epochs": 2}})

    # when the remedy is verified as the remedy of a slow run
    check = verify_remedy(spec, {"optim": {"lr": 1e-3}}, [0, 1], tmp_path, verdict="slow")

    # then it is judged on each seed's validation loss (learning more), where a higher rate
    # also widens the train/validation gap, and the report says so
    assert check.problem.metric == "val_loss"
    assert list(check.problem.a) == [r.best_metrics["val_loss"] for r in check.original]
    assert list(check.problem.b) == [r.best_metrics["val_loss"] for r in check.remedied]
    assert check.problem.difference < 0
    assert check.report().startswith("val_loss: ")
