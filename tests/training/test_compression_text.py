"""Compression of text models: the job rebuilds the data with the source's own tokenizer, so
int8 quantization (of the pretrained MiniLM's Linear layers, of an LSTM's recurrent and Linear
layers), weight pruning (of an LSTM's recurrent weights) and their checkpoints work on text
models as on any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from torch import nn

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import Checkpoint, load
from training.compression import prune
from training.compression.job import CompressionResult, compress
from training.compression.quantize import Int8Linear, Int8RNN
from training.compression.spec import CompressionSpec
from training.data.text import MINILM, PretrainedTokenizer, WordTokenizer, load_text_rows
from training.spec import SpecError

# Trains in a few seconds on one core: 48 IMDb sentences, three steps.
MINILM_RUN = {"data": {"dataset": "imdb_sentences", "subset": 60},
              "model": {"arch": "pretrained", "pretrained": MINILM, "max_length": 24},
              "optim": {"lr": 1e-4},
              "run": {"epochs": 1, "batch_size": 16, "device": "cpu"}}
LSTM_RUN = {"data": {"dataset": "imdb_sentences", "subset": 200},
            "model": {"arch": "lstm", "embed_dim": 16, "hidden_size": 16, "max_length": 24},
            "optim": {"lr": 0.01},
            "run": {"epochs": 1, "batch_size": 32, "device": "cpu"}}
# Wide enough that int8 rows (one float32 scale per 64 int8 weights) are ~3.8x smaller.
WIDE_LSTM_RUN = {**LSTM_RUN, "model": {**LSTM_RUN["model"], "embed_dim": 64, "hidden_size": 64}}


class Compressed(NamedTuple):
    source: Checkpoint
    result: CompressionResult
    loaded: Checkpoint  # the job's checkpoint, loaded back


def _train(tmp: Path, run_spec: dict[str, Any]) -> Checkpoint:
    run(ExperimentSpec.from_dict(run_spec), MemoryReporter(), tmp / "source")
    return load(tmp / "source" / "best.zip")


def _job(source: Checkpoint, tmp: Path, **fields: Any) -> Compressed:
    result = compress(CompressionSpec.from_dict({"source": 1, **fields}), source,
                      MemoryReporter(), tmp / "job")
    assert result.status == "succeeded"
    return Compressed(source, result, load(tmp / "job" / "best.zip"))


@pytest.fixture(scope="module")
def minilm_int8(tmp_path_factory: pytest.TempPathFactory) -> Compressed:
    """A briefly fine-tuned MiniLM and its int8 quantization job."""
    tmp = tmp_path_factory.mktemp("minilm")
    return _job(_train(tmp, MINILM_RUN), tmp, method="quantize_dynamic")


@pytest.fixture(scope="module")
def lstm_source(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    """A small LSTM trained for one epoch on 160 IMDb sentences."""
    return _train(tmp_path_factory.mktemp("lstm"), LSTM_RUN)


@pytest.fixture(scope="module")
def sst2_batch() -> list[str]:
    """A fixed batch: the first 32 sentences of SST-2's dev file."""
    return load_text_rows("sst2").test_texts[:32]


@pytest.fixture(scope="module")
def lstm_int8(tmp_path_factory: pytest.TempPathFactory) -> Compressed:
    """A bidirectional LSTM (64 units) trained for one epoch on IMDb sentences, quantized."""
    tmp = tmp_path_factory.mktemp("lstm-int8")
    return _job(_train(tmp, WIDE_LSTM_RUN), tmp, method="quantize_dynamic")


