"""Log training runs into Fitboard: ``run = fitboard.init(project=..., name=..., config=...)``,
``run.log({...}, step=...)``, ``run.log_checkpoint(path)``, ``run.finish()``. Offline runs go
to a file that ``fitboard sync`` uploads later."""

from __future__ import annotations

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


def init(project: str, name: str | None = None, config: Mapping[str, Any] | None = None, *,
         tags: Mapping[str, str] | None = None, url: str | None = None,
         token: str | None = None, offline: bool | None = None,
         directory: str | os.PathLike[str] | None = None, **options: Any) -> Run:
    """Start a run in ``project`` (a Fitboard project's name, which the token must reach).

    ``config`` is stored as the run's params (nested keys joined with dots). ``url`` and
    ``token`` default to FITBOARD_URL and FITBOARD_TOKEN. ``offline`` (default: FITBOARD_MODE
    is "offline") writes the run to ``<directory>/<time>-<name>.jsonl`` (directory default
    FITBOARD_DIR, else ./fitboard-runs) for ``fitboard sync``. ``options``: ``batch_points``,
    ``flush_s``, ``max_queued_points``, ``finish_timeout_s`` of ``Run``."""
    on_terminate()  # SIGTERM ends the run as killed, its points sent (see Terminated)
    params = flatten(config or {})
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if offline is None:
        offline = os.environ.get("FITBOARD_MODE", "").lower() == "offline"
    if offline:
        folder = Path(directory or os.environ.get("FITBOARD_DIR") or "fitboard-runs")
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(name or 'run')}-{uuid.uuid4().hex[:6]}"
        header = {"fitboard": 1, "project": project, "name": name or "", "params": params,
                  "tags": tags, "started": time.time()}
        return Run(FileSink(folder / f"{stem}.jsonl", header), **options)
    url, token = _where(url, token)
    transport = Transport(url, token)
    answer = transport.post("runs/create", {
        "project": project, "name": name or "", "params": params, "tags": tags,
        "started": time.time()})
    transport.close()
    return Run(ServerSink(url, token, answer), **options)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A config as params: nested mappings' keys joined with dots, values as text (numbers
    and booleans as Python writes them, like MLflow's ``log_params``)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value if isinstance(value, str) else str(value)
    return flat


def _where(url: str | None, token: str | None) -> tuple[str, str]:
    url = url or os.environ.get("FITBOARD_URL", "")
    token = token or os.environ.get("FITBOARD_TOKEN", "")
    if not url or not token:
        raise FitboardError("set FITBOARD_URL and FITBOARD_TOKEN (a token from the site's API "
                            "tokens page), pass url= and token=, or log offline=True")
    return url, token


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:60]
