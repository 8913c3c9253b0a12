"""Log training runs into Fitboard: ``run = fitboard.init(project=..., name=..., config=...)``,
``run.log({...}, step=...)``, ``run.log_checkpoint(path)``, ``run.finish()``. Offline runs go
to a file that ``fitboard sync`` uploads later."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fitboard.run import FileSink, Run, ServerSink, on_terminate
from fitboard.transport import FitboardError, Transport

__all__ = ["FitboardError", "Run", "init", "flatten"]
__version__ = "0.1.0"


def init(project: str, name: str | None = None, config: Any = None, *,
         tags: Mapping[str, str] | None = None, url: str | None = None,
         token: str | None = None, offline: bool | None = None,
         directory: str | os.PathLike[str] | None = None, resume: int | str | None = None,
         **options: Any) -> Run:
    """Start a run in ``project`` (a Fitboard project's name, which the token must reach).

    ``config`` (a mapping, a dataclass or an ``argparse.Namespace``) is stored as the run's
    params (nested keys joined with dots). ``url`` and
    ``token`` default to FITBOARD_URL and FITBOARD_TOKEN. ``offline`` (default: FITBOARD_MODE
    is "offline") writes the run to ``<directory>/<time>-<name>.jsonl`` (directory default
    FITBOARD_DIR, else ./fitboard-runs) for ``fitboard sync``. ``resume`` (a run's id, as
    ``run.id`` gave it; default FITBOARD_RESUME) logs into that run again instead of a new one,
    ended or not, after a crash or a stop: ``run.last_step`` is the last step it holds, so the
    script goes on from the step after it (``project`` and ``name`` are the run's, not these).
    ``options``: ``batch_points``,
    ``flush_s``, ``max_queued_points``, ``finish_timeout_s`` of ``Run``."""
    on_terminate()  # SIGTERM ends the run as killed, its points sent (see Terminated)
    params = flatten({} if config is None else config)
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if offline is None:
        offline = os.environ.get("FITBOARD_MODE", "").lower() == "offline"
    resume = resume if resume is not None else os.environ.get("FITBOARD_RESUME") or None
    if offline and resume is not None:
        raise FitboardError("a run is resumed on its server: resume= needs a server, not "
                            "offline=True")
    if offline:
        folder = Path(directory or os.environ.get("FITBOARD_DIR") or "fitboard-runs")
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(name or 'run')}-{uuid.uuid4().hex[:6]}"
        header = {"fitboard": 1, "project": project, "name": name or "", "params": params,
                  "tags": tags, "started": time.time()}
        return Run(FileSink(folder / f"{stem}.jsonl", header), **options)
    url, token = _where(url, token)
    transport = Transport(url, token)
    answer = (transport.post("runs/resume", {"run_id": str(resume), "params": params,
                                             "tags": tags}) if resume is not None
              else transport.post("runs/create", {
                  "project": project, "name": name or "", "params": params, "tags": tags,
                  "started": time.time()}))
    transport.close()
    return Run(ServerSink(url, token, answer), **options)


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """A config as params: nested mappings', dataclasses' and ``argparse.Namespace``s' keys
    joined with dots, values as text (numbers and booleans as Python writes them, like
    MLflow's ``log_params``; a path as its text, a list as Python writes it)."""
    flat: dict[str, str] = {}
    for key, value in _fields(config).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping | argparse.Namespace) or _is_dataclass(value):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value if isinstance(value, str) else str(value)
    return flat


def _fields(config: Any) -> Mapping[str, Any]:
    """What a config holds by name: W&B's ``config=`` takes ``args`` and dataclasses too."""
    if isinstance(config, argparse.Namespace):
        return vars(config)
    if _is_dataclass(config):
        return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return config
    raise FitboardError(f"config must be a mapping, a dataclass or an argparse.Namespace, "
                        f"not {type(config).__name__}")


def _is_dataclass(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _where(url: str | None, token: str | None) -> tuple[str, str]:
    url = url or os.environ.get("FITBOARD_URL", "")
    token = token or os.environ.get("FITBOARD_TOKEN", "")
    if not url or not token:
        raise FitboardError("set FITBOARD_URL and FITBOARD_TOKEN (a token from the site's API "
                            "tokens page), pass url= and token=, or log offline=True")
    return url, token


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:60]
