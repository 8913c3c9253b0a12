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
# Characters of one line: a live run writes a batch of at most a few thousand points a line
# (tens of kB); a longer one is not a run's file, and is refused before it is held in memory.
MAX_LINE = 16 * 2**20


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
    for _ in _records(path):  # the whole file is checked before the run is made
        pass
    records = _records(path)
    header = next(records, None)
    if not header or header.get("fitboard") != 1:
        raise FitboardError(f"{path} is not a fitboard offline run")
    project = project or header.get("project")
    if not isinstance(project, str):
        raise FitboardError(f"{path} names no project: pass --project")
    api = Transport(url, token)
    run = api.post("runs/create", {
        "project": project, "name": header.get("name", ""),
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
            _upload(api, run, path.parent / record["checkpoint"], str(record["name"]))
        elif "finish" in record:
            end = {"status": record["finish"], "ended": record.get("ended"),
                   "reason": record.get("reason", "")}
    if pending:
        api.post("runs/log", {"run_id": run["run_id"], "metrics": pending})
    api.post("runs/finish", {"run_id": run["run_id"], **end})
    marker.write_text(f"run {run['run_id']} {run.get('url', '')}\n")
    api.close()
    return run


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The file's records, each checked (``_check``): FitboardError naming the line of the
    first that a run's file cannot hold."""
    files = path.with_name(path.name + ".files").resolve()
    with path.open(encoding="utf-8") as lines:
        number = 0
        while line := lines.readline(MAX_LINE + 1):
            number += 1
            if len(line) > MAX_LINE:
                raise FitboardError(f"{path}:{number}: a line longer than {MAX_LINE:,} "
                                    "characters")
            try:
                record = json.loads(line)
            except ValueError:
                # A script killed mid-line leaves a torn last line: everything before it counts.
                if line.endswith("\n"):
                    raise FitboardError(f"{path}:{number}: not a JSON object") from None
                return
            problem = _check(record, number == 1, path.parent, files)
            if problem:
                raise FitboardError(f"{path}:{number}: {problem}")
            yield record


def _check(record: Any, first: bool, folder: Path, files: Path) -> str | None:
    """What is wrong with one record of an offline run's file, or None. The server checks
    values; this checks what sync itself reads, so that a file someone else wrote fails with
    its line named, not a traceback, and names no file outside its own ``.files`` folder (a
    checkpoint of "/home/me/.ssh/id_rsa" was uploaded as given)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if first:
        return None
    if "metrics" in record:
        metrics = record["metrics"]
        if not isinstance(metrics, dict) or not all(
                isinstance(c, list) and len(c) == 3 and all(isinstance(x, list) for x in c)
                for c in metrics.values()):
            return "metrics must map names to [steps, values, times]"
    elif "checkpoint" in record:
        if not isinstance(record["checkpoint"], str) or not isinstance(record.get("name"), str):
            return "a checkpoint needs a file and a name"
        if not (folder / record["checkpoint"]).resolve().is_relative_to(files):
            return f"checkpoint {record['checkpoint'][:100]!r} is outside {files.name}"
    return None


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
