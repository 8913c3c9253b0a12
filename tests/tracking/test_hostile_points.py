"""Steps and times a script sends are MLflow's int64s (a step, milliseconds): a point outside
them is refused with a 400, not stored. A stored time of inf made every later read of the run
fail, so one member's script broke search_runs of the whole project for every other member."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.experiments.models import Experiment
from webapp.projects.actions import enrol
from webapp.projects.models import Membership, Project
from webapp.tracking import ingest, tokens

pytestmark = pytest.mark.django_db
# (path, body): written as text, for JSON's Infinity and NaN; RUN stands for the run's id, BIG
# for 2**63 (one past int64) and HUGE for an integer past float's range
HOLES = {"BIG": str(2**63), "HUGE": "1" + "0" * 400}
POINTS = {
    "native time inf": ("/api/fitboard/v1/runs/log",
                        '{"run_id": RUN, "metrics": {"loss": [[1], [0.5], [Infinity]]}}'),
    "native time NaN": ("/api/fitboard/v1/runs/log",
                        '{"run_id": RUN, "metrics": {"loss": [[1], [0.5], [NaN]]}}'),
    "native time past float": ("/api/fitboard/v1/runs/log",
                               '{"run_id": RUN, "metrics": {"loss": [[1], [0.5], [HUGE]]}}'),
    "native time past int64 ms": ("/api/fitboard/v1/runs/log",
                                  '{"run_id": RUN, "metrics": {"loss": [[1], [0.5], [1e20]]}}'),
    "native step past int64": ("/api/fitboard/v1/runs/log",
                               '{"run_id": RUN, "metrics": {"loss": [[BIG], [0.5], [1]]}}'),
    "log-metric timestamp past float": (
        "/api/2.0/mlflow/runs/log-metric",
        '{"run_id": "RUN", "key": "loss", "value": 1, "timestamp": HUGE}'),
    "log-metric step past int64": (
        "/api/2.0/mlflow/runs/log-metric",
        '{"run_id": "RUN", "key": "loss", "value": 1, "timestamp": 1, "step": BIG}'),
    "log-metric step inf": (
        "/api/2.0/mlflow/runs/log-metric",
        '{"run_id": "RUN", "key": "loss", "value": 1, "timestamp": 1, "step": Infinity}'),
    "log-batch timestamp past float": (
        "/api/2.0/mlflow/runs/log-batch",
        '{"run_id": "RUN", "metrics": [{"key": "loss", "value": 1, "timestamp": HUGE}]}'),
    "log-batch value past float": (
        "/api/2.0/mlflow/runs/log-batch",
        '{"run_id": "RUN", "metrics": [{"key": "loss", "value": HUGE, "timestamp": 1}]}'),
}


@pytest.fixture
def member(project: Project) -> User:
    user = User.objects.create_user("member", password="member-pass-123")
    enrol(project, user, Membership.Role.MEMBER)
    return user


def post(raw: str, path: str, body: str) -> Any:
    return Client().post(path, body, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.mark.parametrize("case", list(POINTS))
def test_a_point_outside_int64_is_refused_and_the_projects_search_still_answers(
        case, owner, member, project):
    # given a member's run logged from a script, and the owner's read token
    run = ingest.create_run(member, project, "script", {})
    writer = tokens.create_token(member, "script", "write", None)[1]
    reader = tokens.create_token(owner, "reader", "read", None)[1]
    path, body = POINTS[case]

    # when the script sends a point no reader could read back
    for hole, value in {**HOLES, "RUN": str(run.pk)}.items():
        body = body.replace(hole, value)
    answer = post(writer, path, body)

    # then it is refused, and the project's runs are still read and searched
    assert answer.status_code == 400, answer.content
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    search = post(reader, "/api/2.0/mlflow/runs/search",
                  json.dumps({"experiment_ids": [str(project.pk)]}))
    assert search.status_code == 200
    assert [r["info"]["run_id"] for r in search.json()["runs"]] == [str(run.pk)]


@pytest.mark.parametrize(("path", "body"), [
    ("/api/2.0/mlflow/runs/create", {"start_time": 10**30}),
    ("/api/2.0/mlflow/runs/create", {"start_time": 2**63 - 1}),  # an int64, but past 9999
    ("/api/fitboard/v1/runs/create", {"started": 1e300}),
    ("/api/fitboard/v1/runs/create", {"started": -1e300}),
])
def test_a_start_no_calendar_holds_is_refused_and_creates_no_run(path, body, owner, project):
    raw = tokens.create_token(owner, "script", "write", None)[1]

    answer = post(raw, path, json.dumps({"experiment_id": str(project.pk),
                                         "project": project.name, **body}))

    assert answer.status_code == 400, answer.content
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(("path", "body"), [
    ("/api/2.0/mlflow/runs/update", {"status": "FINISHED", "end_time": 2**63 - 1}),
    ("/api/fitboard/v1/runs/finish", {"status": "succeeded", "ended": 1e300}),
])
def test_an_end_no_calendar_holds_is_refused_and_the_run_keeps_running(path, body, owner,
                                                                        project):
    run = ingest.create_run(owner, project, "script", {})
    raw = tokens.create_token(owner, "script", "write", None)[1]

    answer = post(raw, path, json.dumps({"run_id": str(run.pk), **body}))

    assert answer.status_code == 400, answer.content
    run.refresh_from_db()
    assert run.status == Experiment.Status.RUNNING
