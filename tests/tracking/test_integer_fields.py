"""A metric's step and timestamp are int64s in MLflow's protocol, read as MLflow's server reads
them through protobuf's JSON: the strings its client sends ("3") and integer-valued numbers
(3.0, "1e3") are taken, a fraction, a bool or a number past 64 bits is refused with
INVALID_PARAMETER_VALUE naming the field, on log-batch and log-metric alike, and nothing of
the request is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from webapp.experiments import metric_store
from webapp.tracking.api import ApiError, integer

REFUSED = [1.5, "1.5", True, False, 1e30, 2**63, -1e19, "-9223372036854775809", "2e19",
           "inf", "NaN", "three", [1], {"n": 1}]
TAKEN = [(3, 3), ("3", 3), (3.0, 3), ("3.0", 3), ("1e3", 1000), (2**63 - 1, 2**63 - 1),
         (-(2**63), -(2**63)), (None, 0), ("", 0)]



def post(token: str, route: str, body: dict[str, Any]) -> Any:
    return Client().post(f"/api/2.0/mlflow/runs/{route}", json.dumps(body),
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def point(**fields: Any) -> dict[str, Any]:
    return {"key": "loss", "value": 0.5, "timestamp": 1700000000000, "step": 1, **fields}


@pytest.mark.parametrize("field", ["step", "timestamp"])
@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_log_batch_refuses_a_field_that_is_not_an_int64(token, run, field, value):
    answer = post(token, "log-batch", {"run_id": str(run.pk),
                                       "metrics": [point(), point(**{field: value})]})

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"'{field}'" in answer.json()["message"]
    assert metric_store.read(run.pk) == {}


@pytest.mark.parametrize("field", ["step", "timestamp"])
@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_log_metric_refuses_a_field_that_is_not_an_int64(token, run, field, value):
    answer = post(token, "log-metric", {"run_id": str(run.pk), **point(**{field: value})})

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"'{field}'" in answer.json()["message"]
    assert metric_store.read(run.pk) == {}


@pytest.mark.parametrize("route", ["log-batch", "log-metric"])
def test_the_steps_mlflows_client_sends_are_stored(token, run, route):
    # its protobuf JSON: int64s as strings, a step of 0 left out; an integer-valued number
    sent = [point(step="7", timestamp="1700000000123"), point(step=8.0), point(step=None)]
    for item in sent:
        body = ({"run_id": str(run.pk), "metrics": [item]} if route == "log-batch"
                else {"run_id": str(run.pk), **item})
        assert post(token, route, body).status_code == 200

    assert sorted(metric_store.read(run.pk)["train_loss"].steps.tolist()) == [0, 7, 8]


@pytest.mark.parametrize("value, read", TAKEN, ids=repr)
def test_an_int64_is_read_as_protobufs_json_reads_it(value, read):
    assert integer(value, "step") == read


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_anything_else_is_refused_naming_the_field(value):
    with pytest.raises(ApiError, match="'step' must be"):
        integer(value, "step")
