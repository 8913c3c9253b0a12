"""The model families beyond the MLP: the CNN's depth and heads, ResNet for images, LSTM, GRU
and a Transformer for text with the project's own tokenizer, and a pretrained Hugging Face
model (the real MiniLM, from its local directory) with its own tokenizer. Each learns, and each
checkpoint gives back exactly the predictions of the model it saved."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file
from torch import nn

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import Checkpoint, dataset_meta, load, model_files, save
from training.data import dataset_info, prepare
from training.data.loading import split_indices, split_three
from training.data.text import (
    MINILM,
    PretrainedTokenizer,
    Tokens,
    WordTokenizer,
    load_text_rows,
    resolve_pretrained,
    tokenizer_for,
)
from training.loop import RunResult
from training.models import CNN, ResNet, build_model, feed

from .conftest import SpecFactory

TEXTS = ["a great , moving film", "dull and far too long", "the acting was superb !",
         "", "i hated every minute of it ."]

# --- CNN ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(28, 28), (8, 8), (5, 7)])
def test_a_flatten_head_cnn_gives_one_logit_per_class_at_any_image_size(
        size: tuple[int, int]) -> None:
    # given a two-block CNN whose head flattens the pooled map into 16 hidden units
    model = CNN(1, 10, width=4, blocks=2, depth=1, head="flatten", head_units=16, size=size)

    # when a batch of images of that size goes through
    out = model(torch.randn(3, 1, *size))

    # then there are ten logits per image, read from every position of the map
    assert out.shape == (3, 10)
    first = model.head[2]
    assert isinstance(first, nn.Linear)
    assert first.in_features == 8 * -(-size[0] // 4) * -(-size[1] // 4)


def test_cnn_depth_sets_the_convolutions_per_block() -> None:
    # given CNNs of three blocks with one and three convolutions a block
    def convolutions(depth: int) -> int:
        model = build_model(ExperimentSpec().patched(
            {"model": {"arch": "cnn", "width": 4, "blocks": 3, "depth": depth}}).model,
            (1, 8, 8), 10)
        return sum(isinstance(m, nn.Conv2d) for m in model.modules())

    # when their convolutions are counted
    # then each block has depth of them (the default, 2, is the CNN as it always was)
    assert (convolutions(1), convolutions(2), convolutions(3)) == (3, 6, 9)


def test_a_cnn_trains_channels_last_on_a_cpu_and_its_checkpoint_is_plain(
        make_spec: SpecFactory, workdir: Path) -> None:
    # given the default CNN set up for a run on the CPU
    from training.loop import RunOptions, setup

    spec = make_spec({"model": {"arch": "cnn", "width": 8}, "run": {"epochs": 1}})
    training = setup(spec, MemoryReporter(), workdir, RunOptions())

    # then its convolutions' weights are laid out channels last (oneDNN's fast layout), and so
    # is what a convolution hands on, for an input in the default layout
    convolutions = [m for m in training.model.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(m.weight.is_contiguous(memory_format=torch.channels_last)
                                for m in convolutions)
    assert not any(m.weight.is_contiguous() for m in convolutions if m.in_channels > 1)
    assert convolutions[0](training.x_train[:4]).is_contiguous(memory_format=torch.channels_last)

    # when it trains, its checkpoint's weights are plain contiguous tensors that rebuild a
    # model giving the trained model's predictions
    result = run(spec, MemoryReporter(), workdir / "trained")
    assert result.model is not None
    with zipfile.ZipFile(workdir / "trained" / "last.zip") as archive:
        stored = load_safetensors(archive.read("model.safetensors"))
    assert all(tensor.is_contiguous() for tensor in stored.values())
    rebuilt = load(workdir / "trained" / "last.zip").model
    images = training.x_val[:32]
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), result.model(images))


def test_networks_other_than_the_built_in_cnns_keep_their_layout() -> None:
    # given an MLP and a network of the user's own with a convolution
    from training.models import laid_out

    mlp = build_model(ExperimentSpec().patched({"model": {"arch": "mlp"}}).model, (1, 8, 8), 10)
    own = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))

    # when each is laid out for the CPU
    # then nothing moved: a plugin's activations may be viewed in the default layout
    for model in (mlp, own):
        assert all(p.is_contiguous() for p in laid_out(model, torch.device("cpu")).parameters())
    # and a CNN bound for a GPU keeps it too (the layout is measured on CPUs only)
    cnn = build_model(ExperimentSpec().patched({"model": {"arch": "cnn"}}).model, (1, 8, 8), 10)
    assert all(p.is_contiguous() for p in laid_out(cnn, torch.device("meta")).parameters())


def test_a_flatten_head_cnn_learns_digits(make_spec: SpecFactory, workdir: Path) -> None:
    # given the Fashion-MNIST recipe's kind of CNN, small, on digits
    spec = make_spec({
        "model": {"arch": "cnn", "width": 8, "blocks": 2, "depth": 1, "head": "flatten",
                  "head_units": 32},
        "optim": {"lr": 1e-2},
        "run": {"epochs": 3, "batch_size": 32},
    })

    # when it trains for three epochs
    result = run(spec, MemoryReporter(), workdir)

    # then it classifies most validation digits correctly
    assert result.best_metrics["val_acc"] > 0.9, result.best_metrics


# --- ResNet ---------------------------------------------------------------------------------


def test_a_resnet_gives_one_logit_per_class_at_any_depth() -> None:
    # given ResNets of one to three stages on 28×28 grey images
    for stages in (1, 2, 3):
        model = ResNet(1, 10, width=4, stages=stages, depth=2)

        # when a batch goes through
        out = model(torch.randn(5, 1, 28, 28))

        # then there are ten logits per image
        assert out.shape == (5, 10)


def test_batch_norm_off_removes_every_batch_norm_layer() -> None:
    # given the same ResNet with batch norm on and off
    on = ResNet(1, 10, width=4, stages=2, depth=2, batch_norm=True)
    off = ResNet(1, 10, width=4, stages=2, depth=2, batch_norm=False)

    # when their layers are counted
    def norms(model: nn.Module) -> int:
        return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    # then only the first has batch-norm layers (stem, two per block, one per projection)
    assert norms(on) == 1 + 2 * 4 + 1
    assert norms(off) == 0


def test_resnet_dropout_changes_train_mode_outputs_only() -> None:
    # given a ResNet with dropout 0.5 and an input
    torch.manual_seed(0)
    model = ResNet(1, 10, width=4, stages=2, depth=1, dropout=0.5, batch_norm=False)
    x = torch.randn(4, 1, 8, 8)

    # when it runs twice in train mode and twice in eval mode
    model.train()
    a, b = model(x), model(x)
    model.eval()
    c, d = model(x), model(x)

    # then dropout makes the train-mode outputs differ, and eval mode is deterministic
    assert not torch.equal(a, b)
    assert torch.equal(c, d)


def test_a_resnet_learns_digits(make_spec: SpecFactory, workdir: Path) -> None:
    # given a small ResNet on digits
    spec = make_spec({
        "model": {"arch": "resnet", "width": 8, "blocks": 2, "depth": 1},
        "optim": {"lr": 1e-2},
        "run": {"epochs": 3, "batch_size": 32},
    })

    # when it trains for three epochs
    result = run(spec, MemoryReporter(), workdir)

    # then it classifies most validation digits correctly
    assert result.best_metrics["val_acc"] > 0.85, result.best_metrics


# --- the word tokenizer ---------------------------------------------------------------------


def test_the_vocabulary_keeps_frequent_words_after_pad_and_unk() -> None:
    # given texts where "good" occurs three times, "bad" twice and "rare" once
    texts = ["good bad", "good bad rare", "Good"]

    # when a vocabulary is built with a minimum frequency of 2
    tokenizer = WordTokenizer.build(texts, max_size=100, min_freq=2, max_length=8)

    # then it holds <pad>, <unk> and the frequent words, most frequent first (lower-cased)
    assert tokenizer.vocab == ["<pad>", "<unk>", "good", "bad"]


def test_the_vocabulary_is_cut_to_its_maximum_size() -> None:
    # given texts with four distinct words
    # when the vocabulary may hold at most three entries
    tokenizer = WordTokenizer.build(["a a a b b c d"], max_size=3, min_freq=1, max_length=8)

    # then only the most frequent word joins <pad> and <unk>
    assert tokenizer.vocab == ["<pad>", "<unk>", "a"]


def test_encoding_pads_cuts_and_maps_unknown_words() -> None:
    # given a vocabulary of "good" and "film" and texts cut to three tokens
    tokenizer = WordTokenizer(["<pad>", "<unk>", "good", "film"], max_length=3)

    # when texts of different lengths are encoded
    tokens = tokenizer.encode(["good film", "a good good film !", ""])

    # then unknown words are 1, rows are right-padded with 0 and cut at three tokens, the mask
    # marks the real tokens, and an empty text still has one (unknown) token
    assert tokens.input_ids.tolist() == [[2, 3, 0], [1, 2, 2], [1, 0, 0]]
    assert tokens.attention_mask.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0]]


def test_the_tokenizer_saves_as_json_and_loads_back_identically() -> None:
    # given a tokenizer built from SST-2-like text
    tokenizer = WordTokenizer.build(TEXTS * 2, max_size=50, min_freq=1, max_length=6)

    # when it is saved to files and loaded back
    files = tokenizer.files()
    loaded = WordTokenizer.from_files(files)

    # then the files are JSON (no pickle) and the encoding is identical
    assert list(files) == ["vocab.json"] and files["vocab.json"].startswith(b"{")
    again, before = loaded.encode(TEXTS), tokenizer.encode(TEXTS)
    assert torch.equal(again.input_ids, before.input_ids)
    assert torch.equal(again.attention_mask, before.attention_mask)


def test_the_vocabulary_comes_from_the_training_split_only() -> None:
    # given IMDb sentences split into training and validation rows
    data = prepare("imdb_sentences", 0.2, seed=0)
    rows = load_text_rows("imdb_sentences")
    train_idx, val_idx = split_indices(1000, 0.2, 0, rows.labels)
    train_words = {w for i in train_idx for w in WordTokenizer.split(rows.texts[i])}
    val_only = {w for i in val_idx for w in WordTokenizer.split(rows.texts[i])} - train_words

    # when the prepared vocabulary is read
    assert isinstance(data.tokenizer, WordTokenizer)
    vocab = set(data.tokenizer.vocab)

    # then no word that occurs only in validation texts has an id
    assert val_only and not vocab & val_only


# --- text data ------------------------------------------------------------------------------


def test_sst2_trains_on_train_tsv_and_keeps_dev_tsv_as_its_test_split() -> None:
    # given the SST-2 files of the data directory
    # when they are read
    rows = load_text_rows("sst2")

    # then the training file has the catalog's rows and dev.tsv's 872 sentences are apart
    assert len(rows.texts) == dataset_info("sst2").rows == 67349
    assert len(rows.test_texts) == len(rows.test_labels) == 872
    assert set(rows.labels.tolist()) == set(rows.test_labels.tolist()) == {0, 1}


def test_a_subset_is_a_seeded_class_balanced_sample() -> None:
    # given SST-2's labels
    labels = load_text_rows("sst2").labels

    # when 2,000 rows are drawn twice with one seed and once with another
    def subset(seed: int) -> np.ndarray:
        train, val, _ = split_three(len(labels), labels, seed, 0.2, subset=2000)
        return np.sort(np.concatenate([train, val]))

    first, again, other = subset(3), subset(3), subset(4)

    # then the same seed gives the same rows, another seed others, and the classes keep their
    # share of the whole file (within one row)
    assert len(first) == 2000 and len(set(first.tolist())) == 2000
    assert (first == again).all() and not (first == other).all()
    assert abs(labels[first].mean() * 2000 - labels.mean() * 2000) <= 1


def test_sst2_dev_is_the_test_split_of_a_prepared_run() -> None:
    # given SST-2 prepared on a 1,000-row subset
    data = prepare("sst2", 0.2, seed=0, subset=1000)

    # when its splits are counted
    # then training and validation come from train.tsv and the test split is all of dev.tsv,
    # encoded with the vocabulary of the training rows
    assert (len(data.x_train), len(data.x_val)) == (800, 200)
    assert isinstance(data.x_test, Tokens) and data.y_test is not None
    assert len(data.x_test) == len(data.y_test) == 872


def test_a_text_set_prepares_as_token_ids_with_attention_masks() -> None:
    # given the IMDb sentences, cut to 500 rows
    # when they are prepared for a model
    data = prepare("imdb_sentences", 0.2, seed=0, subset=500)

    # then both splits are padded token ids with masks, 400 + 100 rows, labelled 0/1
    assert isinstance(data.x_train, Tokens) and isinstance(data.x_val, Tokens)
    assert (len(data.x_train), len(data.x_val)) == (400, 100)
    assert data.x_train.input_ids.shape == data.x_train.attention_mask.shape
    assert data.x_train.input_ids.dtype == torch.long
    assert data.label_names == ["negative", "positive"]
    assert set(data.y_train.tolist()) == {0, 1}


# --- recurrent and Transformer text models --------------------------------------------------


def text_model(arch: str, **fields: Any) -> tuple[nn.Module, WordTokenizer]:
    """An untrained text model of ``arch`` over a vocabulary of TEXTS."""
    torch.manual_seed(0)
    spec = ExperimentSpec().patched({
        "data": {"dataset": "imdb_sentences"},
        "model": {"arch": arch, "embed_dim": 16, "hidden_size": 8, "heads": 2, "layers": 2,
                  "min_freq": 1, **fields},
    })
    tokenizer = tokenizer_for(spec.model)(TEXTS)
    assert isinstance(tokenizer, WordTokenizer)
    model = build_model(spec.model, (), 2, vocab_size=tokenizer.vocab_size).eval()
    return model, tokenizer


@pytest.mark.parametrize(("arch", "fields"), [
    ("lstm", {}), ("gru", {"bidirectional": False}), ("transformer", {}),
    ("transformer", {"positional": "sinusoidal"}),
])
def test_padding_does_not_change_a_texts_logits(arch: str, fields: dict[str, Any]) -> None:
    # given a text model and a short text
    model, tokenizer = text_model(arch, **fields)

    # when the text is classified alone and in a batch padded for a much longer text
    with torch.no_grad():
        alone = feed(model, tokenizer.encode(TEXTS[:1]))
        padded = feed(model, tokenizer.encode([TEXTS[0], " ".join(TEXTS) * 3]))[:1]

    # then its logits are the same: the padding is masked out
    assert torch.allclose(alone, padded, atol=1e-5)


@pytest.mark.parametrize("arch", ["lstm", "gru", "transformer"])
def test_a_text_model_beats_chance_on_imdb_sentences(arch: str, make_spec: SpecFactory,
                                                     workdir: Path) -> None:
    # given 500 IMDb review sentences (400 to train on) and a small text model
    spec = make_spec({
        "data": {"dataset": "imdb_sentences", "subset": 500},
        "model": {"arch": arch, "embed_dim": 32, "hidden_size": 32, "layers": 1, "heads": 2,
                  "min_freq": 1, "max_length": 32},
        "optim": {"lr": 5e-3},
        "run": {"epochs": 6, "batch_size": 32},
    })

    # when it trains from scratch
    result = run(spec, MemoryReporter(), workdir)

    # then it classifies the 100 validation sentences clearly better than chance (50%)
    assert result.best_metrics["val_acc"] >= 0.62, result.best_metrics


def test_lstm_layers_and_direction_shape_the_network() -> None:
    # given a two-layer bidirectional LSTM and a one-layer forward GRU
    lstm, _ = text_model("lstm", layers=2, bidirectional=True)
    gru, _ = text_model("gru", layers=1, bidirectional=False)

    # when their recurrent parts are inspected
    # then the spec's layers and directions are there
    assert isinstance(lstm.rnn, nn.LSTM) and (lstm.rnn.num_layers, lstm.rnn.bidirectional) == (
        2, True)
    assert isinstance(gru.rnn, nn.GRU) and (gru.rnn.num_layers, gru.rnn.bidirectional) == (
        1, False)


# --- checkpoints of every family ------------------------------------------------------------


def save_and_load(model: nn.Module, spec: ExperimentSpec, tokenizer: Any,
                  workdir: Path) -> Checkpoint:
    info = dataset_info(spec.data.dataset)
    meta = {**dataset_meta(info), "normalisation": {"mean": [], "std": []}}
    path = workdir / "model.zip"
    save(path, model, spec, meta, model_files(model, tokenizer))
    return load(path)


@pytest.mark.parametrize(("arch", "fields"), [
    ("lstm", {}), ("gru", {"layers": 1}), ("transformer", {}),
    ("transformer", {"positional": "sinusoidal"}),
])
def test_a_text_checkpoint_predicts_exactly_like_the_saved_model(
        arch: str, fields: dict[str, Any], workdir: Path) -> None:
    # given an (untrained) text model, its tokenizer, saved to an archive
    model, tokenizer = text_model(arch, **fields)
    spec = ExperimentSpec().patched({
        "data": {"dataset": "imdb_sentences"},
        "model": {"arch": arch, "embed_dim": 16, "hidden_size": 8, "heads": 2, "layers": 2,
                  "min_freq": 1, **fields}})
    with torch.no_grad():
        expected = feed(model, tokenizer.encode(TEXTS))

    # when the archive is loaded and asked to classify the raw texts
    checkpoint = save_and_load(model, spec, tokenizer, workdir)

    # then the predictions are bit-for-bit the saved model's
    assert torch.equal(checkpoint.predict(TEXTS), expected)


@pytest.mark.parametrize("model_fields", [
    {"arch": "resnet", "width": 4, "depth": 1},
    {"arch": "cnn", "width": 4, "depth": 1, "head": "flatten", "head_units": 8},
])
def test_an_image_checkpoint_predicts_exactly_like_the_saved_model(
        model_fields: dict[str, Any], workdir: Path) -> None:
    # given a batch-norm network whose running statistics moved, saved with real normalisation
    spec = ExperimentSpec().patched({"model": model_fields})
    data = prepare("digits", 0.2, 0)
    model = build_model(spec.model, (1, 8, 8), 10)
    with torch.no_grad():
        model.train()(data.x_train[:64])
    model.eval()
    meta = {**dataset_meta(data.info), "normalisation": data.normalisation.to_dict()}
    save(workdir / "m.zip", model, spec, meta)
    raw = torch.rand(16, 1, 8, 8) * 16

    # when it is loaded and predicts from raw pixels
    predicted = load(workdir / "m.zip").predict(raw, scale="raw")

    # then the outputs equal the saved model's on the normalised pixels
    assert torch.equal(predicted, model(data.normalisation.apply(raw)))


# --- the pretrained MiniLM --------------------------------------------------------------------


class FineTuned(NamedTuple):
    spec: ExperimentSpec
    result: RunResult
    best: Checkpoint
    workdir: Path


def fine_tune(workdir: Path, freeze: bool) -> FineTuned:
    """Fine-tune the bundled MiniLM for a handful of steps on 60 IMDb sentences."""
    spec = ExperimentSpec().patched({
        "data": {"dataset": "imdb_sentences", "subset": 60},
        "model": {"arch": "pretrained", "pretrained": MINILM, "max_length": 24,
                  "freeze_encoder": freeze},
        "optim": {"lr": 1e-4 if not freeze else 1e-2},
        "run": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    })
    result = run(spec, MemoryReporter(), workdir)
    return FineTuned(spec, result, load(workdir / "best.zip"), workdir)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> FineTuned:
    """MiniLM fully fine-tuned for three steps (48 training sentences, batch 16)."""
    return fine_tune(tmp_path_factory.mktemp("minilm"), freeze=False)


def pretrained_weights() -> dict[str, torch.Tensor]:
    return load_file(str(Path(resolve_pretrained(MINILM)) / "model.safetensors"))


def encoder_weight(checkpoint: Checkpoint, name: str) -> torch.Tensor:
    return checkpoint.model.state_dict()[f"model.bert.{name}"]


def test_the_minilm_hub_name_resolves_to_the_bundled_directory() -> None:
    # given the hub name of all-MiniLM-L6-v2, with the offline copy installed
    # when it is resolved
    source = Path(resolve_pretrained(MINILM))

    # then it is the local model directory with safetensors weights and a tokenizer
    assert (source / "config.json").is_file() and (source / "model.safetensors").is_file()
    assert (source / "tokenizer.json").is_file()


def test_full_fine_tuning_changes_the_encoder(minilm: FineTuned) -> None:
    # given MiniLM after three full fine-tuning steps
    name = "encoder.layer.0.attention.self.query.weight"

    # when a first-layer weight is compared with the pretrained one
    tuned, original = encoder_weight(minilm.best, name), pretrained_weights()[name]

    # then training changed it
    assert minilm.result.steps == 3
    assert not torch.equal(tuned, original)


def test_a_frozen_encoder_trains_only_the_head(tmp_path: Path) -> None:
    # given MiniLM fine-tuned with its encoder frozen
    frozen = fine_tune(tmp_path, freeze=True)
    name = "encoder.layer.0.attention.self.query.weight"

    # when its weights are compared with the pretrained ones
    # then the encoder is untouched and the new head learned something
    assert torch.equal(encoder_weight(frozen.best, name), pretrained_weights()[name])
    assert frozen.result.steps == 3


def test_the_minilm_checkpoint_reproduces_the_runs_validation_accuracy(
        minilm: FineTuned) -> None:
    # given the fine-tuned checkpoint and the raw validation sentences of its run
    spec = minilm.spec
    rows = load_text_rows("imdb_sentences")
    _, val, _ = split_three(1000, rows.labels, spec.run.seed, spec.data.val_fraction,
                            spec.data.subset)
    texts = [rows.texts[i] for i in val]
    labels = torch.from_numpy(rows.labels[val])

    # when the loaded checkpoint classifies the texts with its saved tokenizer
    predicted = minilm.best.predict(texts).argmax(1)

    # then its accuracy is exactly the one the run reported
    accuracy = float((predicted == labels).float().mean())
    assert accuracy == minilm.result.best_metrics["val_acc"]


def test_the_minilm_archive_carries_safetensors_config_and_tokenizer(minilm: FineTuned) -> None:
    # given the fine-tuned checkpoint archive
    import zipfile

    names = set(zipfile.ZipFile(minilm.workdir / "best.zip").namelist())

    # then it holds the weights, the model configuration and the tokenizer files, no pickle,
    # and its tokenizer is MiniLM's own
    assert {"model.safetensors", "spec.json", "pretrained/config.json",
            "tokenizer/tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pkl", ".pt")) for n in names)
    assert isinstance(minilm.best.tokenizer, PretrainedTokenizer)
    assert minilm.best.tokenizer.encode(["hello"]).input_ids[0, 0] == 101  # [CLS]


# --- uploaded text ----------------------------------------------------------------------------


def test_an_lstm_trains_on_an_uploaded_text_csv_and_tests_once(make_spec: SpecFactory,
                                                               tmp_path: Path) -> None:
    # given an uploaded CSV of 80 short reviews whose label follows one word, stored as the
    # prepared file the worker would hand the engine
    import io

    from training.data import DataSources
    from training.data.uploads import TableOptions, prepare_table, read_csv, save_prepared

    words = ["great", "awful"]
    lines = [f"a {words[i % 2]} film number {i},{('pos', 'neg')[i % 2]}" for i in range(80)]
    csv = ("review,label\n" + "\n".join(lines) + "\n").encode()
    prepared = prepare_table(read_csv(io.BytesIO(csv), "reviews.csv"),
                             TableOptions(label_column="label", text_column="review"))
    path = tmp_path / "prepared.npz"
    with path.open("wb") as handle:
        save_prepared(prepared, "upload:900101", handle)
    sources = DataSources(uploads={"upload:900101": path})

    # when an LSTM trains on it with a test split
    spec = make_spec({"data": {"dataset": "upload:900101", "test_fraction": 0.25},
                      "model": {"arch": "lstm", "embed_dim": 16, "hidden_size": 16,
                                "min_freq": 1},
                      "optim": {"lr": 0.02}, "run": {"epochs": 6, "batch_size": 16}})
    result = run(spec, MemoryReporter(), tmp_path / "run", sources=sources)

    # then it learns the word that decides the label, on validation and on the test rows
    assert result.best_metrics["val_acc"] == 1.0, result.best_metrics
    assert result.test_metrics["test_acc"] == 1.0, result.test_metrics
