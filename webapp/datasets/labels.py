"""Suspicious labels of an uploaded data set: starting a scan (a row and a Celery message sent
after commit), running it on a worker (``training.labels``, never in a request), and reading its
result for the page."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training.data.uploads import load_prepared
from training.data.versions import row_ids
from training.labels import FinderSpec, find_suspicious
from webapp.datasets.models import Dataset, LabelScan
from webapp.datasets.services import version_file
from webapp.projects import storage

logger = logging.getLogger(__name__)
TASK = "datasets.find_labels"
# Who may make a data set's next version (``access.may_change``), said where another is refused.
RELABEL_REFUSED = ("Only the data set's uploader, its project's maintainers and staff relabel "
                   "or exclude its rows.")
KEPT_ROWS = 5000  # suspicious rows a scan keeps for its page (the flagged ones, best first)
# A scan still queued or running this long after it was asked for is taken for lost (its worker
# died, its message was dropped): it no longer stops a new scan of its data set.
LOST_AFTER = timedelta(days=1)


class ScanRefused(ValueError):
    """A data set whose labels cannot be scanned (a regression target)."""


def start_scan(user: Any, dataset: Dataset, version: int, folds: int = 5) -> LabelScan:
    """Store a queued scan of one version and send its task once the row is committed.
    ScanRefused while another scan of the data set is queued or running, or while the user has
    FITBOARD_MAX_ACTIVE_JOBS_PER_USER scans queued or running: each cross-fits a model on every
    row on a worker."""
    if dataset.info.get("task") != "classification":
        raise ScanRefused("only a classification data set has labels to check")
    limit = settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER
    with transaction.atomic():
        # The user's live scans, counted under their row lock (the job quota's): one scan per
        # data set alone let a member queue a scan of each of a hundred small uploads.
        storage.lock_user(user)
        mine = live_scans(user)
        if limit and mine >= limit:
            raise ScanRefused(f"you have {mine} label scans queued or running; the limit is "
                              f"{limit} per user (FITBOARD_MAX_ACTIVE_JOBS_PER_USER): wait "
                              "for one to end")
        # Locked: two requests at once cannot both find no scan running.
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        live = dataset.label_scans.filter(
            status__in=(LabelScan.Status.QUEUED, LabelScan.Status.RUNNING),
            created_at__gt=timezone.now() - LOST_AFTER).first()
        if live is not None:
            raise ScanRefused(f"scan {live.pk} of this data set is {live.status}: read it, or "
                              "wait for it to end before starting another")
        scan = LabelScan.objects.create(dataset=dataset, version=version, folds=folds,
                                        created_by=user, progress={"folds_done": 0,
                                                                   "folds": folds})
        transaction.on_commit(lambda: current_app.send_task(TASK, (scan.pk,)))
    return scan


def live_scans(user: Any) -> int:
    """The label scans ``user`` started that are queued or running (and not taken for lost)."""
    return int(LabelScan.objects.filter(
        created_by=user, status__in=(LabelScan.Status.QUEUED, LabelScan.Status.RUNNING),
        created_at__gt=timezone.now() - LOST_AFTER).count())


def execute_scan(scan_id: int) -> None:
    """The worker's side: cross-fit the quick model, rank the rows, store the result."""
    scan = LabelScan.objects.select_related("dataset").filter(pk=scan_id).first()
    if scan is None or not scan.start():
        return  # deleted with its data set, or a second delivery of a started scan

    def progress(done: int, total: int) -> None:
        LabelScan.objects.filter(pk=scan.pk).update(progress={"folds_done": done,
                                                              "folds": total})

    try:
        path = version_file(scan.dataset, scan.version)
        raw = load_prepared(path, scan.dataset.spec_name)
        found = find_suspicious(raw.x, raw.y, len(raw.label_names),
                                FinderSpec(folds=scan.folds), progress)
        ids = row_ids(path)
        rows = [{**row, "row": int(ids[row["row"]]), "position": row["row"]}
                for row in found.to_rows(KEPT_ROWS)]
        result = {"flagged": found.flagged, "rows_in_version": len(raw.y), "rows": rows,
                  "confusion": found.confusion.tolist(), "label_names": raw.label_names,
                  "finished": timezone.now().isoformat()}
    except Exception as exc:  # noqa: BLE001 - any failure ends the scan with its reason
        logger.exception("label scan %s failed", scan_id)
        scan.finish(LabelScan.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    scan.finish(LabelScan.Status.DONE, result)


@dataclass(frozen=True)
class Filter:
    """Which suspicious rows the page lists: a class pair (given → suggested), or all."""

    given: int | None = None
    suggested: int | None = None

    def keep(self, row: dict[str, Any]) -> bool:
        return ((self.given is None or row["given"] == self.given)
                and (self.suggested is None or row["suggested"] == self.suggested))


def previews(dataset: Dataset, version: int, positions: list[int]) -> dict[int, dict[str, str]]:
    """What the page shows of each row (by its position in the version's file): a PNG data
    URI for an image, the text for a text row, the first features for a table row."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    raw = load_prepared(version_file(dataset, version), dataset.spec_name)
    shown: dict[int, dict[str, str]] = {}
    for position in positions:
        x = raw.x[position]
        if raw.info.modality == "image":
            pixels = np.asarray(x, dtype=np.float64)
            pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
            low, high = float(pixels.min()), float(pixels.max())
            scaled = ((pixels - low) / (high - low or 1.0) * 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(scaled).save(buffer, format="PNG")
            shown[position] = {"src": "data:image/png;base64,"
                                      + base64.b64encode(buffer.getvalue()).decode()}
        elif raw.info.modality == "text":
            text = str(x)
            shown[position] = {"text": text if len(text) <= 400 else text[:399] + "…"}
        else:
            values = ", ".join(f"{float(v):.3g}" for v in np.asarray(x).ravel()[:8])
            shown[position] = {"text": values + (" …" if np.asarray(x).size > 8 else "")}
    return shown


def listed_rows(scan: LabelScan, chosen: Filter, changed: set[int]) -> list[dict[str, Any]]:
    """The scan's flagged rows that pass ``chosen``, less the rows a later version changed."""
    return [r for r in scan.result.get("rows", []) if chosen.keep(r) and r["row"] not in changed]


def changed_since(dataset: Dataset, version: int) -> set[int]:
    """Rows (by version-1 position) relabelled or removed by versions after ``version``."""
    changed: set[int] = set()
    for later in dataset.versions.filter(number__gt=version):
        changed.update(r for r, _, _ in later.changes.get("relabelled", []))
        changed.update(later.changes.get("removed", []))
    return changed
