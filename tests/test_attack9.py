"""Round nine of attacks, as a plain member with an API token, who maintains a project of their
own (any user may create one) and logs from scripts.

What a script stored outside every quota: the tags of an MLflow experiment (5 kB each, as many
as it liked: 200 of them were 1 MB that no quota counted, and every read of the experiment sent
them all) and a run's table of metric names (1,000 names of 64 characters made its progress
347 kB, counted nowhere, at 1,000 runs an hour).

What one request made the server read: a search of a project (and get_run) read every point of
every run to show each metric's latest, and get-history held an object per point (460 bytes a
point), while the quota let a member keep 100 million points in one run (2.4 GB): every
teammate's search read them all, a view of the run's page held 5 GB and a get-history 17 GB;
a comparison of 20 such runs on the epoch axis read every evaluation of each (10 GB). And the
table of names went out with every live message of the run, and to every member's run list
with each evaluation it logged; and the run list read every listed run's params and inputs."""

from __future__ import annotations

import asyncio
import json
import secrets
import tracemalloc
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse

from webapp.experiments import events, metric_store
from webapp.experiments.models import Experiment
from webapp.experiments.relay import relay
from webapp.projects import storage
from webapp.projects.actions import create_project
from webapp.tracking import ingest, mlflow_views, tokens
from webapp.tracking.models import ExperimentTag

from .webapp.conftest import _forget_uploads, mallory, owner, project  # noqa: F401

M = "/api/2.0/mlflow/"


def noise(chars: int) -> str:
    """Text no database compresses."""
    return secrets.token_urlsafe(chars)[:chars]


