"""A run logged from a script, as Chromium shows it: the run page draws the points logged
before it opened, then the ones logged while it is open (over the WebSocket, no reload), and
the run's end; its diagnostics and compare pages draw without a JavaScript error (the ``page``
fixture fails the test on any); a run of one point is a marker on the compare chart."""

from __future__ import annotations

import math

import pytest

from tests.e2e.test_browser import browser, page, wait_for
from tests.e2e.test_mlflow_tracking import create_token

pytestmark = pytest.mark.e2e
__all__ = ["browser", "page"]  # the fixtures, shared with the main browser test

# The points of each chart's traces, by chart id (and their names).
DRAWN = """() => Object.fromEntries(
  ["chart-loss", "chart-metric", "chart-sys", "chart-sys-other", "chart-extra-0",
   "chart-extra"].map((id) => {
    const gd = document.getElementById(id);
    return [id, gd ? (gd.data || []).map((t) => (t.x || []).length) : null];
  }))"""
NAMES = "(id) => document.getElementById(id).data.map((t) => t.name)"
CARD_HIDDEN = "((id) => document.getElementById(id).parentElement.hidden)"


def log_steps(client, run_id: str, steps: range) -> None:
    from mlflow.entities import Metric

    metrics = []
    for step in steps:
        values = {"train_loss": 2.0 * math.exp(-step / 8) + 0.05,
                  "val_loss": 2.1 * math.exp(-step / 9) + 0.08,
                  "val_accuracy": 0.5 + 0.45 * (1 - math.exp(-step / 9))}
        metrics += [Metric(key, value, 1_700_000_000_000 + step, step)
                    for key, value in values.items()]
    client.log_batch(run_id, metrics=metrics)


def log_system_samples(client, run_id: str, samples: int) -> None:
    """What mlflow's ``log_system_metrics=True`` logs: a sample every 10 s, stepped by sample,
    and a metric of the script's own beside it."""
    from mlflow.entities import Metric

    client.log_batch(run_id, metrics=[
        Metric(key, value, 1_700_000_000_000 + 10_000 * sample, sample)
        for sample in range(samples)
        for key, value in (("system/cpu_utilization_percentage", 40.0 + sample),
                           ("system/system_memory_usage_percentage", 12.5),
                           ("system/system_memory_usage_megabytes", 2048.0 + sample),
                           ("grad_norm", 1.0 / (sample + 1)))])


def script_run(stack, monkeypatch, experiment_name: str, run_name: str):
    """A run created by a script through the mlflow client, with a token of a logged-in user;
    the client, its experiment's id and the run's."""
    from mlflow import MlflowClient

    session = stack.login()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", create_token(stack, session))
    client = MlflowClient(tracking_uri=stack.url)
    experiment = client.create_experiment(experiment_name)
    return client, experiment, client.create_run(experiment, run_name=run_name).info.run_id


