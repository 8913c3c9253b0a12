"""What a crawl of every page in Chromium found wrong, as a user sees it: a finished run's
charts said "No points were logged" while its points were still on their way (and for good
where no WebSocket got through)."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import browser, page, wait_for
from tests.e2e.test_external_run_browser import log_steps, script_run

pytestmark = pytest.mark.e2e
__all__ = ["browser", "page"]  # the fixtures, shared with the main browser test

# The text in the middle of the loss chart (an empty chart's note), or "" when it has none.
LOSS_NOTE = """() => {
  const note = document.querySelector("#chart-loss .annotation-text");
  return note ? note.textContent : "";
}"""
LOSS_POINTS = """() => (document.getElementById("chart-loss").data || [])
  .reduce((n, t) => n + (t.x ? t.x.length : 0), 0)"""


def test_a_finished_runs_charts_load_without_a_socket_never_saying_no_points(page, stack,
                                                                             monkeypatch):
    # Given a script's finished run of 12 logged steps
    client, _, run_id = script_run(stack, monkeypatch, "crawl-no-socket", "finished script")
    log_steps(client, run_id, range(12))
    client.set_terminated(run_id, "FINISHED")
    # and a network where the page's WebSocket opens but never hears anything
    page.route_web_socket("**/ws/runs/**", lambda ws: None)

    # When its page is opened
    page.goto(f"{stack.url}/experiments/{run_id}/")
    wait_for(page, "document.getElementById('chart-loss').data !== undefined", timeout=30_000)

    # Then, while nothing has come, the charts say they are loading, not that nothing was logged
    assert page.evaluate(LOSS_NOTE) == "Loading the curves…"
    # and the curves are then read from the metrics endpoint and drawn
    wait_for(page, f"({LOSS_POINTS})() > 0", timeout=20_000)
    assert page.evaluate(LOSS_POINTS) == 24  # training and validation loss, 12 steps each
    assert page.evaluate(LOSS_NOTE) == ""


# The height of a chart's plot area in px (between its top margin, where the legend is, and
# the x axis), and the chart's own.
PLOT_HEIGHT = """(id) => {
  const gd = document.getElementById(id);
  return [gd._fullLayout._size.h, gd._fullLayout.height];
}"""


@pytest.mark.parametrize("width", [390, 1440])
def test_a_chart_of_many_metrics_keeps_its_plot_under_a_long_legend(page, stack, monkeypatch,
                                                                    width):
    # Given a script's finished run of 40 metrics of its own (12 get a chart each, 28 share
    # "More metrics")
    from mlflow.entities import Metric

    client, _, run_id = script_run(stack, monkeypatch, f"crawl-legend-{width}", "40 metrics")
    client.log_batch(run_id, metrics=[
        Metric(f"layer{layer}/grad_norm", 1.0 / (step + 1), 1_700_000_000_000 + step, step)
        for layer in range(40) for step in range(20)])
    client.set_terminated(run_id, "FINISHED")

    # When its page is opened on a screen this wide
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{stack.url}/experiments/{run_id}/")
    wait_for(page, "(document.getElementById('chart-extra') || {}).data !== undefined && "
                   "document.getElementById('chart-extra').data.length === 28", timeout=30_000)

    # Then the shared chart's plot is as tall as a one-metric chart's: its legend's rows
    # (scrolling past six) grew the chart, not squeezed its plot to a strip
    plot, chart = page.evaluate(PLOT_HEIGHT, "chart-extra")
    single, _ = page.evaluate(PLOT_HEIGHT, "chart-extra-0")
    assert plot >= single - 1 and plot > 150, (plot, single)
    assert chart <= 340 + 22 * 5 + 1, chart
