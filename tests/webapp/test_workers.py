"""Which workers a machine starts and which queue each job goes to (``manage.py worker``), and
the system figures a worker samples beside a running job."""

from __future__ import annotations

import io
import sys
import time

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from training.reporter import MemoryReporter
from training.spec import ExperimentSpec, RunSpec, SpecError
from webapp.experiments.launch import (
    Children,
    notify_plan,
    parse_gpus,
    plan_workers,
    queue_for,
)
from webapp.experiments.sysmetrics import SystemSampler


def spec(**run: object) -> ExperimentSpec:
    return ExperimentSpec.from_dict({"run": run})


@pytest.mark.parametrize(("run", "queue"), [
    ({}, "gpu"),  # auto: a GPU where there is one
    ({"device": "cuda"}, "gpu"),
    ({"device": "cpu"}, "cpu"),
    ({"device": "cpu", "devices": 2}, "cpu"),  # gloo processes on any CPU worker
    ({"devices": 2}, "gpu.2"),
    ({"device": "cuda", "devices": 4}, "gpu.4"),
])
def test_a_job_is_queued_by_what_it_needs(run, queue):
    # Built without validation: this machine's worker limits (FITBOARD_MAX_DEVICES) are not
    # what routing is about.
    assert queue_for(ExperimentSpec(run=RunSpec(**run))) == queue


def test_a_run_asks_for_one_to_sixty_four_devices():
    with pytest.raises(SpecError) as error:
        spec(devices=0)
    assert "run.devices" in error.value.errors


def test_a_machine_without_gpus_starts_one_cpu_worker():
    (plan,) = plan_workers([])

    assert plan.gpus == ()
    assert plan.queues == ("cpu", "gpu", "default")
    assert "CUDA_VISIBLE_DEVICES" not in plan.env({})


def test_each_gpu_gets_its_own_pinned_worker():
    plans = plan_workers([0, 2])

    assert [p.name for p in plans] == ["gpu0@%h", "gpu2@%h"]
    assert [p.env({})["CUDA_VISIBLE_DEVICES"] for p in plans] == ["0", "2"]
    assert all(p.queues == ("gpu", "cpu", "default") for p in plans)
    assert all("-P" in p.command() and "solo" in p.command() for p in plans)


def test_only_a_worker_holding_two_gpus_takes_two_gpu_runs():
    plans = plan_workers([0, 1, 2], per_worker=2)

    assert [(p.gpus, "gpu.2" in p.queues) for p in plans] == [((0, 1), True), ((2,), False)]


def test_gpus_are_picked_by_index_or_none():
    assert parse_gpus("0,2") == [0, 2]
    assert parse_gpus("none") == []
    with pytest.raises(CommandError):
        parse_gpus("0,x")


def test_the_worker_command_lists_what_it_would_start():
    out = io.StringIO()

    call_command("worker", "--gpus", "0,1", "--dry-run", stdout=out)

    assert out.getvalue().splitlines() == ["gpu0@%h: GPU 0, queues gpu,cpu,default",
                                           "gpu1@%h: GPU 1, queues gpu,cpu,default",
                                           "notify@%h: CPU, queues notify, 8 threads"]


def test_notifications_get_a_worker_of_threads_on_their_queue_alone(settings):
    settings.FITBOARD_NOTIFY_THREADS = 6

    plan = notify_plan("site-", [q for p in plan_workers([0]) for q in p.queues])

    assert plan is not None and plan.name == "site-notify@%h"
    assert plan.queues == ("notify",) and plan.gpus == ()
    command = plan.command()
    assert command[command.index("-P") + 1] == "threads"
    assert command[command.index("-c") + 1] == "6"
    assert command[command.index("-Q") + 1] == "notify"


@pytest.mark.parametrize("queue", ["default", "gpu", "cpu", "gpu.2", "mine"])
def test_a_notify_queue_the_training_workers_consume_gets_no_thread_pool(settings, queue):
    # (a thread pool taking a training or a study's driver would run it beside the others)
    settings.FITBOARD_NOTIFY_QUEUE = queue

    assert notify_plan("", ["gpu", "mine"]) is None


def test_the_worker_command_starts_the_notifications_worker_alone_or_not_at_all(settings):
    alone, without = io.StringIO(), io.StringIO()

    call_command("worker", "--gpus", "0", "--notify-only", "--dry-run", stdout=alone)
    call_command("worker", "--gpus", "0", "--no-notify", "--dry-run", stdout=without)
    settings.FITBOARD_NOTIFY_QUEUE = "default"
    with pytest.raises(CommandError, match="FITBOARD_NOTIFY_QUEUE"):
        call_command("worker", "--notify-only", "--dry-run", stdout=io.StringIO())

    assert alone.getvalue().splitlines() == ["notify@%h: CPU, queues notify, 8 threads"]
    assert without.getvalue().splitlines() == ["gpu0@%h: GPU 0, queues gpu,cpu,default"]


