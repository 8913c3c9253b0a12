"""What one logging request costs the database: a script logs a point per request (the mlflow
client's ``log_metric``), so each query of that request is paid for every point. The token,
the run (its access checks and its update read at once, under its row lock), the points and
the run's progress: no more, however many points a request carries."""

from __future__ import annotations

import json

from django.test import Client

from webapp.experiments import metric_store

# The token with its user; the transaction's start; the run, under its row lock, within the
# token's reach; the points; the run's progress; the transaction's end.
LOGGING_QUERIES = 6



def post(token: str, route: str, body: dict) -> int:
    return Client().post(f"/api/2.0/mlflow/runs/{route}", json.dumps(body),
                         content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def test_a_log_metric_request_makes_six_queries(token, run, django_assert_num_queries):
    # given a script that has logged before (its token's last use is recorded once a minute)
    assert post(token, "log-metric", {"run_id": str(run.pk), "key": "loss", "value": 0.9,
                                      "timestamp": 1, "step": 0}) == 200

    # when it logs one more point
    with django_assert_num_queries(LOGGING_QUERIES):
        status = post(token, "log-metric", {"run_id": str(run.pk), "key": "loss",
                                            "value": 0.5, "timestamp": 2, "step": 1})

    # then the point is stored, in as many queries as before
    assert status == 200
    assert metric_store.read(run.pk)["train_loss"].steps.tolist() == [0, 1]


def test_a_log_batch_of_many_points_makes_as_many_queries_as_one_point(
        token, run, django_assert_num_queries):
    # (logged after the first points of both metrics: a point at step 0 no later than the
    # stored ones reads them, to drop one that mlflow's log_model() sends again; a new metric
    # name is text, which its creator's storage quota counts)
    metrics = [{"key": name, "value": step / 10, "timestamp": 1 + step, "step": step}
               for step in range(200) for name in ("loss", "acc")]
    assert post(token, "log-batch", {"run_id": str(run.pk), "metrics": [
        {"key": name, "value": 1, "timestamp": 0, "step": 0} for name in ("loss", "acc")]}) == 200

    with django_assert_num_queries(LOGGING_QUERIES):
        status = post(token, "log-batch", {"run_id": str(run.pk), "metrics": metrics})

    assert status == 200
    assert len(metric_store.read(run.pk)["train_acc"]) == 1 + 200  # its first point's too
