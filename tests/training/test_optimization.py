"""Losses, optimizers, learning-rate schedules, penalties and training control: each option of
the spec changes training the way it says, measured on real runs of small data sets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import load
from training.data import prepare
from training.loop import RunResult, TrainingError, evaluate
from training.models import build_model
from training.optimization import balanced_class_weights, make_loss

from .conftest import SpecFactory
from .test_loop import one_step

# --- shared runs ----------------------------------------------------------------------------


@pytest.fixture
def iris_sgd(make_spec: SpecFactory) -> ExperimentSpec:
    """Plain SGD at lr 1 on an iris MLP: one step moves the weights by exactly the gradient."""
    return make_spec({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16]},
        "optim": {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0},
        "run": {"epochs": 1, "batch_size": 64},
    })


@pytest.fixture
def iris_steps(make_spec: SpecFactory) -> ExperimentSpec:
    """An iris MLP in batches of 16: 8 steps per epoch (the last of 8 rows), 5 epochs."""
    return make_spec({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16]},
        "optim": {"lr": 0.01},
        "run": {"epochs": 5, "batch_size": 16},
    })


STEPS_PER_EPOCH = 8  # iris_steps: 120 training rows in batches of 16


def logged_lr(spec: ExperimentSpec, workdir: Path) -> list[float]:
    """The learning rate each step of ``spec``'s run logged, step 1 first."""
    reporter = MemoryReporter()
    run(spec, reporter, workdir)
    series = reporter.series("lr")
    assert [step for step, _ in series] == list(range(1, len(series) + 1))
    return [value for _, value in series]


def update(spec: ExperimentSpec, workdir: Path) -> dict[str, torch.Tensor]:
    """How the first optimizer step of ``spec``'s run changed each weight."""
    before, after = one_step(spec, workdir)
    return {name: after[name] - before[name] for name in before}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-7) for name in a)


def weights(model: nn.Module | None) -> torch.Tensor:
    """Every weight matrix of a model (biases left out) as one vector."""
    assert model is not None
    return torch.cat([p.detach().flatten().cpu() for p in model.parameters() if p.dim() > 1])


def epoch_series(reporter: MemoryReporter, key: str) -> list[float]:
    return [value for _, value in reporter.series(key)]


# --- losses ---------------------------------------------------------------------------------


def test_label_smoothing_changes_the_loss_of_the_same_batch(iris_sgd: ExperimentSpec,
                                                           tmp_path: Path) -> None:
    # given the same first batch and weights, without and with label smoothing 0.2
    sharp, smooth = MemoryReporter(stop_after_step=1), MemoryReporter(stop_after_step=1)

    # when each takes its first step
    run(iris_sgd, sharp, tmp_path / "sharp")
    run(iris_sgd.patched({"optim": {"label_smoothing": 0.2}}), smooth, tmp_path / "smooth")

    # then the smoothed loss differs: it also scores the probability of the other classes
    assert smooth.series("loss")[0][1] != pytest.approx(sharp.series("loss")[0][1], rel=1e-3)


def test_label_smoothing_makes_the_trained_model_less_confident(make_spec: SpecFactory,
                                                                tmp_path: Path) -> None:
    # given an iris MLP trained 30 epochs without and with label smoothing 0.3
    base = make_spec({"data": {"dataset": "iris"}, "model": {"arch": "mlp"},
                      "optim": {"lr": 0.01}, "run": {"epochs": 30, "batch_size": 16}})
    smooth = base.patched({"optim": {"label_smoothing": 0.3}})
    sharp_run = run(base, MemoryReporter(), tmp_path / "sharp")
    smooth_run = run(smooth, MemoryReporter(), tmp_path / "smooth")

    # when each predicts the validation split
    data = prepare("iris", base.data.val_fraction, base.run.seed)

    def confidence(result: RunResult) -> float:
        assert result.model is not None
        with torch.no_grad():
            return float(result.model.eval()(data.x_val).softmax(1).max(1).values.mean())

    # then the smoothed model's top class gets clearly less probability on average
    assert confidence(smooth_run) < confidence(sharp_run) - 0.05


