"""A member's webhook whose receiver answers slowly holds a thread of the notifications worker,
never a training worker: on the real stack (``manage.py up`` with one training worker and the
notifications worker it starts beside it, real Redis, a real receiver on loopback), a run
queued while a delivery is held open trains and ends, and the deliveries arrive signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.test_mlflow_tracking import create_token
from tests.e2e.test_rest_api import wait_until_ended
from tests.webhooks import HOLD_LIMIT, Receiver, serving

pytestmark = pytest.mark.e2e
SPEC = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
        "run": {"epochs": 1, "batch_size": 32}}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that holds every delivery open until the test releases it."""
    with serving() as server:
        server.release.clear()
        yield server


@pytest.fixture
def one_worker_stack(tmp_path: Any) -> Iterator[Stack]:
    """The stack with a single training worker, receivers on loopback allowed, an attempt
    waiting for its answer longer than the receiver holds it, and no retry."""
    with running_stack(tmp_path, workers=1, FITBOARD_WEBHOOK_ALLOW_PRIVATE="true",
                       FITBOARD_WEBHOOK_TIMEOUT_S=str(HOLD_LIMIT + 30),
                       FITBOARD_WEBHOOK_RETRIES="0") as stack:
        yield stack


def wait_until(condition: Callable[[], Any], what: str, limit: float = 120) -> Any:
    deadline = time.monotonic() + limit
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.1)
    return value


def test_a_receiver_holding_its_deliveries_open_delays_no_training(
        one_worker_stack: Stack, receiver: Receiver):
    # given a maintainer's webhook for succeeded runs, whose receiver holds every delivery
    stack = one_worker_stack
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {create_token(stack, stack.login())}"
    base = f"{stack.url}/api/v1"
    project = api.get(f"{base}/projects/", timeout=10).json()[0]["id"]
    made = api.post(f"{base}/projects/{project}/webhooks/",
                    json={"url": receiver.url, "events": ["run.succeeded"]}, timeout=10)
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]

    def train(name: str) -> dict:
        launched = api.post(f"{base}/runs/", json={"project": project, "name": name,
                                                   "spec": SPEC}, timeout=30)
        assert launched.status_code == 201, launched.text
        return wait_until_ended(api, f"{base}/runs/{launched.json()['id']}/")

    # and a first run whose success is being delivered, held open by the receiver
    first = train("first")
    wait_until(lambda: receiver.requests, "the first run's delivery")

    # when a second run is queued on the only training worker
    second = train("second")

    # then it trained and ended while the first delivery was still held, whose thread took the
    # second run's delivery too
    assert (first["status"], second["status"]) == ("succeeded", "succeeded"), second["error"]
    wait_until(lambda: len(receiver.requests) == 2, "the second run's delivery")
    assert receiver.answered == 0 and not receiver.release.is_set()

    # and once the receiver answers, both arrive signed with the webhook's secret and are
    # recorded as delivered
    receiver.release.set()

    def delivered() -> list[dict]:
        hook, = api.get(f"{base}/projects/{project}/webhooks/", timeout=10).json()
        return [d for d in hook["recent"] if d["succeeded"]]

    wait_until(lambda: len(delivered()) == 2, "both deliveries' records")
    told = []
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-fitboard-signature"], expected)
        told.append(json.loads(body)["run"]["id"])
    assert sorted(told) == sorted([first["id"], second["id"]])