def send(token: str, path: str, body: Any) -> Any:
    return Client().post(path, json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def own_experiment(mallory: Any) -> tuple[str, str]:  # noqa: F811
    """A project mallory made (and so maintains), and her token: (experiment id, token)."""
    mine = create_project(mallory, "mallory-own")
    return str(mine.pk), tokens.create_token(mallory, "laptop", "write", None)[1]


def set_tag(experiment: tuple[str, str], key: str, value: str) -> Any:
    experiment_id, token = experiment
    return send(token, M + "experiments/set-experiment-tag",
                {"experiment_id": experiment_id, "key": key, "value": value})


def test_experiment_tags_count_towards_their_setters_quota(mallory, own_experiment,  # noqa: F811
                                                         settings):
    # given a quota with room for one tag of 4,000 characters and not two
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(mallory) + 6000

    # when the script sets one, then another
    first = set_tag(own_experiment, "notes", noise(4000))
    second = set_tag(own_experiment, "more", noise(4000))

    # then the first is stored and counted, the second refused in MLflow's format, saying the
    # quota, and not stored
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "storage quota" in second.json()["message"]
    assert list(ExperimentTag.objects.values_list("key", flat=True)) == ["notes"]
    # and replacing her own tag frees the room of the value it replaces
    assert set_tag(own_experiment, "notes", noise(5000)).status_code == 200


def test_an_experiment_holds_a_bounded_number_of_tags(own_experiment, monkeypatch):
    monkeypatch.setattr(mlflow_views, "MAX_EXPERIMENT_TAGS", 3)
    for key in ("a", "b", "c"):
        assert set_tag(own_experiment, key, "1").status_code == 200

    # when the script sets a fourth tag, and then a value of one it has
    fourth = set_tag(own_experiment, "d", "1")
    again = set_tag(own_experiment, "a", "2")

    # then the fourth is refused, saying the limit, and the tag it has takes its new value
    assert fourth.status_code == 400 and "at most 3 tags" in fourth.json()["message"]
    assert again.status_code == 200
    assert dict(ExperimentTag.objects.values_list("key", "value")) == {"a": "2", "b": "1",
                                                                      "c": "1"}


def test_a_runs_metric_names_count_towards_the_quota(mallory, project, settings):  # noqa: F811
    # given a run of mallory's with one metric, and room for a few more names only
    run = ingest.create_run(mallory, project, "names", {})
    ingest.log_to_run(run, [ingest.Point("loss", 0.5, 1, 1.0)])
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(mallory) + 2000

    # when her script logs 100 new names of 60 characters
    names = [ingest.Point(f"{i:03}" + "n" * 57, 1.0, 1, 1.0) for i in range(100)]
    with pytest.raises(ingest.IngestError, match="storage quota"):
        ingest.log_to_run(run, names)

    # then none is stored, and points of the metric it has still are
    ingest.log_to_run(run, [ingest.Point("loss", 0.25, 2, 2.0)])
    run.refresh_from_db()
    assert list(run.progress["keys"]) == ["loss"]
    assert list(metric_store.read(run.pk)["train_loss"].values) == [0.5, 0.25]


def test_a_search_reads_only_the_latest_point_of_a_members_long_run(mallory, owner,  # noqa: F811
                                                                  project, monkeypatch):  # noqa: F811
    # given a member's run of 100,000 points of one metric in 100 rows, its last step written
    # again last
    run = ingest.create_run(mallory, project, "long", {})
    for first in range(0, 100_000, 1000):
        metric_store.append(run.pk, {"loss": [(step, 1 / (1 + step), step / 10)
                                              for step in range(first, first + 1000)]})
    metric_store.append(run.pk, {"loss": [(99_999, 7.0, 20_000.0)]})
    merged: list[int] = []
    merge = metric_store._merge
    monkeypatch.setattr(metric_store, "_merge", lambda blobs: merged.append(
        sum(len(steps) // 8 for steps, _, _ in blobs)) or merge(blobs))
    token = tokens.create_token(owner, "laptop", "read", None)[1]

    # when another member's script searches the project, and reads the run
    found = send(token, M + "runs/search", {"experiment_ids": [str(project.pk)]}).json()
    read = Client().get(M + "runs/get", {"run_id": str(run.pk)},
                        HTTP_AUTHORIZATION=f"Bearer {token}").json()

    # then each answers the latest point, read from the rows that hold it only
    latest = [{"key": "loss", "value": 7.0, "timestamp": 20_000_000, "step": 99_999}]
    assert found["runs"][0]["data"]["metrics"] == latest
    assert read["run"]["data"]["metrics"] == latest
    assert merged and max(merged) <= 1001


def test_a_long_metrics_history_is_written_a_piece_at_a_time(mallory, owner,  # noqa: F811
                                                           project):  # noqa: F811
    # given a member's run of a metric of 100,000 points, the last one NaN
    run = ingest.create_run(mallory, project, "long", {})
    metric_store.append(run.pk, {"val_loss": [(step, 1 / step, step / 10)
                                              for step in range(1, 100_001)]})
    metric_store.append(run.pk, {"val_loss": [(100_001, float("nan"), 20_000.0)]})
    token = tokens.create_token(owner, "laptop", "read", None)[1]

    def history(key: str) -> Any:
        return Client().get(M + "metrics/get-history", {"run_id": str(run.pk), "metric_key": key},
                            HTTP_AUTHORIZATION=f"Bearer {token}")

    # when another member's script reads its history (the server's modules loaded before)
    assert history("loss").json() == {"metrics": []}
    tracemalloc.start()
    try:
        response = history("val_loss")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then it gets every point, as mlflow's client reads them, and the server held no object
    # per point at once (460 bytes a point before: 830 MB for 2 million points)
    history = json.loads(response.content)["metrics"]
    assert len(history) == 100_001
    assert history[0] == {"key": "val_loss", "value": 1.0, "timestamp": 100, "step": 1}
    assert history[-1] == {"key": "val_loss", "value": "NaN", "timestamp": 20_000_000,
                           "step": 100_001}
    assert peak < 300 * 100_001  # the answer's bytes (75 a point) twice, and the points read


def test_a_run_holds_a_bounded_number_of_points(mallory, project, settings):  # noqa: F811
    # given a limit of 1,000 points a run, and a run of a member's holding 900
    settings.FITBOARD_MAX_POINTS_PER_RUN = 1000
    run = ingest.create_run(mallory, project, "long", {})
    ingest.log_to_run(run, [ingest.Point("loss", 1 / step, step, step) for step in range(1, 901)])

    # when the script logs 200 more
    with pytest.raises(ingest.IngestError, match="at most 1,000") as refused:
        ingest.log_to_run(run, [ingest.Point("loss", 0.1, step, step)
                                for step in range(901, 1101)])

    # then they are refused, saying the limit, and the run keeps what it had; 100 more fit
    assert "FITBOARD_MAX_POINTS_PER_RUN" in str(refused.value)
    assert len(metric_store.read(run.pk)["train_loss"]) == 900
    ingest.log_to_run(run, [ingest.Point("loss", 0.1, step, step) for step in range(901, 1001)])
    assert len(metric_store.read(run.pk)["train_loss"]) == 1000


def test_the_epoch_axis_of_a_comparison_reads_long_runs_from_their_summaries(
        mallory, project):  # noqa: F811
    # given two runs of a member's, each of 200,000 evaluations (its epochs, for the axis)
    runs = [ingest.create_run(mallory, project, name, {}) for name in ("a", "b")]
    for run in runs:
        for first in range(1, 200_001, 50_000):
            metric_store.append(run.pk, {"val_loss": [(step, 1 / step, step / 10) for step
                                                      in range(first, first + 50_000)]})
    client = Client()
    client.force_login(mallory)
    ids = ",".join(str(run.pk) for run in runs)
    query = {"ids": ids, "key": "val_loss", "x": "epoch"}
    assert client.get(reverse("compare-data"), {**query, "x": "step"}).status_code == 200

    # when she compares them on the epoch axis
    tracemalloc.start()
    try:
        answer = client.get(reverse("compare-data"), query).json()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then each point stands at its evaluation's number, and the evaluations were not read
    # one by one (50 bytes a point before: 10 GB for 20 runs of 10 million)
    trace = answer["runs"][0]
    assert trace["x"][0] == pytest.approx(1, abs=1) and trace["x"][-1] == pytest.approx(200_000)
    assert peak < 10 * 400_000


def test_the_live_messages_of_a_run_carry_none_of_its_table_of_names(
        transactional_db, mallory, project):  # noqa: F811
    # given a member's run of 300 metric names of 60 characters, and the run list listening
    run = ingest.create_run(mallory, project, "names", {})
    ingest.log_to_run(run, [ingest.Point(f"{i:03}" + "n" * 57, 1.0, 1, 1.0) for i in range(300)])
    relay.drain()  # its first message went out before the list listens
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.project_group(project.pk), channel)

    # when her script logs an evaluation (which the list hears of, with the run's progress)
    ingest.log_to_run(run, [ingest.Point("val_loss", 0.5, 2, 2.0)])

    async def hear() -> dict[str, Any]:
        return dict(await asyncio.wait_for(layer.receive(channel), 10))

    # then every member's list hears its progress without the table (40 kB) or its numbering
    heard = async_to_sync(hear)()
    assert heard["progress"]["seq"] == 2
    assert not {"keys", "numbering"} & set(heard["progress"])
    assert len(json.dumps(heard)) < 4000
    # nor does a page that opens the run get them
    assert "keys" not in events.status_payload(run)["progress"]


def test_the_run_list_reads_none_of_a_script_runs_params(mallory, owner, project):  # noqa: F811
    # given ten runs of a member's script, each with 300 kB of params (up to 7 MB of text
    # each: params, tags and dataset inputs)
    params = {"config": noise(300_000)}
    for n in range(10):
        run = ingest.create_run(mallory, project, f"fat {n}", {})
        Experiment.objects.filter(pk=run.pk).update(spec={"params": params, "tags": {}})
    client = Client()
    client.force_login(owner)
    token = tokens.create_token(owner, "laptop", "read", None)[1]
    assert client.get(reverse("experiment-list")).status_code == 200

    # when a teammate opens the run list, and their script lists the runs
    tracemalloc.start()
    try:
        page = client.get(reverse("experiment-list"))
        rest = Client().get("/api/v1/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then both list them, and neither read their params (3 MB, held twice over, before: a
    # page of 50 runs of 4 MB held 400 MB)
    assert page.content.count(b"trained elsewhere") == 10
    assert rest.json()["count"] == 10
    assert peak < 1_500_000
