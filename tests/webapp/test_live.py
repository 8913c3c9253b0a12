"""Live updates over real Redis: the worker's reporter, the channel layer and the consumers."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client

from tests.webapp.sockets import Communicator
from webapp.asgi import application
from webapp.experiments import events, metric_store, reporting
from webapp.experiments.models import Checkpoint, Experiment, MetricChunk
from webapp.experiments.reporting import DjangoReporter

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = b"http://127.0.0.1"


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def communicator(path: str, user: User | None = None, origin: bytes = ORIGIN
                       ) -> Communicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await asyncio.to_thread(session_cookie, user)))
    return Communicator(application, path, headers=headers)


async def test_the_snapshot_of_a_long_run_is_bucketed_and_ends_at_its_last_step(
        owner, make_experiment):
    # given a running run with 30,000 points of one metric
    experiment = await asyncio.to_thread(make_experiment, status=Experiment.Status.RUNNING)
    points = [(step, 1.0 / step, float(step)) for step in range(1, 30_001)]
    await asyncio.to_thread(metric_store.append, experiment.pk, {"loss": points})
    client = await communicator(f"/ws/runs/{experiment.pk}/", owner)

    # when a page opens its WebSocket
    await client.connect()
    snapshot = await client.receive_json_from(timeout=5)
    await client.disconnect()

    # then it gets at most a chart's worth of points, ending where live points will continue
    loss = snapshot["points"]["loss"]
    assert len(loss["steps"]) <= metric_store.MAX_POINTS
    assert loss["total"] == 30_000 and loss["steps"][-1] == 30_000


async def test_a_viewer_gets_the_history_then_live_points(owner, make_experiment):
    experiment = await asyncio.to_thread(make_experiment, status=Experiment.Status.RUNNING)
    await asyncio.to_thread(metric_store.append, experiment.pk,
                            {"loss": [(1, 2.0, 1.0), (2, 1.0, 2.0)]})
    client = await communicator(f"/ws/runs/{experiment.pk}/", owner)

    connected, _ = await client.connect()
    snapshot = await client.receive_json_from(timeout=5)
    await get_channel_layer().group_send(events.run_group(experiment.pk), {
        "type": "run.points", "seq": 1, "sent_at": 1700000000.25, "points": {"loss": [[3, 0.5]]},
        "progress": None,
    })
    live = await client.receive_json_from(timeout=5)
    await client.disconnect()

    assert connected
    assert snapshot["kind"] == "snapshot"
    assert snapshot["status"] == "running"
    assert snapshot["points"]["loss"] == {
        "steps": [1, 2], "values": [2.0, 1.0], "times": [1.0, 2.0], "total": 2, "bucketed": False,
    }
    assert live == {"kind": "points", "seq": 1, "sent_at": 1700000000.25,
                    "points": {"loss": [[3, 0.5]]}, "progress": None}


async def test_a_foreign_origin_is_refused(owner, make_experiment):
    experiment = await asyncio.to_thread(make_experiment)
    client = await communicator(
        f"/ws/runs/{experiment.pk}/", owner, origin=b"http://evil.example"
    )

    connected, _ = await client.connect()

    assert not connected


async def test_another_users_run_is_refused(stranger, make_experiment):
    experiment = await asyncio.to_thread(make_experiment)
    client = await communicator(f"/ws/runs/{experiment.pk}/", stranger)

    connected, _ = await client.connect()

    assert not connected


async def test_an_anonymous_viewer_is_refused(make_experiment):
    experiment = await asyncio.to_thread(make_experiment)

    run_connected, _ = await (await communicator(f"/ws/runs/{experiment.pk}/")).connect()
    list_connected, _ = await (await communicator("/ws/runs/")).connect()

    assert not run_connected
    assert not list_connected


async def test_the_run_list_hears_status_changes_of_the_users_projects(owner, make_experiment):
    experiment = await asyncio.to_thread(make_experiment)
    client = await communicator("/ws/runs/", owner)
    await client.connect()

    await asyncio.to_thread(experiment.start, "w1")
    update = await client.receive_json_from(timeout=5)
    await client.disconnect()

    assert update["kind"] == "update"
    assert (update["id"], update["status"]) == (experiment.pk, "running")


def listener(experiment: Experiment) -> Callable[[], Iterator[dict[str, Any]]]:
    """Join the run's group now; the returned function yields what arrived until 0.5 s of quiet."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.run_group(experiment.pk), channel)

    def received() -> Iterator[dict[str, Any]]:
        while True:
            try:
                yield async_to_sync(asyncio.wait_for)(layer.receive(channel), 0.5)
            except TimeoutError:
                return

    return received


