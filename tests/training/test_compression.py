"""Compression: pruning, distillation, int8 quantization, their checkpoints and their spec."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import Checkpoint, load
from training.compression import prune
from training.compression.distill import distillation_loss
from training.compression.job import CompressionResult, compress
from training.compression.quantize import (
    INT8_KERNEL,
    Int8Linear,
    int8_matmul,
    quantize_dynamic,
    quantize_rows,
)
from training.compression.spec import CompressionSpec, _FlatFields, job_spec_dict, split_job_spec
from training.data import prepare
from training.spec import SpecError

DIGITS_MLP = {"data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden_sizes": [64, 32]},
              "run": {"epochs": 3, "batch_size": 128, "device": "cpu"}}
DIGITS_CNN = {"data": {"dataset": "digits"}, "model": {"arch": "cnn", "width": 8, "blocks": 2},
              "run": {"epochs": 2, "batch_size": 128, "device": "cpu"}}


def _train(tmp: Path, patch: dict[str, Any]) -> Checkpoint:
    spec = ExperimentSpec.from_dict(patch)
    run(spec, MemoryReporter(), tmp)
    return load(tmp / "best.zip")


@pytest.fixture(scope="module")
def mlp_source(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    torch.set_num_threads(1)
    return _train(tmp_path_factory.mktemp("mlp"), DIGITS_MLP)


@pytest.fixture(scope="module")
def cnn_source(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    torch.set_num_threads(1)
    return _train(tmp_path_factory.mktemp("cnn"), DIGITS_CNN)


def _compress(source: Checkpoint, tmp: Path, **fields: Any) -> CompressionResult:
    spec = CompressionSpec.from_dict({"source": 1, **fields})
    result = compress(spec, source, MemoryReporter(), tmp)
    assert result.status == "succeeded"
    return result


def _val_batch(source: Checkpoint) -> torch.Tensor:
    spec = source.spec
    return prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed).x_val[:64]


# Weight pruning ------------------------------------------------------------------------------

def test_pruned_weights_stay_zero_through_fine_tuning(mlp_source: Checkpoint,
                                                      tmp_path: Path) -> None:
    # given a model pruned to 70% with its masks in place
    model = copy.deepcopy(mlp_source.model).train()
    prune.prune_weights(model, 0.7, "global")
    zeros = {id(layer): layer.weight == 0 for layer in prune.prunable_layers(model)}
    # when it is fine-tuned by the training loop for two epochs and the masks are folded in
    spec = dataclasses.replace(mlp_source.spec, run=dataclasses.replace(mlp_source.spec.run,
                                                                        epochs=2))
    run(spec, MemoryReporter(), tmp_path, model=model)
    prune.make_permanent(model)
    # then every weight pruned before fine-tuning is still exactly zero, with no masks left
    for layer in prune.prunable_layers(model):
        assert not hasattr(layer, "weight_mask")
        assert torch.all(layer.weight[zeros[id(layer)]] == 0)
    assert prune.weight_sparsity(model) == pytest.approx(0.7, abs=1e-3)


def test_layer_scope_prunes_each_layer_to_the_sparsity(mlp_source: Checkpoint) -> None:
    # given the trained MLP
    model = copy.deepcopy(mlp_source.model)
    # when it is pruned per layer in two steps to 60%
    prune.prune_weights(model, 0.3, "layer")
    prune.prune_weights(model, 0.6, "layer")
    # then every layer, not only the whole, is 60% zeros
    for layer in prune.prunable_layers(model):
        share = float((layer.weight == 0).float().mean())
        assert share == pytest.approx(0.6, abs=0.01)


def test_iterative_pruning_job_reaches_the_target_and_streams_one_curve(
        mlp_source: Checkpoint, tmp_path: Path) -> None:
    # given a job of 3 pruning steps to 80% with one fine-tuning epoch each
    spec = CompressionSpec(source=1, method="prune_weights", sparsity=0.8, steps=3,
                           finetune_epochs=1)
    reporter = MemoryReporter()
    # when it runs
    result = compress(spec, mlp_source, reporter, tmp_path)
    # then the saved model is 80% sparse and the three stages form one curve of 3 epochs
    assert result.report["weight_sparsity"] == pytest.approx(0.8, abs=1e-3)
    steps = [step for step, _ in reporter.points]
    assert steps == sorted(steps) and len(set(steps)) == len({s for s, m in reporter.points
                                                              if "loss" in m})
    assert [v for _, v in reporter.series("epoch")] == [1.0, 2.0, 3.0]
    assert [tag for _, tag, _ in reporter.checkpoints] == ["best"]
    assert result.report["result"]["nonzero_parameters"] < result.report["source"][
        "nonzero_parameters"] / 3


def test_global_pruning_in_steps_prunes_a_network_fine_tuned_channels_last(
        cnn_source: Checkpoint, tmp_path: Path) -> None:
    # given the CNN (its convolutions train channels last, so fine-tuning leaves their weights
    # and masks in that layout) and global pruning in two steps with fine-tuning between
    spec = CompressionSpec(source=1, method="prune_weights", sparsity=0.6, steps=2,
                           finetune_epochs=1, scope="global")
    # when it runs (the second step ranked the fine-tuned weights with a flat view, which that
    # layout has not: "view size is not compatible with input tensor's size and stride")
    result = compress(spec, cnn_source, MemoryReporter(), tmp_path)
    # then it reaches the sparsity
    assert result.status == "succeeded"
    assert result.report["weight_sparsity"] == pytest.approx(0.6, abs=1e-3)


def test_fine_tuning_shorter_than_the_sources_warmup_trains_at_the_sources_rate(
        tmp_path: Path) -> None:
    # given an iris MLP trained at 0.01 for 6 epochs with a 3-epoch warmup, and pruning in two
    # steps of one fine-tuning epoch each (4 steps: the warmup would be all of each stage)
    source = _train(tmp_path / "warm", {
        "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
        "optim": {"lr": 0.01}, "schedule": {"warmup": 3, "warmup_unit": "epochs"},
        "run": {"epochs": 6, "batch_size": 32, "device": "cpu"}})
    spec = CompressionSpec(source=1, method="prune_weights", steps=2, finetune_epochs=1)
    reporter = MemoryReporter()
    # when the job runs
    compress(spec, source, reporter, tmp_path / "job")
    # then every fine-tuning step uses the source's rate (it rose from 0.0008 to 0.003 and
    # started again in each stage)
    assert [v for _, v in reporter.series("lr")] == pytest.approx([0.01] * 8)


def test_a_cancelled_job_stops_and_writes_no_checkpoint(mlp_source: Checkpoint,
                                                         tmp_path: Path) -> None:
    # given a pruning job whose reporter asks to stop after 3 steps of fine-tuning
    spec = CompressionSpec(source=1, method="prune_weights", steps=2, finetune_epochs=2)
    reporter = MemoryReporter(stop_after_step=3)
    # when it runs
    result = compress(spec, mlp_source, reporter, tmp_path)
    # then it ends cancelled, leaving neither a checkpoint nor its scratch stages behind
    assert result.status == "cancelled"
    assert reporter.checkpoints == [] and list(tmp_path.iterdir()) == []


# Channel pruning -----------------------------------------------------------------------------

def test_channel_pruning_removes_channels_and_the_model_still_runs(cnn_source: Checkpoint,
                                                                   tmp_path: Path) -> None:
    # given the trained CNN (8 then 16 channels)
    before = prune.parameter_count(cnn_source.model)
    # when half of its channels are pruned
    result = _compress(cnn_source, tmp_path, method="prune_channels", sparsity=0.5,
                       finetune_epochs=1, scope="layer")
    # then every convolution has half its channels, parameters shrink ~4x, outputs keep shape
    assert result.model is not None
    convs = [m for m in result.model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 4, 8, 8]
    assert prune.parameter_count(result.model) < before / 3
    out = result.model(_val_batch(cnn_source))
    assert out.shape == (64, 10)


def test_mlp_channel_pruning_keeps_every_class(mlp_source: Checkpoint, tmp_path: Path) -> None:
    # given the MLP 64 → 64 → 32 → 10 when half its neurons are pruned
    result = _compress(mlp_source, tmp_path, method="prune_channels", sparsity=0.5,
                       finetune_epochs=0, scope="layer")
    # then the hidden layers halve and the 10 outputs remain
    assert result.model is not None
    linears = [m for m in result.model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]


def test_channel_pruning_that_removes_nothing_fails_saying_why(tmp_path: Path) -> None:
    # given a CNN of width 4 (torch-pruning keeps 4 x 0.1 = 0.4 channels: none, so it leaves
    # the layer whole) and a job to prune 90% of its channels
    source = _train(tmp_path / "narrow", {**DIGITS_CNN, "data": {"dataset": "digits",
                                                                 "subset": 200},
                                          "model": {"arch": "cnn", "width": 4, "blocks": 1,
                                                    "depth": 1},
                                          "run": {**DIGITS_CNN["run"], "epochs": 1}})
    spec = CompressionSpec(source=1, method="prune_channels", sparsity=0.9, finetune_epochs=0)
    # when it runs, then it fails on the sparsity with the reason (it "succeeded" with every
    # channel kept and the report unchanged)
    with pytest.raises(SpecError) as raised:
        compress(spec, source, MemoryReporter(), tmp_path / "job")
    assert "takes none from this model" in raised.value.errors["sparsity"]
    assert "the narrowest has 4" in raised.value.errors["sparsity"]


# Distillation --------------------------------------------------------------------------------

def test_distillation_loss_matches_a_hand_computation() -> None:
    # given two examples, teacher and student logits, T = 2 and alpha = 0.25
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    t, alpha = 2.0, 0.25

    # when computed by hand: softmax at T, KL(teacher || student) averaged over rows
    def softmax(row: list[float]) -> list[float]:
        e = [math.exp(v / t) for v in row]
        return [v / sum(e) for v in e]

    kl = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        p, q = softmax(t_row), softmax(s_row)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    kl /= 2
    ce = -(math.log(math.exp(1) / (math.exp(1) + 1)) + math.log(math.exp(2) / (1 + math.exp(2))))
    ce /= 2
    expected = alpha * kl * t * t + (1 - alpha) * ce
    # then the library function agrees
    got = distillation_loss(student, teacher, labels, t, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_distillation_trains_the_student_spec(cnn_source: Checkpoint, tmp_path: Path) -> None:
    # given a CNN teacher, when an MLP student 9x smaller is distilled from it
    result = _compress(cnn_source, tmp_path, method="distill", epochs=4, lr=0.01,
                       student={"arch": "mlp", "hidden_sizes": [6]})
    # then the saved model is the student, learned (chance is 10%), and loads as an MLP
    report = result.report
    assert report["result"]["parameters"] * 5 < report["source"]["parameters"]
    assert report["result"]["val_acc"] > 0.3
    assert load(tmp_path / "best.zip").spec.model.arch == "mlp"


# Quantization --------------------------------------------------------------------------------

def test_quantized_model_predicts_nearly_the_same(mlp_source: Checkpoint) -> None:
    # given the trained MLP and a fixed validation batch
    batch = _val_batch(mlp_source)
    with torch.no_grad():
        expected = mlp_source.model(batch)
        # when its Linear layers are quantized to int8
        quantized = quantize_dynamic(mlp_source.model)
        got = quantized(batch)
    # then its logits are within a few percent and its predictions agree
    assert all(isinstance(m, Int8Linear) for m in quantized.modules()
               if isinstance(m, nn.Linear | Int8Linear))
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.97
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()


def test_quantization_makes_linear_weights_four_times_smaller(mlp_source: Checkpoint,
                                                              tmp_path: Path) -> None:
    # given the MLP, when the quantization job runs
    result = _compress(mlp_source, tmp_path, method="quantize_dynamic")
    # then the Linear weights shrink by more than 3.5x (int8 plus a float scale per row), and
    # the whole file (biases and header stay float) by more than 3x
    assert result.report["change"]["linear_weight_bytes_ratio"] > 3.5
    assert result.report["change"]["weight_bytes_ratio"] > 3.0


def test_int8_linear_falls_back_to_float_for_empty_batches() -> None:
    # given a quantized layer, when it gets zero rows, then it returns zero rows
    layer = Int8Linear.from_float(nn.Linear(4, 3))
    assert layer(torch.zeros(0, 4)).shape == (0, 3)


def test_the_int8_kernel_is_used_only_where_the_cpu_multiplies_int8() -> None:
    # given this machine's CPU
    capable = torch.cpu._is_vnni_supported() or torch.cpu._is_amx_tile_supported()
    # then Int8Linear multiplies in int8 exactly when the CPU has int8 dot products (elsewhere
    # torch's int8 fallback is many times slower than float32)
    assert INT8_KERNEL == capable


def test_both_int8_products_give_nearly_the_float_product() -> None:
    # given int8 weights with a scale per row, and float rows
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=generator)
    rows = torch.randn(20, 64, generator=generator)
    qweight, scale = quantize_rows(weight)
    expected = rows @ weight.t()
    # when the product runs with the int8 kernel (rows quantized too) and dequantized
    int8 = int8_matmul(rows, qweight, scale, int8_kernel=True)
    dequantized = int8_matmul(rows, qweight, scale, int8_kernel=False)
    # then both are within int8 rounding of the float product, the dequantized one closer
    tolerance = 0.03 * expected.abs().max()
    assert (int8 - expected).abs().max() < tolerance
    assert (dequantized - expected).abs().max() < (int8 - expected).abs().max()
    assert not torch.equal(int8, dequantized)


# Checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"method": "prune_weights", "sparsity": 0.5, "finetune_epochs": 1},
    {"method": "prune_channels", "sparsity": 0.5, "finetune_epochs": 1},
    {"method": "quantize_dynamic"},
    {"method": "distill", "epochs": 1, "student": {"arch": "mlp", "hidden_sizes": [8]}},
], ids=lambda f: f["method"])
def test_compressed_checkpoint_round_trips(mlp_source: Checkpoint, tmp_path: Path,
                                           fields: dict[str, Any]) -> None:
    # given a compressed model and its checkpoint
    result = _compress(mlp_source, tmp_path, **fields)
    assert result.model is not None
    # when the checkpoint is loaded back with the project's loader
    loaded = load(tmp_path / "best.zip")
    # then it predicts exactly what the compressed model predicted
    raw = torch.rand(16, 1, 8, 8) * 16
    with torch.no_grad():
        expected = result.model(loaded.normalisation.apply(raw))
    assert torch.equal(loaded.predict(raw, scale="raw"), expected)
    assert loaded.meta["report"]["method"] == fields["method"]


def test_a_chain_prune_channels_then_quantize_round_trips(mlp_source: Checkpoint,
                                                          tmp_path: Path) -> None:
    # given a channel-pruned MLP loaded from its checkpoint
    _compress(mlp_source, tmp_path / "pruned", method="prune_channels", finetune_epochs=0)
    pruned = load(tmp_path / "pruned" / "best.zip")
    # when it is quantized in turn
    result = _compress(pruned, tmp_path / "int8", method="quantize_dynamic")
    loaded = load(tmp_path / "int8" / "best.zip")
    # then the record keeps both steps and the archive loads with the narrow int8 layers
    assert loaded.meta["compression"]["methods"] == ["prune_channels", "quantize_dynamic"]
    raw = torch.rand(8, 1, 8, 8) * 16
    assert result.model is not None
    with torch.no_grad():
        expected = result.model(loaded.normalisation.apply(raw))
    assert torch.equal(loaded.predict(raw, scale="raw"), expected)


def test_a_pruned_then_quantized_model_reports_its_sparsity_and_weight_count(
        mlp_source: Checkpoint, tmp_path: Path) -> None:
    # given an MLP weight-pruned to 80%, loaded from its checkpoint
    _compress(mlp_source, tmp_path / "pruned", method="prune_weights", sparsity=0.8,
              finetune_epochs=0)
    pruned = load(tmp_path / "pruned" / "best.zip")
    # when it is quantized in turn
    result = _compress(pruned, tmp_path / "int8", method="quantize_dynamic")
    # then the report still says 80% of its weights are zero (the int8 layers were not counted:
    # 0.0) and it has as many weights as before
    assert result.report["weight_sparsity"] == pytest.approx(0.8, abs=0.01)
    assert (result.report["result"]["parameters"]
            == result.report["source"]["parameters"])


def test_a_student_of_a_quantized_teacher_starts_a_history_of_its_own(
        mlp_source: Checkpoint, tmp_path: Path) -> None:
    # given an int8 teacher
    _compress(mlp_source, tmp_path / "int8", method="quantize_dynamic")
    teacher = load(tmp_path / "int8" / "best.zip")
    # when a student is distilled from it
    _compress(teacher, tmp_path / "student", method="distill", epochs=1,
              student={"arch": "mlp", "hidden_sizes": [8]})
    student = load(tmp_path / "student" / "best.zip")
    # then the student is a plain float network that may still be pruned
    assert student.meta["compression"]["methods"] == ["distill"]
    CompressionSpec(source=1, method="prune_weights").check_source(
        student.spec, student.meta["compression"]["methods"])


# Spec ----------------------------------------------------------------------------------------

def test_spec_reports_every_bad_field_at_once() -> None:
    # given a spec with a bad sparsity, alpha, scope and student width
    data = {"source": 3, "sparsity": 1.0, "alpha": "x", "scope": "row",
            "student": {"arch": "mlp", "width": 0}}
    # when it is validated, then each error sits on its own field
    with pytest.raises(SpecError) as caught:
        CompressionSpec.from_dict(data)
    assert set(caught.value.errors) == {"sparsity", "alpha", "scope", "student.width"}


@pytest.mark.parametrize("sparsity", [0.0, 1.0, -0.5, 1.5])
def test_spec_rejects_sparsity_outside_the_open_interval(sparsity: float) -> None:
    with pytest.raises(SpecError) as caught:
        CompressionSpec.from_dict({"source": 1, "sparsity": sparsity})
    assert "sparsity" in caught.value.errors


def test_spec_round_trips_through_a_dict() -> None:
    spec = CompressionSpec(source=4, method="distill", student=CompressionSpec().student,
                           temperature=2.5)
    assert CompressionSpec.from_dict(spec.to_dict()) == spec


def test_flat_fields_mirror_the_spec() -> None:
    # the scalar fields are validated through a mirror class: it must not drift
    mirror = {f.name: f.default for f in dataclasses.fields(_FlatFields)}
    spec = {f.name: f.default for f in dataclasses.fields(CompressionSpec) if f.name != "student"}
    assert mirror == spec


@pytest.mark.parametrize("source, fields, field", [
    (DIGITS_CNN, {"method": "quantize_dynamic"}, "method"),
    ({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"}, "optim": {"loss": "mse"}},
     {"method": "distill"}, "method"),
    ({"data": {"dataset": "iris"}, "model": {"arch": "mlp"}},
     {"method": "distill", "student": {"arch": "cnn"}}, "student.arch"),
])
def test_check_source_refuses_what_the_model_cannot_undergo(
        source: dict[str, Any], fields: dict[str, Any], field: str) -> None:
    spec = CompressionSpec.from_dict({"source": 1, **fields})
    with pytest.raises(SpecError) as caught:
        spec.check_source(ExperimentSpec.from_dict(source))
    assert list(caught.value.errors) == [field]


def test_a_quantized_source_cannot_be_pruned() -> None:
    spec = CompressionSpec(source=1, method="prune_weights")
    with pytest.raises(SpecError) as caught:
        spec.check_source(ExperimentSpec.from_dict(DIGITS_MLP), ["quantize_dynamic"])
    assert "method" in caught.value.errors


def test_job_spec_keeps_the_source_split_and_uses_the_student() -> None:
    # given a distillation of a CNN into an MLP
    source = ExperimentSpec.from_dict(DIGITS_CNN)
    job = CompressionSpec(source=1, method="distill", epochs=7)
    # when the job's spec is stored and read back
    target, compression = split_job_spec(job_spec_dict(job, source))
    # then it trains the student for the job's epochs on the very same split
    assert compression == job
    assert target.model == job.student and target.run.epochs == 7
    assert (target.data, target.run.seed) == (source.data, source.run.seed)
