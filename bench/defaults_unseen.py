"""How good is the run a user gets on a data set Fitboard has never seen, with the defaults the
New experiment form proposes for it, against a quick hand-written baseline on the same split?

Each set is written as CSV bytes and goes through the upload code path (``prepare_upload`` with
the upload page's defaults, as ``with_page_defaults`` fills them: standardise ticked, duplicates
and unlabelled rows dropped), then trains with the spec "Train on it" proposes (the spec's
defaults changed by ``training.spec.proposed_for``: the modality's model family, MSE for a
regression, a table's epochs and weight decay). The baselines get the same rows
and the same train / validation split (``split_three`` with the run's seed) and standardise
the raw features themselves: (a) sklearn's LogisticRegression / Ridge after a StandardScaler,
(b) a plain torch loop: a 2 × 64 ReLU MLP, Adam at 1e-3, batches of 64, as many epochs as the
Fitboard run, the target standardised for a regression; both the run and (b) are scored at
their best validation epoch (the run restores its best epoch by default).

For every seed the arms alternate (Fitboard, linear, MLP; then the order rotates); the table
shows each arm's median over the seeds: validation accuracy (higher is better) or RMSE in the
target's units (lower is better), the run's epochs and the seconds per arm. ``GAP`` flags a
Fitboard default more than 2 points of accuracy below, or 10 % of RMSE above, the better
baseline. Usage, from the repo root:
``.venv/bin/python bench/defaults_unseen.py [--seeds N] [--threads T] [--set S.F=V] [set ...]``;
``--set run.epochs=15 --set optim.weight_decay=0`` gives the defaults before tables were
offered epochs for their size and weight decay (``training.spec.proposed_for``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn import datasets as sk  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from training import ExperimentSpec, MemoryReporter, run  # noqa: E402
from training.data import DataSources  # noqa: E402
from training.data.loading import load_raw, split_three  # noqa: E402
from training.data.uploads import save_prepared  # noqa: E402
from training.spec import proposed_for  # noqa: E402
from webapp.datasets.forms import with_page_defaults  # noqa: E402
from webapp.datasets.services import prepare_upload  # noqa: E402


def _sklearn(loader: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    x, y = loader(return_X_y=True)
    return x, y


TABLES: dict[str, tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = {
    "wine": ("classification", lambda: _sklearn(sk.load_wine)),
    "breast_cancer": ("classification", lambda: _sklearn(sk.load_breast_cancer)),
    "iris": ("classification", lambda: _sklearn(sk.load_iris)),
    "digits": ("classification", lambda: _sklearn(sk.load_digits)),
    "diabetes": ("regression", lambda: _sklearn(sk.load_diabetes)),
    "make_classification": ("classification", lambda: sk.make_classification(
        n_samples=1500, n_features=40, n_informative=12, n_classes=5, random_state=0)),
    # A larger table, where the proposal keeps the spec's 15 epochs (each is 250 steps).
    "make_classification_20k": ("classification", lambda: sk.make_classification(
        n_samples=20000, n_features=40, n_informative=12, n_classes=5, random_state=1)),
    "make_regression": ("regression", lambda: sk.make_regression(
        n_samples=1000, n_features=20, n_informative=10, noise=10.0, random_state=0)),
}


def csv_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    """The table as a user would export it: a header, the features, the label last."""
    out = io.StringIO()
    out.write(",".join([*(f"f{i}" for i in range(x.shape[1])), "target"]) + "\n")
    for row, label in zip(x, y, strict=True):
        out.write(",".join([*(repr(float(v)) for v in row), str(label)]) + "\n")
    return out.getvalue().encode()


def upload(name: str, task: str, folder: Path) -> DataSources:
    """The set through the upload page's code path, stored as the engine reads it."""
    x, y = TABLES[name][1]()
    options = with_page_defaults({"task": task})
    prepared = prepare_upload("csv", options, io.BytesIO(csv_bytes(x, y)), f"{name}.csv", name)
    spec_name = f"upload:{900100 + list(TABLES).index(name)}"
    path = folder / f"{name}.npz"
    with path.open("wb") as handle:
        save_prepared(prepared, spec_name, handle)
    return DataSources(uploads={spec_name: path})


OVERRIDES: dict[str, dict[str, Any]] = {}  # --set section.field=value, to try other defaults


def default_spec(sources: DataSources, seed: int) -> ExperimentSpec:
    """What "Train on it" proposes (``proposed_for``, which ``_dataset_initial`` and the New
    experiment form's script offer), with ``--set``'s changes."""
    name = next(iter(sources.uploads))
    sections: dict[str, dict[str, Any]] = {"data": {"dataset": name}, "run": {"seed": seed}}
    for path, value in proposed_for(load_raw(name, sources).info).items():
        section, field = path.split(".")
        sections.setdefault(section, {})[field] = value
    for section, values in OVERRIDES.items():
        sections[section] = {**sections.get(section, {}), **values}
    return ExperimentSpec.from_dict(sections)


