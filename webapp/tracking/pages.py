"""What the run and diagnostics pages show of an external run in place of its spec."""

from __future__ import annotations

from typing import Any

from webapp.experiments.models import Experiment
from webapp.tracking import artifacts, ingest, metric_names

# Stored names the run page already draws (run.js); an external run's others get a chart.
DRAWN = {"loss", "train_loss", "val_loss", "train_acc", "val_acc", "val_rmse", "val_mae", "lr"}


def external_context(run: Experiment) -> dict[str, Any]:
    keys: dict[str, str] = run.progress.get("keys", {})
    stored = set(keys.values())
    task = "classification" if {"val_acc", "train_acc"} & stored else "regression"
    return {
        "params": sorted(run.spec.get("params", {}).items()),
        "tags": sorted(run.spec.get("tags", {}).items()),
        "metric_names": sorted(keys.items()),
        "artifacts": artifacts.all_files(run),
        "task": task,
        "extra_keys": sorted(k for k in stored if k not in DRAWN and k != "epoch"),
        "no_verdict_reason": ingest.no_verdict_reason(run) if keys else
        "no metrics logged yet",
        "map_tag": metric_names.MAP_TAG,
    }
