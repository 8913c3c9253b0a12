"""A repeat in Chromium: the New experiment form with "Repeat over seeds", the group page's
mean curve with its band and each seed's curve behind it (screenshot in docs/)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_browser import browser, page, wait_for  # noqa: F401 - fixtures
from tests.e2e.test_pages_browser import OVERFLOW, PHONE_WIDTH

pytestmark = pytest.mark.e2e
# The docs' screenshot is written again only when asked: a test run leaves the checkout as it is.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "repeats-group.png"
SEEDS, EPOCHS = 4, 6
FIELDS = {"arch": "mlp", "hidden_sizes": "32", "batch_size": "32", "epochs": str(EPOCHS),
          "dropout": "0.2", "repeats": str(SEEDS)}
# The group chart's traces: [mode, fill, points] each.
TRACES = """() => document.getElementById('group-chart').data.map(
  (t) => [t.mode, t.fill || '', t.y.filter((v) => v !== null).length])"""


def wait_for_seeds(page: Any, timeout: float = 240.0) -> list[str]:  # noqa: F811
    """Reload the group page until every seed's badge says it ended; their statuses."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = page.locator("#group-runs .badge").all_inner_texts()
        if statuses and all(s in ("succeeded", "failed", "cancelled") for s in statuses):
            return statuses
        assert time.monotonic() < deadline, f"seeds still {statuses}"
        time.sleep(1.0)
        page.reload()


def test_a_repeat_from_the_form_draws_its_mean_band_and_seeds(page: Any,  # noqa: F811
                                                              stack: Stack,
                                                              tmp_path: Path) -> None:
    # given the New experiment form filled with a small digits MLP, repeated over 4 seeds
    page.goto(f"{stack.url}/experiments/new/")
    page.fill("#id_name", "digits mlp ×4")
    for field, value in FIELDS.items():
        if page.locator(f"select#id_{field}").count():
            page.select_option(f"#id_{field}", value)
        else:
            page.fill(f"#id_{field}", value)

    # when it is submitted and its seeds have trained
    page.click("text=Start training")
    page.wait_for_url(re.compile(r".*/groups/\d+/$"))
    statuses = wait_for_seeds(page)

    # then every seed succeeded, and the chart draws each seed's curve and the mean in its band
    assert statuses == ["succeeded"] * SEEDS
    page.select_option("#group-metric", "val_loss")
    wait_for(page, "document.getElementById('group-chart').data !== undefined")
    traces = page.evaluate(TRACES)
    seeds, band = traces[:SEEDS], traces[SEEDS:]
    assert all(mode == "lines" and points == EPOCHS for mode, _, points in seeds), traces
    assert [fill for _, fill, _ in band] == ["", "tonexty", ""]
    assert band[2][0] == "lines+markers" and band[2][2] == EPOCHS
    # and the finals table gives the seeds' mean ± std
    assert "±" in page.locator('#group-finals tr[data-metric="val_acc"]').inner_text()

    # when the band is switched to the 95% interval of the mean
    page.select_option("#group-band", "ci95")
    title = page.evaluate("document.getElementById('group-chart').layout.title.text")

    # then the chart says so; the page is kept as the docs' screenshot
    assert "95% interval of the mean" in title
    page.set_viewport_size({"width": 1200, "height": 900})
    page.locator("#group-chart").scroll_into_view_if_needed()
    time.sleep(0.5)  # Plotly's resize after the viewport change
    shot = DOCS_SCREENSHOT if os.environ.get("FITBOARD_UPDATE_SCREENSHOTS") == "1" \
        else tmp_path / DOCS_SCREENSHOT.name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # and on a 390 px phone the page, its seeds table included, does not scroll sideways
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
    page.reload()
    page.wait_for_load_state("networkidle")
    fit = page.evaluate(OVERFLOW, PHONE_WIDTH)
    assert fit["scroll"] <= PHONE_WIDTH and fit["past"] == [], fit
    assert page.evaluate("(t => t.scrollWidth <= t.clientWidth)"
                         "(document.getElementById('group-runs'))"), "the seeds table scrolls"
