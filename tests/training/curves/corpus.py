"""A labelled corpus of real learning curves, for tuning the diagnosis and for holding out.

    FITBOARD_DATA_DIR=/work/shared/data python -m tests.training.curves.corpus   # corpus.json

Each plan is a short real training on one of 8 data sets (the sklearn sets, MNIST and
Fashion-MNIST on subsets, IMDb sentences) with one of 5 model families (MLP, CNN, ResNet, GRU,
LSTM) and SGD, Adam, AdamW or RMSprop, built to show one verdict: its label *by construction*.
A run is kept only when its curves also pass that verdict's *numeric check* (``check``), simple
measurements independent of the diagnosis' rules; the others are dropped and counted. The JSON
keeps only what a diagnosis is given: the task, the per-epoch lists (4 significant digits; a
run the loop stopped on a non-finite loss ends its training loss with NaN, stored as null), and
the data set's reference model. ``split`` fixes, by seed, which runs tune the thresholds and
which are held out.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("corpus.json")
# Every recorded run, one per line, kept or not: recording resumes from it after a stop.
PARTIAL = Path(tempfile.gettempdir()) / "fitboard-corpus.partial.jsonl"
EPOCH_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc")
SPLIT_SEED = 2026
HELD_OUT_SHARE = 0.4  # of each verdict's runs
# Each recipe runs once per seed (another initialisation, split and order); the image and text
# runs, which cost most, with the first two only.
SEEDS = (0, 1, 2, 3)
COSTLY_SEEDS = (0, 1)


@dataclass(frozen=True)
class Plan:
    name: str
    label: str
    patch: dict[str, Any]


def mlp(*sizes: int, **more: Any) -> dict[str, Any]:
    return {"arch": "mlp", "hidden_sizes": list(sizes), **more}


def cnn(width: int, blocks: int = 2, **more: Any) -> dict[str, Any]:
    return {"arch": "cnn", "width": width, "blocks": blocks, **more}


def rnn(arch: str, hidden: int, **more: Any) -> dict[str, Any]:
    return {"arch": arch, "hidden_size": hidden, "embed_dim": 32, "bidirectional": False,
            "max_length": 32, **more}


TABULAR = ("wine", "iris", "breast_cancer", "digits")
IMAGES = ("mnist", "fashion_mnist")
SUBSET = 2500  # rows of MNIST and Fashion-MNIST each image run draws: a few seconds a run


def data(dataset: str, val_fraction: float = 0.2, subset: int = 0) -> dict[str, Any]:
    if dataset in IMAGES and not subset:
        subset = SUBSET
    return {"dataset": dataset, "val_fraction": val_fraction, "subset": subset}


def plan(name: str, label: str, dataset: dict[str, Any], model: dict[str, Any],
         optim: dict[str, Any], epochs: int, batch: int = 64, seed: int = 0) -> Plan:
    return Plan(name, label, {"data": dataset, "model": model, "optim": optim,
                              "run": {"epochs": epochs, "batch_size": batch, "seed": seed}})


def regression(optim: dict[str, Any]) -> dict[str, Any]:
    return {"loss": "mse", **optim}


def healthy() -> Iterator[Plan]:
    for seed in SEEDS:
        for ds in TABULAR:
            small = ds in ("wine", "iris")
            yield plan(f"h_{ds}_adam_{seed}", "healthy", data(ds), mlp(64),
                       {"lr": 3e-3}, 40 if small else 25, 16 if small else 64, seed)
            yield plan(f"h_{ds}_sgd_{seed}", "healthy", data(ds), mlp(64, 32),
                       {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
                       40 if small else 25, 16 if small else 64, seed)
            yield plan(f"h_{ds}_adamw_{seed}", "healthy", data(ds), mlp(128, dropout=0.3),
                       {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
                       30 if small else 20, 16 if small else 64, seed)
        yield plan(f"h_diabetes_adam_{seed}", "healthy", data("diabetes"), mlp(32),
                   regression({"lr": 1e-2}), 12, 32, seed)
        yield plan(f"h_diabetes_sgd_{seed}", "healthy", data("diabetes"), mlp(16),
                   regression({"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}), 15, 32, seed)
        for ds in IMAGES if seed in COSTLY_SEEDS else ():
            yield plan(f"h_{ds}_cnn_{seed}", "healthy", data(ds), cnn(16, dropout=0.3),
                       {"lr": 2e-3, "weight_decay": 1e-4}, 8 + 4 * seed, 64, seed)
            yield plan(f"h_{ds}_mlp_{seed}", "healthy", data(ds), mlp(128, dropout=0.3),
                       {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05}, 10, 64, seed)
        yield plan(f"h_digits_cnn_{seed}", "healthy", data("digits"), cnn(16),
                   {"lr": 3e-3}, 12 + 3 * seed, 64, seed)
        yield plan(f"h_digits_resnet_{seed}", "healthy", data("digits"),
                   {"arch": "resnet", "width": 8, "blocks": 2, "depth": 1},
                   {"lr": 3e-3}, 10, 64, seed)
        yield plan(f"h_digits_short_{seed}", "healthy", data("digits"), mlp(128),
                   {"lr": 1e-2}, 3 + seed, 32, seed)
        if seed in COSTLY_SEEDS:
            yield plan(f"h_imdb_gru_{seed}", "healthy", data("imdb_sentences", 0.3),
                   rnn("gru", 32, dropout=0.5), {"lr": 3e-3}, 4 + seed, 32, seed)


def overfitting() -> Iterator[Plan]:
    for seed in SEEDS:
        for ds in TABULAR:
            yield plan(f"o_{ds}_wide_{seed}", "overfitting", data(ds, 0.7), mlp(512, 512),
                       {"lr": 3e-3}, 40, 16, seed)
            yield plan(f"o_{ds}_deep_sgd_{seed}", "overfitting", data(ds, 0.6), mlp(256, 256, 256),
                       {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}, 50, 8, seed)
            yield plan(f"o_{ds}_rmsprop_{seed}", "overfitting", data(ds, 0.7), mlp(512),
                       {"optimizer": "rmsprop", "lr": 1e-3}, 40, 16, seed)
        yield plan(f"o_diabetes_wide_{seed}", "overfitting", data("diabetes", 0.7),
                   mlp(512, 512), regression({"lr": 3e-3}), 40, 16, seed)
        yield plan(f"o_diabetes_deep_{seed}", "overfitting", data("diabetes", 0.6),
                   mlp(256, 256, 256), regression({"optimizer": "adamw", "lr": 2e-3}), 50, 16, seed)
        for ds in IMAGES if seed in COSTLY_SEEDS else ():
            yield plan(f"o_{ds}_cnn_{seed}", "overfitting", data(ds, 0.6, 800), cnn(32),
                       {"lr": 3e-3}, 30, 32, seed)
            yield plan(f"o_{ds}_mlp_{seed}", "overfitting", data(ds, 0.6, 800), mlp(512, 512),
                       {"lr": 1e-3}, 30, 32, seed)
        if seed not in COSTLY_SEEDS:
            continue
        yield plan(f"o_imdb_gru_{seed}", "overfitting", data("imdb_sentences", 0.3),
                   rnn("gru", 64), {"lr": 5e-3}, 20, 32, seed)
        yield plan(f"o_imdb_lstm_{seed}", "overfitting", data("imdb_sentences", 0.3),
                   rnn("lstm", 64), {"optimizer": "adamw", "lr": 5e-3}, 20, 32, seed)


def underfitting() -> Iterator[Plan]:
    for seed in SEEDS:
        for ds in ("digits", *IMAGES) if seed in COSTLY_SEEDS else ("digits",):
            for units in (1, 2):
                yield plan(f"u_{ds}_{units}unit_{seed}", "underfitting", data(ds), mlp(units),
                           {"lr": 1e-2}, 30 if ds == "digits" else 15, 64, seed)
            yield plan(f"u_{ds}_dropout_{seed}", "underfitting", data(ds),
                       mlp(4, dropout=0.9), {"lr": 1e-2}, 25 if ds == "digits" else 12, 64, seed)
            yield plan(f"u_{ds}_decay_{seed}", "underfitting", data(ds), mlp(64),
                       {"lr": 1e-2, "weight_decay": 0.3}, 25 if ds == "digits" else 12, 64, seed)
            yield plan(f"u_{ds}_sgd_plateau_{seed}", "underfitting", data(ds), mlp(2),
                       {"optimizer": "sgd", "lr": 0.3, "momentum": 0.0},
                       30 if ds == "digits" else 15, 16, seed)
        for ds in ("wine", "breast_cancer", "iris"):
            yield plan(f"u_{ds}_decay_{seed}", "underfitting", data(ds), mlp(32),
                       {"lr": 1e-2, "weight_decay": 1.0}, 30, 16, seed)
            yield plan(f"u_{ds}_dropout_{seed}", "underfitting", data(ds), mlp(2, dropout=0.9),
                       {"lr": 1e-2}, 30, 16, seed)
        yield plan(f"u_diabetes_decay_{seed}", "underfitting", data("diabetes"), mlp(16),
                   regression({"lr": 1e-2, "weight_decay": 2.0}), 30, 32, seed)
        yield plan(f"u_diabetes_dropout_{seed}", "underfitting", data("diabetes"),
                   mlp(2, dropout=0.9), regression({"lr": 1e-2}), 30, 32, seed)
        if seed in COSTLY_SEEDS:
            yield plan(f"u_imdb_gru_{seed}", "underfitting", data("imdb_sentences", 0.3),
                   rnn("gru", 2, dropout=0.9), {"lr": 1e-3, "weight_decay": 0.5}, 10, 32, seed)


def slow() -> Iterator[Plan]:
    for seed in SEEDS:
        for ds in (*TABULAR, *IMAGES) if seed in COSTLY_SEEDS else TABULAR:
            epochs = 10 if ds in IMAGES else 20 + 10 * seed
            yield plan(f"s_{ds}_sgd_{seed}", "slow", data(ds), mlp(64),
                       {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0}, epochs, 64, seed)
            yield plan(f"s_{ds}_adam_{seed}", "slow", data(ds), mlp(32),
                       {"lr": 2e-5 if ds in IMAGES else 1e-4}, epochs, 64, seed)
        yield plan(f"s_digits_cnn_sgd_{seed}", "slow", data("digits"), cnn(8),
                   {"optimizer": "sgd", "lr": 3e-4, "momentum": 0.5}, 12, 64, seed)
        yield plan(f"s_digits_resnet_{seed}", "slow", data("digits"),
                   {"arch": "resnet", "width": 8, "blocks": 2, "depth": 1},
                   {"optimizer": "sgd", "lr": 1e-4, "momentum": 0.0}, 8, 64, seed)
        yield plan(f"s_diabetes_sgd_{seed}", "slow", data("diabetes"), mlp(32),
                   regression({"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0}), 30, 32, seed)
        yield plan(f"s_diabetes_adam_{seed}", "slow", data("diabetes"), mlp(32),
                   regression({"lr": 1e-4}), 25, 32, seed)
        if seed in COSTLY_SEEDS:
            yield plan(f"s_imdb_gru_{seed}", "slow", data("imdb_sentences", 0.3), rnn("gru", 32),
                   {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.0}, 10, 32, seed)


def diverging() -> Iterator[Plan]:
    for seed in SEEDS:
        for ds in (*TABULAR, *IMAGES) if seed in COSTLY_SEEDS else TABULAR:
            yield plan(f"d_{ds}_sgd_{seed}", "diverging", data(ds), mlp(64),
                       {"optimizer": "sgd", "lr": 8.0, "momentum": 0.9}, 6, 32, seed)
            yield plan(f"d_{ds}_adam_{seed}", "diverging", data(ds), mlp(128, 128),
                       {"lr": 2.0}, 8, 32, seed)
            yield plan(f"d_{ds}_rmsprop_{seed}", "diverging", data(ds), mlp(64),
                       {"optimizer": "rmsprop", "lr": 1.0}, 8, 32, seed)
        yield plan(f"d_digits_cnn_{seed}", "diverging", data("digits"), cnn(16, batch_norm=False),
                   {"optimizer": "sgd", "lr": 5.0, "momentum": 0.9}, 5, 32, seed)
        yield plan(f"d_diabetes_sgd_{seed}", "diverging", data("diabetes"), mlp(16),
                   regression({"optimizer": "sgd", "lr": 1.0, "momentum": 0.9}), 20, 16, seed)
        if seed in COSTLY_SEEDS:
            yield plan(f"d_imdb_gru_{seed}", "diverging", data("imdb_sentences", 0.3),
                   rnn("gru", 32), {"optimizer": "sgd", "lr": 10.0, "momentum": 0.9}, 6, 32,
                   seed)


def plans() -> list[Plan]:
    return [*healthy(), *overfitting(), *underfitting(), *slow(), *diverging()]


# --- the numeric checks: what each verdict must show, measured plainly ----------------------


def check(label: str, item: dict[str, Any]) -> bool:
    """Whether the run's curves show its label. Measured on raw epochs (no medians, no fitted
    slopes), against the task's constant-prediction loss and the reference model."""
    h, task = item["history"], item["task"]
    train = [math.nan if v is None else v for v in h["train_loss"]]
    val = h.get("val_loss", [])
    base = baseline(task)
    if label == "diverging":
        chance = math.log(task["num_classes"]) if task["kind"] == "classification" else 1.0
        finite = [v for v in train if math.isfinite(v)]
        return (len(finite) < len(train) or max(finite) > 3 * chance
                or (len(finite) > 3 and min(finite[:-2]) < 0.6 * chance < finite[-1]))
    if len(train) < 3 or not all(math.isfinite(v) for v in train):
        return False
    n, best = len(val), min(range(len(val)), key=lambda i: val[i])
    third = max(2, n // 3)
    fell_last_third = (train[-third - 1] - train[-1]) / base
    short = short_of_reference(item)
    if label == "overfitting":
        return (best <= n - 4 and val[-1] >= 1.15 * val[best] and val[-1] - val[best] > 0.02 * base
                and train[-1] <= 0.7 * train[best])
    rising = val[-1] > 1.1 * val[best] and best < n - 2
    grew = (val[-1] - train[-1]) - (val[best] - train[best])
    if label == "healthy":
        return not rising and grew < 0.05 * base and short <= 0.05 and fell_last_third < 0.15
    if label == "underfitting":
        return not rising and short >= 0.15 and fell_last_third < 0.05
    if label == "slow":
        steady = all(b < a for a, b in zip(train[-third - 1:], train[-third:], strict=False))
        return steady and short >= 0.1 and fell_last_third >= 0.01 and not rising
    raise ValueError(label)


def baseline(task: dict[str, Any]) -> float:
    if task["kind"] == "regression":
        return 1.0
    k, p = task["num_classes"], task["majority_fraction"] or 1 / task["num_classes"]
    q = (1 - p) / (k - 1)
    return -p * math.log(p) - (k - 1) * q * math.log(q)


def short_of_reference(item: dict[str, Any]) -> float:
    """How far the run's best training or validation score ends short of the reference's
    validation score, over the room between a constant prediction and the reference."""
    h, task, ref = item["history"], item["task"], item["reference"]
    if task["kind"] == "classification":
        majority = task["majority_fraction"] or 1 / task["num_classes"]
        run = max(statistics.median(h["train_acc"][-3:]), statistics.median(h["val_acc"][-3:]))
        return (ref["val_acc"] - run) / max(ref["val_acc"] - majority, 1e-6)
    run = min(statistics.median(h["train_loss"][-3:]), statistics.median(h["val_loss"][-3:]))
    return (run - ref["val_loss"]) / max(1.0 - ref["val_loss"], 1e-6)


# --- recording ------------------------------------------------------------------------------


def record(one: Plan, refs: Path) -> dict[str, Any]:
    import torch

    from training import ExperimentSpec, MemoryReporter, run
    from training.data import prepare
    from training.loop import NonFiniteLossError
    from training.reference import reference_for, reference_key

    spec = ExperimentSpec().patched({**one.patch, "run": {"device": "cpu", **one.patch["run"]}})
    reporter, stopped = MemoryReporter(), False
    started = time.perf_counter()
    try:
        run(spec, reporter, Path(tempfile.mkdtemp(prefix="fitboard-corpus-")))
    except NonFiniteLossError:
        stopped = True
    seconds = time.perf_counter() - started
    history = {key: [value for _, value in reporter.series(key)] for key in EPOCH_KEYS}
    if stopped:
        history["train_loss"].append(math.nan)
    d = spec.data
    prepared = prepare(d.dataset, d.val_fraction, spec.run.seed, subset=d.subset)
    reference = reference_for(prepared, refs, reference_key(spec))
    task: dict[str, Any] = {"kind": prepared.info.task, "num_classes": None,
                            "majority_fraction": None}
    if prepared.info.task == "classification":
        counts = torch.bincount(prepared.y_train).tolist()
        task.update(num_classes=prepared.info.num_classes,
                    majority_fraction=round(max(counts) / sum(counts), 4))
    return {
        "name": one.name, "label": one.label, "patch": one.patch, "task": task,
        "reference": {k: float(f"{v:.4g}") if isinstance(v, float) else v
                      for k, v in reference.to_dict().items() if k != "seconds"},
        "history": {k: [float(f"{v:.4g}") if math.isfinite(v) else None for v in values]
                    for k, values in history.items() if values},
        "seconds": round(seconds, 1),
    }


def main() -> None:
    import torch

    torch.set_num_threads(1)
    refs = Path(tempfile.gettempdir()) / "fitboard-corpus-references"
    done = {}
    if PARTIAL.exists():
        for line in PARTIAL.read_text().splitlines():
            item = json.loads(line)
            done[item["name"]] = item
    # Arguments: PART PARTS [SEED,...] to record in several processes, each its share.
    part = int(sys.argv[1]) if len(sys.argv) > 2 else 0
    parts = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seeds = {int(s) for s in sys.argv[3].split(",")} if len(sys.argv) > 3 else set(SEEDS)
    todo = [p for p in plans() if p.name not in done and p.patch["run"]["seed"] in seeds]
    with PARTIAL.open("a") as out:
        for one in todo[part::parts]:
            item = record(one, refs)
            out.write(json.dumps(item) + "\n")
            out.flush()
            print(one.name, item["seconds"], check(one.label, item), flush=True)


def write() -> None:
    """corpus.json from the recorded runs that pass their check (one run per line)."""
    # One record per plan (a run recorded twice, by two processes, counts once).
    items = list({i["name"]: i for i in map(json.loads, PARTIAL.read_text().splitlines())}.values())
    names = {p.name for p in plans()}
    kept = [i for i in items if i["name"] in names and check(i["label"], i)]
    dropped = sorted(i["name"] for i in items if i["name"] in names and not check(i["label"], i))
    for item in kept:
        item.pop("seconds", None)
    kept.sort(key=lambda i: i["name"])
    PATH.write_text("[\n" + ",\n".join(json.dumps(i) for i in kept) + "\n]\n")
    print(f"kept {len(kept)}, dropped {len(dropped)}: {dropped}")


def load() -> list[dict[str, Any]]:
    """The corpus, as ``write()`` left it; null epoch values read as NaN."""
    items = json.loads(PATH.read_text())
    for item in items:
        item["history"] = {k: [math.nan if v is None else v for v in values]
                           for k, values in item["history"].items()}
    return list(items)


def split(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tuning, held out): a seeded shuffle of each verdict's runs, HELD_OUT_SHARE held out."""
    rng = random.Random(SPLIT_SEED)
    tuning, held = [], []
    for label in sorted({i["label"] for i in items}):
        group = sorted((i for i in items if i["label"] == label), key=lambda i: i["name"])
        rng.shuffle(group)
        cut = round(len(group) * HELD_OUT_SHARE)
        held += group[:cut]
        tuning += group[cut:]
    return tuning, held


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"]:
        write()
    else:
        main()