def test_balanced_class_weights_are_scikit_learns() -> None:
    # given the training labels of breast cancer (37% malignant)
    labels = prepare("breast_cancer", 0.2, 0).y_train

    # when balanced weights are computed
    ours = balanced_class_weights(labels, 2)

    # then they are scikit-learn's "balanced" weights, the rare class weighing more
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels.numpy())
    torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float32))
    assert ours[0] > 1 > ours[1]


def test_class_weights_change_the_gradient(make_spec: SpecFactory, tmp_path: Path) -> None:
    # given plain SGD on the imbalanced breast-cancer set, without and with balanced weights
    base = make_spec({"data": {"dataset": "breast_cancer"}, "model": {"arch": "mlp"},
                      "optim": {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0},
                      "run": {"epochs": 1}})
    weighted = base.patched({"optim": {"class_weights": "balanced"}})

    # when each takes its first step from the same weights on the same batch
    plain_step = update(base, tmp_path / "plain")
    weighted_step = update(weighted, tmp_path / "weighted")

    # then the steps differ
    assert not same(plain_step, weighted_step)


def test_huber_with_a_wide_delta_is_half_the_squared_error(make_spec: SpecFactory,
                                                           tmp_path: Path) -> None:
    # given plain SGD on diabetes with MSE, and with Huber whose delta no residual reaches
    mse = make_spec({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
                     "optim": {"loss": "mse", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0},
                     "run": {"epochs": 1}})
    huber = mse.patched({"optim": {"loss": "huber", "huber_delta": 100.0}})

    # when each takes its first step
    mse_step = update(mse, tmp_path / "mse")
    huber_step = update(huber, tmp_path / "huber")

    # then Huber's step is exactly half of MSE's (it is ½·r² below delta)
    for name, step in mse_step.items():
        torch.testing.assert_close(huber_step[name], step / 2, rtol=1e-4, atol=1e-7)


def test_each_regression_loss_takes_its_own_step(make_spec: SpecFactory,
                                                 tmp_path: Path) -> None:
    # given plain SGD on diabetes with MSE, MAE and Huber (delta 1 standard deviation)
    base = make_spec({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
                      "optim": {"loss": "mse", "optimizer": "sgd", "lr": 0.1, "momentum": 0.0},
                      "run": {"epochs": 1}})

    # when each takes its first step
    steps = {loss: update(base.patched({"optim": {"loss": loss}}), tmp_path / loss)
             for loss in ("mse", "mae", "huber")}

    # then no two steps are the same
    assert not same(steps["mse"], steps["mae"])
    assert not same(steps["mse"], steps["huber"])
    assert not same(steps["mae"], steps["huber"])


def test_an_mae_run_learns_diabetes(make_spec: SpecFactory, workdir: Path) -> None:
    # given an MLP trained with MAE on diabetes, and the MAE of predicting the training mean
    spec = make_spec({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
                      "optim": {"loss": "mae", "lr": 0.01}, "run": {"epochs": 10}})
    data = prepare("diabetes", spec.data.val_fraction, spec.run.seed)
    mean_mae = float(data.y_val.abs().mean()) * data.target_std

    # when it trains
    result = run(spec, MemoryReporter(), workdir)

    # then its validation MAE is clearly lower
    assert result.best_metrics["val_mae"] < 0.85 * mean_mae, (result.best_metrics, mean_mae)


# --- optimizers -----------------------------------------------------------------------------


def test_every_optimizer_takes_its_own_first_step(iris_sgd: ExperimentSpec,
                                                  tmp_path: Path) -> None:
    # given the four optimizers at the same learning rate, all with weight decay 0.1
    names = ("sgd", "adam", "adamw", "rmsprop")

    # when each takes its first step from the same weights
    steps = {name: update(iris_sgd.patched({"optim": {"optimizer": name, "lr": 0.01,
                                                      "weight_decay": 0.1}}), tmp_path / name)
             for name in names}

    # then no two steps are the same
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not same(steps[first], steps[second]), (first, second)