def test_quantized_lstm_predicts_nearly_what_the_float_model_predicts(
        lstm_int8: Compressed, sst2_batch: list[str]) -> None:
    # given the trained LSTM and its int8 version loaded back from the job's checkpoint
    source, quantized = lstm_int8.source, lstm_int8.loaded

    # when both classify the same 32 SST-2 sentences
    expected = torch.softmax(source.predict(sst2_batch), dim=1)
    got = torch.softmax(quantized.predict(sst2_batch), dim=1)

    # then the recurrent layer and the head are int8, and the class probabilities and
    # predicted classes agree
    assert isinstance(quantized.model.get_submodule("rnn"), Int8RNN)
    assert isinstance(quantized.model.get_submodule("head"), Int8Linear)
    assert quantized.meta["compression"]["int8_layers"] == ["rnn", "head"]
    assert (got - expected).abs().max() < 0.02
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 31 / 32


def test_quantized_lstm_checkpoint_holds_int8_recurrent_weights_3_5_times_smaller(
        lstm_int8: Compressed, sst2_batch: list[str]) -> None:
    # given the quantization job's model and its checkpoint loaded back
    result, loaded = lstm_int8.result, lstm_int8.loaded
    assert result.model is not None and lstm_int8.source.tokenizer is not None

    # when both classify the batch
    tokens = lstm_int8.source.tokenizer.encode(sst2_batch)
    with torch.no_grad():
        expected = result.model(tokens.input_ids, tokens.attention_mask)

    # then the checkpoint predicts exactly the same, its recurrent weight matrices are stored
    # as int8 (plain tensors in the safetensors file), and the report shows them at least
    # 3.5 times smaller
    assert torch.equal(loaded.predict(sst2_batch), expected)
    state = loaded.model.state_dict()
    assert state["rnn.qweight_ih_l0"].dtype == torch.int8
    assert state["rnn.qweight_hh_l0_reverse"].dtype == torch.int8
    assert not any(k.startswith("rnn.weight_") for k in state)
    assert loaded.meta["report"]["change"]["recurrent_weight_bytes_ratio"] >= 3.5


def test_a_quantized_lstm_has_as_many_weights_as_its_source(lstm_int8: Compressed) -> None:
    # given the LSTM's quantization report
    report = lstm_int8.result.report
    # then the int8 layers' weights are counted once and their scales not as weights (the
    # recurrent layers' scale_ih/scale_hh rows made the int8 model "larger")
    assert report["result"]["parameters"] == report["source"]["parameters"]
    assert report["change"]["parameters_ratio"] == 1.0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("matmul", ["dequant", "int8"])
def test_int8_recurrent_layers_compute_what_the_float_ones_do(cell: str, matmul: str) -> None:
    # given a two-layer bidirectional LSTM or GRU and its int8 copy (either way of multiplying)
    torch.manual_seed(0)
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](12, 24, num_layers=2, batch_first=True,
                                                 bidirectional=True).eval()
    quantized = Int8RNN.from_float(rnn, matmul=matmul)
    inputs = torch.randn(5, 9, 12)
    packed = nn.utils.rnn.pack_padded_sequence(inputs, torch.tensor([9, 3, 7, 1, 5]),
                                               batch_first=True, enforce_sorted=False)

    # when both read padded and packed batches of different lengths
    with torch.no_grad():
        for batch in (inputs, packed):
            out, state = rnn(batch)
            got, got_state = quantized(batch)
            if isinstance(out, nn.utils.rnn.PackedSequence):
                out, got = out.data, got.data
            hidden = state[0] if cell == "lstm" else state
            got_hidden = got_state[0] if cell == "lstm" else got_state

            # then outputs and final states agree to int8 precision
            assert got.shape == out.shape and got_hidden.shape == hidden.shape
            assert (got - out).abs().max() < 0.02
            assert (got_hidden - hidden).abs().max() < 0.02


