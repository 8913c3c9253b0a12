"""The worker machine's CPU, RAM and GPU use while a job runs, stored beside its curves.

A thread samples every few seconds (FITBOARD_SYSTEM_METRICS_S) and logs the values through the
job's reporter under ``sys/`` keys, at a "step" that is the seconds since the job started, so
they go through the same store and live channel as the training metrics. GPU figures come
from NVML (nvidia-ml-py) for the GPUs this worker holds, and are absent without a driver.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from training.reporter import Reporter

logger = logging.getLogger(__name__)

PREFIX = "sys/"


def _worker_gpus(nvml: Any) -> list[int]:
    """NVML indices of this worker's GPUs: those CUDA_VISIBLE_DEVICES lists (the launcher sets
    CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's order), else all."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [int(i) for i in listed.split(",") if i.strip().isdigit()]
    return list(range(nvml.nvmlDeviceGetCount()))


def _nvml() -> Any | None:
    """pynvml, initialised; None on a machine without an NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU figures
        return None
    return pynvml


def gpu_names() -> list[tuple[int, str]]:
    """(index, name) of this worker's GPUs; empty without NVML."""
    nvml = _nvml()
    if nvml is None:
        return []
    try:
        return [(i, str(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))))
                for i in _worker_gpus(nvml)]
    except Exception:  # noqa: BLE001
        logger.warning("could not read the GPU names", exc_info=True)
        return []
    finally:
        nvml.nvmlShutdown()


def sample(nvml: Any | None = None) -> dict[str, float]:
    """One reading: machine CPU %, RAM % and GB used; with NVML, the mean utilisation and
    memory use (% and GB, summed) of this worker's GPUs."""
    import psutil

    memory = psutil.virtual_memory()
    values = {
        f"{PREFIX}cpu_percent": float(psutil.cpu_percent(interval=None)),
        f"{PREFIX}ram_percent": float(memory.percent),
        f"{PREFIX}ram_used_gb": (memory.total - memory.available) / 2**30,
    }
    if nvml is not None:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in _worker_gpus(nvml)]
        if handles:
            util = [nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles]
            mem = [nvml.nvmlDeviceGetMemoryInfo(h) for h in handles]
            values[f"{PREFIX}gpu_util_percent"] = sum(util) / len(util)
            values[f"{PREFIX}gpu_memory_percent"] = (
                100 * sum(m.used for m in mem) / sum(m.total for m in mem))
            values[f"{PREFIX}gpu_memory_gb"] = sum(m.used for m in mem) / 2**30
    return values


class SystemSampler:
    """Logs ``sample()`` to ``reporter`` every ``interval`` seconds between ``start`` and
    ``stop`` (interval 0: never). A failing sample is logged and ends the sampling, never the
    job."""

    def __init__(self, reporter: Reporter, interval: float, elapsed: float = 0.0) -> None:
        # ``elapsed``: seconds the job ran before this attempt (a job resumed after its worker
        # died goes on from there, so its steps never repeat the dead attempt's).
        self.reporter, self.interval, self.elapsed = reporter, interval, elapsed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        import psutil

        nvml = _nvml()
        psutil.cpu_percent(interval=None)  # the first reading starts the CPU % window
        started = time.monotonic() - self.elapsed
        last_step = -1
        # The first reading comes after a second (a CPU % needs a window), not a whole
        # interval, and the last one when the job ends: a run of a few seconds still gets a
        # chart with its start and end.
        wait = min(1.0, self.interval)
        try:
            while not self._stop.wait(wait):
                last_step = round(time.monotonic() - started)
                self.reporter.log(last_step, sample(nvml))
                wait = self.interval
            step = round(time.monotonic() - started)
            if step > last_step:
                self.reporter.log(step, sample(nvml))
        except Exception:  # noqa: BLE001
            logger.warning("system metrics sampling stopped", exc_info=True)
        finally:
            if nvml is not None:
                nvml.nvmlShutdown()
