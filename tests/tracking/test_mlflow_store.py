"""The unmodified mlflow client with a ``fitboard+http://`` tracking URI (the ``fitboard``
package's tracking store, ``clients/python/fitboard/mlflow_store.py``): its metrics go in
batches from a background thread, everything else over MLflow's REST API, and a script reads
back exactly what it logged."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import mlflow
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.signals import request_started
from django.utils import timezone
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from webapp.experiments import housekeeping, metric_store
from webapp.experiments.models import Experiment
from webapp.projects.actions import create_project
from webapp.tracking import ingest


@pytest.fixture
def fast(live_server: Any, token: str, project: Any, monkeypatch: Any, settings: Any,
         tmp_path: Any) -> Iterator[MlflowClient]:
    """The mlflow client pointed at Fitboard with the store's scheme, as a script would be."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    uri = "fitboard+" + live_server.url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(uri)
    yield MlflowClient()
    if mlflow.active_run():
        mlflow.end_run()


class Requests:
    """Counts the requests the live server (a thread of this process) starts."""

    def __init__(self) -> None:
        self.count = 0
        request_started.connect(self.started)

    def started(self, **_: Any) -> None:
        self.count += 1

    def close(self) -> None:
        request_started.disconnect(self.started)


def test_a_run_reads_back_exactly_and_its_points_go_in_batches(fast, tmp_path):
    # given a script that logs params, tags, an artifact and three metrics over 200 steps,
    # point by point with its own timestamps, and numpy values as scripts pass them
    mlflow.set_experiment("vision")
    logged: dict[str, list[tuple[int, float, int]]] = {"loss": [], "eval_loss": [],
                                                       "eval_accuracy": []}
    requests = Requests()
    try:
        with mlflow.start_run(run_name="bert", tags={"team": "nlp"}) as run:
            mlflow.log_params({"lr": 0.001, "batch": 32})
            during = requests.count
            for step in range(200):
                for key, value in (("loss", np.float32(1 / (step + 1))),
                                   ("eval_loss", 1.2 / (step + 1)),
                                   ("eval_accuracy", np.float64(step / 200))):
                    stamp = 1_790_000_000_123 + step * 1000 + len(key)
                    mlflow.log_metric(key, value, step=np.int64(step), timestamp=stamp)
                    logged[key].append((step, float(value), stamp))
            logging_requests = requests.count - during
            source = tmp_path / "report.txt"
            source.write_text("accuracy 0.93\n")
            mlflow.log_artifact(str(source), artifact_path="eval")
    finally:
        requests.close()

    # then 600 points took a few requests, not 600
    assert logging_requests < 20, logging_requests
    # and mlflow's own reader returns exactly what was logged, under the script's names
    for key, points in logged.items():
        history = fast.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value, m.timestamp) for m in history] == points
    # and Fitboard stored them under its diagnostics' names, ended and judged the run
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert stored.status == "succeeded" and stored.spec["params"] == {"lr": "0.001",
                                                                      "batch": "32"}
    assert set(metric_store.read(stored.pk)) == {"train_loss", "val_loss", "val_acc"}
    assert len(metric_store.read(stored.pk)["val_acc"]) == 200
    assert stored.verdict_kind and stored.summary["final_metrics"]["val_acc"] == 199 / 200
    # and the artifact went through the artifacts proxy at the tracking URI's server
    back = fast.download_artifacts(run.info.run_id, "eval/report.txt", str(tmp_path / "d"))
    assert open(back).read() == "accuracy 0.93\n"


def test_log_batch_and_asynchronous_logging_store_every_point(fast):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        fast.log_batch(run.info.run_id, metrics=[Metric("loss", i / 10, 1_790_000_000_000 + i, i)
                                                 for i in range(2500)],
                       params=[Param("optimizer", "adam")], tags=[RunTag("stage", "one")])
        for step in range(50):
            mlflow.log_metrics({"val_loss": 1 / (step + 1), "val_acc": step / 50}, step=step,
                               synchronous=False)
        mlflow.log_metric("val_loss", float("nan"), step=50)  # a diverged point is a point

    history = fast.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(i, i / 10) for i in range(2500)]
    losses = [m.value for m in fast.get_metric_history(run.info.run_id, "val_loss")]
    assert len(losses) == 51 and math.isnan(losses[-1])
    fetched = fast.get_run(run.info.run_id)
    assert fetched.data.params == {"optimizer": "adam"} and fetched.data.tags["stage"] == "one"