def test_a_script_runs_page_draws_its_points_and_the_ones_logged_while_open(page, stack,
                                                                            monkeypatch):
    # given a run a script logs through the mlflow client, 10 steps of three metrics so far
    client, experiment, run_id = script_run(stack, monkeypatch, "browser-external",
                                            "script in chromium")
    log_steps(client, run_id, range(10))
    log_system_samples(client, run_id, 3)

    # when its page is opened from the link mlflow's client prints (MLflow's UI route)
    page.goto(f"{stack.url}/#/experiments/{experiment}/runs/{run_id}")
    page.wait_for_url(f"**/experiments/{run_id}/")
    page.evaluate("window.fitboardNoReload = true")

    # then the points logged before are drawn: loss (training, validation) and accuracy
    wait_for(page, "(document.getElementById('chart-metric').data || [])"
                   ".some((t) => t.x && t.x.length)", timeout=30_000)
    before = page.evaluate(DRAWN)
    assert max(before["chart-loss"]) == 10 and max(before["chart-metric"]) == 10, before
    # and mlflow's system metrics on the System chart (percentages) and one of their own (the
    # rest), apart from the script's own metric
    assert before["chart-sys"] == [3, 3] and before["chart-sys-other"] == [3], before
    assert page.evaluate(NAMES, "chart-sys") == ["cpu utilization %", "system memory usage %"]
    # and the script's own metric on a chart of its own, named by it
    assert before["chart-extra-0"] == [3] and before["chart-extra"] is None, before
    assert page.evaluate(
        "document.getElementById('chart-extra-0').layout.title.text") == "grad_norm"
    # and, the run going on, the learning-rate card waits for points
    assert page.evaluate(f"{CARD_HIDDEN}('chart-lr')") is False

    # and the ones logged while it is open arrive without a reload, as does the run's end
    log_steps(client, run_id, range(10, 25))
    client.set_terminated(run_id, "FINISHED")
    wait_for(page, "document.getElementById('status-badge').textContent.trim() === 'succeeded'",
             timeout=30_000)
    wait_for(page, "Math.max(...document.getElementById('chart-loss').data"
                   ".map((t) => (t.x || []).length)) === 25", timeout=30_000)
    after = page.evaluate(DRAWN)
    assert max(after["chart-metric"]) == 25, after
    # and, the run ended, the learning-rate card (nothing logged) is left out, System kept
    wait_for(page, f"{CARD_HIDDEN}('chart-lr')", timeout=10_000)
    assert page.evaluate(f"{CARD_HIDDEN}('chart-sys')") is False
    assert page.evaluate("window.fitboardNoReload === true")
    assert not page.locator("#verdict-badge").is_hidden()

    # and its diagnostics and compare pages draw too
    page.goto(f"{stack.url}/experiments/{run_id}/diagnostics/")
    page.wait_for_selector("#verdict-kind")
    page.goto(f"{stack.url}/compare/?ids={run_id}")
    page.wait_for_load_state("networkidle")


def test_a_page_opened_as_the_run_starts_grows_the_charts_its_metrics_need(page, stack,
                                                                           monkeypatch):
    # given a script's run that has logged nothing yet, its page open (as a user opens the
    # link the mlflow client prints when the run starts)
    client, _, run_id = script_run(stack, monkeypatch, "browser-external-live",
                                   "opened at the start")
    page.goto(f"{stack.url}/experiments/{run_id}/")
    page.evaluate("window.fitboardNoReload = true")
    wait_for(page, "document.getElementById('chart-sys').data !== undefined", timeout=30_000)
    assert page.evaluate(DRAWN)["chart-extra-0"] is None

    # when the script then logs system metrics and a metric of its own
    log_system_samples(client, run_id, 3)

    # then, without a reload, the System chart draws the script's percentages, the other
    # units get a chart, and the script's own metric one of its own, named by it
    wait_for(page, "(document.getElementById('chart-extra-0') || {}).data !== undefined && "
                   "document.getElementById('chart-extra-0').data[0].x.length === 3",
             timeout=30_000)
    drawn = page.evaluate(DRAWN)
    assert drawn["chart-sys"] == [3, 3] and drawn["chart-sys-other"] == [3], drawn
    assert page.evaluate(NAMES, "chart-sys") == ["cpu utilization %", "system memory usage %"]
    assert page.evaluate(
        "document.getElementById('chart-extra-0').layout.title.text") == "grad_norm"
    assert page.evaluate("window.fitboardNoReload === true")


def test_a_run_of_one_point_is_drawn_on_the_compare_chart(page, stack, monkeypatch):
    # given a script's run of 10 steps and one that logged a single step (one epoch)
    client, experiment, long_id = script_run(stack, monkeypatch, "browser-compare-one",
                                             "ten steps")
    log_steps(client, long_id, range(10))
    short_id = client.create_run(experiment, run_name="one step").info.run_id
    log_steps(client, short_id, range(1))

    # when both are compared
    page.goto(f"{stack.url}/compare/?ids={long_id}&ids={short_id}")
    wait_for(page, "(document.getElementById('compare-chart').data || []).length === 2",
             timeout=30_000)

    # then the single point is a marker: a line of one point drew nothing beside its legend
    traces = page.evaluate("document.getElementById('compare-chart').data"
                           ".map((t) => [t.x.length, t.mode])")
    assert sorted(traces) == [[1, "lines+markers"], [10, "lines"]]
