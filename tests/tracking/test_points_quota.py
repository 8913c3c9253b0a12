"""Metric points count towards their run creator's storage quota (FITBOARD_STORAGE_QUOTA_GB):
a member's scripts cannot fill the database past it, point by point. Looked at with a run's
first points and every ``ingest.ROOM_CHECK_POINTS`` after. A point counts POINT_BYTES, and the
row a request writes per metric what a row takes (``chunk_row_bytes``): a script logging a point
a request stores a row a point."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.test import Client

from webapp.experiments import metric_store
from webapp.experiments.models import POINT_BYTES, Experiment, MetricChunk, chunk_row_bytes
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


def log_metric(token: str, run: Experiment, step: int) -> tuple[int, dict[str, Any]]:
    """One point, as mlflow's ``log_metric`` sends it."""
    response = Client().post("/api/2.0/mlflow/runs/log-metric", json.dumps(
        {"run_id": str(run.pk), "key": "loss", "value": 1 / (1 + step), "timestamp": 1000 + step,
         "step": step}), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    return response.status_code, response.json()


def table_bytes() -> int:
    """Bytes the points' table and its indexes take in the database."""
    table = MetricChunk._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = %s OR name IN (SELECT "
                           "name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s)",
                           [table, table])
        else:
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
        return int(cursor.fetchone()[0] or 0)


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
    rows = 4 * chunk_row_bytes("train_loss")  # a row a request
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 2 * text + TEXT_ROOM + 1000 * POINT_BYTES + rows
    monkeypatch.setattr(ingest, "ROOM_CHECK_POINTS", 300)

    # when a script logs 250 points a request
    codes = [log_batch(token, first, n * 250, 250)[0] for n in range(4)]

    # then the points and their rows count as stored bytes, and all 1,000 fit
    assert codes == [200] * 4
    assert points_stored(owner) == 1000 * POINT_BYTES + rows

    # when it logs more, in that run (crossing the next look) or in a new one
    over, message = log_batch(token, first, 1000, 250)
    second = ingest.create_run(owner, project, "second", {})
    refused, _ = log_batch(token, second, 0, 100)

    # then both are refused with the quota's reason, and nothing more is stored
    assert (over, refused) == (400, 400)
    assert "storage quota" in message and "250 points" in message
    assert len(metric_store.read(first.pk)["train_loss"]) == 1000
    assert metric_store.read(second.pk) == {}
    assert points_stored(owner) == 1000 * POINT_BYTES + rows


def test_a_script_logging_a_point_a_request_reaches_the_quota_at_the_bytes_its_rows_take(
        owner, project, token, settings, monkeypatch):
    # given room for 20 kB of points beside a run's text, looked at every 64 points' worth
    run = ingest.create_run(owner, project, "one by one", {})
    room = 20_000
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(owner) + TEXT_ROOM + room
    monkeypatch.setattr(ingest, "ROOM_FIRST_DOUBLING", 2)
    monkeypatch.setattr(ingest, "ROOM_CHECK_POINTS", 64)

    # when a script logs one point a request (a row each) until it is refused
    refused, (code, error) = 0, log_metric(token, run, 0)
    while code == 200 and refused < 900:
        refused += 1
        code, error = log_metric(token, run, refused)

    # then it is refused once its rows fill the room (at 24 bytes a point, after 833 points),
    # saying the quota, and what it stored counts what its rows take
    each = POINT_BYTES + chunk_row_bytes("train_loss")
    assert code == 400 and error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "storage quota" in error["message"] and "FITBOARD_STORAGE_QUOTA_GB" in error["message"]
    assert room - 64 * POINT_BYTES - each < refused * each <= room + TEXT_ROOM
    assert MetricChunk.objects.filter(experiment=run).count() == refused
    assert points_stored(owner) == refused * each


def test_a_row_of_one_point_takes_no_more_than_the_quota_counts_for_it(owner, project):
    # given a run
    run = ingest.create_run(owner, project, "measured", {})
    before = table_bytes()

    # when 2,000 rows of one point each are stored (a script logging a point a request)
    for step in range(2000):
        metric_store.append(run.pk, {"train_loss": [(step, 0.5, 1.7e9)]})

    # then the database grew by no more than the quota counts for them
    assert table_bytes() - before <= 2000 * (POINT_BYTES + chunk_row_bytes("train_loss"))
