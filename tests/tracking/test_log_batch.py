"""The MLflow log-batch route read as columns: what the client sends (steps and timestamps as
protobuf JSON strings, NaN) is stored exactly, a bad point is refused by name with nothing
stored, the live messages reach the run's viewers in order from the relay thread, and the live
verdict is computed at most every ``VERDICT_EVERY`` seconds."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client

from webapp.experiments import events, metric_store
from webapp.experiments.models import Experiment
from webapp.tracking import ingest


def log_batch(token: str, run: Experiment, metrics: list[dict], raw: str | None = None):
    body = raw if raw is not None else json.dumps({"run_id": str(run.pk), "metrics": metrics})
    return Client().post("/api/2.0/mlflow/runs/log-batch", body,
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_protobuf_json_strings_and_nan_are_stored_as_logged(token, run):
    # the mlflow client writes int64 fields as strings; a Python script may write NaN bare
    answer = log_batch(token, run, [
        {"key": "loss", "value": 0.5, "timestamp": "1700000000123", "step": "3"},
        {"key": "loss", "value": "NaN", "timestamp": 1700000000456, "step": 4}])
    bare = log_batch(token, run, [], raw=json.dumps({"run_id": str(run.pk), "metrics": [
        {"key": "loss", "value": math.nan, "timestamp": 1, "step": 5}]}))  # a bare NaN

    assert answer.status_code == 200 and bare.status_code == 200
    series = metric_store.read(run.pk)["train_loss"]  # "loss" maps to the diagnostics name
    assert series.steps.tolist() == [3, 4, 5]
    assert series.values[0] == 0.5 and math.isnan(series.values[1])
    assert series.times[0] == pytest.approx(1700000000.123)


@pytest.mark.parametrize("bad, words", [
    ({"key": "loss", "value": "high", "timestamp": 1, "step": 1}, "'value' must be a number"),
    ({"key": "loss", "value": 1, "timestamp": 1, "step": "1.5"}, "'step' must be an integer"),
    ({"value": 1, "timestamp": 1, "step": 1}, "missing value for parameter 'key'"),
    ("loss=1", "each metric must be an object"),
])
def test_a_bad_point_is_refused_by_name_and_nothing_is_stored(token, run, bad, words):
    good = {"key": "loss", "value": 0.1, "timestamp": 1, "step": 0}

    answer = log_batch(token, run, [good, bad])

    assert answer.status_code == 400
    assert words in answer.json()["message"]
    assert metric_store.read(run.pk) == {}


def test_the_run_page_hears_each_batch_in_order(transactional_db, token, run):
    # (committed for real: the messages go out after commit)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.run_group(run.pk), channel)

    for step in range(3):
        log_batch(token, run, [{"key": "loss", "value": step, "timestamp": 1, "step": step}])

    async def hear() -> dict:
        return await asyncio.wait_for(layer.receive(channel), 10)

    heard = [async_to_sync(hear)() for _ in range(3)]

    assert [message["seq"] for message in heard] == [1, 2, 3]
    assert all(message["type"] == "run.points" for message in heard)


def test_the_live_verdict_waits_its_interval(token, run, monkeypatch):
    def evaluate(step: int) -> dict:
        log_batch(token, run, [{"key": "loss", "value": 1 / step, "timestamp": 1, "step": step},
                               {"key": "eval_loss", "value": 1, "timestamp": 1, "step": step}])
        run.refresh_from_db()
        return dict(run.progress)

    first = evaluate(1)
    soon = evaluate(2)  # within VERDICT_EVERY (2 s) of the first
    monkeypatch.setattr(ingest, "VERDICT_EVERY", 0.0)
    later = evaluate(3)

    assert first["verdict"] and soon["verdict_at"] == first["verdict_at"]
    assert later["verdict_at"] > first["verdict_at"]


def test_a_training_only_run_tells_the_list_with_its_verdicts_not_every_batch(
        transactional_db, token, run, monkeypatch):
    # given the run list listening, and a script that logs only its training loss, a batch a
    # step (its training points make a live verdict due, at most every VERDICT_EVERY)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.project_group(run.project_id), channel)

    # when it logs three batches within the interval, then one after it
    for step in range(1, 4):
        log_batch(token, run, [{"key": "loss", "value": 1 / step, "timestamp": 1, "step": step}])
    monkeypatch.setattr(ingest, "VERDICT_EVERY", 0.0)
    log_batch(token, run, [{"key": "loss", "value": 0.2, "timestamp": 1, "step": 4}])

    async def hear() -> dict:
        return await asyncio.wait_for(layer.receive(channel), 10)

    # then the list heard the first batch and the one with the next verdict, each with it
    heard = [async_to_sync(hear)() for _ in range(2)]
    assert [message["progress"]["seq"] for message in heard] == [1, 4]
    assert all(message["progress"]["verdict"] for message in heard)
