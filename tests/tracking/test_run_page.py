"""The page of a run logged from a script: a framework's whole config (Hugging Face's Trainer
logs some 200 params) folds away, a short one stays open; no progress bar stays empty."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from webapp.tracking import ingest


@pytest.mark.parametrize(("params", "folded"), [(3, False), (200, True)])
def test_a_long_list_of_params_is_folded(owner: Any, project: Any, params: int,
                                         folded: bool) -> None:
    # given a script's run with that many params
    run = ingest.create_run(owner, project, "trainer", {})
    ingest.log_to_run(run, params={f"param_{i:03}": str(i) for i in range(params)})
    client = Client()
    client.force_login(owner)

    # when its page is read
    page = client.get(f"/experiments/{run.pk}/").content.decode()

    # then every param is on it, under a heading that counts them, folded only when long
    assert page.count("<dt>param_") == params
    assert f'Params <small class="muted">{params}</small>' in page
    assert ('<details id="external-params-box">' in page) is folded
    assert ('<details id="external-params-box" open>' in page) is not folded


def test_a_script_runs_page_has_no_progress_bar_it_could_not_fill(owner: Any,
                                                                   project: Any) -> None:
    # given a script's run, which never says how many steps it will take
    run = ingest.create_run(owner, project, "script", {})
    client = Client()
    client.force_login(owner)

    # when its page is read
    page = client.get(f"/experiments/{run.pk}/").content.decode()

    # then the bar is hidden: empty beside a succeeded run, it read as nothing done
    assert '<div class="progress" hidden><div class="bar" id="progress-bar">' in page


def test_the_run_list_shows_the_last_step_a_script_logged(owner: Any, project: Any) -> None:
    # given a script's run that logged steps 0 to 39
    run = ingest.create_run(owner, project, "script", {})
    ingest.log_to_run(run, [ingest.Point("loss", 1.0 / (step + 1), step, 1_700_000_000.0 + step)
                            for step in range(40)])
    client = Client()
    client.force_login(owner)

    # when the run list is read
    page = client.get("/").content.decode()

    # then its row's progress is the last step, marked as counted in steps for live updates
    assert '<td data-field="progress" data-steps>step 39</td>' in page
