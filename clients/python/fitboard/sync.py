"""``fitboard sync``: upload an offline run's file as a new run, with the points, times,
params, tags, checkpoints and end it recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fitboard.run import ARTIFACTS, Columns
from fitboard.transport import FitboardError, Transport

BATCH_POINTS = 10_000  # per request, as a live run sends them


def sync(path: str | Path, url: str, token: str, project: str | None = None,
         force: bool = False) -> dict[str, Any]:
    """Upload the offline run in ``path`` (into ``project`` if given, else the one it was
    logged for). The run's id goes into ``<path>.synced``; a file synced before is refused
    unless ``force``. A file without an end (its script was killed) ends as failed."""
    path = Path(path)
    marker = path.with_name(path.name + ".synced")
    if marker.exists() and not force:
        raise FitboardError(f"{path} was synced before ({marker.read_text().strip()}); "
                            "use --force to upload it again")
    records = _records(path)
    header = next(records, None)
    if not header or header.get("fitboard") != 1:
        raise FitboardError(f"{path} is not a fitboard offline run")
    api = Transport(url, token)
    run = api.post("runs/create", {
        "project": project or header["project"], "name": header.get("name", ""),
        "params": header.get("params", {}), "tags": header.get("tags", {}),
        "started": header.get("started")})
    end: dict[str, Any] = {"status": "failed", "ended": None}
    pending: Columns = {}
    for record in records:
        if "metrics" in record:
            _merge(pending, record["metrics"])
            if sum(len(c[0]) for c in pending.values()) >= BATCH_POINTS:
                api.post("runs/log", {"run_id": run["run_id"], "metrics": pending})
                pending = {}
        elif "checkpoint" in record:
            _upload(api, run, path.parent / record["checkpoint"], record["name"])
        elif "finish" in record:
            end = {"status": record["finish"], "ended": record.get("ended")}
    if pending:
        api.post("runs/log", {"run_id": run["run_id"], "metrics": pending})
    api.post("runs/finish", {"run_id": run["run_id"], **end})
    marker.write_text(f"run {run['run_id']} {run.get('url', '')}\n")
    api.close()
    return run


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                yield json.loads(line)
            except ValueError:
                # A script killed mid-line leaves a torn last line: everything before it counts.
                if line.endswith("\n"):
                    raise FitboardError(f"{path}:{number}: not a JSON object") from None
                return


def _merge(into: Columns, columns: dict[str, list[list[Any]]]) -> None:
    for key, (steps, values, times) in columns.items():
        have = into.setdefault(key, ([], [], []))
        have[0].extend(steps)
        have[1].extend(values)
        have[2].extend(times)


def _upload(api: Transport, run: dict[str, Any], source: Path, name: str) -> None:
    target = f"{ARTIFACTS}/{run['project_id']}/{run['run_id']}/artifacts/checkpoints/{name}"
    with source.open("rb") as data:
        api.put_file(target, data)
