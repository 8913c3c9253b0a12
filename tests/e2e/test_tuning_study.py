"""Tuning studies with real processes: Tune form → study task → trials on two Celery workers at
once, a hopeless one pruned early → study succeeded → best trial promoted into a runnable
experiment; and a worker killed mid-trial costs the study nothing but that trial's retry."""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack
from tests.e2e.test_live_run import submit

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_until_ended(session: requests.Session, url: str, timeout: float) -> str:
    """Poll a run page until its status badge shows an end; returns the page."""
    deadline = time.monotonic() + timeout
    while not re.search(r'id="status-badge">(succeeded|failed|cancelled)<',
                        html := session.get(url, timeout=10).text):
        assert time.monotonic() < deadline, f"{url} did not end in {timeout} s"
        time.sleep(0.3)
    return html


def wait_for(session: requests.Session, url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = session.get(url, timeout=10).json()
        if data["status"] in TERMINAL or time.monotonic() > deadline:
            return data
        time.sleep(0.3)


def submit_study(stack: Stack, session: requests.Session, source: int,
                 **fields: Any) -> int:
    """Fill the Tune form of run ``source`` with ``fields``; returns the study's id."""
    form = session.get(f"{stack.url}/experiments/{source}/tune/", timeout=10).text
    project = re.search(r'<option value="(\d+)" selected>', form)  # preselected: the source's
    assert project is not None, form[:2000]
    response = stack.post_form(session, f"/experiments/{source}/tune/",
                               {"project": project.group(1), **fields})
    match = re.search(r"/studies/(\d+)/$", response.url)
    assert match is not None, response.text[:3000]
    return int(match.group(1))


def test_a_study_runs_its_trials_two_at_a_time_on_two_workers_and_prunes_a_hopeless_one(
        stack: Stack) -> None:
    # given a small MLP run on digits to tune
    session = stack.login()
    source = submit(stack, session, "digits-mlp", dataset="digits", arch="mlp",
                    hidden_sizes="32", epochs=4, batch_size=64)
    wait_until_ended(session, f"{stack.url}/experiments/{source}/", timeout=60)  # both idle

    # when a median-pruned study of 6 random trials, 2 at once, over the learning rate is
    # submitted; sampler seed 2915 draws learning rates from 3.6e-4 to 2.6e-2 for trials 1 to 4
    # and 6, and 1.7e-5 for trial 5 (trial k is the first draw of seed + k - 1, whenever it is
    # asked), which barely learns and is asked only after three trials completed (the
    # pruner's start-up), so it is pruned at its first chance
    study_id = submit_study(stack, session, source, **{
        "name": "lr study", "algorithm": "random", "objective": "val_acc", "n_trials": 6,
        "timeout": 0, "parallelism": 2, "pruner": "median", "seed": 2915,
        "lr_on": "on", "lr_low": 1e-5, "lr_high": 3e-2, "lr_log": "on"})
    data = wait_for(session, f"{stack.url}/studies/{study_id}/data/", timeout=90)

    # then it succeeded with its 6 trials, each a run with its own curve
    trials = data["trials"]
    assert data["status"] == "succeeded", (data, stack.log.read_text()[-3000:])
    assert len(trials) == 6 and {t["state"] for t in trials} <= {"complete", "pruned"}
    assert all(len(t["curve"]) == 4 for t in trials if t["state"] == "complete")
    # and the hopeless trial was pruned: it stopped after fewer epochs than the budgeted 4
    hopeless = trials[4]
    assert hopeless["params"]["optim.lr"] < 2e-5, hopeless["params"]
    assert hopeless["state"] == "pruned" and hopeless["pruned_at"] < 4
    assert 1 <= len(hopeless["curve"]) < 4
    assert sum(t["state"] == "complete" for t in trials) >= 3
    # and two workers ran trials at the same time, never more than two at once
    assert len({t["worker"] for t in trials}) == 2
    spans = [(t["started_at"], t["finished_at"]) for t in trials]
    overlaps = [a for a, b in itertools.combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]]
    assert overlaps
    assert all(sum(s <= start < f for s, f in spans) <= 2 for start, _ in spans)

    # when the best trial is promoted
    page = session.get(f"{stack.url}/studies/{study_id}/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    promoted = session.post(f"{stack.url}/studies/{study_id}/promote/",
                            data={"csrfmiddlewaretoken": token.group(1)},
                            headers={"Referer": page.url}, timeout=10)

    # then a regular run with the best learning rate trains to the end
    run = re.search(r"/experiments/(\d+)/$", promoted.url)
    assert run is not None, promoted.url
    html = wait_until_ended(session, promoted.url, timeout=60)
    assert 'id="status-badge">succeeded<' in html
    best = data["best_trial"]
    assert f"&quot;lr&quot;: {best['params']['optim.lr']}," in html


def test_the_study_page_follows_the_study_to_its_end_in_chromium(stack: Stack) -> None:
    # The browser is part of the test setup (Debian's chromium package), never optional.
    assert os.path.exists("/usr/bin/chromium"), "no Chromium: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    # given a study of 4 short trials, 2 at once
    session = stack.login()
    source = submit(stack, session, "digits-mlp", dataset="digits", arch="mlp",
                    hidden_sizes="32", epochs=3, batch_size=64)
    wait_until_ended(session, f"{stack.url}/experiments/{source}/", timeout=60)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"{stack.url}/accounts/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "e2e-password-123")
            with page.expect_navigation():
                page.click("button[type=submit]")
            # Off the live experiment list, which reloads itself when a run is added: the
            # study's trials would race that reload with the navigation to the study page.
            page.goto(f"{stack.url}/projects/")
            study_id = submit_study(stack, session, source, **{
                "name": "watched study", "algorithm": "random", "objective": "val_acc",
                "n_trials": 4, "timeout": 0, "parallelism": 2, "pruner": "none", "seed": 1,
                "lr_on": "on", "lr_low": 1e-3, "lr_high": 3e-2, "lr_log": "on"})

            # when its page is opened while it runs
            page.goto(f"{stack.url}/studies/{study_id}/")
            opened = page.evaluate(
                "JSON.parse(document.getElementById('study-initial').textContent).status")

            # then the page, which no longer polls, follows it to its end over its socket
            page.wait_for_function(
                "document.getElementById('status-badge').textContent === 'succeeded'",
                timeout=180_000)
            rows = page.eval_on_selector_all("#trial-table tbody tr", "rows => rows.length")
            reads = page.evaluate("window.fitboardStudy.reads")
            # and on a phone its trials read as cards, each value naming its column
            page.set_viewport_size({"width": 390, "height": 844})
            trials = page.evaluate("""(() => {
              const table = document.getElementById('trial-table');
              const cell = table.querySelector('tbody td:nth-child(2)');
              return [table.scrollWidth, table.clientWidth,
                      getComputedStyle(cell, '::before').content];
            })()""")
        finally:
            browser.close()
    assert opened not in TERMINAL
    assert rows == 4 and reads >= 1
    assert trials[0] <= trials[1] and trials[2] == '"optim.lr "', trials
