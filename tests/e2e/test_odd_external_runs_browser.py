"""Runs that scripts log with odd data, as Chromium shows them on a desktop and on a phone: the
pages draw without a console or page error and stay within the screen's width."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Stack
from tests.e2e.test_browser import browser
from tests.e2e.test_mlflow_tracking import create_token

pytestmark = pytest.mark.e2e
__all__ = ["browser"]  # the fixture, shared with the main browser test

WIDTHS = (1280, 390)  # px: a desktop, a phone
OVERFLOW = "document.documentElement.scrollWidth - innerWidth"
# The y values of the diagnostics page's charts' traces, by chart.
DIAGNOSTICS_CHARTS = """() => Object.fromEntries(["diag-loss", "diag-acc"].map((id) =>
  [id, (document.getElementById(id).data || []).map((t) => t.y)]))"""
# What each run logs at each step (no training accuracy: a script need not log one).
CURVES = {"train_loss": lambda step: 2.0 / (step + 1), "val_loss": lambda step: 2.1 / (step + 1),
          "val_accuracy": lambda step: 0.5 + 0.04 * step}


@pytest.fixture(scope="module")
def odd_runs(stack: Stack) -> dict[str, str]:
    """Runs logged with the real mlflow client, by what is odd about them: a plain one, one
    whose losses hold NaN and infinities (mid-run and at the end), one whose param has a
    name and a value too long for a line."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_TOKEN", create_token(stack, stack.login()))
        client = MlflowClient(tracking_uri=stack.url)
        experiment = client.create_experiment("odd runs")
        runs: dict[str, str] = {}
        non_finite = {3: math.nan, 5: math.inf, 7: -math.inf, 9: math.nan}
        for name, odd in (("plain", {}), ("non-finite", non_finite), ("long params", {})):
            run_id = runs[name] = client.create_run(experiment, run_name=name).info.run_id
            client.log_batch(run_id, metrics=[
                Metric(key, odd.get(step, curve(step)), 1_700_000_000_000 + step, step)
                for step in range(10) for key, curve in CURVES.items()])
            client.set_terminated(run_id, "FINISHED")
        client.log_param(runs["long params"], "k" * 250, "x" * 6000)  # MLflow's longest
    return runs


def logged_in_page(browser: Any, stack: Stack, width: int) -> tuple[Any, list[str]]:
    """A logged-in page ``width`` px wide, and the errors its console and scripts report."""
    page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda message: errors.append(f"console: {message.text}")
            if message.type == "error" else None)
    page.goto(f"{stack.url}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page, errors


def test_odd_runs_pages_draw_without_errors_within_the_screen(browser, stack, odd_runs):
    # given runs logged by scripts with NaN and infinite losses, and with a very long param
    plain, non_finite, long_params = (odd_runs[name] for name in
                                      ("plain", "non-finite", "long params"))
    pages = {
        "diagnostics of non-finite losses": f"/experiments/{non_finite}/diagnostics/",
        "comparison with a long param": f"/compare/?ids={plain},{long_params}",
    }
    for width in WIDTHS:
        page, errors = logged_in_page(browser, stack, width)
        try:
            for what, path in pages.items():
                # when each page is opened on a desktop and on a phone
                errors.clear()
                page.goto(f"{stack.url}{path}")
                page.wait_for_load_state("networkidle")

                # then it shows without an error and nothing widens it past the screen
                assert errors == [], f"{what}, {width} px: {errors}"
                too_wide = page.evaluate(OVERFLOW)
                assert too_wide <= 0, f"{what}, {width} px: {too_wide} px wider than the screen"
            # and the diagnostics charts draw the losses, NaN and infinity as gaps (null), and
            # the validation accuracy alone
            page.goto(f"{stack.url}/experiments/{non_finite}/diagnostics/")
            drawn = page.evaluate(DIAGNOSTICS_CHARTS)
            assert len(drawn["diag-loss"]) == 2, drawn
            assert all(len(y) > 5 and None in y for y in drawn["diag-loss"]), drawn
            assert [len(y) for y in drawn["diag-acc"]] == [len(drawn["diag-loss"][0])], drawn
        finally:
            page.context.close()


# The compare page's chart: the x-axis title's box and the legend's visible box (its
# background; a legend that scrolls holds more below it), as [top, bottom].
CHART_BOXES = """() => {
  const gd = document.getElementById("compare-chart");
  const box = (sel) => { const b = gd.querySelector(sel).getBoundingClientRect();
                         return [b.top, b.bottom]; };
  return {title: box(".g-xtitle"), legend: box(".legend .bg"), chart: box(".main-svg")};
}"""
# Each of the compare page's tables: its width, and its card's (which scrolls sideways).
TABLE_CARDS = """() => ["metrics-table", "diff-table"].map((id) => {
  const card = document.getElementById(id).parentElement;
  return {id, table: document.getElementById(id).scrollWidth, card: card.clientWidth,
          scrolls: getComputedStyle(card).overflowX};
})"""


@pytest.fixture(scope="module")
def fourteen_runs(stack: Stack) -> list[str]:
    """Fourteen runs logged with the real mlflow client, each with its own learning rate and
    a data set's name, so that every column of the configuration table differs."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_TOKEN", create_token(stack, stack.login()))
        client = MlflowClient(tracking_uri=stack.url)
        experiment = client.create_experiment("fourteen runs")
        runs = []
        for index in range(14):
            run_id = client.create_run(experiment, run_name=f"upload-{index}-mlp").info.run_id
            client.log_batch(run_id, params=[Param("lr", str(0.001 * (index + 1))),
                                             Param("dataset", f"breast_cancer_semicolon_{index}")],
                             metrics=[Metric(key, curve(step) + index / 10,
                                             1_700_000_000_000 + step, step)
                                      for step in range(10) for key, curve in CURVES.items()])
            client.set_terminated(run_id, "FINISHED")
            runs.append(run_id)
    return runs


def test_fourteen_runs_compared_scroll_their_tables_and_keep_the_legend_off_the_axis(
        browser, stack, fourteen_runs):
    for width in WIDTHS:
        # given fourteen runs compared on a desktop and on a phone
        page, errors = logged_in_page(browser, stack, width)
        try:
            page.goto(f"{stack.url}/compare/?ids={','.join(fourteen_runs)}")
            page.wait_for_function("() => window.fitboardCompare.loaded"
                                   " && window.fitboardCompare.traces === 14")
            found = page.evaluate(CHART_BOXES)
            cards = page.evaluate(TABLE_CARDS)

            # then nothing widens the page past the screen: the tables scroll in their cards
            assert errors == [], f"{width} px: {errors}"
            assert page.evaluate(OVERFLOW) <= 0, f"{width} px"
            assert all(card["scrolls"] == "auto" for card in cards), cards
            if width < 800:
                assert all(card["table"] > card["card"] for card in cards), cards
            # and the legend stands under the x-axis title, inside the chart (placed at a share
            # of the plot's height, 14 runs' legend on a phone covered the title)
            assert found["title"][1] <= found["legend"][0] + 0.5, (width, found)
            assert found["legend"][1] <= found["chart"][1] + 0.5, (width, found)
        finally:
            page.context.close()
