"""A script drives the real stack through the REST API with a token made on the settings page:
it launches a run from a spec JSON, a worker trains it, and the script reads its verdict and
the same curves the run page draws."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.conftest import Stack
from tests.e2e.test_mlflow_tracking import create_token

pytestmark = pytest.mark.e2e
SPEC = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [16]},
        "run": {"epochs": 3, "batch_size": 16}}


def wait_until_ended(api: requests.Session, url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(url, timeout=10).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        assert time.monotonic() < deadline, f"still {run['status']} after {timeout} s"
        time.sleep(0.2)


def test_a_script_launches_a_run_and_reads_its_verdict_and_curves(stack: Stack):
    # given a token made on the settings page, and nothing else
    browser = stack.login()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {create_token(stack, browser)}"
    base = f"{stack.url}/api/v1"
    project = api.get(f"{base}/projects/", timeout=10).json()[0]

    # when the script launches a bad spec, then a good one, and waits for it
    bad = api.post(f"{base}/runs/", json={"project": project["id"], "name": "bad",
                                          "spec": {**SPEC, "run": {"epochs": 0}}}, timeout=10)
    launched = api.post(f"{base}/runs/", json={"project": project["id"], "name": "api-iris",
                                               "spec": SPEC}, timeout=30)
    run = wait_until_ended(api, f"{base}/runs/{launched.json()['id']}/")
    curves = api.get(f"{base}/runs/{run['id']}/metrics/", timeout=10).json()["metrics"]
    drawn = browser.get(f"{stack.url}/experiments/{run['id']}/metrics/", timeout=10).json()
    listed = api.get(f"{base}/runs/", params={"q": "api-iris", "status": "succeeded"},
                     timeout=10).json()

    # then the bad one is refused on its field, the good one trained here and was judged, and
    # its curves are the page's
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["spec.run.epochs"]
    assert launched.status_code == 201 and run["status"] == "succeeded", run["error"]
    assert run["verdict"]["kind"] and run["summary"]["best_metrics"]
    assert len(curves["val_loss"]["steps"]) == 3 and curves == drawn["metrics"]
    assert [r["id"] for r in listed["results"]] == [run["id"]]
