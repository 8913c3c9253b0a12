"""What this machine has, read before Django's settings are: its GPUs' memory, through NVML
(so nothing initialises CUDA). The settings derive default resource limits from it."""

from __future__ import annotations

import os


def gpu_memory() -> list[int]:
    """Total memory in bytes of each GPU this machine's workers would get (those
    CUDA_VISIBLE_DEVICES lists, when set); empty without GPUs or the NVIDIA driver."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            indices: list[int] = list(range(pynvml.nvmlDeviceGetCount()))
            if listed is not None:
                indices = [int(i) for i in listed.split(",") if i.strip().isdigit()]
            return [int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total)
                    for i in indices]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVIDIA driver (or library): a CPU machine
        return []


# What one Celery worker needs to train the usual run beside others: torch and a data set in
# memory (about 1 GB resident for MNIST), and two cores for its threads and the data loading.
WORKER_MEMORY_BYTES = 2 * 1024**3
CORES_PER_WORKER = 2
MAX_DEFAULT_WORKERS = 8  # beyond this a single machine's jobs contend for memory bandwidth


def memory_bytes() -> int:
    """This machine's total memory in bytes."""
    import psutil

    return int(psutil.virtual_memory().total)


# Share of this machine's memory its workers split between them; the rest is the web server's,
# Redis's and the system's.
WORKERS_MEMORY_SHARE = 0.9


def worker_memory_gb(workers: int, memory: int, gpus: int | None = None) -> int:
    """Each of ``workers`` workers' share of this machine's ``memory`` bytes, in GB (at least
    1): what FITBOARD_WORKER_MEMORY_GB is by default. 0 (no limit) on a machine with a GPU
    (``gpus``, counted by NVML when not given): the CUDA driver maps host memory of its own
    (pinned buffers, unified memory) that the limit would count, and that has not been measured;
    set the variable to cap GPU workers too."""
    if gpus is None:
        gpus = len(gpu_memory())
    if gpus:
        return 0
    return max(1, int(memory * WORKERS_MEMORY_SHARE / max(1, workers)) // 10**9)


def limit_memory(gb: int) -> None:
    """Cap this process's private writable memory at ``gb`` GB (RLIMIT_DATA: its heap and
    anonymous mappings, where tensors and arrays live; not the address space CUDA reserves,
    nor memory on a GPU). Past it an allocation fails inside the process (torch's
    RuntimeError "can't allocate memory", numpy's MemoryError), where the job fails with that
    reason, rather than the kernel's OOM killer ending the worker and whatever else it picks.
    Children (torchrun's ranks, data loader processes) inherit it."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = gb * 10**9
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def default_workers(cores: int, memory: int) -> int:
    """How many workers ``manage.py up`` starts when FITBOARD_UP_WORKERS is unset: as many as
    the cores and the memory both hold (two cores and 2 GiB each), at least one, at most
    MAX_DEFAULT_WORKERS."""
    by_cores = cores // CORES_PER_WORKER
    by_memory = memory // WORKER_MEMORY_BYTES
    return max(1, min(by_cores, by_memory, MAX_DEFAULT_WORKERS))