def test_quantized_minilm_predicts_nearly_what_the_float_model_predicts(
        minilm_int8: Compressed, sst2_batch: list[str]) -> None:
    # given the fine-tuned MiniLM and its int8 version (loaded from the job's checkpoint)
    source, quantized = minilm_int8.source, minilm_int8.loaded

    # when both classify the same SST-2 sentences
    expected = torch.softmax(source.predict(sst2_batch), dim=1)
    got = torch.softmax(quantized.predict(sst2_batch), dim=1)

    # then every Linear layer of the encoder and head is int8, and the class probabilities
    # and predicted classes agree
    assert not any(type(m) is nn.Linear for m in quantized.model.modules())
    assert sum(isinstance(m, Int8Linear) for m in quantized.model.modules()) == 6 * 6 + 2
    assert (got - expected).abs().max() < 0.02
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 31 / 32


def test_quantized_minilm_checkpoint_round_trips_with_its_tokenizer(
        minilm_int8: Compressed, sst2_batch: list[str]) -> None:
    # given the quantization job's model and its checkpoint loaded back
    result, loaded = minilm_int8.result, minilm_int8.loaded
    assert result.model is not None

    # when both classify the batch (the job's model through the source's tokenizer)
    assert minilm_int8.source.tokenizer is not None
    tokens = minilm_int8.source.tokenizer.encode(sst2_batch)
    with torch.no_grad():
        expected = result.model(tokens.input_ids, tokens.attention_mask)

    # then the checkpoint carries the pretrained tokenizer and predicts exactly the same, and
    # the report shows the Linear weights about four times smaller
    assert isinstance(loaded.tokenizer, PretrainedTokenizer)
    assert torch.equal(loaded.predict(sst2_batch), expected)
    assert loaded.meta["compression"]["methods"] == ["quantize_dynamic"]
    assert loaded.meta["report"]["change"]["linear_weight_bytes_ratio"] > 3.5
    # (latency is timed on at most 32 sentences: here the 12 validation sentences)
    assert loaded.meta["report"]["result"]["latency_batch"] == 12


def test_an_lstm_is_weight_pruned_through_the_job_with_its_own_vocabulary(
        lstm_source: Checkpoint, tmp_path: Path) -> None:
    # given an LSTM trained on IMDb sentences, when a job prunes half its weights and
    # fine-tunes it for an epoch
    job = _job(lstm_source, tmp_path, method="prune_weights", sparsity=0.5, finetune_epochs=1)

    # then half of the weights are zero, the recurrent matrices included
    rnn = job.loaded.model.get_submodule("rnn")
    assert isinstance(rnn, nn.LSTM)
    recurrent = [rnn.weight_ih_l0, rnn.weight_hh_l0]
    assert all(0.2 < float((w == 0).float().mean()) < 0.8 for w in recurrent)
    assert prune.weight_sparsity(job.loaded.model) == pytest.approx(0.5, abs=1e-3)
    # and the checkpoint keeps the source's vocabulary and predicts what the job's model does
    assert isinstance(job.loaded.tokenizer, WordTokenizer)
    assert isinstance(job.source.tokenizer, WordTokenizer)
    assert job.loaded.tokenizer.vocab == job.source.tokenizer.vocab
    assert job.result.model is not None
    texts = ["a great , moving film", "dull and far too long"]
    tokens = job.loaded.tokenizer.encode(texts)
    with torch.no_grad():
        expected = job.result.model(tokens.input_ids, tokens.attention_mask)
    assert torch.equal(job.loaded.predict(texts), expected)


@pytest.mark.parametrize("fields, arch", [
    ({"method": "quantize_dynamic"}, "lstm"),
    ({"method": "distill", "epochs": 1, "lr": 0.01,
      "student": {"arch": "gru", "embed_dim": 8, "hidden_size": 8}}, "gru"),
], ids=["quantize", "distill"])
def test_lstm_jobs_keep_the_teachers_vocabulary_and_round_trip(
        lstm_source: Checkpoint, tmp_path: Path, fields: dict[str, Any], arch: str) -> None:
    # given the LSTM, when it is quantized (its LSTM and head) or distilled into a small GRU
    job = _job(lstm_source, tmp_path, **fields)

    # then the model reads the source's vocabulary and its checkpoint predicts what it does
    assert job.result.model is not None and job.loaded.tokenizer is not None
    assert isinstance(job.loaded.tokenizer, WordTokenizer)
    assert isinstance(lstm_source.tokenizer, WordTokenizer)
    assert job.loaded.tokenizer.vocab == lstm_source.tokenizer.vocab
    assert job.loaded.spec.model.arch == arch
    texts = ["a great , moving film", "dull and far too long"]
    tokens = job.loaded.tokenizer.encode(texts)
    with torch.no_grad():
        expected = job.result.model(tokens.input_ids, tokens.attention_mask)
    assert torch.equal(job.loaded.predict(texts), expected)


