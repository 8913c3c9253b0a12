"""The comparison in a real browser: start a scratch Fitboard (``manage.py up`` with its own
database), train three runs through the form, select them on the list, open Compare, and check
three traces, smoothing, and a zoom that brings more points; saves ``docs/compare.png``.

    .venv/bin/python docs/compare_check.py        # about a minute on 2 cores

Uses Debian's Chromium (/usr/bin/chromium); no browser is downloaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs"
PASSWORD = "compare-check-123"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
# Three MLPs on digits that differ in learning rate; batch 8 gives 2,160 batch-loss points per
# run, more than the 2,000 a chart gets, so the overview is bucketed and a zoom refines it.
RUNS = [("mlp lr 3e-4", "0.0003"), ("mlp lr 1e-3", "0.001"), ("mlp lr 1e-2", "0.01")]


def start_site(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    sys.path.insert(0, str(ROOT))
    from tests.stack import free_port

    port = free_port()
    env = {**os.environ, "FITBOARD_VAR_DIR": str(tmp / "var"),
           "DATABASE_URL": f"sqlite:///{tmp / 'check.sqlite3'}",
           "FITBOARD_ADMIN_PASSWORD": PASSWORD, "FITBOARD_TORCH_THREADS": "1"}
    log = (tmp / "up.log").open("wb")
    process = subprocess.Popen([sys.executable, "manage.py", "up", "--port", str(port),
                                "--no-demo"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "Fitboard is running" not in (tmp / "up.log").read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((tmp / "up.log").read_text(errors="replace"))
        time.sleep(0.2)
    return process, f"http://127.0.0.1:{port}"


def submit_runs(page: Page, base: str) -> None:
    for name, lr in RUNS:
        page.goto(f"{base}/experiments/new/")
        page.fill("#id_name", name)
        page.select_option("#id_arch", "mlp")
        page.fill("#id_hidden_sizes", "64")
        page.fill("#id_lr", lr)
        page.fill("#id_epochs", "12")
        page.fill("#id_batch_size", "8")
        page.click("text=Start training")
        page.wait_for_url("**/experiments/*/")


def check_compare(page: Page, base: str) -> dict[str, object]:
    """Rows of the list are newest first: a run still training, then the three finished."""
    page.goto(f"{base}/")
    for box in page.locator('input[name="ids"]').all()[1:4]:
        box.check()
    page.click("#compare-button")
    page.wait_for_url("**/compare/?ids=*")
    page.select_option("#metric", "loss")
    page.wait_for_function("window.fitboardCompare.loaded && window.fitboardCompare.traces === 3")
    overview = page.evaluate("window.fitboardCompare.points")
    page.fill("#smoothing", "0.9")
    page.dispatch_event("#smoothing", "input")
    smoothed = page.evaluate("document.querySelectorAll('#compare-chart .scatterlayer .trace')"
                             ".length")
    time.sleep(0.5)
    page.screenshot(path=OUT / "compare.png", full_page=True)
    # Zoom the way a drag on the chart does: Plotly fires plotly_relayout with the new range.
    page.evaluate("Plotly.relayout('compare-chart', {'xaxis.range': [300, 700]})")
    page.wait_for_function("window.fitboardCompare.refines >= 1")
    zoomed = page.evaluate("window.fitboardCompare.points")
    return {"overview_points": overview, "drawn_traces_with_smoothing": smoothed,
            "points_after_zoom": zoomed}


def check_live(page: Page, base: str) -> dict[str, object]:
    """Compare the running run with a finished one: its trace grows without a reload."""
    page.goto(f"{base}/")
    for box in page.locator('input[name="ids"]').all()[:2]:
        box.check()
    page.click("#compare-button")
    page.select_option("#metric", "loss")
    page.wait_for_function("window.fitboardCompare.loaded && window.fitboardCompare.traces === 2")
    before = page.evaluate("window.fitboardCompare.points")
    page.wait_for_function(f"window.fitboardCompare.points > {before} + 20", timeout=90_000)
    return {"live_points_before": before, "live_points_after":
            page.evaluate("window.fitboardCompare.points")}


def check_run_page_zoom(page: Page, base: str) -> dict[str, object]:
    """The run page of the newest finished run refines a zoomed range with full-resolution
    points from the server."""
    page.goto(f"{base}/")
    page.locator("#run-table tbody tr").nth(1).locator("td:nth-child(3) a").first.click()
    page.wait_for_selector("#chart-loss .main-svg")
    page.evaluate("Plotly.relayout('chart-loss', {'xaxis.range': [300, 700]})")
    page.wait_for_function("window.fitboardRun.refines >= 1")
    return {"run_page_zoom_points": page.evaluate("window.fitboardRun.zoomPoints")}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fitboard-compare-") as scratch:
        process, base = start_site(Path(scratch))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                     args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("pageerror", lambda error: print("page error:", error))
                page.goto(f"{base}/")
                page.fill("#id_username", "admin")
                page.fill("#id_password", PASSWORD)
                page.click("button[type=submit]")
                submit_runs(page, base)
                page.wait_for_function("window.fitboardRun && window.fitboardRun.status"
                                       " === 'succeeded'", timeout=300_000)
                page.goto(f"{base}/experiments/new/")  # a fourth run, still training below
                page.fill("#id_name", "mlp lr 1e-3, 40 epochs")
                page.select_option("#id_arch", "mlp")
                page.fill("#id_hidden_sizes", "64")
                page.fill("#id_epochs", "40")
                page.fill("#id_batch_size", "8")
                page.click("text=Start training")
                page.wait_for_function("window.fitboardRun && window.fitboardRun.points > 100")
                try:
                    result = check_compare(page, base)
                    result.update(check_live(page, base))
                    result.update(check_run_page_zoom(page, base))
                except Exception:
                    page.screenshot(path=Path(scratch).parent / "compare-failed.png")
                    print(page.url, page.evaluate("JSON.stringify(window.fitboardCompare)"),
                          page.locator(".badge").all_inner_texts())
                    log = (Path(scratch) / "up.log").read_text(errors="replace")
                    print("\n".join(log.splitlines()[-40:]))
                    raise
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    print(result)
    assert result["overview_points"] <= 3 * 2000
    assert result["drawn_traces_with_smoothing"] == 6  # each run: raw (faint) and smoothed
    assert result["points_after_zoom"] > result["overview_points"]
    assert result["run_page_zoom_points"] > 400  # steps 300..700 of three metrics, in full


if __name__ == "__main__":
    main()
