"""The training loop: it learns, reports every step and epoch, stops on non-finite losses, on
cancellation and on early stopping, and each hyper-parameter does what it says."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import nn

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import load
from training.data import dataset_info, prepare
from training.loop import NonFiniteLossError, TrainingError
from training.models import build_model
from training.spec import ModelSpec

from .conftest import SpecFactory

# --- it learns ------------------------------------------------------------------------------


def test_the_default_cnn_learns_digits(make_spec: SpecFactory, workdir: Path) -> None:
    # given the default spec (a CNN on digits), shortened to three epochs
    spec = make_spec({"run": {"epochs": 3}})

    # when it trains
    result = run(spec, MemoryReporter(), workdir)

    # then its best validation accuracy beats 90%
    assert result.status == "succeeded"
    assert result.best_metrics["val_acc"] > 0.90, result.best_metrics


def test_an_mlp_learns_wine(make_spec: SpecFactory, workdir: Path) -> None:
    # given a one-hidden-layer MLP on wine
    spec = make_spec({
        "data": {"dataset": "wine"},
        "model": {"arch": "mlp", "hidden_sizes": [32]},
        "run": {"epochs": 30},
    })

    # when it trains
    result = run(spec, MemoryReporter(), workdir)

    # then it classifies most validation wines correctly
    assert result.best_metrics["val_acc"] > 0.85, result.best_metrics


def test_regression_beats_predicting_the_mean(make_spec: SpecFactory, workdir: Path) -> None:
    # given an MLP with MSE on diabetes, and the RMSE of always predicting the training mean
    spec = make_spec({
        "data": {"dataset": "diabetes"},
        "model": {"arch": "mlp", "hidden_sizes": [32]},
        "optim": {"loss": "mse", "lr": 0.01},
        "run": {"epochs": 10},
    })
    data = prepare("diabetes", spec.data.val_fraction, spec.run.seed)
    mean_rmse = float(data.y_val.pow(2).mean().sqrt()) * data.target_std  # in target units

    # when it trains
    result = run(spec, MemoryReporter(), workdir)

    # then its validation RMSE is clearly lower
    assert result.best_metrics["val_rmse"] < 0.85 * mean_rmse, (result.best_metrics, mean_rmse)


# --- what it reports ------------------------------------------------------------------------


def test_every_step_logs_its_loss_once(iris_mlp: ExperimentSpec, workdir: Path) -> None:
    # given a 3-epoch run of 2 steps per epoch
    reporter = MemoryReporter()

    # when it trains
    result = run(iris_mlp, reporter, workdir)

    # then steps 1..6 each logged one finite loss, in order
    steps = [step for step, _ in reporter.series("loss")]
    assert steps == list(range(1, 7)) and result.steps == 6
    assert all(math.isfinite(value) for _, value in reporter.series("loss"))


def test_every_epoch_logs_its_metrics_once(iris_mlp: ExperimentSpec, workdir: Path) -> None:
    # given a 3-epoch run of 2 steps per epoch
    reporter = MemoryReporter()

    # when it trains
    run(iris_mlp, reporter, workdir)

    # then each epoch logged its metrics once, at the step that closed it
    epoch_points = [(step, m) for step, m in reporter.points if "epoch" in m]
    assert [(step, m["epoch"]) for step, m in epoch_points] == [(2, 1.0), (4, 2.0), (6, 3.0)]
    for _, metrics in epoch_points:
        assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= metrics.keys()
        assert "loss" not in metrics


def test_the_first_status_announces_the_whole_run(iris_mlp: ExperimentSpec,
                                                  workdir: Path) -> None:
    # given a 3-epoch run of 2 steps per epoch
    reporter = MemoryReporter()

    # when it trains
    run(iris_mlp, reporter, workdir)

    # then it first said it was running, with the total steps and the parameter count
    message, fields = reporter.statuses[0]
    assert message == "running"
    assert fields["total_steps"] == 6 and fields["epochs"] == 3
    assert fields["parameters"] == 4 * 16 + 16 + 16 * 3 + 3


def test_with_no_checkpoint_interval_every_epoch_is_written(iris_mlp: ExperimentSpec,
                                                             workdir: Path) -> None:
    # given a 3-epoch run that may write checkpoints at any time
    reporter = MemoryReporter()

    # when it trains
    run(iris_mlp, reporter, workdir, checkpoint_interval=0)

    # then a "last" checkpoint was announced every epoch, and every announced file exists
    tags = [tag for _, tag, _ in reporter.checkpoints]
    assert tags.count("last") == 3 and "best" in tags
    assert all(path.is_file() for path, _, _ in reporter.checkpoints)
    assert [load(path).meta["epoch"] for path, tag, _ in reporter.checkpoints[-1:]] == [3]


def test_a_short_run_writes_each_checkpoint_once_at_the_end(iris_mlp: ExperimentSpec,
                                                            workdir: Path) -> None:
    # given a 3-epoch run far shorter than the checkpoint interval
    reporter = MemoryReporter()

    # when it trains
    result = run(iris_mlp, reporter, workdir, checkpoint_interval=3600)

    # then best and last were each written once, after training, holding their epochs' weights
    assert [tag for _, tag, _ in reporter.checkpoints] == ["best", "last"]
    assert load(workdir / "last.zip").meta["epoch"] == 3
    assert load(workdir / "best.zip").meta["epoch"] == result.best_epoch
    assert load(workdir / "best.zip").meta["metrics"] == result.best_metrics


def test_a_run_is_reproducible_from_its_seed(iris_mlp: ExperimentSpec, tmp_path: Path) -> None:
    # given one run of a spec
    first = MemoryReporter()
    run(iris_mlp, first, tmp_path / "first")

    # when the same spec runs again
    second = MemoryReporter()
    run(iris_mlp, second, tmp_path / "second")

    # then every logged value is the same
    assert second.points == first.points


def test_another_seed_gives_another_run(iris_mlp: ExperimentSpec, tmp_path: Path) -> None:
    # given one run of a spec
    first = MemoryReporter()
    run(iris_mlp, first, tmp_path / "first")

    # when it runs with another seed
    second = MemoryReporter()
    run(iris_mlp.patched({"run": {"seed": 1}}), second, tmp_path / "second")

    # then its losses differ
    assert second.series("loss") != first.series("loss")


# --- non-finite losses ----------------------------------------------------------------------


class Diverged(NamedTuple):
    error: NonFiniteLossError
    reporter: MemoryReporter
    workdir: Path


@pytest.fixture(scope="module")
def diverged(tmp_path_factory: pytest.TempPathFactory) -> Diverged:
    """SGD at lr 1 with momentum on diabetes: four steps per epoch, and the loss overflows to
    infinity at a training step of epoch 2 (step 6 on the machines tried)."""
    spec = ExperimentSpec().patched({
        "data": {"dataset": "diabetes"},
        "model": {"arch": "mlp", "hidden_sizes": [16]},
        "optim": {"loss": "mse", "optimizer": "sgd", "lr": 1.0, "momentum": 0.9},
        "run": {"epochs": 30, "batch_size": 89, "seed": 1, "device": "cpu"},
    })
    workdir = tmp_path_factory.mktemp("diverged")
    reporter = MemoryReporter()
    with pytest.raises(NonFiniteLossError) as caught:
        run(spec, reporter, workdir)
    return Diverged(caught.value, reporter, workdir)


def failed_at(error: NonFiniteLossError, unit: str) -> int:
    """The step or epoch a non-finite loss error names."""
    match = re.search(rf"\b{unit} (\d+)", str(error))
    assert match, f"no {unit} in {error}"
    return int(match.group(1))


def test_a_non_finite_loss_stops_the_run_at_its_step(diverged: Diverged) -> None:
    # given a run whose loss overflowed (the fixture)
    # when the error and the logged losses are compared
    failed_step = failed_at(diverged.error, "step")
    losses = diverged.reporter.series("loss")

    # then every logged loss is finite, and the error names the step right after the last one
    assert all(math.isfinite(value) for _, value in losses)
    assert [step for step, _ in losses] == list(range(1, failed_step))


def test_a_non_finite_loss_logs_nothing_after_it(diverged: Diverged) -> None:
    # given a run whose loss overflowed (the fixture)
    failed_step = failed_at(diverged.error, "step")

    # when the last logged point is looked at
    last_step, _ = diverged.reporter.points[-1]

    # then nothing was logged for the failed step or later
    assert last_step < failed_step


def test_a_non_finite_loss_keeps_earlier_checkpoints(diverged: Diverged) -> None:
    # given a run whose loss overflowed during a later epoch (the fixture)
    failed_epoch = failed_at(diverged.error, "epoch")
    assert failed_epoch >= 2, "the fixture must diverge after its first epoch"

    # when the checkpoints left in its folder are loaded
    last = load(diverged.workdir / "last.zip")
    best = load(diverged.workdir / "best.zip")

    # then the last one is the epoch before the failure, with finite metrics
    assert last.meta["epoch"] == failed_epoch - 1
    assert 1 <= best.meta["epoch"] < failed_epoch
    assert all(math.isfinite(v) for v in last.meta["metrics"].values())


def test_a_non_finite_loss_is_a_training_error_with_a_remedy(diverged: Diverged) -> None:
    # given a run whose loss overflowed (the fixture)
    # when its error is shown to the user
    message = str(diverged.error)

    # then it is a TrainingError that suggests what to change
    assert isinstance(diverged.error, TrainingError)
    assert "learning rate" in message and "clipping" in message


# --- cancellation ---------------------------------------------------------------------------


def test_cancelling_stops_after_the_requested_step(iris_mlp: ExperimentSpec,
                                                   workdir: Path) -> None:
    # given a reporter that asks to stop once step 5 is logged
    reporter = MemoryReporter(stop_after_step=5)

    # when a 10-epoch run of 2 steps per epoch trains
    result = run(iris_mlp.patched({"run": {"epochs": 10}}), reporter, workdir)

    # then it ends cancelled with exactly five steps taken and logged
    assert result.status == "cancelled"
    assert result.steps == 5 and result.epochs == 2
    assert [step for step, _ in reporter.series("loss")] == [1, 2, 3, 4, 5]


def test_cancelling_saves_the_last_weights(iris_mlp: ExperimentSpec, workdir: Path) -> None:
    # given a reporter that asks to stop once step 5 is logged
    reporter = MemoryReporter(stop_after_step=5)

    # when a 10-epoch run trains
    run(iris_mlp.patched({"run": {"epochs": 10}}), reporter, workdir)

    # then last.zip was written at step 5 and announced as the final checkpoint
    assert load(workdir / "last.zip").meta["step"] == 5
    path, tag, _ = reporter.checkpoints[-1]
    assert (path.name, tag) == ("last.zip", "last")


# --- early stopping -------------------------------------------------------------------------


@pytest.fixture
def patient_spec(make_spec: SpecFactory) -> ExperimentSpec:
    """Wine with patience 3: validation accuracy plateaus well before 60 epochs."""
    return make_spec({
        "data": {"dataset": "wine"},
        "model": {"arch": "mlp", "hidden_sizes": [32]},
        "run": {"epochs": 60, "early_stopping_patience": 3},
    })


def test_early_stopping_ends_after_patience_epochs_without_improvement(
        patient_spec: ExperimentSpec, workdir: Path) -> None:
    # given a 60-epoch spec with patience 3
    # when it trains
    reporter = MemoryReporter()
    result = run(patient_spec, reporter, workdir)

    # then it stopped early, three epochs after the first epoch that reached its best
    # accuracy (a later tie with a lower loss may be the best checkpoint, but it does not
    # prolong the run)
    assert result.stopped_early
    assert result.epochs < 60
    first_best = next(int(m["epoch"]) for m in epoch_logs(reporter)
                      if m["val_acc"] == result.best_metrics["val_acc"])
    assert result.epochs - first_best == 3


def epoch_logs(reporter: MemoryReporter) -> list[dict[str, float]]:
    """The metrics each epoch logged, in order."""
    return [m for _, m in reporter.points if "epoch" in m]


def test_among_epochs_tied_on_accuracy_the_lowest_loss_is_the_best(
        patient_spec: ExperimentSpec, workdir: Path) -> None:
    # given wine without early stopping: its 36 validation rows give accuracy few values, so
    # many epochs tie on it
    spec = patient_spec.patched({"run": {"epochs": 30, "early_stopping_patience": 0}})
    reporter = MemoryReporter()

    # when it trains
    result = run(spec, reporter, workdir)

    # then the best epoch has the top accuracy and, among the epochs tied on it, the lowest
    # validation loss; best.zip holds that epoch
    epochs = epoch_logs(reporter)
    top = max(m["val_acc"] for m in epochs)
    tied = [m for m in epochs if m["val_acc"] == top]
    assert len(tied) > 1
    chosen = min(tied, key=lambda m: m["val_loss"])
    assert result.best_epoch == int(chosen["epoch"])
    assert result.best_epoch != int(tied[0]["epoch"])
    assert load(workdir / "best.zip").meta["epoch"] == result.best_epoch


def test_the_best_checkpoint_holds_the_best_epoch(patient_spec: ExperimentSpec,
                                                  workdir: Path) -> None:
    # given a run that stopped early
    result = run(patient_spec, MemoryReporter(), workdir)

    # when best.zip's model is evaluated on the validation split
    best = load(workdir / "best.zip")
    data = prepare("wine", patient_spec.data.val_fraction, patient_spec.run.seed)
    with torch.no_grad():
        correct = int((best.model(data.x_val).argmax(1) == data.y_val).sum())

    # then it is the best epoch's model, with the best epoch's validation accuracy
    assert best.meta["epoch"] == result.best_epoch
    assert correct / len(data.y_val) == result.best_metrics["val_acc"]


def test_without_patience_a_run_goes_the_full_length(iris_mlp: ExperimentSpec,
                                                     workdir: Path) -> None:
    # given a spec with early stopping off
    # when it trains
    result = run(iris_mlp, MemoryReporter(), workdir)

    # then it ran every epoch
    assert (result.epochs, result.stopped_early) == (3, False)


# --- hyper-parameters with an observable effect ---------------------------------------------


def one_step(spec: ExperimentSpec, workdir: Path) -> tuple[dict, dict]:
    """The model's weights before and after the first optimizer step of ``spec``'s run."""
    torch.manual_seed(spec.run.seed)  # the loop seeds torch the same way before building
    info = dataset_info(spec.data.dataset)
    before = build_model(spec.model, info.input_shape, info.num_classes or 1).state_dict()
    run(spec, MemoryReporter(stop_after_step=1), workdir)
    after = load(workdir / "last.zip").model.state_dict()
    return before, after


def update_norm(before: dict, after: dict) -> float:
    return float(torch.cat([(after[k] - before[k]).flatten() for k in before]).norm())


@pytest.fixture
def plain_sgd(iris_mlp: ExperimentSpec) -> ExperimentSpec:
    """Plain SGD (no momentum) with lr 1, so one step moves the weights by the gradient."""
    return iris_mlp.patched({"optim": {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0}})


def test_grad_clip_bounds_the_size_of_an_update(plain_sgd: ExperimentSpec,
                                                tmp_path: Path) -> None:
    # given plain SGD with lr 1, unclipped and clipped to a global norm of 0.01
    clipped = plain_sgd.patched({"run": {"grad_clip": 0.01}})

    # when each takes one step
    free_norm = update_norm(*one_step(plain_sgd, tmp_path / "free"))
    clipped_norm = update_norm(*one_step(clipped, tmp_path / "clipped"))

    # then the clipped step is exactly lr × clip long, far shorter than the free one
    assert clipped_norm == pytest.approx(0.01, rel=1e-3)
    assert free_norm > 10 * clipped_norm


def test_weight_decay_pulls_every_weight_towards_zero(plain_sgd: ExperimentSpec,
                                                      tmp_path: Path) -> None:
    # given plain SGD with lr 1, without and with weight decay 0.1
    decayed = plain_sgd.patched({"optim": {"weight_decay": 0.1}})

    # when each takes one step from the same initial weights
    initial, free = one_step(plain_sgd, tmp_path / "free")
    _, shrunk = one_step(decayed, tmp_path / "decayed")

    # then the decayed step differs by exactly lr × decay × the initial weights
    for name, weight in initial.items():
        torch.testing.assert_close(shrunk[name] - free[name], -0.1 * weight,
                                   atol=1e-6, rtol=1e-4)


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def test_a_cnn_with_batch_norm_has_one_after_each_convolution() -> None:
    # given a two-block CNN spec with batch norm on
    spec = ModelSpec(arch="cnn", blocks=2, batch_norm=True)

    # when the model is built
    model = build_model(spec, (1, 8, 8), 10)

    # then each of its four convolutions is followed by a BatchNorm2d, and has no bias
    assert count(model, nn.Conv2d) == count(model, nn.BatchNorm2d) == 4
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_a_cnn_without_batch_norm_has_none() -> None:
    # given a two-block CNN spec with batch norm off
    spec = ModelSpec(arch="cnn", blocks=2, batch_norm=False)

    # when the model is built
    model = build_model(spec, (1, 8, 8), 10)

    # then it has no BatchNorm2d, and its convolutions have biases instead
    assert count(model, nn.BatchNorm2d) == 0
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(("arch", "shape"), [("mlp", (13,)), ("cnn", (1, 8, 8))])
def test_dropout_is_random_in_training_and_off_in_evaluation(arch: str,
                                                             shape: tuple[int, ...]) -> None:
    # given a model with dropout 0.5 and one batch of inputs
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch=arch, dropout=0.5), shape, 3)
    x = torch.randn(16, *shape)

    # when the batch goes through twice in training mode and twice in evaluation mode
    model.train()
    train_outputs = model(x), model(x)
    model.eval()
    eval_outputs = model(x), model(x)

    # then only the training-mode outputs differ
    assert not torch.equal(*train_outputs)
    assert torch.equal(*eval_outputs)


def test_an_mlp_without_dropout_has_no_dropout_layer() -> None:
    # given an MLP spec with dropout 0
    # when the model is built
    model = build_model(ModelSpec(arch="mlp", hidden_sizes=(8, 8), dropout=0.0), (4,), 3)

    # then it holds no Dropout module
    assert count(model, nn.Dropout) == 0


# --- devices --------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_training_error(iris_mlp: ExperimentSpec,
                                                           workdir: Path) -> None:
    # given a spec that asks for CUDA on a machine without a GPU
    spec = iris_mlp.patched({"run": {"device": "cuda"}})

    # when it runs
    with pytest.raises(TrainingError) as caught:
        run(spec, MemoryReporter(), workdir)

    # then the error says why
    assert "no GPU" in str(caught.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_default_cnn_learns_digits_on_cuda(make_spec: SpecFactory, workdir: Path) -> None:
    # given the default CNN on digits, asked to train on CUDA
    spec = make_spec({"run": {"epochs": 3, "device": "cuda"}})
    reporter = MemoryReporter()

    # when it trains
    result = run(spec, reporter, workdir)

    # then it ran on the GPU, beat 90%, and its checkpoint still loads on the CPU
    assert reporter.statuses[0][1]["device"].startswith("cuda")
    assert result.best_metrics["val_acc"] > 0.90
    assert load(workdir / "best.zip").meta["device"].startswith("cuda")


def test_a_one_row_remainder_joins_the_previous_batch_so_batch_norm_can_train(workdir) -> None:
    # given 1437 training rows in batches of 4 (one row left over) and a deep batch-norm CNN
    spec = ExperimentSpec.from_dict({"model": {"blocks": 4, "width": 4},
                                     "run": {"epochs": 1, "batch_size": 4, "device": "cpu"}})
    reporter = MemoryReporter()

    # when it trains
    result = run(spec, reporter, workdir)

    # then every batch had at least two rows: 359 steps, the last one of 5 rows
    assert result.status == "succeeded"
    assert result.steps == 1437 // 4