def test_a_point_read_back_during_the_run_is_there(fast):
    # a read (any REST call) first sends the points logged before it
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for step in range(30):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        assert len(fast.get_metric_history(run.info.run_id, "loss")) == 30
        assert fast.get_run(run.info.run_id).data.metrics["loss"] == 1 / 30


def test_points_the_server_refuses_raise_at_end_run_and_the_run_still_ends(fast, settings):
    # given a site that keeps at most 100 points a run
    settings.FITBOARD_MAX_POINTS_PER_RUN = 100
    mlflow.set_experiment("vision")
    run = mlflow.start_run()
    # 300 points in one call, which returns at once: nothing refused yet to raise (points
    # logged one call each could be sent and refused before the last call, which then raises)
    fast.log_batch(run.info.run_id, metrics=[
        Metric("loss", 1.0, 0, step) for step in range(300)])

    # when the script ends its run, it is told which points were not stored, and why
    with pytest.raises(MlflowException, match=rf"not stored: run {run.info.run_id}: HTTP 400"
                                              r".*at most 100"):
        mlflow.end_run()
    # and the run is ended all the same, with the points it took
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert stored.status == "succeeded"
    assert len(metric_store.read(stored.pk).get("train_loss", ())) <= 100


def test_a_run_of_another_project_or_deleted_is_refused_at_once_as_over_http(fast):
    # given a run in a project the token's user is not a member of, and one of the script's
    # own that it deleted
    other = User.objects.create_user("other", password="other-pass-123")
    theirs = ingest.create_run(other, create_project(other, "theirs"), "private", {})
    mlflow.set_experiment("vision")
    with mlflow.start_run() as mine:
        mlflow.log_metric("loss", 1.0, step=0)
    fast.delete_run(mine.info.run_id)

    def beating() -> int:
        return sum(t.name == "fitboard-heartbeat" for t in threading.enumerate())

    before = beating()

    # when the script logs into them, each first point goes over the REST API, which
    # refuses it at once, as it does over http://
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        fast.log_metric(str(theirs.pk), "loss", 1.0, step=0)
    with pytest.raises(MlflowException, match="deleted"):
        fast.log_batch(mine.info.run_id, metrics=[Metric("loss", 2.0, 1_790_000_000_000, 1)])
    with mlflow.start_run() as live, pytest.raises(MlflowException,
                                                   match="INVALID_PARAMETER_VALUE"):
        fast.log_metric(live.info.run_id, "", 1.0)  # nor a point without a name

    # and nothing is stored, and no heartbeat starts for either
    assert metric_store.read(theirs.pk) == {}
    assert len(metric_store.read(int(mine.info.run_id))["train_loss"]) == 1
    assert beating() == before


def test_an_ended_run_leaves_no_thread_behind(fast):
    # a study logs hundreds of runs from one process: each run's sender and heartbeat end
    # with the run
    def senders() -> tuple[int, int]:
        names = [t.name for t in threading.enumerate()]
        return names.count("fitboard-sender"), names.count("fitboard-heartbeat")

    mlflow.set_experiment("vision")
    before = senders()
    for trial in range(5):
        with mlflow.start_run(run_name=f"trial-{trial}"):
            mlflow.log_metric("loss", 1 / (trial + 1))
            assert senders() == (before[0] + 1, before[1] + 1)
    assert senders() == before