def test_the_sampler_logs_cpu_and_ram_beside_the_run():
    reporter = MemoryReporter()
    sampler = SystemSampler(reporter, interval=0.05)

    sampler.start()
    deadline = time.monotonic() + 10
    while len(reporter.points) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sampler.stop()

    values = reporter.points[-1][1]
    assert 0 <= values["sys/cpu_percent"] <= 100  # the whole machine
    assert 0 < values["sys/ram_percent"] < 100
    assert values["sys/ram_used_gb"] > 0


def test_a_short_job_gets_a_first_reading_within_seconds_and_a_last_one_at_the_end():
    reporter = MemoryReporter()
    sampler = SystemSampler(reporter, interval=60)  # a job far shorter than one interval
    started = time.monotonic()

    sampler.start()
    deadline = started + 10
    while not reporter.points and time.monotonic() < deadline:
        time.sleep(0.02)
    first_seen = time.monotonic() - started
    time.sleep(max(0.0, first_seen + 1.5 - (time.monotonic() - started)))
    sampler.stop()

    steps = [step for step, _ in reporter.points]
    assert first_seen < 10 and steps[0] >= 1  # after the CPU % window, long before 60 s
    assert len(steps) == 2 and steps[1] > steps[0]  # the reading taken at stop


def test_a_zero_interval_samples_nothing():
    reporter = MemoryReporter()
    sampler = SystemSampler(reporter, interval=0)

    sampler.start()
    sampler.stop()

    assert reporter.points == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_machine_workers_are_planned_and_sampled_per_gpu():
    from webapp.experiments.launch import visible_gpus
    from webapp.experiments.sysmetrics import _nvml, gpu_names, sample

    gpus = visible_gpus()
    assert len(gpus) == torch.cuda.device_count()
    assert len(plan_workers(gpus)) == len(gpus)
    assert gpu_names() and all(name for _, name in gpu_names())
    nvml = _nvml()
    try:
        values = sample(nvml)
    finally:
        nvml.nvmlShutdown()
    assert 0 <= values["sys/gpu_util_percent"] <= 100
    assert values["sys/gpu_memory_gb"] >= 0


# --- workers that die ---------------------------------------------------------------------------

def test_a_worker_that_dies_is_started_again_and_the_rest_keep_running():
    # given manage.py up's children: a worker and the web server (here, a sleeper each)
    children = Children(min_uptime=0)
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    worker = children.spawn(sleep, None, restart=True)
    server = children.spawn(sleep, None)
    try:
        # when the worker is killed (the OOM killer's SIGKILL)
        worker.kill()
        worker.wait()
        children.check()

        # then a new worker runs in its place, and the server was not stopped
        assert worker not in children.processes and len(children.processes) == 2
        assert all(child.poll() is None for child in children.processes)
        assert server.poll() is None

        # and the server's own exit still stops them all
        server.kill()
        server.wait()
        with pytest.raises(CommandError, match="exited with code"):
            children.check()
    finally:
        children.stop()
    assert all(child.poll() is not None for child in children.processes)


def test_a_worker_that_dies_as_it_starts_is_not_started_again():
    children = Children(min_uptime=60)
    worker = children.spawn([sys.executable, "-c", "raise SystemExit(3)"], None, restart=True)
    worker.wait()
    try:
        with pytest.raises(CommandError, match="exited with code 3"):
            children.check()
    finally:
        children.stop()


def test_up_reads_an_empty_port_and_host_as_their_defaults(monkeypatch):
    # given PORT and FITBOARD_HOST set but empty, as docs/configuration.md allows
    from webapp.experiments.management.commands.up import Command

    monkeypatch.setenv("PORT", "")
    monkeypatch.setenv("FITBOARD_HOST", " ")
    # when manage.py up reads its options
    options = Command().create_parser("manage.py", "up").parse_args([])
    # then each takes its default
    assert (options.host, options.port) == ("127.0.0.1", 8000)


def test_up_refuses_a_bad_port_naming_the_variable(monkeypatch):
    # given a PORT that is not a number
    from django.core.exceptions import ImproperlyConfigured

    from webapp.experiments.management.commands.up import Command

    monkeypatch.setenv("PORT", "eighty")
    # when manage.py up reads its options, then the error names PORT
    with pytest.raises(ImproperlyConfigured, match="PORT must be an integer"):
        Command().create_parser("manage.py", "up")