def test_nesterov_looks_ahead_along_the_momentum(iris_sgd: ExperimentSpec,
                                                 tmp_path: Path) -> None:
    # given SGD at lr 1 with momentum 0.9, plain and Nesterov
    plain = iris_sgd.patched({"optim": {"momentum": 0.9}})
    nesterov = plain.patched({"optim": {"nesterov": True}})

    # when each takes its first step (the momentum buffer is then the gradient itself)
    plain_step = update(plain, tmp_path / "plain")
    nesterov_step = update(nesterov, tmp_path / "nesterov")

    # then Nesterov's step is (1 + momentum) times the plain one
    for name, step in plain_step.items():
        torch.testing.assert_close(nesterov_step[name], 1.9 * step, rtol=1e-4, atol=1e-7)


def test_adamw_decays_the_weights_apart_from_the_gradient(iris_sgd: ExperimentSpec,
                                                          tmp_path: Path) -> None:
    # given AdamW at lr 0.01 without and with weight decay 0.5
    free = iris_sgd.patched({"optim": {"optimizer": "adamw", "lr": 0.01}})
    decayed = free.patched({"optim": {"weight_decay": 0.5}})

    # when each takes its first step from the same weights
    initial, free_after = one_step(free, tmp_path / "free")
    _, decayed_after = one_step(decayed, tmp_path / "decayed")

    # then the decayed weights differ by exactly lr × decay × the initial weights
    for name, weight in initial.items():
        torch.testing.assert_close(decayed_after[name] - free_after[name], -0.005 * weight,
                                   rtol=1e-4, atol=1e-7)


def test_weight_decay_shrinks_the_trained_weights(iris_steps: ExperimentSpec,
                                                  tmp_path: Path) -> None:
    # given the same Adam run without and with weight decay 0.1, for 20 epochs
    longer = iris_steps.patched({"run": {"epochs": 20}})
    free = run(longer, MemoryReporter(), tmp_path / "free")
    decayed = run(longer.patched({"optim": {"weight_decay": 0.1}}), MemoryReporter(),
                  tmp_path / "decayed")

    # when the weight norms of the trained models are compared
    # then weight decay left the smaller norm
    assert weights(decayed.model).norm() < 0.9 * weights(free.model).norm()


# --- learning-rate schedules ----------------------------------------------------------------


def test_a_constant_schedule_logs_the_same_lr_every_step(iris_steps: ExperimentSpec,
                                                         workdir: Path) -> None:
    # given the default (constant) schedule
    # when it trains for 5 epochs of 8 steps
    lrs = logged_lr(iris_steps, workdir)

    # then every step logged lr 0.01
    assert lrs == [0.01] * 40


def test_warmup_in_steps_rises_linearly_to_the_learning_rate(iris_steps: ExperimentSpec,
                                                             workdir: Path) -> None:
    # given a 5-step linear warmup in front of a constant lr 0.01
    spec = iris_steps.patched({"schedule": {"warmup": 5}})

    # when it trains
    lrs = logged_lr(spec, workdir)

    # then step k of the warmup used lr × k / 6, and every later step the full lr
    assert lrs[:5] == pytest.approx([0.01 * k / 6 for k in range(1, 6)])
    assert lrs[5:] == pytest.approx([0.01] * 35)


def test_warmup_in_epochs_lasts_that_many_epochs_of_steps(iris_steps: ExperimentSpec,
                                                          workdir: Path) -> None:
    # given a 2-epoch warmup (16 steps)
    spec = iris_steps.patched({"schedule": {"warmup": 2, "warmup_unit": "epochs"}})

    # when it trains
    lrs = logged_lr(spec, workdir)

    # then the lr rose in equal increments over 16 steps, then held
    assert lrs[:16] == pytest.approx([0.01 * k / 17 for k in range(1, 17)])
    assert lrs[16:] == pytest.approx([0.01] * 24)


@pytest.mark.parametrize("kind", ["constant", "step", "exponential", "cosine", "one_cycle",
                                  "plateau"])
