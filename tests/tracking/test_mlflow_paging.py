"""The paged reads of the mlflow client (3.17, pinned) against Fitboard's live server, at a
small scale of what scripts do at a large one: a metric's history read a page at a time (the
client reads 25,000 points a page: a run of 100,000 points is four pages), experiments searched
a page at a time, each in the order of MLflow's server, and pages of runs of the size asked
for, within MLflow's bounds."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service import client as tracking_service

from webapp.experiments.models import Experiment
from webapp.tracking import ingest
from webapp.tracking.mlflow_views import PAGE

POINTS = 2_500


def test_a_long_history_reads_back_exactly_a_page_at_a_time(tracking, monkeypatch):
    mlflow.set_experiment("vision")
    # steps logged out of order and times not in the steps' order, as evaluation workers do
    logged = [Metric("train/loss", 1 / (i + 1), 1_000_000 + (i * 7919) % POINTS, i)
              for i in reversed(range(POINTS))]
    with mlflow.start_run() as run:
        for start in range(0, POINTS, 1000):
            tracking.log_batch(run.info.run_id, metrics=logged[start:start + 1000])
    store = tracking._tracking_client.store

    # when the client reads it 1,000 points a page
    monkeypatch.setattr(tracking_service, "GET_METRIC_HISTORY_MAX_RESULTS", 1000)
    history = tracking.get_metric_history(run.info.run_id, "train/loss")
    first = store.get_metric_history(run.info.run_id, "train/loss", max_results=1000)
    last = store.get_metric_history(run.info.run_id, "train/loss", max_results=1000,
                                    page_token="2000")

    # then every point comes back once, by time, then step (MLflow's server's order), and
    # a page is that many points with the token of the next until the last
    expected = sorted((m.timestamp, m.step, m.value) for m in logged)
    assert [(m.timestamp, m.step, m.value) for m in history] == expected
    assert {m.key for m in history} == {"train/loss"}
    assert len(first) == 1000 and first.token is not None
    assert len(last) == 500 and last.token is None


def test_a_page_of_no_points_is_refused_as_mlflows_server_refuses_it(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    store = tracking._tracking_client.store
    with pytest.raises(MlflowException, match="positive integer") as refused:
        store.get_metric_history(run.info.run_id, "loss", max_results=-1)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert [m.value for m in store.get_metric_history(run.info.run_id, "loss")] == [0.5]


def test_experiments_are_searched_newest_first_a_page_at_a_time(tracking, project):
    for i in range(7):
        tracking.create_experiment(f"sweep-{i}", tags={"team": "ab"[i % 2],
                                                       "mlflow.note.content": "d" * 20_000})

    def every(**search) -> tuple[list[str], int]:
        found, token, pages = [], None, 0
        while True:
            page = tracking.search_experiments(page_token=token, **search)
            found, token, pages = found + [e.name for e in page], page.token, pages + 1
            if token is None:
                return found, pages

    newest = [f"sweep-{i}" for i in reversed(range(7))] + ["vision"]
    assert every(max_results=3) == (newest, 3)
    assert every(filter_string="tags.team = 'b'", order_by=["name DESC"], max_results=2) == (
        ["sweep-5", "sweep-3", "sweep-1"], 2)
    assert every(order_by=["name"]) == (sorted(newest), 1)
    # the tags create_experiment gave, a description of 20,000 characters among them
    assert len(tracking.get_experiment_by_name("sweep-0").tags["mlflow.note.content"]) == 20_000


@pytest.mark.parametrize("size", [0, 50_001])
def test_a_page_past_mlflows_bounds_is_refused(tracking, project, size):
    for search in (lambda: tracking.search_runs([str(project.pk)], max_results=size),
                   lambda: tracking.search_experiments(max_results=size)):
        with pytest.raises(MlflowException, match="max_results") as refused:
            search()
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_page_of_runs_holds_as_many_as_the_client_asks(tracking, project, owner):
    run = ingest.create_run(owner, project, "template", {})
    Experiment.objects.bulk_create(Experiment(
        project=project, name=f"trial-{i}", kind=run.kind, spec=run.spec, status=run.status,
        created_by=owner, started_at=run.started_at) for i in range(PAGE))

    # when a script asks for more runs than a default page holds, it gets them all at once
    found = tracking.search_runs([str(project.pk)], max_results=PAGE + 5)
    assert len(found) == PAGE + 1 and found.token is None
    assert len(tracking.search_runs([str(project.pk)])) == PAGE


def test_runs_come_latest_started_first_as_mlflows_server_lists_them(tracking, project):
    # given runs a script imported with their own start times, not in the order they started
    for started in (3_000, 1_000, 2_000):
        run = tracking.create_run(str(project.pk), start_time=1_600_000_000_000 + started,
                                  run_name=f"started-{started}")
        tracking.set_terminated(run.info.run_id)

    def names(**search) -> list[str]:
        return [r.info.run_name for r in tracking.search_runs([str(project.pk)], **search)]

    latest_first = ["started-3000", "started-2000", "started-1000"]
    assert names() == latest_first
    assert names(max_results=2) == latest_first[:2]
    assert names(filter_string="attributes.status = 'FINISHED'") == latest_first
