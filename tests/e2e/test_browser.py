"""The main loop in a real browser (Debian's Chromium) against the real stack: log in, submit
the form, watch the loss curve grow live, read the verdict, compare two runs, download the
checkpoint; and points messages lost on the way to the page are backfilled on screen.

The tests read only what the page shows (the DOM and Plotly's ``gd.data``), never the page's
scripts' own state, so they hold whatever the scripts look like inside."""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Stack
from tests.e2e.test_live_run import submit
from training.checkpoints import load

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
# A run short enough for the suite and long enough to be watched: an MLP on digits in batches
# of 2 takes about 700 steps an epoch, about half a second on one thread, which the worker
# sends in about five live messages (one per 100 ms at most). Under 2,000 steps in all, so a
# page opened after the end draws every point too (longer curves are drawn bucketed).
EPOCHS = 2
STACK_WORKERS = 2  # the stack's training workers (tests/e2e/conftest.py: up --workers 2)
SMALL_RUN = {"arch": "mlp", "hidden_sizes": "32", "batch_size": "2", "epochs": str(EPOCHS)}
VERDICTS = {"diverging", "overfitting", "underfitting", "slow", "healthy", "undetermined"}

# Points drawn on a chart: the sum of its Plotly traces' lengths.
COUNT_POINTS = """(id) => {
  const gd = document.getElementById(id);
  return gd && gd.data ? gd.data.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0) : 0;
}"""
# Every 50 ms until the status badge says the run ended: the loss chart's points and the
# status shown beside them.
WATCH_LOSS_CHART = """() => new Promise((resolve) => {
  const seen = [];
  const timer = setInterval(() => {
    const gd = document.getElementById("chart-loss");
    const points = gd && gd.data ? gd.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0;
    const status = document.getElementById("status-badge").textContent.trim();
    seen.push([points, status]);
    if (["succeeded", "failed", "cancelled"].includes(status)) {
      clearInterval(timer);
      resolve(seen);
    }
  }, 50);
})"""


