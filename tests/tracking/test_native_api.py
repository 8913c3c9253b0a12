"""The native client's API (/api/fitboard/v1/) on its own: what it stores, what it refuses, and
the heartbeat that keeps a quiet run from being failed. The client against a live server is
tests/e2e/test_native_client.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from webapp.experiments import housekeeping, metric_store
from webapp.experiments.models import Experiment
from webapp.projects.actions import create_project
from webapp.projects.models import Membership, Project
from webapp.tracking import tokens

API = "/api/fitboard/v1/"


def post(token: str, route: str, body: dict[str, Any]) -> Any:
    return Client().post(API + route, json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")


def test_columns_are_stored_under_the_diagnostics_names(token, project):
    # given a run made through the API with a config
    made = post(token, "runs/create", {"project": "vision", "name": "cols",
                                       "params": {"opt.lr": "0.1"}}).json()

    # when a batch arrives as columns, NaN included
    logged = post(token, "runs/log", {"run_id": made["run_id"], "metrics": {
        "loss": [[0, 1, 2], [1.0, 0.5, None], [10.0, 11.0, 12.5]],
        "grad_norm": [[2], [3.0], [12.5]]}})

    # then the points are stored with their times, loss as train_loss, and the params kept
    assert logged.status_code == 200 and logged.json() == {"status": "running"}
    stored = metric_store.read(made["run_id"])
    assert stored["train_loss"].steps.tolist() == [0, 1, 2]
    assert stored["train_loss"].values.tolist()[:2] == [1.0, 0.5]
    assert stored["train_loss"].times.tolist() == [10.0, 11.0, 12.5]
    assert stored["grad_norm"].values.tolist() == [3.0]
    run = Experiment.objects.get(pk=made["run_id"])
    assert run.kind == "external" and run.spec["params"] == {"opt.lr": "0.1"}
    assert made["project_id"] == project.pk and made["url"].endswith(f"/experiments/{run.pk}/")


def test_malformed_batches_are_refused_and_store_nothing(token, project):
    run_id = post(token, "runs/create", {"project": "vision"}).json()["run_id"]
    bad = [{"loss": [[0, 1], [1.0], [1.0, 2.0]]},  # unequal columns
           {"loss": [[0.5], [1.0], [1.0]]},  # a step that is not an integer
           {"loss": [[True], [1.0], [1.0]]},  # nor a boolean
           {"loss": [[0], ["high"], [1.0]]},  # a value that is not a number
           {"loss": [[0], [1.0]]},  # two columns
           [["loss", 0, 1.0]]]  # not an object

    answers = [post(token, "runs/log", {"run_id": run_id, "metrics": m}) for m in bad]

    assert [a.status_code for a in answers] == [400] * len(bad)
    assert all(a.json()["error_code"] == "INVALID_PARAMETER_VALUE" for a in answers)
    assert not metric_store.read(run_id)


def test_a_heartbeat_keeps_a_quiet_run_running_and_its_absence_fails_it(token, project,
                                                                        settings):
    # given two runs that last spoke longer ago than the timeout, one of which beats now
    settings.FITBOARD_EXTERNAL_HEARTBEAT = 60
    quiet, dead = (post(token, "runs/create", {"project": "vision"}).json()["run_id"]
                   for _ in range(2))
    long_ago = timezone.now() - timedelta(seconds=61)
    Experiment.objects.filter(pk__in=[quiet, dead]).update(heartbeat_at=long_ago)
    beat = post(token, "runs/heartbeat", {"run_id": quiet})

    # when the housekeeping looks for silent runs
    housekeeping.fail_silent_external_runs()

    # then the one that beat runs on, and the other failed with the reason
    assert beat.json() == {"status": "running", "heartbeat_s": 20}
    assert Experiment.objects.get(pk=quiet).status == "running"
    failed = Experiment.objects.get(pk=dead)
    assert failed.status == "failed" and "no data from the script for 60 s" in failed.error


def test_finish_ends_the_run_once_and_a_read_only_token_cannot_log(token, owner, project):
    run_id = post(token, "runs/create", {"project": "vision"}).json()["run_id"]
    reader = tokens.create_token(owner, "ro", "read", None)[1]

    refused = post(reader, "runs/log", {"run_id": run_id, "metrics": {
        "loss": [[0], [1.0], [1.0]]}})
    ended = post(token, "runs/finish", {"run_id": run_id, "status": "failed", "ended": 1e9})
    again = post(token, "runs/finish", {"run_id": run_id, "status": "succeeded"})
    unknown = post(token, "runs/finish", {"run_id": run_id, "status": "exploded"})

    assert refused.status_code == 403
    assert ended.json() == {"status": "failed"} and again.json() == {"status": "failed"}
    assert unknown.status_code == 400
    run = Experiment.objects.get(pk=run_id)
    assert run.finished_at.timestamp() == 1e9


def test_a_run_in_a_project_not_made_yet_makes_it(token, owner, project):
    # given a token for all of its user's projects, and no project "speech"
    # when a script's init names it (as W&B's init and mlflow's set_experiment may)
    made = post(token, "runs/create", {"project": "speech", "name": "first"})

    # then the project is made, its maintainer the token's user, and the run is in it
    assert made.status_code == 200, made.content
    speech = Project.objects.get(name="speech")
    assert made.json()["project_id"] == speech.pk
    assert Membership.objects.get(project=speech, user=owner).role == Membership.Role.MAINTAINER
    # and naming it in another case finds the same project
    again = post(token, "runs/create", {"project": "Speech"}).json()
    assert again["project_id"] == speech.pk and Project.objects.filter(
        name__iexact="speech").count() == 1


def test_a_project_a_token_cannot_make_or_reach_is_refused_with_what_to_do(owner, project):
    # given a token limited to "vision", and another team's project "audio"
    limited = tokens.create_token(owner, "vision only", "write", [project])[1]
    stranger = User.objects.create_user("stranger", password="stranger-pass-123")
    create_project(stranger, "audio")
    everything = tokens.create_token(owner, "all", "write", None)[1]

    # when scripts name a new project with the limited token, and "audio" with any token
    answers = [post(limited, "runs/create", {"project": "speech"}),
               post(everything, "runs/create", {"project": "audio"})]

    # then both are refused, each saying what to do, and neither made a project or a run
    assert [a.status_code for a in answers] == [403, 403]
    assert "create it on the Projects page" in answers[0].json()["message"]
    assert "ask one of its maintainers to add you" in answers[1].json()["message"]
    assert sorted(Project.objects.values_list("name", flat=True)) == ["audio", "vision"]
    assert not Experiment.objects.filter(kind="external").exists()
