"""What a script may store as text, in MLflow's own limits and words: a param's, tag's or
metric's name of at most 250 characters, a param value of 6,000, a run tag of 8,000, an
experiment tag of 20,000 (INVALID_PARAMETER_VALUE, nothing stored), whichever API carries it;
and one run (or logged model) holds at most ``MAX_HELD`` characters of params and tags, which
every write to it reads and rewrites."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.experiments import metric_store
from webapp.experiments.models import Experiment
from webapp.projects.actions import enrol
from webapp.projects.models import Membership
from webapp.tracking import ingest, tokens
from webapp.tracking.models import ExperimentTag, LoggedModel

M = "/api/2.0/mlflow/"


def call(token: str, path: str, body: dict[str, Any]) -> Any:
    return Client().post(path, json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")



def stored(run: Experiment) -> dict[str, Any]:
    return Experiment.objects.get(pk=run.pk).spec


def refused(answer: Any, words: str) -> None:
    assert answer.status_code == 400, answer.content[:200]
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert words in answer.json()["message"]


@pytest.mark.parametrize("path, body, words", [
    ("runs/set-tag", {"key": "note", "value": "x" * 8001}, "exceeded length limit of 8000"),
    ("runs/set-tag", {"key": "k" * 251, "value": "x"}, "exceeded length limit of 250"),
    ("runs/log-parameter", {"key": "lr", "value": "1" * 6001}, "exceeded length limit of 6000"),
    ("runs/log-parameter", {"key": "k" * 251, "value": "1"}, "exceeded length limit of 250"),
    ("runs/log-batch", {"tags": [{"key": "ok", "value": "x"}, {"key": "t", "value": "x" * 8001}]},
     "exceeded length limit of 8000"),
    ("runs/log-metric", {"key": "m" * 251, "value": 1, "timestamp": 0},
     "exceeded length limit of 250"),
])
def test_a_name_or_value_past_mlflows_limit_is_refused_and_nothing_is_stored(
        token, run, path, body, words):
    # when a script sends a tag or param one character past MLflow's limit
    answer = call(token, M + path, {"run_id": str(run.pk), **body})

    # then it is refused in MLflow's words, and the run holds nothing of the request
    refused(answer, words)
    assert stored(run)["params"] == {} and stored(run)["tags"] == {}


def test_values_at_mlflows_limits_are_stored(token, run):
    answers = [call(token, M + "runs/set-tag", {"run_id": str(run.pk), "key": "k" * 250,
                                                 "value": "x" * 8000}),
               call(token, M + "runs/log-parameter", {"run_id": str(run.pk), "key": "lr",
                                                       "value": "1" * 6000}),
               # a metric named as frameworks name them, eval/<data set>/<metric>, past 64
               call(token, M + "runs/log-metric", {"run_id": str(run.pk), "key": "m" * 250,
                                                    "value": 0.5, "timestamp": 0})]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert stored(run)["tags"]["k" * 250] == "x" * 8000
    assert stored(run)["params"]["lr"] == "1" * 6000
    assert list(metric_store.read(run.pk)["m" * 250].values) == [0.5]


def test_a_run_created_with_a_tag_too_long_is_not_created(token, project):
    # given the native client's create and MLflow's, each with a tag of 8,001 characters
    native = call(token, "/api/fitboard/v1/runs/create",
                  {"project": project.name, "tags": {"note": "x" * 8001}})
    mlflow = call(token, M + "runs/create", {"experiment_id": str(project.pk),
                                             "tags": [{"key": "note", "value": "x" * 8001}]})

    # then both are refused, and no run exists
    refused(native, "exceeded length limit of 8000")
    refused(mlflow, "exceeded length limit of 8000")
    assert not Experiment.objects.exists()


def test_an_experiment_tag_past_20000_characters_is_refused(token, project):
    # MLflow 3 takes an experiment's description (its tag mlflow.note.content) of 20,000
    answer = call(token, M + "experiments/set-experiment-tag",
                  {"experiment_id": str(project.pk), "key": "about", "value": "x" * 20_001})
    refused(answer, "exceeded length limit of 20000")
    assert not ExperimentTag.objects.exists()

    kept = call(token, M + "experiments/set-experiment-tag",
                {"experiment_id": str(project.pk), "key": "about", "value": "x" * 20_000})
    assert kept.status_code == 200
    assert len(ExperimentTag.objects.get(key="about").value) == 20_000


def test_a_run_holds_at_most_a_million_characters_of_params_and_tags(token, run):
    # given batches of 100 tags of 8,000 characters (800 kB each)
    def batch(start: int) -> Any:
        tags = [{"key": f"t{start + i}", "value": "x" * 8000} for i in range(100)]
        return call(token, M + "runs/log-batch", {"run_id": str(run.pk), "tags": tags})

    # when a second batch would take the run past a million characters
    first, second = batch(0), batch(100)

    # then it is refused, saying so, and the run keeps what it held
    assert first.status_code == 200
    refused(second, "at most 1,000,000")
    assert len(stored(run)["tags"]) == 100


def test_a_logged_model_keeps_the_same_limits(token, project, owner):
    model = LoggedModel.objects.create(project=project, name="m", created_by=owner)

    long_tag = Client().patch(f"{M}logged-models/{model.model_id}/tags",
                              json.dumps({"tags": [{"key": "t", "value": "x" * 8001}]}),
                              content_type="application/json",
                              HTTP_AUTHORIZATION=f"Bearer {token}")
    long_param = call(token, f"{M}logged-models/{model.model_id}/params",
                      {"params": [{"key": "p", "value": "1" * 6001}]})

    refused(long_tag, "exceeded length limit of 8000")
    refused(long_param, "exceeded length limit of 6000")
    model.refresh_from_db()
    assert model.tags == {} and model.params == {}


def test_a_body_past_djangos_limit_is_refused_in_mlflows_format(token, run, settings):
    # given a log-batch of 3 MB (Django reads at most DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB)
    tags = [{"key": f"t{i}", "value": "x" * 7000} for i in range(430)]

    answer = call(token, M + "runs/log-batch", {"run_id": str(run.pk), "tags": tags})

    # then the client gets MLflow's error, not an HTML page, and nothing is stored
    refused(answer, "the request body is larger than 2,621,440 bytes")
    assert stored(run)["tags"] == {}


def batch(names: list[str], step: int) -> dict[str, Any]:
    return {"metrics": [{"key": name, "value": 0.5, "timestamp": 1, "step": step}
                        for name in names]}


def test_a_run_holds_at_most_max_metrics_names_and_keeps_taking_points_of_them(
        token, run, owner, project):
    # given a run holding MAX_METRICS metric names, and another run of the project
    names = [f"class_{i}/f1" for i in range(ingest.MAX_METRICS)]
    other = ingest.create_run(owner, project, "other", {})
    assert call(token, M + "runs/log-batch", {"run_id": str(run.pk), **batch(names, 0)}
                ).status_code == 200

    # when a request adds one name more, beside a point of a name it has
    answer = call(token, M + "runs/log-batch",
                  {"run_id": str(run.pk), **batch([names[0], "one_more"], 1)})

    # then it is refused whole, and the run still takes points of its names
    refused(answer, f"a run holds at most {ingest.MAX_METRICS:,} metric names")
    held = Experiment.objects.get(pk=run.pk).progress["keys"]
    assert len(held) == ingest.MAX_METRICS and "one_more" not in held
    assert metric_store.read(run.pk, keys=[names[0]])[names[0]].steps.tolist() == [0]
    assert call(token, M + "runs/log-batch", {"run_id": str(run.pk), **batch(names[:5], 1)}
                ).status_code == 200
    # and the limit is each run's own
    assert call(token, M + "runs/log-batch", {"run_id": str(other.pk), **batch(["one_more"], 0)}
                ).status_code == 200


def test_a_users_scripts_create_at_most_the_hourly_runs_and_others_still_do(
        token, owner, project, settings):
    # given at most 3 runs an hour, and a teammate with a token of their own
    settings.FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR = 3
    teammate = User.objects.create_user("teammate")
    enrol(project, teammate, Membership.Role.MEMBER)
    theirs = tokens.create_token(teammate, "laptop", "write", None)[1]
    create = {"experiment_id": str(project.pk), "run_name": "sweep"}

    # when the owner's script creates 4 runs, through MLflow's API and the native client's
    answers = [call(token, M + "runs/create", create) for _ in range(3)]
    answers.append(call(token, "/api/fitboard/v1/runs/create",
                        {"project": project.name, "name": "one more"}))

    # then the fourth is refused with the limit, and only 3 runs exist
    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    assert "the limit is 3 (FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR)" in answers[3].json()["message"]
    assert Experiment.objects.filter(created_by=owner).count() == 3
    # while the teammate's script creates its run as before
    assert call(theirs, M + "runs/create", create).status_code == 200