def fitboard(sources: DataSources, seed: int) -> tuple[float, int]:
    spec = default_spec(sources, seed)
    with tempfile.TemporaryDirectory() as workdir:
        result = run(spec, MemoryReporter(), Path(workdir), sources=sources)
    key = "val_acc" if "val_acc" in result.best_metrics else "val_rmse"
    return result.best_metrics[key], spec.run.epochs


def same_split(sources: DataSources, seed: int) -> tuple[np.ndarray, ...]:
    """The run's raw rows and its train / validation split, features standardised here."""
    spec = default_spec(sources, seed)
    raw = load_raw(spec.data.dataset, sources)
    classes = raw.y if raw.info.task == "classification" else None
    train, val, _ = split_three(len(raw.x), classes, seed, spec.data.val_fraction)
    scaler = StandardScaler().fit(raw.x[train])
    return (scaler.transform(raw.x[train]), raw.y[train], scaler.transform(raw.x[val]),
            raw.y[val])


def linear(sources: DataSources, seed: int, task: str) -> float:
    x, y, xv, yv = same_split(sources, seed)
    if task == "classification":
        model = LogisticRegression(max_iter=2000).fit(x, y)
        return float((model.predict(xv) == yv).mean())
    pred = Ridge().fit(x, y).predict(xv)
    return float(np.sqrt(((pred - yv) ** 2).mean()))


def mlp(sources: DataSources, seed: int, task: str, epochs: int) -> float:
    """A hand-written loop: 2 × 64 ReLU, Adam 1e-3, batches of 64, best validation epoch."""
    x, y, xv, yv = same_split(sources, seed)
    torch.manual_seed(seed)
    classification = task == "classification"
    mean, std = (0.0, 1.0) if classification else (float(y.mean()), float(y.std()))
    xt, xvt = torch.tensor(x, dtype=torch.float32), torch.tensor(xv, dtype=torch.float32)
    yt = (torch.tensor(y, dtype=torch.long) if classification
          else torch.tensor((y - mean) / std, dtype=torch.float32).view(-1, 1))
    outputs = int(y.max()) + 1 if classification else 1
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, outputs))
    loss_fn = torch.nn.CrossEntropyLoss() if classification else torch.nn.MSELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    scores = []
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            loss_fn(net(xt[batch]), yt[batch]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            out = net(xvt)
        if classification:
            scores.append(float((out.argmax(1).numpy() == yv).mean()))
        else:
            pred = out.view(-1).numpy() * std + mean
            scores.append(-float(np.sqrt(((pred - yv) ** 2).mean())))
    return abs(max(scores))


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def bench(name: str, seeds: int, folder: Path) -> str:
    task = TABLES[name][0]
    sources = upload(name, task, folder)
    scores: dict[str, list[float]] = {"fitboard": [], "linear": [], "mlp": []}
    seconds: dict[str, list[float]] = {arm: [] for arm in scores}
    epochs = default_spec(sources, 0).run.epochs
    arms: dict[str, Callable[[int], Any]] = {
        "fitboard": lambda s: fitboard(sources, s)[0],
        "linear": lambda s: linear(sources, s, task),
        "mlp": lambda s: mlp(sources, s, task, epochs),
    }
    order = list(arms)
    for seed in range(seeds):
        for arm in order:
            score, took = timed(lambda arm=arm, seed=seed: arms[arm](seed))
            scores[arm].append(score)
            seconds[arm].append(took)
        order = order[1:] + order[:1]  # alternate which arm runs first
    med = {arm: statistics.median(v) for arm, v in scores.items()}
    sec = {arm: statistics.median(v) for arm, v in seconds.items()}
    if task == "classification":
        best = max(med["linear"], med["mlp"])
        gap = "GAP" if med["fitboard"] < best - 0.02 else ""
        unit = "acc"
    else:
        best = min(med["linear"], med["mlp"])
        gap = "GAP" if med["fitboard"] > best * 1.10 else ""
        unit = "rmse"
    return (f"{name:24s} {unit:4s} {med['fitboard']:9.3f} {med['linear']:9.3f} "
            f"{med['mlp']:9.3f} {epochs:6d}  {sec['fitboard']:6.2f} {sec['linear']:6.2f} "
            f"{sec['mlp']:6.2f}  {gap}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="a spec field to change from the proposed defaults (JSON value)")
    parser.add_argument("datasets", nargs="*", default=list(TABLES))
    args = parser.parse_args()
    for item in args.set:
        path, value = item.split("=", 1)
        section, field = path.split(".", 1)
        OVERRIDES.setdefault(section, {})[field] = json.loads(value)
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}, median of {args.seeds} seeds, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'data set':24s} {'':4s} {'fitboard':>9s} {'linear':>9s} {'mlp 2x64':>9s} "
          f"{'epochs':>6s}  {'s fb':>6s} {'s lin':>6s} {'s mlp':>6s}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.datasets:
            print(bench(name, args.seeds, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