def test_warmup_goes_in_front_of_every_schedule(iris_steps: ExperimentSpec, tmp_path: Path,
                                                kind: str) -> None:
    # given a schedule alone, and the same schedule behind a 4-step warmup
    schedule = {"kind": kind, "step_epochs": 1, "step_factor": 0.5}
    alone = logged_lr(iris_steps.patched({"schedule": schedule}), tmp_path / "alone")
    warmed = logged_lr(iris_steps.patched({"schedule": {**schedule, "warmup": 4}}),
                       tmp_path / "warmed")

    # when the warmed run's first steps are compared with the schedule's start
    # then the warmup rose linearly to the schedule's first lr, where the schedule started
    assert warmed[:4] == pytest.approx([alone[0] * k / 5 for k in range(1, 5)])
    assert warmed[4] == pytest.approx(alone[0])


def test_after_the_warmup_the_schedule_runs_from_its_start(iris_steps: ExperimentSpec,
                                                           tmp_path: Path) -> None:
    # given step decay every epoch, alone and behind a 4-step warmup
    schedule = {"kind": "step", "step_epochs": 1, "step_factor": 0.5}
    alone = logged_lr(iris_steps.patched({"schedule": schedule}), tmp_path / "alone")

    # when it trains behind the warmup
    warmed = logged_lr(iris_steps.patched({"schedule": {**schedule, "warmup": 4}}),
                       tmp_path / "warmed")

    # then the schedule's own curve follows the warmup, four steps late
    assert warmed[4:] == pytest.approx(alone[:-4])


def test_step_decay_multiplies_the_lr_every_few_epochs(iris_steps: ExperimentSpec,
                                                       workdir: Path) -> None:
    # given step decay by 0.5 every 2 epochs
    spec = iris_steps.patched({"schedule": {"kind": "step", "step_epochs": 2,
                                            "step_factor": 0.5}})

    # when it trains for 5 epochs
    lrs = logged_lr(spec, workdir)

    # then epochs 1-2 used 0.01, epochs 3-4 used 0.005 and epoch 5 used 0.0025
    per_epoch = [0.01, 0.01, 0.005, 0.005, 0.0025]
    assert lrs == pytest.approx([lr for lr in per_epoch for _ in range(STEPS_PER_EPOCH)])


def test_exponential_decay_falls_by_its_factor_each_epoch(iris_steps: ExperimentSpec,
                                                          workdir: Path) -> None:
    # given exponential decay by 0.5 per epoch
    spec = iris_steps.patched({"schedule": {"kind": "exponential", "decay_per_epoch": 0.5}})

    # when it trains
    lrs = logged_lr(spec, workdir)

    # then the first step of epoch e used 0.01 × 0.5^(e-1), and it fell at every step
    assert lrs[::STEPS_PER_EPOCH] == pytest.approx([0.01 * 0.5**e for e in range(5)])
    assert all(later < earlier for earlier, later in zip(lrs, lrs[1:], strict=False))


def test_cosine_annealing_follows_half_a_cosine_to_its_floor(iris_steps: ExperimentSpec,
                                                             workdir: Path) -> None:
    # given cosine annealing from 0.01 to 0.001 over the run's 40 steps
    spec = iris_steps.patched({"schedule": {"kind": "cosine", "min_lr": 0.001}})

    # when it trains
    lrs = logged_lr(spec, workdir)

    # then step s used the cosine curve at (s - 1) / 40 of the way
    expected = [0.001 + 0.009 * (1 + math.cos(math.pi * s / 40)) / 2 for s in range(40)]
    assert lrs == pytest.approx(expected)


