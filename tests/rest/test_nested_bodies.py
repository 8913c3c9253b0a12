"""Request bodies nested past any route's need: every JSON API (the REST API, MLflow's, the
native client's) refuses them as bad input in its own error shape, never with a server error
(Python's json parser recursed until RecursionError), and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from webapp.experiments.models import Experiment
from webapp.tracking.api import MAX_DEPTH, nested_deeper_than

from .conftest import IRIS

ROUTES = ["/api/v1/runs/", "/api/v1/projects/{project}/webhooks/", "/api/v1/groups/",
          "/api/2.0/mlflow/runs/create", "/api/2.0/mlflow/runs/log-batch",
          "/api/fitboard/v1/runs/create", "/api/fitboard/v1/runs/log"]


def post(api: Any, path: str, body: str) -> Any:
    return Client(raise_request_exception=False).post(
        path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.raw}")


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 200_000])
def test_a_body_nested_too_deep_is_bad_input_in_the_apis_own_shape(api, project, route,
                                                                    levels):
    # when a body holds a value nested ``levels`` deep
    body = f'{{"project": {project.pk}, "name": "x", "spec": {nested(levels)}}}'
    answer = post(api, route.format(project=project.pk), body)

    # then it is the client's 400, in JSON, and no run was made
    assert answer.status_code == 400, answer.content[:200]
    assert "error_code" in answer.json() or "detail" in answer.json()
    assert not Experiment.objects.exists()


def test_a_body_at_the_depth_limit_is_read(api, project):
    # a spec holding a list at the last level allowed reaches the spec's own check
    body = f'{{"project": {project.pk}, "name": "x", "spec": {{"data": {nested(MAX_DEPTH - 3)}}}}}'
    answer = post(api, "/api/v1/runs/", body)

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["spec.data"]


def test_the_depth_is_counted_without_recursion():
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    assert nested_deeper_than(value, MAX_DEPTH)
    assert not nested_deeper_than({"a": [{"b": 1}]}, 3)
    assert nested_deeper_than({"a": [{"b": [1]}]}, 3)


def test_an_ordinary_launch_still_goes_through(api, project):
    answer = api.post("runs/", {"project": project.pk, "name": "iris", "spec": IRIS})
    assert answer.status_code == 201


def test_an_integer_past_64_bits_is_still_refused_on_its_field(api, project):
    answer = api.post("runs/", {"project": project.pk, "name": "x",
                                "spec": {**IRIS, "run": {**IRIS["run"], "epochs": 10**30}}})

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["spec.run.epochs"]
