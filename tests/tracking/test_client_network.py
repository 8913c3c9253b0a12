"""The native client (``import fitboard``) against a live Fitboard behind a network that fails:
the server gone and back, answers lost, 429 with Retry-After, 5xx, a slow server. Points
arrive once each, in order, and the training loop is not held."""

from __future__ import annotations

import time
import warnings
from typing import Any

import fitboard
import pytest
from fitboard import run as client_run

from tests.flaky_server import FlakyServer, flaky
from webapp.experiments import metric_store
from webapp.experiments.models import Experiment


def stored(run_id: int, key: str) -> list[tuple[int, float]]:
    series = metric_store.read(run_id)[key]
    return list(zip(series.steps.tolist(), series.values.tolist(), strict=True))


@pytest.fixture
def proxy(live_server: Any, token: str, project: Any, monkeypatch: pytest.MonkeyPatch
          ) -> Any:
    """A flaky network between the client and the server; each request of a run given up on
    after one retry (0.5 s), so that only the run's own resending keeps a batch."""
    monkeypatch.setattr(client_run, "SEND_RETRIES", 1)
    with flaky(live_server.url) as server:
        yield server


def init(proxy: FlakyServer, token: str, **options: Any) -> fitboard.Run:
    return fitboard.init(project="vision", name="flaky", url=proxy.url, token=token,
                         flush_s=0.05, **options)


def test_points_logged_while_the_server_is_gone_arrive_once_and_in_order(proxy, token):
    # given a run that has sent its first points
    run = init(proxy, token)
    for step in range(10):
        run.log({"score": float(step)}, step=step)
    run.flush()

    # when the server goes away for several of the client's retries, and the script logs on
    proxy.down()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        slowest = 0.0
        for step in range(10, 30):
            started = time.monotonic()
            run.log({"score": float(step)}, step=step)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.1)
        proxy.up()
        run.finish()

    # then log() returned at once all along, the script was told, and every point arrived
    assert slowest < 0.05
    assert any("does not answer" in str(w.message) for w in said)
    assert stored(run.id, "score") == [(step, float(step)) for step in range(30)]
    assert run.errors == []
    assert Experiment.objects.get(pk=run.id).status == Experiment.Status.SUCCEEDED


def test_a_batch_stored_whose_answer_was_lost_is_not_stored_twice(proxy, token):
    # given a run whose next batch reaches the server but whose answer is lost on the way
    run = init(proxy, token)
    proxy.lose_answers(1)

    # when it logs
    for step in range(5):
        run.log({"score": float(step)}, step=step)
    run.finish()

    # then the batch was sent again, and each point is stored once
    assert [status for status, _ in proxy.answered("runs/log")][:2] == [0, 200]
    assert stored(run.id, "score") == [(step, float(step)) for step in range(5)]


def test_a_429_is_retried_after_the_retry_after_it_names(proxy, token):
    # given a server that answers the next batch 429, come back in 2 s, then a 503
    run = init(proxy, token)
    proxy.fail(429, retry_after="2")
    proxy.fail(503)

    # when the script logs and finishes
    run.log({"score": 1.0}, step=0)
    run.finish()

    # then the client waited as told before trying again, and the point is stored
    (first, refused), (_, unavailable), (stored_ok, accepted) = proxy.answered("runs/log")[:3]
    assert (first, stored_ok) == (429, 200)
    assert unavailable - refused >= 1.9
    assert stored(run.id, "score") == [(0, 1.0)]


def test_a_slow_server_does_not_hold_the_training_loop(proxy, token):
    # given a server that takes 0.5 s to answer each request
    run = init(proxy, token)
    proxy.delay = 0.5

    # when the script logs 200 steps
    started = time.monotonic()
    for step in range(200):
        run.log({"score": float(step)}, step=step)
    logging = time.monotonic() - started
    run.finish()

    # then logging took no time of the server's, and every point arrived in order
    assert logging < 0.2
    assert stored(run.id, "score") == [(step, float(step)) for step in range(200)]


def test_a_server_gone_for_good_ends_finish_after_its_timeout(proxy, token):
    # given a run whose server goes away for good with points unsent
    run = init(proxy, token, finish_timeout_s=1.0)
    proxy.down()
    run.log({"score": 1.0}, step=0)

    # when the script finishes
    started = time.monotonic()
    with warnings.catch_warnings(record=True), pytest.raises(fitboard.FitboardError):
        warnings.simplefilter("always")
        run.finish()

    # then finish gave up within its timeout (and the request's retries), saying so
    assert time.monotonic() - started < 10
    assert run.errors and "Connection refused" in run.errors[0]