def test_one_cycle_rises_to_the_learning_rate_then_anneals(iris_steps: ExperimentSpec,
                                                           workdir: Path) -> None:
    # given a one-cycle schedule peaking at lr 0.01 after a quarter of its 40 steps
    spec = iris_steps.patched({"schedule": {"kind": "one_cycle", "pct_start": 0.25}})

    # when it trains
    lrs = logged_lr(spec, workdir)

    # then it starts at lr / 25, rises to lr at step 10, and falls from there to near zero
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(0.01 / 25)
    assert (peak + 1, lrs[peak]) == (10, pytest.approx(0.01))
    assert all(b > a for a, b in zip(lrs[:peak], lrs[1:peak + 1], strict=False))
    assert all(b < a for a, b in zip(lrs[peak:], lrs[peak + 1:], strict=False))
    assert lrs[-1] < 0.01 / 1000


def test_reduce_on_plateau_cuts_the_lr_after_an_epoch_without_improvement(
        iris_steps: ExperimentSpec, workdir: Path) -> None:
    # given reduce-on-plateau watching validation accuracy with patience 0 and factor 0.5,
    # over 8 epochs (validation accuracy stalls at times on iris)
    spec = iris_steps.patched({"schedule": {"kind": "plateau", "plateau_patience": 0,
                                            "plateau_factor": 0.5},
                               "run": {"epochs": 8}})
    reporter = MemoryReporter()

    # when it trains
    run(spec, reporter, workdir)

    # then each epoch's lr is halved exactly after each epoch that set no new best (the first
    # epoch sets the first best)
    lrs = epoch_series(reporter, "lr")[::STEPS_PER_EPOCH]
    accuracy = epoch_series(reporter, "val_acc")
    expected, best = [0.01, 0.01], accuracy[0]
    for value in accuracy[1:-1]:
        expected.append(expected[-1] if value > best else expected[-1] / 2)
        best = max(best, value)
    assert lrs == pytest.approx(expected)
    assert min(lrs) < 0.01, "the run never stalled: the test shows nothing"


# --- penalties ------------------------------------------------------------------------------


def test_an_l1_penalty_drives_weights_to_zero(iris_steps: ExperimentSpec,
                                              tmp_path: Path) -> None:
    # given a wider MLP trained 40 epochs without and with an L1 penalty of 0.001
    base = iris_steps.patched({"model": {"hidden_sizes": [64]}, "run": {"epochs": 40}})
    free = run(base, MemoryReporter(), tmp_path / "free")
    sparse = run(base.patched({"regularization": {"l1": 0.001}}), MemoryReporter(),
                 tmp_path / "sparse")

    # when the shares of near-zero weights (below 0.01) are counted
    def near_zero(result: RunResult) -> float:
        return float((weights(result.model).abs() < 0.01).float().mean())

    # then the penalised model has far more of them
    assert near_zero(sparse) > near_zero(free) + 0.3, (near_zero(free), near_zero(sparse))


# --- early stopping -------------------------------------------------------------------------


@pytest.fixture
def patient_wine(make_spec: SpecFactory) -> ExperimentSpec:
    """Wine with patience 3: validation accuracy plateaus well before 60 epochs."""
    return make_spec({
        "data": {"dataset": "wine"},
        "model": {"arch": "mlp", "hidden_sizes": [32]},
        "run": {"epochs": 60, "early_stopping_patience": 3},
    })


def state(model: nn.Module | None) -> dict[str, torch.Tensor]:
    assert model is not None
    return {name: value.cpu() for name, value in model.state_dict().items()}


def test_early_stopping_ends_with_the_best_epochs_weights(patient_wine: ExperimentSpec,
                                                          workdir: Path) -> None:
    # given a run that stops early, three epochs after its best one (watching the validation
    # loss, at a learning rate high enough for it to rise again)
    spec = patient_wine.patched({"optim": {"lr": 0.03}, "run": {"monitor": "val_loss"}})
    result = run(spec, MemoryReporter(), workdir)
    assert result.stopped_early and result.epochs - result.best_epoch == 3

    # when its final model is compared with the best and the last checkpoints
    final = state(result.model)
    best = state(load(workdir / "best.zip").model)
    last = state(load(workdir / "last.zip").model)

    # then it holds the best epoch's weights, not the last epoch's
    assert all(torch.equal(final[name], best[name]) for name in final)
    assert not all(torch.equal(final[name], last[name]) for name in final)


