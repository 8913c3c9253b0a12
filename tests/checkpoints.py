"""A run's checkpoint as the worker leaves it: the archive under MEDIA_ROOT and the row that
points at it, with its size and sha256 (which downloads and loads check)."""

from __future__ import annotations

import hashlib

from django.conf import settings

from webapp.experiments.models import Checkpoint, Experiment


def store_checkpoint(experiment: Experiment, data: bytes, tag: str = "best") -> Checkpoint:
    """Write ``data`` as ``experiment``'s ``tag`` archive and record it."""
    path = settings.MEDIA_ROOT / "runs" / str(experiment.pk) / f"{tag}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Checkpoint.objects.create(experiment=experiment, tag=tag, size=len(data),
                                     path=str(path.relative_to(settings.MEDIA_ROOT)),
                                     sha256=hashlib.sha256(data).hexdigest())
