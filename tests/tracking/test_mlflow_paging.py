"""The paged reads of the mlflow client (3.17, pinned) against Fitboard's live server, at a
small scale of what scripts do at a large one: a metric's history read a page at a time (the
client reads 25,000 points a page: a run of 100,000 points is four pages), experiments searched
a page at a time, each in the order of MLflow's server, and pages of runs of the size asked
for, within MLflow's bounds."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service import client as tracking_service

from webapp.experiments import metric_store
from webapp.experiments.models import Experiment, MetricChunk
from webapp.tracking import history, ingest
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


def read_pages(run: Experiment, key: str, limit: int, logged=lambda steps: steps
               ) -> tuple[list[tuple[int, int, str]], list[history.Page]]:
    """Every page of the metric's history, token after token; and the points they joined to,
    as (time, step, value) with the value's repr (NaN equal to NaN)."""
    pages, after = [], None
    while True:
        page = history.page(run.pk, key, logged, after, limit)
        pages.append(page)
        if page.next_token is None:
            break
        after = history.Cursor.of_token(page.next_token)
    joined = [(int(t), int(s), repr(float(v))) for p in pages
              for t, s, v in zip(p.stamps, p.steps, p.values, strict=True)]
    return joined, pages


def whole_history(run: Experiment, key: str, logged=lambda steps: steps
                  ) -> list[tuple[int, int, str]]:
    """The history read whole, in MLflow's server's order (by time, step, value)."""
    series = metric_store.read(run.pk, [key])[key]
    steps, stamps = logged(series.steps), history.stamps_of(series.times)
    order = np.lexsort((series.values, steps, stamps))
    return [(int(stamps[i]), int(steps[i]), repr(float(series.values[i]))) for i in order]


def test_each_page_of_a_long_history_reads_only_the_rows_that_hold_it(run, monkeypatch):
    # given a run's metric of 10,000 points, stored as a live run stores them: 100 rows of 100
    # steps each, in the order they were logged
    for row in range(100):
        metric_store.append(run.pk, {"loss": [(step, 1 / (step + 1), 1_700_000_000 + step / 10)
                                              for step in range(row * 100, row * 100 + 100)]})
    read: list[list[int]] = []
    read_rows = metric_store.read_rows

    def spying(pks):
        read.append(list(pks))
        return read_rows(pks)

    monkeypatch.setattr(metric_store, "read_rows", spying)

    # when it is read 250 points a page
    joined, pages = read_pages(run, "loss", 250)

    # then the pages join to exactly the whole history, each page 250 points, and a page read
    # the 3 or 4 rows that hold it and its next point, not the 100
    assert joined == whole_history(run, "loss")
    assert [len(p.steps) for p in pages] == [250] * 40
    assert len(read) <= 2 * len(pages)
    assert max(len(pks) for pks in read) <= 4


def test_a_page_whose_rows_are_compacted_while_it_reads_still_joins(run, monkeypatch):
    # given a run's metric of 20 rows of 50 points, whose second page is read while the run's
    # end compacts its rows into one (the rows the page chose are gone when it reads them)
    for row in range(20):
        metric_store.append(run.pk, {"acc": [(step, step / 1000, 1_700_000_000 + step)
                                             for step in range(row * 50, row * 50 + 50)]})
    before = whole_history(run, "acc")
    first = history.page(run.pk, "acc", lambda steps: steps, None, 300)
    read_rows = metric_store.read_rows

    def compacting_first(pks):
        monkeypatch.setattr(metric_store, "read_rows", read_rows)
        assert metric_store.compact(run.pk) == 19
        return read_rows(pks)

    monkeypatch.setattr(metric_store, "read_rows", compacting_first)

    # when the rest is read a page at a time from the first page's token
    after = history.Cursor.of_token(first.next_token)
    second = history.page(run.pk, "acc", lambda steps: steps, after, 300)

    # then the second page is the next 300 points all the same, and tells that more follow
    assert [int(s) for s in np.concatenate([first.steps, second.steps])] == [
        step for _, step, _ in before[:600]]
    assert second.next_token is not None


@pytest.mark.parametrize("limit", [1, 7, 64])
@pytest.mark.parametrize("steps_as_logged", ["stored", "all at step 0"])
def test_pages_join_to_exactly_the_history_however_its_points_lie(run, limit, steps_as_logged):
    # given rows whose steps overlap (a later row's point replaces its step's), whose times go
    # back and forth with many alike to the millisecond, with NaN and infinite values, and some
    # rows written before rows kept their times
    rng = np.random.default_rng(7)
    for _ in range(30):
        steps = rng.choice(400, size=int(rng.integers(1, 40)), replace=False)
        times = 1_700_000_000 + rng.integers(0, 60, size=len(steps)) / 1000
        values = rng.choice([0.5, 0.25, -0.0, math.nan, math.inf, -1.0], size=len(steps))
        metric_store.append(run.pk, {"loss": list(zip(steps.tolist(), values.tolist(),
                                                      times.tolist(), strict=True))})
    old = MetricChunk.objects.filter(experiment=run).order_by("id").values_list("pk", flat=True)
    MetricChunk.objects.filter(pk__in=list(old)[::4]).update(first_time=None, last_time=None)
    logged = (lambda steps: steps) if steps_as_logged == "stored" else np.zeros_like

    # when it is read a page at a time
    joined, pages = read_pages(run, "loss", limit, logged)

    # then the pages join to exactly the whole history in MLflow's order, every page full
    # but the last
    assert joined == whole_history(run, "loss", logged)
    assert all(len(p.steps) == limit for p in pages[:-1]) and 0 < len(pages[-1].steps) <= limit


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