def wait_for(page: Any, predicate: str, timeout: float = 60_000) -> None:
    """Poll ``predicate`` (an expression or a function) in the page until it is truthy.
    Playwright's own wait_for_function compiles its predicate inside the page, which the
    site's Content-Security-Policy (no eval) forbids; evaluate runs it from outside."""
    import time

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise PlaywrightTimeout(f"still false after {timeout} ms: {predicate}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # The browser is part of the test setup (`make test` installs Debian's chromium package):
    # without it these tests fail, never skip, so a machine without it cannot pass unseen.
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: run `apt-get install -y chromium` as root (`make test` "
        "does it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A logged-in page of its own (a fresh context: its own cookies), through the login form."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.url}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_selector("#run-table")  # the experiment list: logged in
    # Off the live list, which reloads itself when a run is added: a test that submits a run
    # over HTTP would race that reload with its own navigation.
    page.goto("about:blank")
    try:
        yield page
        assert errors == [], f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def fill_new_experiment(page: Any, stack: Stack, name: str, **fields: str) -> int:
    """Submit the New experiment form with ``fields`` over its defaults; the run's id."""
    page.goto(f"{stack.url}/experiments/new/")
    page.fill("#id_name", name)
    for field, value in fields.items():
        if page.locator(f"select#id_{field}").count():
            page.select_option(f"#id_{field}", value)
        else:
            page.fill(f"#id_{field}", value)
    page.click("text=Start training")
    page.wait_for_url(re.compile(r".*/experiments/\d+/$"))
    match = re.search(r"/experiments/(\d+)/$", page.url)
    assert match is not None
    return int(match.group(1))


def test_a_user_trains_watches_compares_and_downloads_a_run_in_the_browser(page, stack,
                                                                           tmp_path):
    # Given a logged-in user who fills the New experiment form with a small digits MLP (behind
    # one longer run per stack worker, so that its page is open before it starts: a short run
    # on a busy machine could end before the page shows it running)
    session = stack.login()
    for number in range(STACK_WORKERS):
        submit(stack, session, f"browser blocker {number}",
               **{**SMALL_RUN, "epochs": str(4 * EPOCHS)})
    first = fill_new_experiment(page, stack, "browser mlp", **SMALL_RUN)

    # When they stay on the run page the form sent them to, until the run ends
    seen = page.evaluate(WATCH_LOSS_CHART)

    # Then the loss curve grew while the run was running, more often than it has epochs:
    # points arrive live, step by step, not only once the run's status changes
    running = [points for points, status in seen if status == "running"]
    growths = sum(1 for before, after in zip(running, running[1:], strict=False)
                  if after > before)
    print(f"\nin Chromium: the loss chart grew {growths} times while running, to "
          f"{max(running)} points")
    assert seen[-1][1] == "succeeded", seen[-1]
    assert growths > 2 * EPOCHS, f"the curve grew {growths} times while running: {running}"
    drawn = page.evaluate(COUNT_POINTS, "chart-loss")
    assert drawn >= max(running) > 0
    # and the ended run's buttons show without a reload: its checkpoint's download and Delete
    page.locator("#download-best").wait_for(state="visible", timeout=10_000)
    page.locator("#delete-form").wait_for(state="visible", timeout=10_000)

    # And the diagnostics verdict is shown on the run page and on the diagnostics page
    badge = page.locator("#verdict-badge")
    badge.wait_for(state="visible")
    verdict = badge.inner_text().strip()
    assert verdict in VERDICTS
    badge.click()
    page.wait_for_url(f"**/experiments/{first}/diagnostics/")
    assert page.locator("#verdict-kind").inner_text().strip() == verdict
    assert page.locator("#verdict-headline").inner_text().strip()

    # And the best checkpoint downloads as a zip that loads back into the model
    page.goto(f"{stack.url}/experiments/{first}/")
    with page.expect_download() as download:
        page.click("#download-best")
    path = tmp_path / "best.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert {"model.safetensors", "spec.json"} <= set(archive.namelist())
    assert load(path).spec.model.arch == "mlp"

    # When a second run (another learning rate) ends and both are ticked on the list
    second = fill_new_experiment(page, stack, "browser mlp lr 1e-2", lr="0.01", **SMALL_RUN)
    wait_for(page,
        "document.getElementById('status-badge').textContent.trim() === 'succeeded'")
    page.goto(f"{stack.url}/")
    hints = [page.locator("#compare-hint").inner_text()]
    for run_id in (first, second):
        page.check(f'#run-table tr[data-id="{run_id}"] input[name="ids"]')
        hints.append(page.locator("#compare-hint").inner_text()
                     if page.locator("#compare-hint").is_visible() else "")
    # (a greyed Compare button says beside it what it waits for, until it is enabled)
    assert hints[0].startswith("Tick 2 to") and hints[1:] == ["Tick one more run to compare", ""]
    page.click("#compare-button")
    page.wait_for_url("**/compare/?ids=*")

    # Then the comparison chart draws one loss curve per run, each with every step
    page.select_option("#metric", "loss")
    wait_for(page,
        "(() => { const gd = document.getElementById('compare-chart');"
        " return gd && gd.data && gd.data.filter(t => t.x && t.x.length).length >= 2; })()")
    curves = page.evaluate("document.getElementById('compare-chart').data"
                           ".filter(t => t.x && t.x.length).map(t => t.x.length)")
    assert len(curves) >= 2 and min(curves) > 0


def test_points_messages_lost_before_the_page_are_backfilled_on_screen(page, stack):
    # Given a run and its page, whose WebSocket loses the first three points messages after
    # the snapshot (as a channel layer dropping messages for a slow viewer would)
    dropped: list[str] = []

    def lose_three(socket: Any) -> None:
        server = socket.connect_to_server()
        state = {"snapshot": False}

        def to_page(message: str | bytes) -> None:
            kind = json.loads(message).get("kind")
            if kind == "snapshot":
                state["snapshot"] = True
            elif kind == "points" and state["snapshot"] and len(dropped) < 3:
                dropped.append(str(message))
                return
            socket.send(message)

        server.on_message(to_page)
        socket.on_message(lambda message: server.send(message))

    page.route_web_socket(re.compile(r".*/ws/runs/\d+/$"), lose_three)
    session = stack.login()
    # (one longer run per stack worker first, so that the page is open before this run starts:
    # a run that ended before its page opened sends no points messages at all)
    for number in range(STACK_WORKERS):
        submit(stack, session, f"browser backfill blocker {number}",
               **{**SMALL_RUN, "epochs": str(4 * EPOCHS)})
    run_id = submit(stack, session, "browser backfill", **SMALL_RUN)
    page.goto(f"{stack.url}/experiments/{run_id}/")

    # When the run ends
    wait_for(page,
        "document.getElementById('status-badge').textContent.trim() === 'succeeded'")

    # Then the page draws every point a page opened after the end draws
    charts = ["chart-loss", "chart-metric", "chart-lr", "chart-sys"]
    fresh = page.context.new_page()
    fresh.goto(f"{stack.url}/experiments/{run_id}/")
    wait_for(fresh,
        "document.getElementById('status-badge').textContent.trim() === 'succeeded'")
    # (the run has ended: its snapshot holds every point, drawn at once)
    wait_for(fresh, f"() => ({COUNT_POINTS})('chart-loss') > 0")
    expected = {chart: fresh.evaluate(COUNT_POINTS, chart) for chart in charts}
    assert len(dropped) == 3, "the run ended before three points messages reached the page"
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # a bound, not a time limit: the assert says
        wait_for(page,
            f"() => ({COUNT_POINTS})('chart-loss') === {expected['chart-loss']}", timeout=30_000)
    drawn = {chart: page.evaluate(COUNT_POINTS, chart) for chart in charts}
    print(f"\nin Chromium: 3 points messages lost, {sum(drawn.values())}/"
          f"{sum(expected.values())} points drawn")
    assert drawn == expected, f"points drawn {drawn}, a page opened after the end: {expected}"
