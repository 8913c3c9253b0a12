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