def test_without_restoring_the_run_ends_with_the_last_weights(patient_wine: ExperimentSpec,
                                                              workdir: Path) -> None:
    # given the same early-stopping run with restore_best off
    spec = patient_wine.patched({"run": {"restore_best": False}})

    # when it trains
    result = run(spec, MemoryReporter(), workdir)

    # then its final model is the last epoch's
    final, last = state(result.model), state(load(workdir / "last.zip").model)
    assert all(torch.equal(final[name], last[name]) for name in final)


def test_early_stopping_watches_the_chosen_metric(patient_wine: ExperimentSpec,
                                                  workdir: Path) -> None:
    # given early stopping that watches the validation loss (lower is better), at a learning
    # rate high enough for it to rise again within 60 epochs
    spec = patient_wine.patched({"optim": {"lr": 0.03}, "run": {"monitor": "val_loss"}})
    reporter = MemoryReporter()

    # when it trains
    result = run(spec, reporter, workdir)

    # then the best epoch is the one of lowest validation loss, and the run stopped three
    # epochs after it
    losses = epoch_series(reporter, "val_loss")
    assert result.best_epoch == losses.index(min(losses)) + 1
    assert result.best_metrics["val_loss"] == min(losses)
    assert result.stopped_early and result.epochs == result.best_epoch + 3


# --- gradient accumulation ------------------------------------------------------------------


def test_two_accumulated_batches_match_one_batch_twice_as_large(make_spec: SpecFactory,
                                                                tmp_path: Path) -> None:
    # given iris in batches of 64, and in batches of 32 accumulated two at a time (the same
    # rows per step: 120 rows make steps of 64 and 56 either way)
    large = make_spec({"data": {"dataset": "iris"}, "model": {"arch": "mlp"},
                       "optim": {"optimizer": "sgd", "lr": 0.1},
                       "run": {"epochs": 3, "batch_size": 64}})
    accumulated = large.patched({"run": {"batch_size": 32, "grad_accumulation": 2}})

    # when both train
    large_log, accumulated_log = MemoryReporter(), MemoryReporter()
    large_run = run(large, large_log, tmp_path / "large")
    accumulated_run = run(accumulated, accumulated_log, tmp_path / "accumulated")

    # then they took the same steps, logged the same losses and ended with the same weights
    assert accumulated_run.steps == large_run.steps == 6
    assert epoch_series(accumulated_log, "loss") == pytest.approx(epoch_series(large_log, "loss"))
    final, expected = state(accumulated_run.model), state(large_run.model)
    for name, value in expected.items():
        torch.testing.assert_close(final[name], value, rtol=1e-5, atol=1e-6)


def test_accumulation_counts_steps_not_batches(iris_steps: ExperimentSpec,
                                               workdir: Path) -> None:
    # given 8 batches per epoch accumulated 3 at a time, for 5 epochs
    spec = iris_steps.patched({"run": {"grad_accumulation": 3}})
    reporter = MemoryReporter()

    # when it trains
    result = run(spec, reporter, workdir)

    # then each epoch took 3 steps (3 + 3 + 2 batches), and the run announced 15
    assert result.steps == 15
    assert reporter.statuses[0][1]["total_steps"] == 15


# --- precision and compilation --------------------------------------------------------------


