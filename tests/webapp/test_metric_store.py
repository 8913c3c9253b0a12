"""Metric storage for charts: min/max bucketing that keeps spikes, and step ranges read at full
resolution for zooms."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from webapp.experiments import metric_store
from webapp.experiments.metric_store import Series
from webapp.experiments.models import MetricChunk


def noisy_series(n: int, seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1, dtype=np.int64)
    return Series(steps, rng.normal(size=n), 1e9 + steps * 0.01)


def store_points(experiment_id: int, key: str, series: Series, chunk: int = 1000) -> None:
    """Write ``series`` the way the reporter does: one row per flush of ``chunk`` points."""
    for first in range(0, len(series), chunk):
        part = slice(first, first + chunk)
        metric_store.append(experiment_id, {key: list(zip(
            series.steps[part].tolist(), series.values[part].tolist(),
            series.times[part].tolist(), strict=True))})


def test_bucketing_keeps_the_minimum_and_maximum_of_every_bucket():
    # given 100,000 noisy points
    series = noisy_series(100_000)

    # when they are reduced to at most 2000
    shown = metric_store.downsample(series, 2000)

    # then each bucket of consecutive points contributes its min and its max, in step order
    assert len(shown) <= 2000
    assert np.all(np.diff(shown.steps) > 0)
    buckets = (2000 - 2) // 2
    size = -(-len(series) // buckets)
    kept = set(shown.steps.tolist())
    for first in range(0, len(series), size):
        values = series.values[first:first + size]
        assert int(series.steps[first + int(values.argmin())]) in kept
        assert int(series.steps[first + int(values.argmax())]) in kept


def test_bucketing_keeps_a_single_spike_and_both_ends():
    # given a flat curve with one spike
    series = noisy_series(50_000)
    series.values[:] = 1.0
    series.values[31_337] = 1e6

    # when it is bucketed
    shown = metric_store.downsample(series, 500)

    # then the spike, the first and the last point are all there
    assert 1e6 in shown.values.tolist()
    assert shown.steps[0] == 1 and shown.steps[-1] == 50_000


def test_bucketing_prefers_finite_values_and_keeps_an_all_nan_bucket():
    # given a run that diverged: its last points are NaN
    series = noisy_series(10_000)
    series.values[-100:] = np.nan
    series.values[5] = np.inf

    # when it is bucketed
    shown = metric_store.downsample(series, 200)

    # then finite minima/maxima win their buckets and the NaN tail still shows as a NaN
    assert np.isnan(shown.values[-1])
    assert np.isfinite(shown.values[: len(shown) // 2]).all()


def test_a_short_series_is_not_bucketed():
    series = noisy_series(300)

    assert metric_store.downsample(series, 2000) is series


def test_a_step_range_is_read_at_full_resolution(make_experiment):
    # given a run with 20,000 points stored in 20 chunks
    experiment = make_experiment()
    store_points(experiment.pk, "loss", noisy_series(20_000))

    # when the steps 5,000..5,999 are read
    part = metric_store.read(experiment.pk, ["loss"], 5000, 5999)["loss"]

    # then every point of the range is there, and nothing outside it
    assert part.steps.tolist() == list(range(5000, 6000))


def test_a_rewritten_step_keeps_its_last_value(make_experiment):
    experiment = make_experiment()
    metric_store.append(experiment.pk, {"loss": [(1, 1.0, 1.0), (2, 2.0, 2.0)]})
    metric_store.append(experiment.pk, {"loss": [(2, 5.0, 3.0), (3, 3.0, 4.0)]})

    series = metric_store.read(experiment.pk)["loss"]

    assert series.steps.tolist() == [1, 2, 3]
    assert series.values.tolist() == [1.0, 5.0, 3.0]


def test_the_data_endpoint_sends_at_most_2000_points_per_metric(owner_client, make_experiment):
    # given a run with 30,000 points of one metric
    experiment = make_experiment()
    store_points(experiment.pk, "loss", noisy_series(30_000), chunk=5000)

    # when the run page asks for its curves
    body = owner_client.get(reverse("experiment-metrics", args=[experiment.pk])).json()

    # then it gets a bucketed trace that says how many points it stands for
    loss = body["metrics"]["loss"]
    assert len(loss["steps"]) <= metric_store.MAX_POINTS
    assert loss["total"] == 30_000 and loss["bucketed"] is True


def test_the_data_endpoint_returns_a_zoomed_range_at_full_resolution(owner_client,
                                                                     make_experiment):
    experiment = make_experiment()
    store_points(experiment.pk, "loss", noisy_series(30_000), chunk=5000)

    url = reverse("experiment-metrics", args=[experiment.pk])
    body = owner_client.get(url, {"x0": 10_000, "x1": 11_499, "keys": "loss"}).json()

    loss = body["metrics"]["loss"]
    assert loss["steps"] == list(range(10_000, 11_500))
    assert loss["bucketed"] is False


@pytest.mark.parametrize("bad", ["abc", "nan", "inf"])
def test_the_data_endpoint_rejects_a_range_that_is_not_a_number(owner_client, make_experiment,
                                                                 bad):
    experiment = make_experiment()

    response = owner_client.get(reverse("experiment-metrics", args=[experiment.pk]), {"x0": bad})

    assert response.status_code == 400
    assert "x0" in response.json()["error"]


def test_a_long_run_is_charted_from_summaries_that_keep_its_spike(owner_client, make_experiment):
    # given a run with more points than a chart reads in full, and one spike among them
    experiment = make_experiment()
    series = noisy_series(metric_store.FULL_LIMIT + 6000)
    series.values[40_321] = 99.0
    store_points(experiment.pk, "loss", series, chunk=5000)

    # when the run page asks for its curves
    body = owner_client.get(reverse("experiment-metrics", args=[experiment.pk])).json()

    # then the trace comes from the summaries, stands for every point, and still has the spike
    loss = body["metrics"]["loss"]
    assert len(loss["steps"]) <= metric_store.MAX_POINTS
    assert loss["total"] == len(series)
    assert 99.0 in loss["values"] and min(loss["values"]) == pytest.approx(series.values.min())


def test_rows_written_before_summaries_are_charted_in_full(owner_client, make_experiment):
    # given a run whose rows have no summary (stored by an older version)
    experiment = make_experiment()
    store_points(experiment.pk, "loss", noisy_series(3000))
    MetricChunk.objects.filter(experiment=experiment).update(summary=b"")

    body = owner_client.get(reverse("experiment-metrics", args=[experiment.pk])).json()

    assert body["metrics"]["loss"]["total"] == 3000


def test_compacting_an_ended_run_leaves_few_rows_and_every_point(make_experiment):
    # given a run written 100 points at a time, with one step written twice
    experiment = make_experiment()
    series = noisy_series(metric_store.COMPACT_POINTS + 5000)
    store_points(experiment.pk, "loss", series, chunk=100)
    metric_store.append(experiment.pk, {"loss": [(7, 42.0, 1e9)], "lr": [(1, 0.1, 1e9)]})

    # when it is compacted
    fewer = metric_store.compact(experiment.pk)

    # then "loss" is in two rows, "lr" untouched, and reads back the same points
    rows = MetricChunk.objects.filter(experiment=experiment)
    assert rows.filter(key="loss").count() == 2 and rows.filter(key="lr").count() == 1
    assert fewer == len(series) // 100 + 1 - 2
    loss = metric_store.read(experiment.pk)["loss"]
    assert loss.steps.tolist() == series.steps.tolist()
    assert loss.values[6] == 42.0 and loss.values[100] == series.values[100]


def test_a_chart_read_while_the_run_is_compacted_has_every_point(make_experiment, monkeypatch):
    # given a run written 10 points at a time, the way a watched run's reporter writes
    experiment = make_experiment()
    series = noisy_series(300)
    store_points(experiment.pk, "loss", series, chunk=10)
    real_full_rows = metric_store._full_rows
    compacted: list[int] = []

    def compact_in_between(ids: list[int]) -> list[tuple[int, str, bytes, bytes, bytes]]:
        # the run ends and is compacted between the chart's two reads (the worker commits it
        # while the page reads), once
        if not compacted:
            compacted.append(metric_store.compact(experiment.pk))
        return real_full_rows(ids)

    monkeypatch.setattr(metric_store, "_full_rows", compact_in_between)

    # when its chart is read
    chart = metric_store.read_charts({experiment.pk: (None, None)})[experiment.pk]["loss"]

    # then the compaction did happen in between, and the chart still has every point
    assert compacted == [30 - 1]
    assert chart.series.steps.tolist() == series.steps.tolist()
    assert chart.series.values.tolist() == series.values.tolist()