def test_a_fresh_interpreter_registers_the_store_without_a_warning():
    # mlflow loads its plugins while its own modules are still being imported: the entry
    # points must not import mlflow back (a circular import, which mlflow only warns about,
    # then refuses the scheme)
    script = ("import mlflow\n"
              "from mlflow.tracking._tracking_service.utils import _get_store\n"
              "from mlflow.store.artifact.artifact_repository_registry import "
              "get_artifact_repository\n"
              "print(type(_get_store('fitboard+https://fitboard.example.org/site')).__name__)\n"
              "mlflow.set_tracking_uri('fitboard+https://fitboard.example.org/site')\n"
              "print(get_artifact_repository('mlflow-artifacts:/3/7/artifacts').artifact_uri)\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True,
                          text=True, env={**os.environ, "MLFLOW_TRACKING_TOKEN": "fb_x"},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [
        "FitboardStore",
        "https://fitboard.example.org/site/api/2.0/mlflow-artifacts/artifacts/3/7/artifacts"]


def test_odd_batches_read_back_as_they_do_over_http(fast, live_server):
    # the same points, logged once over MLflow's REST API and once through the store, read
    # back the same: a name twice at one step and time, a step again later, step 0 repeated,
    # negative and huge steps, NaN and infinities, integers and numpy values
    stamp = 1_790_000_000_000
    batch = [Metric("acc", 0.5, stamp, 3), Metric("acc", 0.6, stamp, 3),
             Metric("loss", float("inf"), stamp, 3), Metric("acc", 0.7, stamp + 5, 3),
             Metric("acc", 1, stamp, 0), Metric("acc", np.float32(0.25), stamp, 0),
             Metric("acc", 0.8, stamp + 9, -4), Metric("acc", -float("inf"), stamp, 2**40),
             Metric("loss", float("nan"), stamp + 1, 1)]
    mlflow.set_experiment("vision")
    histories = []
    for uri in (live_server.url, "fitboard+" + live_server.url):
        client = MlflowClient(tracking_uri=uri)
        run = client.create_run(client.get_experiment_by_name("vision").experiment_id)
        client.log_batch(run.info.run_id, metrics=batch[:4])
        client.log_batch(run.info.run_id, metrics=batch[4:])
        client.log_metric(run.info.run_id, "acc", 0.9, timestamp=stamp + 20, step=3)
        client.set_terminated(run.info.run_id)
        histories.append({key: [(m.step, repr(m.value), m.timestamp)
                                for m in client.get_metric_history(run.info.run_id, key)]
                          for key in ("acc", "loss")})
    over_http, through_store = histories
    assert through_store == over_http
    assert len(over_http["acc"]) == 5 and len(over_http["loss"]) == 2


def test_a_run_logged_through_the_store_beats_and_is_failed_only_when_its_script_dies(
        fast, live_server, settings):
    # given runs with a short heartbeat window: one through the store, one over MLflow's
    # REST API (no heartbeat), both quiet since their start
    settings.FITBOARD_EXTERNAL_HEARTBEAT = 60
    settings.FITBOARD_EXTERNAL_SILENCE = 3600
    mlflow.set_experiment("vision")
    beating = fast.create_run(fast.get_experiment_by_name("vision").experiment_id)
    rest = MlflowClient(tracking_uri=live_server.url)
    quiet = rest.create_run(rest.get_experiment_by_name("vision").experiment_id)
    run = Experiment.objects.get(pk=int(beating.info.run_id))
    for _ in range(100):  # the store's first beat goes at once, from its own thread
        run.refresh_from_db()
        if run.beats:
            break
        time.sleep(0.05)
    assert run.beats and not Experiment.objects.get(pk=int(quiet.info.run_id)).beats

    # when both have been silent for ten minutes
    Experiment.objects.filter(pk__in=[run.pk, int(quiet.info.run_id)]).update(
        heartbeat_at=timezone.now() - timedelta(minutes=10))
    housekeeping.fail_silent_external_runs()

    # then the beating run's script is taken for dead, and the other may be in a long epoch
    run.refresh_from_db()
    assert run.status == "failed" and "no data from the script for 60 s" in run.error
    assert Experiment.objects.get(pk=int(quiet.info.run_id)).status == "running"
    fast.set_terminated(beating.info.run_id)


def test_a_forked_child_stores_each_point_before_it_exits(fast):
    # given a run whose points the parent sends in batches
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0, step=0)
        # when a forked worker logs into the same run (it has none of the parent's threads)
        child = os.fork()
        if child == 0:  # the child: HTTP only (the live server is the parent's thread)
            code = 1
            try:
                client = MlflowClient()
                for step in range(1, 4):
                    client.log_metric(run.info.run_id, "worker", float(step), step=step)
                code = 0
            finally:
                os._exit(code)  # as a multiprocessing worker ends: no exit handler runs
        assert os.waitpid(child, 0)[1] == 0
        mlflow.log_metric("loss", 0.5, step=1)

    # then the child's points are stored, and the parent's
    history = fast.get_metric_history(run.info.run_id, "worker")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert len(fast.get_metric_history(run.info.run_id, "loss")) == 2


