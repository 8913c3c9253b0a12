"""Metric points count towards their run creator's storage quota (FITBOARD_STORAGE_QUOTA_GB):
a member's scripts cannot fill the database past it, point by point. Looked at with a run's
first points and every ``ingest.ROOM_CHECK_POINTS`` after."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from webapp.experiments import metric_store
from webapp.experiments.models import POINT_BYTES, Experiment
from webapp.projects import storage
from webapp.tracking import ingest
from webapp.tracking.models import text_stored_by

TEXT_ROOM = 2000  # bytes: under the 100 points a refused request below sends


def log_batch(token: str, run: Experiment, first: int, count: int) -> tuple[int, str]:
    metrics = [{"key": "loss", "value": 1 / (1 + step), "timestamp": 1000 + step, "step": step}
               for step in range(first, first + count)]
    response = Client().post("/api/2.0/mlflow/runs/log-batch",
                             json.dumps({"run_id": str(run.pk), "metrics": metrics}),
                             content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {token}")
    return response.status_code, response.content.decode()


def points_stored(owner: Any) -> int:
    """Bytes of the owner's points in their storage: what they store less their runs' text."""
    return storage.stored_bytes(owner) - text_stored_by(owner)


def test_points_count_towards_the_quota_and_a_run_past_it_is_refused(owner, project, token,
                                                                     settings, monkeypatch):
    # given a quota of 1,000 points' bytes beside two runs' text (a run's progress grows as it
    # logs: its table of metric names and its verdict take TEXT_ROOM at most), and a look at it
    # every 300 points
    first = ingest.create_run(owner, project, "first", {})
    text = storage.stored_bytes(owner)  # an empty run's spec and progress
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 2 * text + TEXT_ROOM + 1000 * POINT_BYTES
    monkeypatch.setattr(ingest, "ROOM_CHECK_POINTS", 300)

    # when a script logs 250 points a request
    codes = [log_batch(token, first, n * 250, 250)[0] for n in range(4)]

    # then the points count as stored bytes, and all 1,000 fit
    assert codes == [200] * 4
    assert points_stored(owner) == 1000 * POINT_BYTES

    # when it logs more, in that run (crossing the next look) or in a new one
    over, message = log_batch(token, first, 1000, 250)
    second = ingest.create_run(owner, project, "second", {})
    refused, _ = log_batch(token, second, 0, 100)

    # then both are refused with the quota's reason, and nothing more is stored
    assert (over, refused) == (400, 400)
    assert "storage quota" in message and "250 points" in message
    assert len(metric_store.read(first.pk)["train_loss"]) == 1000
    assert metric_store.read(second.pk) == {}
    assert points_stored(owner) == 1000 * POINT_BYTES
