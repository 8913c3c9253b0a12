"""Steps and times a script sends are MLflow's int64s (a step, milliseconds): a point outside
them is refused with a 400, not stored. A stored time of inf made every later read of the run
fail, so one member's script broke search_runs of the whole project for every other member.
And a list a run holds at most 100 of (dataset inputs, model outputs) is refused at its length,
before its items are compared with each other (quadratic: 20,000 took 24 s)."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.experiments.models import Experiment
from webapp.projects.actions import enrol
from webapp.projects.models import Membership, Project
from webapp.tracking import ingest, tokens
from webapp.tracking.mlflow_views import MAX_INPUTS

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


@pytest.mark.parametrize(("path", "field", "held", "item"), [
    ("/api/2.0/mlflow/runs/log-inputs", "datasets", "inputs",
     lambda i: {"dataset": {"name": f"d{i}", "digest": "x"}}),
    ("/api/2.0/mlflow/runs/outputs", "models", "outputs",
     lambda i: {"model_id": f"m-{i}", "step": 0}),
])
def test_a_list_longer_than_a_run_holds_is_refused_before_it_is_read(path, field, held, item,
                                                                     owner, project):
    run = ingest.create_run(owner, project, "script", {})
    raw = tokens.create_token(owner, "script", "write", None)[1]
    body = json.dumps({"run_id": str(run.pk), field: [item(i) for i in range(40_000)]})

    def give_up(*_: Any) -> None:
        raise AssertionError("the request still ran after 20 s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(20)  # about 100 s before, comparing 40,000 items with each other
    try:
        answer = post(raw, path, body)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

    assert answer.status_code == 400
    assert f"at most {MAX_INPUTS}" in answer.json()["message"]
    run.refresh_from_db()
    assert held not in run.spec


def test_a_script_logging_an_infinite_accuracy_still_ends_its_run_with_a_verdict(owner, project):
    # given a script's run whose validation accuracy is inf at one evaluation and -inf at the
    # next (a division by a zero count; before, the verdict raised "-inf + inf in fsum" and
    # the script's end of the run was a 500, the run left running)
    # (the accuracies rise with the falling losses where they are finite: a healthy run)
    run = ingest.create_run(owner, project, "script", {})
    accuracies = {5: float("inf"), 6: float("-inf")}
    ingest.log_to_run(run, [ingest.Point(key, value, step, 1.0 + step)
                            for step in range(8)
                            for key, value in (("loss", 1 / (step + 1)),
                                               ("val_loss", 1 / (step + 1)),
                                               ("val_acc", accuracies.get(step, 0.5 + step / 20)),
                                               ("accuracy", 0.5 + step / 20))])

    # when it ends the run
    ended = ingest.end_run(run, Experiment.Status.SUCCEEDED)

    # then the run ended, judged on its finite points
    run.refresh_from_db()
    assert ended and run.status == "succeeded" and run.verdict_kind == "healthy"
