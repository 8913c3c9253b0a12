"""Train a recipe (``training/recipes.py``) and print its accuracy, epochs and wall time.

Targets (on 2 CPU cores, as good as a hand-tuned loop on the same budget): the Fashion-MNIST
CNN recipe ≥ 93.0% test accuracy within 10 minutes; the MiniLM SST-2 recipe ≥ 88% dev accuracy
within 15 minutes. Besides the wall time it prints the process's CPU time per torch thread
(about the wall time of an idle machine with that many cores) and the load average, so a run on
a shared machine still says what it cost.

The run is ``training.run`` with the in-memory reporter, exactly what a worker runs; the wall
time counts everything from loading the data to the last checkpoint, including the one
evaluation of the test split with the best epoch's weights (Fashion-MNIST's 10,000 test images,
SST-2's ``dev.tsv``: never seen in training or validation). For text sets the best checkpoint is
also loaded back from its archive and classifies the raw test texts again, which checks the
saved tokenizer and weights. Usage, from the repo root::

    .venv/bin/python bench/recipes.py minilm_sst2 [--subset N] [--epochs N] [--threads 2]
        [--set model.group_by_length=true ...]
    .venv/bin/python bench/recipes.py --list
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THREADS = 2  # torch intra-op threads: the whole 2-core machine, as one worker would use it
EVAL_BATCH = 256  # texts per forward pass when scoring the test split


def overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The command line's changes to the recipe (for short validation runs)."""
    patch: dict[str, dict[str, Any]] = {"run": {"device": args.device}}
    if args.epochs is not None:
        patch["run"]["epochs"] = args.epochs
    if args.subset is not None:
        patch["data"] = {"subset": args.subset}
    for setting in args.set:
        path, _, value = setting.partition("=")
        section, _, name = path.partition(".")
        patch.setdefault(section, {})[name] = json.loads(value)
    return patch


def text_test_accuracy(checkpoint_path: Path, dataset: str) -> tuple[float, int] | None:
    """Accuracy of a saved text model on its data set's own test file, and the row count."""
    import torch

    from training.checkpoints import load
    from training.data.text import load_text_rows

    rows = load_text_rows(dataset)
    if not rows.test_texts:
        return None
    checkpoint = load(checkpoint_path)
    correct = 0
    for start in range(0, len(rows.test_texts), EVAL_BATCH):
        texts = rows.test_texts[start:start + EVAL_BATCH]
        predicted = checkpoint.predict(texts).argmax(1)
        labels = torch.from_numpy(rows.test_labels[start:start + EVAL_BATCH])
        correct += int((predicted == labels).sum())
    return correct / len(rows.test_texts), len(rows.test_texts)


def main() -> None:
    from training.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", choices=sorted(RECIPES))
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--subset", type=int, help="override the recipe's training subset")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=JSON",
                        help="change one spec field, e.g. --set optim.lr=5e-5 (repeatable)")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--device", default="cpu", help="cpu (the target's), cuda or auto")
    args = parser.parse_args()
    if args.list or not args.recipe:
        for recipe in RECIPES.values():
            print(f"{recipe.key:16} {recipe.title}")
        return

    import torch

    from training import MemoryReporter, run
    from training.data.catalog import dataset_info, split_sizes

    torch.set_num_threads(args.threads)
    recipe = RECIPES[args.recipe]
    spec = recipe.spec().patched(overrides(args))
    info = dataset_info(spec.data.dataset)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{recipe.key}-"))
    d = spec.data
    train, val, test = split_sizes(info, d.val_fraction, d.subset, d.test_fraction)
    print(f"{recipe.title}: {info.name}, {train} training / {val} validation / {test} test "
          f"rows, {spec.run.epochs} epochs, {args.threads} threads, {args.device}")
    print(json.dumps(spec.to_dict(), sort_keys=True))
    start, cpu_start, load_start = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    reporter = MemoryReporter()
    result = run(spec, reporter, workdir)
    wall = time.perf_counter() - start
    epoch_marks = reporter.series("epoch")
    print(f"status {result.status}; epochs {result.epochs} (best {result.best_epoch}); "
          f"steps {result.steps}; wall time {wall:.0f} s ({wall / 60:.1f} min)")
    print("best validation metrics: " + ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(result.best_metrics.items())))
    if epoch_marks:
        print(f"validation accuracy per epoch: "
              f"{[round(v, 4) for _, v in reporter.series('val_acc')]}")
    if result.test_metrics:
        print("test split (best weights): " + ", ".join(
            f"{k} {v:.4f}" for k, v in sorted(result.test_metrics.items())))
    if info.modality == "text":
        scored = text_test_accuracy(workdir / "best.zip", info.name)
        if scored is not None:
            accuracy, rows = scored
            print(f"test accuracy of the reloaded best.zip on {rows} raw texts: {accuracy:.4f}")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"total wall time including the test pass: {wall:.0f} s ({wall / 60:.1f} min); "
          f"CPU time {cpu:.0f} s, {cpu / args.threads:.0f} s per thread (the wall time of an "
          f"idle {args.threads}-core machine, about); load average {load_start:.1f} at the "
          f"start, {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