def test_a_text_students_spec_records_the_teachers_vocabulary_it_reads() -> None:
    # given an LSTM teacher (its own vocabulary: 5,000 words seen twice, cut at 40 tokens)
    teacher = ExperimentSpec.from_dict({"data": {"dataset": "sst2"}, "model": {
        "arch": "lstm", "vocab_size": 5000, "min_freq": 2, "max_length": 40}})
    # when a GRU and a Transformer student are asked for with vocabularies of their own
    students = {arch: CompressionSpec.from_dict({"source": 1, "method": "distill", "student": {
        "arch": arch, "vocab_size": 50, "min_freq": 3, "max_length": 64}}).target_spec(teacher)
        for arch in ("gru", "transformer")}
    # then each records the vocabulary the job gives it, the teacher's (a student recorded with
    # 50 words had the teacher's 900), and the GRU the teacher's length; the Transformer keeps
    # its positions
    for spec in students.values():
        assert (spec.model.vocab_size, spec.model.min_freq) == (5000, 2)
    assert students["gru"].model.max_length == 40
    assert students["transformer"].model.max_length == 64


def test_a_transformers_refusals_point_at_the_method_that_applies_to_it() -> None:
    # given an own Transformer, which neither quantization nor weight pruning covers
    source = ExperimentSpec.from_dict({"data": {"dataset": "sst2"},
                                       "model": {"arch": "transformer"}})
    refusals = {}
    for method in ("quantize_dynamic", "prune_weights"):
        with pytest.raises(SpecError) as caught:
            CompressionSpec.from_dict({"source": 1, "method": method}).check_source(source)
        refusals[method] = caught.value.errors["method"]
    # then each says to distill it (quantizing said "prune it or distill it", and pruning it
    # was refused in turn)
    assert all(message.endswith("distill it into a smaller one")
               for message in refusals.values())
    assert "prune" not in refusals["quantize_dynamic"]


@pytest.mark.parametrize("source, fields, field", [
    ({"data": {"dataset": "sst2"}, "model": {"arch": "transformer"}},
     {"method": "quantize_dynamic"}, "method"),
    ({"data": {"dataset": "sst2"}, "model": {"arch": "pretrained"}},
     {"method": "distill", "student": {"arch": "lstm"}}, "method"),
    ({"data": {"dataset": "sst2"}, "model": {"arch": "lstm"}},
     {"method": "distill", "student": {"arch": "mlp"}}, "student.arch"),
    ({"data": {"dataset": "sst2"}, "model": {"arch": "lstm", "max_length": 64}},
     {"method": "distill", "student": {"arch": "transformer", "max_length": 32}},
     "student.max_length"),
], ids=["quantize-transformer", "distill-pretrained", "mlp-student", "short-student"])
def test_check_source_refuses_text_jobs_that_cannot_run(
        source: dict[str, Any], fields: dict[str, Any], field: str) -> None:
    # given a text source and a job it cannot undergo, when the job is checked
    spec = CompressionSpec.from_dict({"source": 1, **fields})
    with pytest.raises(SpecError) as caught:
        spec.check_source(ExperimentSpec.from_dict(source))
    # then one error names the field to change
    assert list(caught.value.errors) == [field]