def test_auto_precision_trains_in_float32_on_the_cpu(iris_steps: ExperimentSpec,
                                                     workdir: Path) -> None:
    # given the default precision (auto) on the CPU
    reporter = MemoryReporter()

    # when it trains
    run(iris_steps.patched({"run": {"epochs": 1}}), reporter, workdir)

    # then it announced float32
    assert reporter.statuses[0][1]["precision"] == "float32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_bf16_on_a_worker_without_a_gpu_is_a_training_error(iris_steps: ExperimentSpec,
                                                            workdir: Path) -> None:
    # given a spec asking for bf16 on whatever device is available (here: the CPU)
    spec = iris_steps.patched({"run": {"precision": "bf16", "device": "auto"}})

    # when it runs
    with pytest.raises(TrainingError) as caught:
        run(spec, MemoryReporter(), workdir)

    # then the error says what to choose instead
    assert "CUDA" in str(caught.value) and "fp32" in str(caught.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_precision_is_bf16_autocast_on_cuda(make_spec: SpecFactory, workdir: Path) -> None:
    # given the default CNN on digits on CUDA, with the default precision (auto)
    spec = make_spec({"run": {"epochs": 3, "device": "cuda"}})
    reporter = MemoryReporter()

    # when it trains
    result = run(spec, reporter, workdir)

    # then it ran in bf16, still learned, and kept float32 weights
    assert reporter.statuses[0][1]["precision"] == "bfloat16"
    assert result.best_metrics["val_acc"] > 0.90
    assert all(p.dtype == torch.float32 for p in load(workdir / "best.zip").model.parameters())


@pytest.mark.parametrize(("dataset", "loss"), [("iris", "cross_entropy"),
                                              ("diabetes", "huber")])
def test_evaluation_under_bf16_autocast_matches_float32(dataset: str, loss: str) -> None:
    # given an untrained MLP and its loss on a classification and a regression split (bf16
    # autocast runs on the CPU too, so its code path is checked without a GPU)
    spec = ExperimentSpec().patched({"data": {"dataset": dataset}, "model": {"arch": "mlp"},
                                     "optim": {"loss": loss}})
    data = prepare(dataset, spec.data.val_fraction, spec.run.seed)
    torch.manual_seed(0)
    model = build_model(spec.model, data.info.input_shape, data.info.num_classes or 1)
    loss_fn = make_loss(spec, data.y_train, data.info.num_classes)

    # when it is evaluated in float32 and under bf16 autocast
    full = evaluate(model, loss_fn, data.x_val, data.y_val, data)
    half = evaluate(model, loss_fn, data.x_val, data.y_val, data, torch.bfloat16)

    # then every metric agrees to bf16's precision (about 3 significant digits), and the loss
    # shows that bf16 was used
    assert half["loss"] != full["loss"]
    assert half.keys() == full.keys()
    for name, value in full.items():
        assert half[name] == pytest.approx(value, rel=0.02, abs=0.02), name


def test_a_compiled_run_trains_like_the_plain_one(iris_steps: ExperimentSpec,
                                                  tmp_path: Path) -> None:
    # given one epoch of a spec, plain and with torch.compile on (the "eager" backend: the
    # default inductor backend takes a minute to build C++ on this CPU)
    short = iris_steps.patched({"run": {"epochs": 1}})
    plain, compiled = MemoryReporter(), MemoryReporter()
    run(short, plain, tmp_path / "plain")

    # when the compiled one trains
    run(short.patched({"run": {"compile": True}}), compiled, tmp_path / "compiled",
        compile_backend="eager")

    # then it said so, logged the same losses, and its checkpoint loads as a plain model
    assert compiled.statuses[0][1]["compiled"] is True
    assert epoch_series(compiled, "loss") == pytest.approx(epoch_series(plain, "loss"))
    loaded = load(tmp_path / "compiled" / "last.zip")
    assert loaded.spec.run.compile is True
    assert not any(name.startswith("_orig_mod") for name in loaded.model.state_dict())


# --- the spec travels with the checkpoint ---------------------------------------------------


def test_the_checkpoint_carries_the_schedule_and_penalties(iris_steps: ExperimentSpec,
                                                           workdir: Path) -> None:
    # given a run with a schedule, a warmup, an L1 penalty and training-control options
    spec = iris_steps.patched({
        "schedule": {"kind": "cosine", "warmup": 1, "warmup_unit": "epochs"},
        "regularization": {"l1": 1e-4},
        "optim": {"optimizer": "adamw", "label_smoothing": 0.1},
        "run": {"epochs": 2, "grad_accumulation": 2, "monitor": "val_loss"},
    })

    # when it trains and its checkpoint is loaded
    run(spec, MemoryReporter(), workdir)

    # then the checkpoint's spec is the run's, every option included
    assert load(workdir / "best.zip").spec == spec
