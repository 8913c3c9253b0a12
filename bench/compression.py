"""Compression on the digits CNN and MLP: what each method buys and costs.

- weight pruning to 50/80/90% (global magnitude, 3 steps, 2 fine-tuning epochs each): accuracy
  change;
- channel pruning of 50% (per layer, one step, 4 fine-tuning epochs): parameter and latency
  ratios, accuracy change;
- distillation into a student with at most 1/5 of the teacher's parameters, against the same
  student trained from scratch with the same epochs, learning rate and seed (3 seeds; each seed
  trains its own teacher), at a softer setting (T=4, alpha=0.7) and the default (T=2, alpha=0.5);
- dynamic int8 quantization of the MLP's Linear layers: Linear weight bytes ratio, CPU speed-up
  and accuracy change, plus a wide MLP where int8 matrix products pay off (a CNN's weights are
  in its convolutions: refused, see the spec).

Then, when the Fashion-MNIST files are in the data directory ($FITBOARD_DATA_DIR, else
../shared/data), the same methods on converged teachers trained on all 54,000 training images
(6,000 validate) with test accuracy from the 10,000-image test file: ``--only fashion-prune``
(a CNN 16-32-64 with batch norm and an MLP [512, 256]: weight pruning to 50/80/90% and 50% of
the channels, with fine-tuning), ``--only fashion-distill`` (MLP [512, 256] teachers, one per
seed, into MLP [128] and [32] students, 3 seeds, 3 (T, alpha) settings, against the same student
from scratch), ``--only fashion-distill-wide-mlp`` (MLP [1024, 1024] teachers, one per seed,
into an MLP [128] student of 1/18 of their size, 60 epochs), ``--only fashion-distill-cnn``
(CNN teachers, one per seed, into a CNN 4-8-16; $BENCH_SEEDS="1,2" runs only those seeds in any
distillation section) and ``--only fashion-distill-mlp-from-cnn`` (the seed-0 CNN teacher into
an MLP [16], student seeds 0-2).
``--only lstm``: the lstm_sst2 recipe on a subset of SST-2 and its int8 version, both ways of
running the int8 recurrence. ``--workdir DIR`` keeps the teachers for the next section.

Latency: median of 30 forward passes over a batch of 256 validation rows, 1 thread. Accuracy on
digits: the validation split (the built-in digits set has no test split). Usage, from the repo
root: ``.venv/bin/python bench/compression.py [--out FILE] [--digits-only]`` (digits: about 4
minutes on 2 shared cores; the Fashion-MNIST sections an hour or more).

``--only minilm`` runs the text row alone: the pretrained MiniLM fine-tuned with the
``minilm_sst2`` recipe on a seeded subset of SST-2 (``MINILM_ROWS`` phrases, one epoch), then
its Linear layers (encoder and head) quantized to int8: Linear weight bytes ratio, CPU latency
per batch of 32 validation sentences (2 threads) and the accuracy change on SST-2's dev file
(872 sentences). It took 580 s here, on 2 cores other jobs kept busy.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from training import ExperimentSpec, MemoryReporter, run  # noqa: E402
from training.checkpoints import Checkpoint, load  # noqa: E402
from training.compression.job import CompressionResult, _Trainer, compress  # noqa: E402
from training.compression.quantize import RECURRENT_MATMUL  # noqa: E402
from training.compression.report import cpu_latency, measure, split_metrics  # noqa: E402
from training.compression.spec import CompressionSpec  # noqa: E402
from training.data import DataSources, prepare  # noqa: E402
from training.data.text import Tokens  # noqa: E402

THREADS = 1
SEEDS = (0, 1, 2)
TEACHERS = {
    "CNN": {"arch": "cnn", "width": 32, "blocks": 2},
    "MLP": {"arch": "mlp", "hidden_sizes": [256, 128]},
}
STUDENTS = {  # at most 1/5 of the teacher's parameters
    "CNN": {"arch": "cnn", "width": 8, "blocks": 2},
    "MLP": {"arch": "mlp", "hidden_sizes": [32]},
}
TEACHER_EPOCHS = 15
# Students need long enough to converge: at 15 epochs and lr 1e-3 they were still underfitting
# and the soft targets (a smaller share of label gradient) only slowed them down.
DISTILL_EPOCHS = 40
DISTILL_LR = 3e-3
DISTILL_SETTINGS = ((4.0, 0.7), (2.0, 0.5))  # (temperature, alpha): a softer one, the default
WIDE_MLP = {"arch": "mlp", "hidden_sizes": [1024, 1024]}  # where int8 matmuls pay off
# Fashion-MNIST: all 60,000 training images (10% of them validate) and the 10,000-image test
# file. The CNN is the recipe family's plain VGG-style network (16-32-64 channels, batch norm,
# about 47 s an epoch on one idle core), trained with the ResNet recipe's optimiser and
# one-cycle schedule but without augmentation: in 5 epochs augmentation costs more than it
# gives. The ResNet recipe itself (91.9% in 14 epochs) would take most of an hour here.
FASHION_DIR = Path(os.environ.get("FITBOARD_DATA_DIR")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
FASHION_DATA = {"dataset": "fashion_mnist", "val_fraction": 0.1}
FASHION_TEACHERS: dict[str, dict[str, Any]] = {
    "CNN": {
        "model": {"arch": "cnn", "width": 16, "blocks": 3, "batch_norm": True},
        "optim": {"optimizer": "adamw", "lr": 4e-3, "weight_decay": 0.01},
        "schedule": {"kind": "one_cycle", "pct_start": 0.25},
        "run": {"epochs": 5, "batch_size": 128},
    },
    "MLP": {
        "model": {"arch": "mlp", "hidden_sizes": [512, 256], "dropout": 0.2},
        "optim": {"optimizer": "adam", "lr": 1e-3},
        "schedule": {"kind": "cosine"},
        "run": {"epochs": 10, "batch_size": 128},
    },
    # The MLP teacher for distillation: wider, so that it is clearly better (90.2% test) than a
    # student of 1/18 of its size can be alone (the [512, 256] MLP is within 0.5 points of its
    # [128] student, too close for its soft targets to carry anything the labels do not).
    "wide-MLP": {
        "model": {"arch": "mlp", "hidden_sizes": [1024, 1024], "dropout": 0.3},
        "optim": {"optimizer": "adam", "lr": 1e-3},
        "schedule": {"kind": "cosine"},
        "run": {"epochs": 20, "batch_size": 128},
    },
}
FASHION_PRUNED = ("CNN", "MLP")  # the teachers the pruning sections compress
FASHION_FINETUNE_LR = 1e-3  # fine-tuning after pruning: peak lr of each stage's schedule
# Distillation on Fashion-MNIST: students with at most 1/5 of the MLP teacher's 535,818
# parameters, a capacity-limited one and one at the 1/5 limit, same epochs, lr and seed as the
# same student from scratch; (T, alpha) chosen on the validation split, test reported.
FASHION_STUDENTS: dict[str, dict[str, dict[str, Any]]] = {  # at most 1/5 of its params
    "MLP": {"MLP [128]": {"arch": "mlp", "hidden_sizes": [128]},
            "MLP [32]": {"arch": "mlp", "hidden_sizes": [32]}},
    "CNN": {"CNN 4-8-16": {"arch": "cnn", "width": 4, "blocks": 3, "batch_norm": True}},
    "wide-MLP": {"MLP [128]": {"arch": "mlp", "hidden_sizes": [128]}},  # 1/18 of 1,863,690
}
# Student epochs (both arms): the CNN teacher's forward passes make its students' epochs
# 4x dearer, so they get fewer.
# The wide MLP's student gets a patient schedule: from scratch, an unregularised MLP [128]
# overfits well before 60 epochs (its best validation epoch is kept), while soft targets keep
# it learning (measured, seed 0, T=2 alpha=0.5: 20 epochs +0.08 points test, 60 epochs +0.35).
FASHION_DISTILL_EPOCHS = {"MLP": 10, "CNN": 5, "wide-MLP": 60}
FASHION_DISTILL_LR = 2e-3
FASHION_SETTINGS = ((4.0, 0.7), (2.0, 0.5), (4.0, 0.9))  # (temperature, alpha)
# The settings each teacher's students try: the one best on the MLP [512, 256] students'
# validation accuracy (T=2, alpha=0.5) and two neighbours (alpha 0.9 lost on every MLP student).
FASHION_DISTILL_SETTINGS = {"MLP": FASHION_SETTINGS,
                            "CNN": ((2.0, 0.5), (2.0, 0.3), (4.0, 0.7)),
                            "wide-MLP": ((2.0, 0.5), (1.0, 0.5), (4.0, 0.7))}

def teacher(root: Path, family: str, seed: int, model: dict[str, Any] | None = None,
            epochs: int = TEACHER_EPOCHS) -> Checkpoint:
    spec = ExperimentSpec.from_dict({
        "data": {"dataset": "digits"}, "model": model or TEACHERS[family],
        "run": {"epochs": epochs, "seed": seed, "device": "cpu"},
    })
    run(spec, MemoryReporter(), root / f"{family}-{seed}")
    return load(root / f"{family}-{seed}" / "best.zip")


def job(source: Checkpoint, root: Path, name: str, sources: DataSources | None = None,
        **fields: Any) -> CompressionResult:
    spec = CompressionSpec.from_dict({"source": 1, **fields})
    result = compress(spec, source, MemoryReporter(), root / name, sources=sources)
    assert result.status == "succeeded"
    return result


def scratch_student(source: Checkpoint, root: Path, family: str, seed: int) -> dict[str, Any]:
    """The student spec trained on labels alone, through the same trainer as distillation."""
    spec = CompressionSpec(source=1, method="distill", epochs=DISTILL_EPOCHS, lr=DISTILL_LR,
                           student=CompressionSpec.from_dict(
                               {"source": 1, "student": STUDENTS[family]}).student)
    target = spec.target_spec(source.spec)
    trainer = _Trainer(target, MemoryReporter(), root / f"scratch-{family}-{seed}", "cpu")
    model = trainer.train(None, DISTILL_EPOCHS, "scratch").cpu().eval()
    data = prepare(target.data.dataset, target.data.val_fraction, target.run.seed)
    return measure(model, data)


def fashion_sources() -> DataSources:
    return DataSources(data_dir=FASHION_DIR, allow_download=False)


def fashion_teacher(root: Path, family: str, seed: int = 0,
                    say: Any = None) -> Checkpoint:
    """A Fashion-MNIST teacher, trained once per work folder (``--workdir`` keeps them)."""
    folder = root / f"fashion-{family}-{seed}"
    if not (folder / "trained").is_file():
        recipe = FASHION_TEACHERS[family]
        spec = ExperimentSpec.from_dict({
            **recipe, "data": FASHION_DATA,
            "run": {**recipe["run"], "seed": seed, "device": "cpu"}})
        started = time.perf_counter()
        run(spec, MemoryReporter(), folder, sources=fashion_sources())
        if say:
            say(f"(teacher {family}, seed {seed}: {spec.run.epochs} epochs in "
                f"{time.perf_counter() - started:.0f} s)")
        (folder / "trained").touch()
    return load(folder / "best.zip")


def fashion_prune(root: Path, say: Any) -> None:
    """Weight pruning to 50/80/90% and channel pruning of 50% of converged Fashion-MNIST
    teachers (seed 0), with test accuracy from the 10,000-image test file."""
    sources = fashion_sources()
    teachers = {family: fashion_teacher(root, family, say=say) for family in FASHION_PRUNED}
    say()
    say("### Fashion-MNIST: pruning converged teachers (54,000 training images, 6,000 "
        "validation, test: the 10,000-image test file), seed 0")
    say()
    say("| model | method | params source → result | non-zero params ratio "
        "| latency source → result (ms) | latency ratio | test acc source → result "
        "| change (points) |")
    say("|---|---|---|---|---|---|---|---|")
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    for family in teachers:
        jobs += [(family, f"weights {sparsity:.0%} (2 steps × 1 epoch)",
                  {"method": "prune_weights", "sparsity": sparsity, "steps": 2,
                   "finetune_epochs": 1, "lr": FASHION_FINETUNE_LR})
                 for sparsity in (0.5, 0.8, 0.9)]
        jobs.append((family, "channels 50% per layer (2 epochs)",
                     {"method": "prune_channels", "sparsity": 0.5, "scope": "layer",
                      "finetune_epochs": 2, "lr": FASHION_FINETUNE_LR}))
    # BENCH_PRUNE_ROWS="CNN:weights 80,MLP:channels": only these rows, in this order (each a
    # model and the start of its method label), to share a busy machine between processes.
    wanted = [row.split(":", 1) for row in os.environ.get("BENCH_PRUNE_ROWS", "").split(",")
              if row]
    if wanted:
        jobs = [j for family, prefix in wanted for j in jobs
                if j[0] == family and j[1].startswith(prefix)]
    for family, label, fields in jobs:
        source = teachers[family]
        started = time.perf_counter()
        r = job(source, root, f"f-{family}-{label[:12]}", sources=sources, **fields)
        s, p, c = r.report["source"], r.report["result"], r.report["change"]
        say(f"| {family} | {label} | {s['parameters']} → {p['parameters']} "
            f"| {c['nonzero_parameters_ratio']:.2f}× "
            f"| {s['latency_ms']:.2f} → {p['latency_ms']:.2f} "
            f"| {c['latency_ms_ratio']:.2f}× "
            f"| {s['test_acc']:.4f} → {p['test_acc']:.4f} | {pct(c['test_acc_change'])} |"
            f" <!-- {time.perf_counter() - started:.0f} s -->")
    say()


def fashion_latency(root: Path, say: Any) -> None:
    """CPU latency of the teachers and their pruned versions from ``fashion-prune`` (kept in
    ``--workdir``), timed again with the models interleaved (5 rounds of 10 passes, median):
    each job times its source and result one after the other, which a busy spell of the shared
    cores can fall on unevenly."""
    sources = fashion_sources()
    say("| model | version | params | latency per 256 images (ms) | latency ratio |")
    say("|---|---|---|---|---|")
    for family in FASHION_PRUNED:
        teacher_ = fashion_teacher(root, family)
        d = teacher_.spec.data
        data = prepare(d.dataset, d.val_fraction, teacher_.spec.run.seed, sources=sources)
        assert isinstance(data.x_val, torch.Tensor)
        batch = data.x_val[:256]
        models = {"source": teacher_.model.eval()}
        for folder in sorted(root.glob(f"f-{family}-*")):
            if (folder / "best.zip").is_file():
                models[folder.name.split("-", 2)[2]] = load(folder / "best.zip").model.eval()
        rounds: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(5):
            for name, model in models.items():
                rounds[name].append(cpu_latency(model, batch, repeats=10) * 1000)
        lat = {name: statistics.median(times) for name, times in rounds.items()}
        for name, model in models.items():
            params = sum(t.numel() for t in model.parameters())
            say(f"| {family} | {name} | {params} | {lat[name]:.2f} "
                f"| {lat['source'] / lat[name]:.2f}× |")
    say()


def fashion_scratch(source: Checkpoint, root: Path, name: str,
                    spec: CompressionSpec) -> dict[str, float]:
    """The distillation job's student trained on labels alone: same target spec (epochs, lr,
    seed, split), same trainer."""
    target = spec.target_spec(source.spec)
    sources = fashion_sources()
    trainer = _Trainer(target, MemoryReporter(), root / name, "cpu", sources)
    model = trainer.train(None, target.run.epochs, "scratch").cpu().eval()
    d = target.data
    data = prepare(d.dataset, d.val_fraction, target.run.seed, subset=d.subset,
                   test_fraction=d.test_fraction, sources=sources)
    return split_metrics(model, data)


def fashion_distill(root: Path, say: Any, family: str = "MLP") -> None:
    """Distillation against the same student from scratch on Fashion-MNIST, 3 seeds or those
    in BENCH_SEEDS (each seed its own teacher, split and student initialisation); every
    (T, alpha) setting is reported, the one to believe is the best on mean validation
    accuracy."""
    sources = fashion_sources()
    seeds = [int(s) for s in os.environ.get("BENCH_SEEDS", "").split(",") if s] or SEEDS
    runs = [(family, seed) for seed in seeds]
    settings = FASHION_DISTILL_SETTINGS[family]
    names = {"MLP": "MLP [512, 256]", "CNN": "CNN 16-32-64", "wide-MLP": "MLP [1024, 1024]"}
    say()
    epochs = FASHION_DISTILL_EPOCHS[family]
    say(f"### Fashion-MNIST distillation, {names[family]} teacher ({epochs} epochs, lr "
        f"{FASHION_DISTILL_LR:g}, batch 128) vs the same student from scratch (same epochs, "
        "lr, seed and split); val / test accuracy")
    say()
    head = " | ".join(f"T={t:g} α={a:g}" for t, a in settings)
    say(f"| teacher | student | params teacher / student | seed | teacher val / test "
        f"| scratch val / test | {head} |")
    say("|---|---|---|---|---|---|" + "---|" * len(settings))
    gains: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    for family, seed in runs:
        source, teacher_name = fashion_teacher(root, family, seed, say), names[family]
        for student_name, student in FASHION_STUDENTS[family].items():
            fields = {"method": "distill", "epochs": epochs,
                      "lr": FASHION_DISTILL_LR, "student": student}
            base = fashion_scratch(source, root, f"fs-{family}-{student_name}-{seed}",
                                   CompressionSpec.from_dict({"source": 1, **fields}))
            cells = []
            rows = gains.setdefault((teacher_name, student_name),
                                    [[] for _ in settings])
            for i, (t, a) in enumerate(settings):
                r = job(source, root, f"fd-{family}-{student_name}-{seed}-{i}",
                        sources=sources, **{**fields, "temperature": t, "alpha": a})
                p = r.report["result"]
                dv, dt = p["val_acc"] - base["val_acc"], p["test_acc"] - base["test_acc"]
                rows[i].append((dv, dt))
                cells.append(f"{p['val_acc']:.4f} / {p['test_acc']:.4f} ({pct(dt)})")
            s = r.report["source"]
            say(f"| {teacher_name} | {student_name} | {s['parameters']} / "
                f"{r.report['result']['parameters']} | {seed} "
                f"| {s['val_acc']:.4f} / {s['test_acc']:.4f} "
                f"| {base['val_acc']:.4f} / {base['test_acc']:.4f} | {' | '.join(cells)} |")
    say()
    say("Mean gain of distillation over scratch (points), validation / test; ← the setting "
        "with the best mean validation gain:")
    say()
    for (teacher_name, student_name), rows in gains.items():
        val_means = [statistics.mean(v for v, _ in r) for r in rows]
        best = max(range(len(rows)), key=lambda i: val_means[i])
        cells = [f"T={t:g} α={a:g}: {pct(val_means[i])} / "
                 f"{pct(statistics.mean(x for _, x in rows[i]))}"
                 + (" ←" if i == best else "")
                 for i, (t, a) in enumerate(settings)]
        say(f"- {teacher_name} → {student_name} ({len(rows[0])} seeds): " + "; ".join(cells))
    say()



# One CNN teacher (seed 0, trained once: its 5 epochs are the dear part) for every student seed:
# seed s > 0 re-seeds the student's initialisation, batch order and train/validation split
# (the split follows the run's seed). The teacher saw most of a new split's validation images,
# so its own validation accuracy there flatters it; test accuracy is the untouched test file.
FASHION_CROSS_STUDENTS: dict[str, dict[str, Any]] = {  # ≤ 1/5 of the CNN's 72,666 params
    "MLP [16]": {"arch": "mlp", "hidden_sizes": [16]},  # 12,730 params (1/5.7)
}
FASHION_CROSS_EPOCHS = 5  # as the CNN students: every batch also pays for the CNN's forward pass


def reseeded(source: Checkpoint, seed: int) -> Checkpoint:
    """The same trained teacher, its spec carrying ``seed`` (the students' seed and split)."""
    run_ = dataclasses.replace(source.spec.run, seed=seed)
    return dataclasses.replace(source, spec=dataclasses.replace(source.spec, run=run_))


def fashion_distill_one_teacher(root: Path, say: Any, students: dict[str, dict[str, Any]],
                                epochs: int, title: str) -> None:
    """The seed-0 CNN teacher into ``students``, one row per student seed (BENCH_SEEDS="1,2":
    only these), by default at T=2, alpha=0.5 (the setting chosen on validation for the MLP
    teacher's students), against the same student from scratch (same epochs, lr, seed and split)."""
    sources = fashion_sources()
    seeds = [int(s) for s in os.environ.get("BENCH_SEEDS", "0,1,2").split(",")]
    teacher_ = fashion_teacher(root, "CNN", 0, say)
    # BENCH_SETTING="2,0.2": another (T, alpha) than the one chosen for the MLP teacher's students
    t, a = (tuple(float(x) for x in os.environ["BENCH_SETTING"].split(","))
            if os.environ.get("BENCH_SETTING") else FASHION_SETTINGS[1])
    say()
    say(f"### Fashion-MNIST distillation, {title} ({epochs} epochs, lr "
        f"{FASHION_DISTILL_LR:g}, batch 128, T={t:g} α={a:g}) vs the same student from "
        "scratch (same epochs, lr, seed and split); val / test accuracy")
    say()
    say("| teacher | student | params teacher / student | seed | teacher test "
        "| scratch val / test | distilled val / test | gain val / test (points) |")
    say("|---|---|---|---|---|---|---|---|")
    for student_name, student in students.items():
        gains: list[tuple[float, float]] = []
        for seed in seeds:
            source = reseeded(teacher_, seed)
            fields = {"method": "distill", "epochs": epochs, "lr": FASHION_DISTILL_LR,
                      "student": student}
            tag = f"{student_name}-{seed}-T{t:g}-a{a:g}"
            started = time.perf_counter()
            base = fashion_scratch(source, root, f"xs-{tag}",
                                   CompressionSpec.from_dict({"source": 1, **fields}))
            mid = time.perf_counter()
            r = job(source, root, f"xd-{tag}", sources=sources,
                    **{**fields, "temperature": t, "alpha": a})
            p, s = r.report["result"], r.report["source"]
            dv, dt = p["val_acc"] - base["val_acc"], p["test_acc"] - base["test_acc"]
            gains.append((dv, dt))
            say(f"| CNN 16-32-64 | {student_name} | {s['parameters']} / {p['parameters']} "
                f"| {seed} | {s['test_acc']:.4f} "
                f"| {base['val_acc']:.4f} / {base['test_acc']:.4f} "
                f"| {p['val_acc']:.4f} / {p['test_acc']:.4f} | {pct(dv)} / {pct(dt)} |"
                f" <!-- scratch {mid - started:.0f} s, distilled "
                f"{time.perf_counter() - mid:.0f} s -->")
        say(f"| | {student_name} | | mean of {len(gains)} | | | "
            f"| {pct(statistics.mean(v for v, _ in gains))} / "
            f"{pct(statistics.mean(x for _, x in gains))} |")
    say()

MINILM_ROWS = 2000  # SST-2 training phrases for the brief fine-tune (5% of them validate)
MINILM_THREADS = 2


def minilm(root: Path, say: Any) -> None:
    """int8 quantization of a MiniLM fine-tuned briefly on SST-2 (the recipe on a subset)."""
    from training.recipes import RECIPES

    sources = DataSources(data_dir=FASHION_DIR, allow_download=False)
    spec = RECIPES["minilm_sst2"].spec().patched({"data": {"subset": MINILM_ROWS},
                                                  "run": {"device": "cpu"}})
    started = time.perf_counter()
    run(spec, MemoryReporter(), root / "minilm", sources=sources)
    tuned = time.perf_counter() - started
    source = load(root / "minilm" / "best.zip")
    r = job(source, root, "q-minilm", method="quantize_dynamic", sources=sources)
    s, p, c = r.report["source"], r.report["result"], r.report["change"]
    say(f"### Dynamic int8 quantization of MiniLM (all-MiniLM-L6-v2 fine-tuned with the "
        f"minilm_sst2 recipe on {MINILM_ROWS} SST-2 phrases, 1 epoch, {tuned:.0f} s)")
    say()
    say("| model | int8 layers | Linear bytes source → int8 | ratio | file bytes ratio "
        f"| latency per {p['latency_batch']} sentences source → int8 (ms) | speed-up "
        "| dev acc (872) source → int8 | change (points) |")
    say("|---|---|---|---|---|---|---|---|---|")
    say(f"| MiniLM | {len(r.record['int8_layers'])} Linear "
        f"| {s['linear_weight_bytes']} → {p['linear_weight_bytes']} "
        f"| {c['linear_weight_bytes_ratio']:.2f}× | {c['weight_bytes_ratio']:.2f}× "
        f"| {s['latency_ms']:.1f} → {p['latency_ms']:.1f} | {c['latency_ms_ratio']:.2f}× "
        f"| {s['test_acc']:.4f} → {p['test_acc']:.4f} | {pct(c['test_acc_change'])} |")
    say()
    say(f"Measured with torch {torch.__version__}, {p['threads']} threads.")


LSTM_ROWS = 10000  # SST-2 training phrases (of 67,349) for the lstm_sst2 recipe
LSTM_EPOCHS = 2


def lstm(root: Path, say: Any) -> None:
    """int8 quantization of the lstm_sst2 recipe's LSTM (and its head), both ways of running
    the int8 recurrence, against float: recurrent weight bytes, latency, dev accuracy."""
    from training.compression.quantize import quantize_dynamic
    from training.recipes import RECIPES

    sources = fashion_sources()
    spec = RECIPES["lstm_sst2"].spec().patched({"data": {"subset": LSTM_ROWS},
                                                "run": {"epochs": LSTM_EPOCHS,
                                                        "device": "cpu"}})
    started = time.perf_counter()
    run(spec, MemoryReporter(), root / "lstm", sources=sources)
    trained = time.perf_counter() - started
    source = load(root / "lstm" / "best.zip")
    r = job(source, root, "q-lstm", method="quantize_dynamic", sources=sources)
    s, p, c = r.report["source"], r.report["result"], r.report["change"]
    d, tokenizer = spec.data, source.tokenizer
    assert tokenizer is not None
    data = prepare(d.dataset, d.val_fraction, spec.run.seed, subset=d.subset, sources=sources,
                   tokenizer=lambda texts: tokenizer)
    other = "int8" if RECURRENT_MATMUL == "dequant" else "dequant"
    other_model = quantize_dynamic(source.model, matmul=other)
    q = measure(other_model, data)
    # Latency again, the three models interleaved (5 rounds), so that a busy spell of the
    # shared cores does not fall on one of them only.
    assert r.model is not None and isinstance(data.x_val, Tokens)
    batch = data.x_val[:32]
    models = {"float": source.model, RECURRENT_MATMUL: r.model, other: other_model}
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(5):
        for name, model in models.items():
            rounds[name].append(cpu_latency(model, batch, repeats=10) * 1000)
    lat = {name: statistics.median(times) for name, times in rounds.items()}
    say(f"### Dynamic int8 quantization of an LSTM (lstm_sst2 recipe: bidirectional, 128 "
        f"units, on {LSTM_ROWS} SST-2 phrases, {LSTM_EPOCHS} epochs, {trained:.0f} s)")
    say()
    say("| int8 recurrence | LSTM weight bytes source → int8 | ratio | Linear bytes ratio "
        "| file bytes ratio | latency per 32 sentences source → int8 (ms) | speed-up "
        "| dev acc (872) source → int8 | change (points) |")
    say("|---|---|---|---|---|---|---|---|---|")
    for name, result in ((RECURRENT_MATMUL, p), (other, q)):
        say(f"| {name} | {s['recurrent_weight_bytes']} → {result['recurrent_weight_bytes']} "
            f"| {s['recurrent_weight_bytes'] / result['recurrent_weight_bytes']:.2f}× "
            f"| {s['linear_weight_bytes'] / result['linear_weight_bytes']:.2f}× "
            f"| {s['weight_bytes'] / result['weight_bytes']:.2f}× "
            f"| {lat['float']:.1f} → {lat[name]:.1f} | {lat['float'] / lat[name]:.2f}× "
            f"| {s['test_acc']:.4f} → {result['test_acc']:.4f} "
            f"| {pct(result['test_acc'] - s['test_acc'])} |")
    say()
    say(f"(the job's own report: {pct(c['test_acc_change'])} points, "
        f"{c['latency_ms_ratio']:.2f}× speed-up)")


def minilm_section(root: Path, say: Any) -> None:
    torch.set_num_threads(MINILM_THREADS)
    minilm(root, say)


SECTIONS = {
    "minilm": minilm_section,
    "fashion-prune": fashion_prune,
    "fashion-distill": fashion_distill,
    "lstm": lstm,
    "fashion-latency": fashion_latency,
    "fashion-distill-cnn": lambda root, say: fashion_distill(root, say, "CNN"),
    "fashion-distill-wide-mlp": lambda root, say: fashion_distill(root, say, "wide-MLP"),
    "fashion-distill-mlp-from-cnn": lambda root, say: fashion_distill_one_teacher(
        root, say, FASHION_CROSS_STUDENTS, FASHION_CROSS_EPOCHS,
        "CNN teacher into an MLP student"),
}


def pct(x: float) -> str:
    return f"{100 * x:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    parser.add_argument("--digits-only", action="store_true", help="skip Fashion-MNIST")
    parser.add_argument("--only", choices=sorted(SECTIONS),
                        help="run this section alone (minilm: int8 MiniLM on SST-2; lstm: int8 "
                             "LSTM on SST-2; fashion-prune, fashion-distill: Fashion-MNIST)")
    parser.add_argument("--workdir", type=Path,
                        help="keep teachers here and reuse those already there (default: a "
                             "temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    lines: list[str] = []
    say = lambda s="": (print(s, flush=True), lines.append(s))  # noqa: E731
    if args.only:
        with contextlib.ExitStack() as stack:
            root = args.workdir or Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="fitboard-bench-")))
            SECTIONS[args.only](root, say)
        say(f"Measured with torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
            f"in {time.perf_counter() - started:.0f} s.")
        if args.out:
            args.out.write_text("\n".join(lines) + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="fitboard-bench-") as tmp:
        root = Path(tmp)
        sources = {(f, s): teacher(root, f, s) for f in TEACHERS for s in SEEDS}

        say("### Weight pruning (global magnitude, 3 steps × 2 fine-tuning epochs), seed 0")
        say()
        say("| model | sparsity | val acc source | val acc pruned | change (points) "
            "| non-zero params ratio |")
        say("|---|---|---|---|---|---|")
        for family in TEACHERS:
            for sparsity in (0.5, 0.8, 0.9):
                r = job(sources[family, 0], root, f"w-{family}-{sparsity}",
                        method="prune_weights", sparsity=sparsity, steps=3, finetune_epochs=2)
                rep = r.report
                say(f"| {family} | {sparsity:.0%} | {rep['source']['val_acc']:.4f} "
                    f"| {rep['result']['val_acc']:.4f} | {pct(rep['change']['val_acc_change'])} "
                    f"| {rep['change']['nonzero_parameters_ratio']:.2f}× |")
        say()
        say("### Channel pruning, 50% of the channels of every hidden layer, 4 fine-tuning "
            "epochs, seed 0")
        say()
        say("| model | params source → pruned | params ratio | latency source → pruned (ms) "
            "| latency ratio | val acc change (points) |")
        say("|---|---|---|---|---|---|")
        for family in TEACHERS:
            r = job(sources[family, 0], root, f"c-{family}", method="prune_channels",
                    sparsity=0.5, scope="layer", finetune_epochs=4)
            s, p, c = r.report["source"], r.report["result"], r.report["change"]
            say(f"| {family} | {s['parameters']} → {p['parameters']} "
                f"| {c['parameters_ratio']:.2f}× | {s['latency_ms']:.3f} → {p['latency_ms']:.3f} "
                f"| {c['latency_ms_ratio']:.2f}× | {pct(c['val_acc_change'])} |")
        say()
        say(f"### Distillation ({DISTILL_EPOCHS} epochs, lr {DISTILL_LR:g}) vs the same student "
            "from scratch (same epochs, lr and seed), 3 seeds")
        say()
        head = " | ".join(f"distilled T={t:g} α={a:g}" for t, a in DISTILL_SETTINGS)
        say(f"| teacher | student | params teacher / student | seed | teacher val acc "
            f"| scratch | {head} |")
        say("|---|---|---|---|---|---|" + "---|" * len(DISTILL_SETTINGS))
        for family in TEACHERS:
            gains: list[list[float]] = [[] for _ in DISTILL_SETTINGS]
            student = STUDENTS[family]
            desc = (f"CNN width {student['width']}" if student["arch"] == "cnn"
                    else f"MLP {student['hidden_sizes']}")
            for seed in SEEDS:
                source = sources[family, seed]
                base = scratch_student(source, root, family, seed)
                cells = []
                for i, (t, a) in enumerate(DISTILL_SETTINGS):
                    r = job(source, root, f"d-{family}-{seed}-{i}", method="distill",
                            epochs=DISTILL_EPOCHS, lr=DISTILL_LR, temperature=t, alpha=a,
                            student=student)
                    gain = r.report["result"]["val_acc"] - base["val_acc"]
                    gains[i].append(gain)
                    cells.append(f"{r.report['result']['val_acc']:.4f} ({pct(gain)})")
                rep = r.report
                say(f"| {family} | {desc} "
                    f"| {rep['source']['parameters']} / {rep['result']['parameters']} "
                    f"| {seed} | {rep['source']['val_acc']:.4f} | {base['val_acc']:.4f} "
                    f"| {' | '.join(cells)} |")
            means = " | ".join(f"mean {pct(statistics.mean(g))}" for g in gains)
            say(f"| {family} | {desc} | | | | | {means} |")
        say()
        say("### Dynamic int8 quantization of the Linear layers (MLP [256, 128], seeds 0–2; a "
            "wide MLP)")
        say()
        say("| seed | Linear bytes source → int8 | ratio | file bytes ratio "
            "| latency source → int8 (ms) | speed-up | val acc change (points) |")
        say("|---|---|---|---|---|---|---|")
        sources["wide", 0] = teacher(root, "wide", 0, WIDE_MLP, epochs=3)
        for name, seed in [("MLP", s) for s in SEEDS] + [("wide", 0)]:
            r = job(sources[name, seed], root, f"q-{name}-{seed}", method="quantize_dynamic")
            s, p, c = r.report["source"], r.report["result"], r.report["change"]
            label = f"{seed}" if name == "MLP" else f"{seed}, MLP [1024, 1024], 3 epochs"
            say(f"| {label} | {s['linear_weight_bytes']} → {p['linear_weight_bytes']} "
                f"| {c['linear_weight_bytes_ratio']:.2f}× | {c['weight_bytes_ratio']:.2f}× "
                f"| {s['latency_ms']:.3f} → {p['latency_ms']:.3f} | {c['latency_ms_ratio']:.2f}× "
                f"| {pct(c['val_acc_change'])} |")
        say()
        if (FASHION_DIR / "fashion-mnist").is_dir() and not args.digits_only:
            fashion_prune(root, say)
            fashion_distill(root, say)
            fashion_distill(root, say, "CNN")
            fashion_distill(root, say, "wide-MLP")
    say(f"Measured with torch {torch.__version__}, {THREADS} thread, latency batch 256 rows, "
        f"in {time.perf_counter() - started:.0f} s.")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
