"""The spec fields of the model families and the combinations it refuses, each on its field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from huggingface_hub import HfApi

from training import ExperimentSpec, SpecError, budget
from training import spec as spec_module
from training.data import dataset_info
from training.data.text import MINILM, resolve_pretrained
from training.recipes import RECIPES, available_recipes
from training.spec import allow_model_dirs


def errors_for(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        ExperimentSpec.from_dict(data)
    return caught.value.errors


@pytest.mark.parametrize(("dataset", "arch"), [
    ("wine", "lstm"), ("iris", "gru"), ("breast_cancer", "transformer"),
    ("digits", "pretrained"), ("digits", "lstm"),
    ("sst2", "cnn"), ("sst2", "resnet"), ("imdb_sentences", "mlp"), ("wine", "resnet"),
])
def test_it_refuses_a_model_that_cannot_read_the_data(dataset: str, arch: str) -> None:
    # given an architecture pointed at data of another modality
    # when it is validated
    errors = errors_for({"data": {"dataset": dataset}, "model": {"arch": arch}})

    # then the architecture is what must change, and the message names both sides
    assert list(errors) == ["model.arch"]
    assert dataset_info(dataset).modality in errors["model.arch"]


@pytest.mark.parametrize(("dataset", "arch"), [
    ("digits", "resnet"), ("sst2", "lstm"), ("sst2", "gru"), ("imdb_sentences", "transformer"),
    ("sst2", "pretrained"),
])
def test_it_accepts_a_model_that_reads_the_data(dataset: str, arch: str) -> None:
    # given a matching architecture and dataset
    # when it is validated
    spec = ExperimentSpec.from_dict({"data": {"dataset": dataset}, "model": {"arch": arch}})

    # then it is accepted
    assert spec.model.arch == arch


def test_transformer_heads_must_divide_the_width() -> None:
    # given a Transformer of width 100 with 3 heads
    # when it is validated
    errors = errors_for({"data": {"dataset": "sst2"},
                         "model": {"arch": "transformer", "embed_dim": 100, "heads": 3}})

    # then the heads field carries the error
    assert errors == {"model.heads": "must divide the embedding size (100)"}


@pytest.mark.parametrize(("field", "value"), [
    ("depth", 0), ("max_length", 0), ("vocab_size", 2), ("min_freq", 0), ("embed_dim", 0),
    ("hidden_size", 0), ("layers", 0), ("heads", 0), ("positional", "rotary"),
    ("head", "max"), ("head_units", -1),
])
def test_it_rejects_out_of_range_model_fields(field: str, value: Any) -> None:
    # given one bad model field
    # when it is validated
    errors = errors_for({"model": {field: value}})

    # then that field, and only it, has an error
    assert list(errors) == [f"model.{field}"]


@pytest.mark.parametrize("name", ["", "not a model name", "a/b/c"])
def test_a_pretrained_model_needs_a_hub_name_or_a_directory(name: str) -> None:
    # given a pretrained text model with a malformed source
    # when it is validated
    errors = errors_for({"data": {"dataset": "sst2"},
                         "model": {"arch": "pretrained", "pretrained": name}})

    # then the pretrained field carries the error
    assert list(errors) == ["model.pretrained"]


@pytest.fixture
def model_dirs_allowed(tmp_path: Path) -> Iterator[Path]:
    """Only ``tmp_path/models`` allowed, beside a file, a folder and a missing path outside it."""
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "runs" / "7").mkdir(parents=True)
    (tmp_path / "runs" / "7" / "best.pt").write_bytes(b"x")
    (tmp_path / "models" / "out").symlink_to(tmp_path / "runs")
    allow_model_dirs([tmp_path / "models"])
    yield tmp_path
    spec_module._model_dirs = None


def test_a_local_pretrained_model_outside_the_allowed_folders_is_refused_alike(
        model_dirs_allowed: Path) -> None:
    # given a folder, a file, a missing path and a link out, all outside the allowed folder
    root = model_dirs_allowed
    outside = [root / "runs" / "7", root / "runs" / "7" / "best.pt", root / "runs" / "8",
               root / "models" / "out" / "7", root / "models" / ".." / "runs" / "7"]

    # when each is validated as a pretrained model's source
    messages = {errors_for({"data": {"dataset": "sst2"},
                            "model": {"arch": "pretrained", "pretrained": str(path)}}
                           )["model.pretrained"] for path in outside}

    # then each is refused on its field with one message that says nothing of what exists
    assert len(messages) == 1
    assert "inside the allowed model directories" in messages.pop()


def test_a_local_pretrained_model_inside_the_allowed_folders_is_accepted(
        model_dirs_allowed: Path) -> None:
    source = str(model_dirs_allowed / "models" / "mine")
    spec = ExperimentSpec.from_dict({"data": {"dataset": "sst2"},
                                     "model": {"arch": "pretrained", "pretrained": source}})

    assert spec.model.pretrained == source


def test_the_engine_refuses_a_model_folder_outside_the_allowed_ones_alike(
        model_dirs_allowed: Path) -> None:
    # given a spec stored before the check (or a clone): the engine checks the source again
    messages = set()
    for path in ["runs/7", "runs/7/best.pt", "runs/8"]:
        with pytest.raises(ValueError) as caught:
            resolve_pretrained(str(model_dirs_allowed / path))
        messages.add(str(caught.value))

    assert len(messages) == 1 and "allowed model directories" in messages.pop()


def test_the_bundled_minilm_is_allowed_by_default() -> None:
    # given no configured folders: the data directory and the bundled model's folder
    bundled = resolve_pretrained(MINILM)

    # then the hub name and the bundled folder itself both validate and resolve
    for source in (MINILM, bundled):
        ExperimentSpec.from_dict({"data": {"dataset": "sst2"},
                                  "model": {"arch": "pretrained", "pretrained": source}})
    assert resolve_pretrained(bundled) == str(Path(bundled).resolve())


@pytest.mark.parametrize("gigabytes, refused", [(16.1, True), (15.9, False)])
def test_a_hub_model_too_large_to_train_is_refused_before_it_is_downloaded(
        monkeypatch: pytest.MonkeyPatch, gigabytes: float, refused: bool) -> None:
    # given a run may use 64 GB, and the hub says what a model's safetensors files weigh (online)
    monkeypatch.setattr(budget, "_limits", budget.Limits(memory_gb=64))
    files = [SimpleNamespace(rfilename=f"model-{i}.safetensors", size=int(gigabytes * 1e9 / 2))
             for i in range(2)] + [SimpleNamespace(rfilename="pytorch_model.bin", size=10**12)]
    monkeypatch.setattr(HfApi, "model_info",
                        lambda self, name, **kw: SimpleNamespace(siblings=files))

    # when the engine resolves it (the worker does, before transformers downloads it)
    if refused:
        with pytest.raises(ValueError) as caught:
            resolve_pretrained("someone/giant")
        # then weights whose training copies (4x) pass the budget are refused on the field
        assert str(caught.value).startswith("model.pretrained: someone/giant stores 16.1 GB")
    else:
        assert resolve_pretrained("someone/giant") == "someone/giant"


def test_a_subset_limits_the_rows_a_batch_may_use() -> None:
    # given SST-2 cut to 100 rows (80 to train on) and a batch of 81
    # when it is validated
    errors = errors_for({"data": {"dataset": "sst2", "subset": 100},
                         "model": {"arch": "lstm"}, "run": {"batch_size": 81}})

    # then the batch size is refused against the subset's training rows
    assert list(errors) == ["run.batch_size"]
    assert "80 rows" in errors["run.batch_size"]


def test_a_negative_subset_is_refused() -> None:
    assert list(errors_for({"data": {"subset": -1}})) == ["data.subset"]


# --- recipes --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(RECIPES))
def test_every_recipe_validates(key: str) -> None:
    # given a recipe
    recipe = RECIPES[key]

    # when its spec is built
    spec = recipe.spec()

    # then it is valid and trains on the dataset it names
    assert spec.data.dataset == recipe.patch["data"]["dataset"]


def test_the_case_study_recipes_are_offered() -> None:
    # given this installation's catalog
    # when the available recipes are listed
    keys = {recipe.key for recipe in available_recipes()}

    # then both case studies, the LSTM and the tabular MLP are offered
    assert keys == {"fmnist_cnn", "minilm_sst2", "lstm_sst2", "mlp_tabular"}


# --- remedies for text models ---------------------------------------------------------------


def overfitting_history() -> dict[str, list[float]]:
    """Validation loss falls to its best at epoch 7 and then climbs while training loss keeps
    shrinking by 30% an epoch: a two-class run that overfits."""
    epochs = range(1, 13)
    val = [0.69 - 0.06 * (e - 1) if e <= 7 else 0.33 + 0.05 * (e - 7) for e in epochs]
    return {"train_loss": [0.69 * 0.7 ** (e - 1) for e in epochs], "val_loss": val}


@pytest.mark.parametrize(("model", "expected"), [
    ({"arch": "lstm", "hidden_size": 128}, {"hidden_size": 64}),
    ({"arch": "transformer", "embed_dim": 128, "heads": 4}, {"embed_dim": 64}),
    ({"arch": "pretrained", "freeze_encoder": False}, {"freeze_encoder": True}),
])
def test_the_smaller_model_remedy_shrinks_what_the_text_model_has(
        model: dict[str, Any], expected: dict[str, Any]) -> None:
    # given an overfitting run of a text model
    from training.diagnostics import diagnose, task_info

    spec = ExperimentSpec.from_dict({"data": {"dataset": "sst2"}, "model": model})

    # when it is diagnosed
    verdict = diagnose(overfitting_history(), task_info("sst2"), spec, final=True)

    # then its "smaller model" remedy changes the field that sizes that model, validly
    assert verdict.kind == "overfitting"
    remedy = next(r for r in verdict.remedies if r.key == "smaller_model")
    assert remedy.patch == {"model": expected}
    spec.patched(remedy.patch)


def test_channel_pruning_a_text_model_is_refused_on_the_method_field() -> None:
    # given an LSTM trained on SST-2 as the source of a channel-pruning job
    from training.compression.spec import CompressionSpec

    source = ExperimentSpec.from_dict({"data": {"dataset": "sst2"}, "model": {"arch": "lstm"}})

    # when the job is checked against its source
    with pytest.raises(SpecError) as caught:
        CompressionSpec(method="prune_channels").check_source(source)

    # then the method field says which models channel pruning supports
    assert list(caught.value.errors) == ["method"]
    assert "not lstm" in caught.value.errors["method"]