def test_the_reporter_stores_and_publishes_every_point(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    listen = listener(experiment)

    reporter = DjangoReporter(experiment, interval=0.05)
    for step in range(1, 201):
        reporter.log(step, {"loss": 1.0 / step})
    reporter.status("epoch 1/1", epoch=1, epochs=1, step=200, total_steps=200)
    reporter.close()

    received: list[int] = []
    progress = None
    for message in listen():
        received += [step for step, _ in message["points"].get("loss", [])]
        progress = message["progress"] or progress
    assert received == list(range(1, 201))
    assert metric_store.read(experiment.pk)["loss"].steps.tolist() == list(range(1, 201))
    assert progress is not None and progress["step"] == 200
    assert Experiment.objects.get(pk=experiment.pk).progress["epoch"] == 1


def test_the_reporter_coalesces_a_fast_loop_into_few_messages(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    listen = listener(experiment)

    reporter = DjangoReporter(experiment, interval=0.1)
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 1.0:
        step += 1
        reporter.log(step, {"loss": 0.1})
        time.sleep(0.001)
    reporter.close()

    messages = list(listen())
    # About one message per 100 ms interval (plus the leading and the final one), for hundreds
    # of points,
    assert step > 300
    assert 3 <= len(messages) <= 14
    # each taken to send at least an interval after the one before, as the server's clock
    # tells (less a millisecond: it is read twice); only the closing flush goes at once.
    sent = [message["sent_at"] for message in messages]
    assert min(later - earlier for earlier, later in itertools.pairwise(sent[:-1])) >= 0.099


def test_every_points_message_carries_the_step_it_reached_and_the_time_left(make_experiment):
    # given a running run of 400 steps whose page listens
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    listen = listener(experiment)
    reporter = DjangoReporter(experiment, interval=0.05)
    reporter.status("running", epoch=0, epochs=1, step=0, total_steps=400)

    # when it logs 300 steps inside its one epoch (each hundred flushed), then a system reading
    # (whose "step" counts seconds)
    for step in range(1, 301):
        reporter.log(step, {"loss": 1.0 / step})
        time.sleep(0.002)  # at least 0.6 s in all: a pace the time left is measured from
        if step % 100 == 0:
            reporter.sync()
    reporter.log(5000, {"sys/cpu_percent": 50.0})
    reporter.close()

    # then every points message carries the progress, its step the last step it holds, rising
    # within the epoch, with the time left at the pace so far; the row keeps the last of it
    messages = [m for m in listen() if m["points"]]
    steps = [m["progress"]["step"] for m in messages]
    for message in messages:
        if "loss" in message["points"]:
            assert message["progress"]["step"] == message["points"]["loss"][-1][0]
    assert steps == sorted(steps) and {100, 200, 300} <= set(steps) and max(steps) == 300
    assert all(m["progress"]["total_steps"] == 400 for m in messages)
    assert all(m["progress"]["eta_s"] >= 0 for m in messages if m["progress"]["step"] > 1)
    assert [m["progress"]["eta_s"] > 0 for m in messages if m["progress"]["step"] == 300][0]
    assert Experiment.objects.get(pk=experiment.pk).progress["step"] == 300


def log_for(reporters: list[DjangoReporter], seconds: float, first_step: int = 1) -> int:
    """Log a point per reporter every millisecond for ``seconds``; returns the next step."""
    step = first_step
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for reporter in reporters:
            reporter.log(step, {"loss": 0.1})
        step += 1
        time.sleep(0.001)
    return step


def test_a_run_nobody_watches_is_written_in_few_large_batches(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)

    reporter = DjangoReporter(experiment, interval=0.05)
    next_step = log_for([reporter], 1.0)
    reporter.close()

    # The leading write, the final one, and at most one per UNWATCHED_INTERVAL between, instead
    # of one per 50 ms; and still every point.
    chunks = MetricChunk.objects.filter(experiment=experiment, key="loss").count()
    assert chunks <= 1 + 1 + math.ceil(1.0 / reporting.UNWATCHED_INTERVAL)
    steps = metric_store.read(experiment.pk)["loss"].steps.tolist()
    assert steps == list(range(1, next_step))


def test_a_viewer_who_joins_a_running_run_gets_live_points_before_it_ends(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    reporter = DjangoReporter(experiment, interval=0.05)
    step = log_for([reporter], 0.3)  # unwatched so far

    listen = listener(experiment)
    received = []
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        step = log_for([reporter], 0.1, step)
        received = list(itertools.islice(listen(), 1))
    reporter.close()

    # The first message already carries points logged before the viewer joined (the unwritten
    # buffer); the history from the database has the rest.
    assert received, "no live message reached the new viewer while the run went on"
    first = received[0]
    assert first["points"].get("loss"), f"the first live message held no point: {first}"
    first_live = first["points"]["loss"][0][0]
    stored = metric_store.read(experiment.pk)["loss"].steps.tolist()
    stored_before = [s for s in stored if s < first_live]
    missing = sorted(set(range(1, first_live)) - set(stored_before))
    assert stored_before == list(range(1, first_live)), (
        f"first live step {first_live} (seq {first.get('seq')}), {len(stored)} stored; "
        f"before it missing {missing[:10]}, stored twice "
        f"{sorted({s for s in stored_before if stored_before.count(s) > 1})[:10]}")


def test_one_flusher_serves_several_runs_of_a_process(make_experiment):
    first = make_experiment(status=Experiment.Status.RUNNING)
    second = make_experiment(status=Experiment.Status.RUNNING)

    reporters = [DjangoReporter(first, interval=0.05), DjangoReporter(second, interval=0.05)]
    next_step = log_for(reporters, 0.5)
    first_only = log_for(reporters[:1], 0.2, next_step)
    for reporter in reporters:
        reporter.close()

    assert metric_store.read(first.pk)["loss"].steps.tolist() == list(range(1, first_only))
    assert metric_store.read(second.pk)["loss"].steps.tolist() == list(range(1, next_step))


def test_the_reporter_sees_a_cancel_request(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    reporter = DjangoReporter(experiment, interval=0.01)

    experiment.request_cancel()
    deadline = time.monotonic() + 5
    while not reporter.should_stop() and time.monotonic() < deadline:
        time.sleep(0.05)
    reporter.close()

    assert reporter.should_stop()


def test_the_reporter_records_checkpoints(make_experiment, settings):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    path = settings.MEDIA_ROOT / "runs" / str(experiment.pk) / "best.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"archive")
    reporter = DjangoReporter(experiment)

    reporter.checkpoint(path, "best", {"val_acc": 0.9})
    reporter.checkpoint(path, "best", {"val_acc": 0.95})
    reporter.close()

    checkpoint = Checkpoint.objects.get(experiment=experiment)
    assert (checkpoint.tag, checkpoint.size, checkpoint.metrics) == ("best", 7, {"val_acc": 0.95})
    assert checkpoint.path == f"runs/{experiment.pk}/best.zip"


def test_a_diverged_runs_infinite_metrics_are_stored_and_sent_as_null(make_experiment, settings,
                                                                       tmp_path):
    # given a running run whose validation metrics overflowed to infinity and NaN
    settings.MEDIA_ROOT = tmp_path
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    listen = listener(experiment)
    reporter = DjangoReporter(experiment, interval=0.05)
    (tmp_path / "last.zip").write_bytes(b"archive")

    # when it logs them, reports them as progress and records a checkpoint with them
    reporter.log(1, {"val_loss": math.inf, "val_rmse": math.nan})
    reporter.status("epoch 1/5", verdict={"evidence": {"gap": -math.inf}})
    reporter.checkpoint(tmp_path / "last.zip", "last", {"val_rmse": math.inf})
    reporter.close()

    # then the database holds them as null (JSON has no NaN) and viewers get null too
    assert Checkpoint.objects.get(experiment=experiment).metrics == {"val_rmse": None}
    stored = Experiment.objects.get(pk=experiment.pk).progress
    assert stored["verdict"] == {"evidence": {"gap": None}}
    sent = [m["points"] for m in listen() if m["points"]]
    assert sent == [{"val_loss": [[1, None]], "val_rmse": [[1, None]]}]


async def test_the_snapshot_says_which_message_it_is_current_to(owner, make_experiment):
    # given a run whose reporter already sent two messages
    experiment = await asyncio.to_thread(make_experiment, status=Experiment.Status.RUNNING)

    def two_flushes() -> None:
        reporter = DjangoReporter(experiment, interval=0.01)
        reporter.log(1, {"loss": 1.0})
        time.sleep(0.1)
        reporter.log(2, {"loss": 0.5})
        reporter.close()

    await asyncio.to_thread(two_flushes)

    # when a viewer connects, and the run goes on
    client = await communicator(f"/ws/runs/{experiment.pk}/", owner)
    assert (await client.connect())[0]
    snapshot = await client.receive_json_from(timeout=5)

    def one_more() -> None:
        reporter = DjangoReporter(Experiment.objects.get(pk=experiment.pk), interval=0.01)
        reporter.log(3, {"loss": 0.25})
        reporter.close()

    await asyncio.to_thread(one_more)
    live = await client.receive_json_from(timeout=5)
    await client.disconnect()

    # then the snapshot holds messages 1-2 and the next live one is number 3, even from a new
    # reporter of the same run
    assert snapshot["seq"] == 2 and snapshot["points"]["loss"]["steps"] == [1, 2]
    assert (live["seq"], live["points"]) == (3, {"loss": [[3, 0.25]]})


def test_the_backfill_endpoint_gives_the_points_from_a_step_with_their_message_number(
        owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    reporter = DjangoReporter(experiment, interval=0.01)
    for step in range(1, 6):
        reporter.log(step, {"loss": 1 / step})
    reporter.close()

    data = owner_client.get(f"/experiments/{experiment.pk}/metrics/",
                            {"x0": 3, "live": 1}).json()

    assert data["metrics"]["loss"]["steps"] == [3, 4, 5]
    assert data["seq"] == Experiment.objects.get(pk=experiment.pk).progress["seq"] >= 1
    assert data["run"]["status"] == "running"


async def test_the_study_page_hears_its_trials_start_and_finish_epochs(owner, make_experiment):
    # given a running study with a queued trial, and its page's socket open
    study = await asyncio.to_thread(make_experiment, status=Experiment.Status.RUNNING,
                                    kind=Experiment.Kind.TUNE)
    trial = await asyncio.to_thread(make_experiment, kind=Experiment.Kind.TRIAL, parent=study)
    client = await communicator(f"/ws/studies/{study.pk}/", owner)
    connected, _ = await client.connect()

    # when a worker starts the trial and its reporter reports an epoch
    await asyncio.to_thread(trial.start, "w1")
    started = await client.receive_json_from(timeout=5)

    def report_an_epoch() -> None:
        reporter = DjangoReporter(trial, interval=0.05)
        reporter.status("epoch 1/3", epoch=1, epochs=3)
        reporter.close()

    await asyncio.to_thread(report_an_epoch)
    epoch = await client.receive_json_from(timeout=5)
    await client.disconnect()

    # then the page heard both, naming the trial
    assert connected
    assert (started["kind"], started["id"], started["status"]) == ("update", trial.pk, "running")
    assert (epoch["kind"], epoch["id"], epoch["progress"]["epoch"]) == ("update", trial.pk, 1)


async def test_the_study_socket_serves_studies_only(owner, make_experiment):
    run = await asyncio.to_thread(make_experiment)

    connected, _ = await (await communicator(f"/ws/studies/{run.pk}/", owner)).connect()

    assert not connected