def test_one_metric_the_server_refuses_loses_no_other_metrics_points(fast):
    # given a batch in which one metric's point cannot be stored (a step past int64, which
    # the mlflow client does not check) among good points of another metric
    mlflow.set_experiment("vision")
    run = mlflow.start_run()
    for step in range(10):
        mlflow.log_metric("loss", 1 / (step + 1), step=step)
    mlflow.log_metric("odd", 1.0, step=2**70)

    # when the run ends, the script is told of that metric
    with pytest.raises(MlflowException, match="HTTP 400: metric 'odd'"):
        mlflow.end_run()

    # and every other point is stored, as over the REST API only the bad call fails
    history = fast.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(10))


def test_runs_the_script_did_not_create_get_no_heartbeat_and_no_thread(fast, live_server):
    # given a run another process created over MLflow's REST API, and one this script ended
    rest = MlflowClient(tracking_uri=live_server.url)
    theirs = rest.create_run(rest.get_experiment_by_name("vision").experiment_id
                             if rest.get_experiment_by_name("vision") else
                             rest.create_experiment("vision"))
    mlflow.set_experiment("vision")
    with mlflow.start_run() as ended:
        pass

    def ours() -> int:
        return sum(t.name in ("fitboard-sender", "fitboard-heartbeat")
                   for t in threading.enumerate())

    before = ours()

    # when this script logs into both (an evaluator's test metrics), each point is stored at
    # once over the REST API, and no thread starts beating for either
    fast.log_metric(theirs.info.run_id, "test_acc", 0.9)
    fast.log_metric(ended.info.run_id, "test_acc", 0.8)
    assert ours() <= before  # (an earlier test's may still be ending)
    assert not Experiment.objects.get(pk=int(theirs.info.run_id)).beats
    assert [m.value for m in fast.get_metric_history(theirs.info.run_id, "test_acc")] == [0.9]
    assert [m.value for m in fast.get_metric_history(ended.info.run_id, "test_acc")] == [0.8]


def test_a_run_ended_as_failed_does_not_hide_the_scripts_exception(fast, settings):
    # given points the server refuses, in a run whose script fails
    settings.FITBOARD_MAX_POINTS_PER_RUN = 5
    mlflow.set_experiment("vision")

    # when the script's own error ends the run, that error is what the script sees
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run:
        for step in range(20):
            mlflow.log_metric("loss", 1.0, step=step)
        fast.get_run(run.info.run_id)  # (the refusal is back)
        raise ZeroDivisionError
    assert Experiment.objects.get(pk=int(run.info.run_id)).status == "failed"


def test_a_run_resumed_over_http_forgets_that_it_beat(fast, live_server):
    # given a run the store created (it beats), then ended
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0)
    row = Experiment.objects.get(pk=int(run.info.run_id))
    assert row.beats and row.status == "succeeded"

    # when a script on MLflow's REST API (no heartbeat) resumes it
    rest = MlflowClient(tracking_uri=live_server.url)
    rest.update_run(run.info.run_id, status="RUNNING")

    # then it is judged by the long silence window, not failed at the beating one's
    row.refresh_from_db()
    assert row.status == "running" and not row.beats
    rest.set_terminated(run.info.run_id)
