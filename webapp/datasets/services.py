"""Creating datasets from the form's input, and handing their files to the engine."""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models.fields.files import FieldFile

from training.data.catalog import is_upload
from training.data.image_labels import LabelColumns
from training.data.uploads import (
    Limits,
    Prepared,
    TableOptions,
    prepare_table,
    read_csv,
    read_hf,
    read_image_zip,
    save_prepared,
)
from training.data.versions import Changes, derive
from webapp.datasets.models import Dataset, DatasetVersion, upload_id
from webapp.projects import storage
from webapp.projects.models import Project


class DatasetUnavailable(LookupError):
    """A run names an uploaded dataset that is not in its project (or no longer exists)."""


def limits() -> Limits:
    return Limits(max_rows=settings.FITBOARD_UPLOAD_MAX_ROWS,
                  max_unpacked_bytes=settings.FITBOARD_UPLOAD_MAX_UNPACKED_BYTES,
                  max_members=settings.FITBOARD_UPLOAD_MAX_MEMBERS,
                  max_pixels=settings.FITBOARD_UPLOAD_MAX_PIXELS,
                  max_columns=settings.FITBOARD_UPLOAD_MAX_COLUMNS,
                  max_cells=settings.FITBOARD_UPLOAD_MAX_CELLS,
                  max_cell_chars=settings.FITBOARD_UPLOAD_MAX_CELL_CHARS)


def table_options(options: Mapping[str, Any]) -> TableOptions:
    features = tuple(c.strip() for c in str(options.get("feature_columns") or "").split(",")
                     if c.strip())
    texts = [c.strip() for c in str(options.get("text_column") or "").split(",") if c.strip()]
    names = tuple(line.strip() for line in str(options.get("class_names") or "").splitlines()
                  if line.strip())
    return TableOptions(
        label_column=str(options.get("label_column") or "").strip(),
        feature_columns=features,
        text_column=texts[0] if texts else "",
        more_text_columns=tuple(texts[1:]),
        class_name_column=str(options.get("class_name_column") or "").strip(),
        class_names=names,
        task=str(options.get("task") or "classification"),
        missing=str(options.get("missing") or "drop"),
        drop_duplicates=bool(options.get("drop_duplicates")),
        drop_unlabelled=bool(options.get("drop_unlabelled")),
        standardise=bool(options.get("standardise")),
    )


def prepare_upload(kind: str, options: Mapping[str, Any], upload: IO[bytes] | None,
                   file_name: str = "", title: str = "") -> Prepared:
    """Check and clean an upload (or a Hugging Face dataset); raises UploadError on bad input.
    Reads the upload in memory: nothing is extracted or written."""
    if kind == Dataset.Kind.IMAGES:
        assert upload is not None
        columns = LabelColumns(label=str(options.get("label_column") or "").strip(),
                               image=str(options.get("image_column") or "").strip())
        return read_image_zip(upload, int(options.get("image_size") or 32),
                              bool(options.get("drop_duplicates")), limits(), title, columns)
    if kind == Dataset.Kind.CSV:
        assert upload is not None
        frame = read_csv(upload, file_name, limits(), str(options.get("header") or "auto"))
    else:
        frame = read_hf(str(options.get("hf_source") or ""),
                        str(options.get("hf_split") or "train"),
                        settings.FITBOARD_DATASETS_LOCAL_DIRS,
                        settings.MEDIA_ROOT / "hf-cache", limits())
    return prepare_table(frame, table_options(options), limits(), title)


def create_dataset(user: Any, project: Project, name: str, kind: str,
                   options: Mapping[str, Any], prepared: Prepared,
                   upload: File | None = None) -> Dataset:
    """Store a checked upload and its prepared file under MEDIA_ROOT, as one new row;
    OverStorageQuota (nothing stored) past the user's storage quota."""
    dataset = Dataset(project=project, name=name, kind=kind, options=dict(options),
                      report=prepared.report, size=upload.size if upload else 0,
                      created_by=user)
    try:
        with transaction.atomic():
            dataset.save()
            buffer = io.BytesIO()
            info = save_prepared(prepared, dataset.spec_name, buffer)
            dataset.info = {**info.to_dict(), "title": name}
            dataset.stored_size = dataset.size + buffer.getbuffer().nbytes
            # At least a file's charge, as an artifact: tiny uploads in a loop cost a row and
            # two files each, counted as a few hundred bytes. The row saved above already
            # counts as an empty file's charge.
            storage.reserve(user, storage.file_bytes(dataset.stored_size),
                            freeing=storage.file_bytes(0))
            if upload is not None:
                upload.seek(0)
                dataset.source.save("source", upload, save=False)
            dataset.prepared.save("prepared.npz", ContentFile(buffer.getvalue()), save=False)
            dataset.save()
    except BaseException:
        for stored in (dataset.source, dataset.prepared):
            if stored.name:
                stored.storage.delete(stored.name)
        raise
    return dataset


def local_files(dataset_names: list[str], project: Project, version: int = 0
                ) -> dict[str, Path]:
    """Local paths of the prepared files of the uploads a spec names (their ``version``; 0 =
    the latest), which must belong to the run's project; DatasetUnavailable naming the dataset
    (or version) otherwise."""
    files = {}
    for name in dataset_names:
        if not is_upload(name):
            continue
        dataset = Dataset.objects.filter(pk=upload_id(name), project=project).first()
        if dataset is None:
            raise DatasetUnavailable(
                f"the uploaded dataset {name} is not in project {project.name}")
        files[name] = version_file(dataset, version or dataset.latest_version)
    return files


def version_file(dataset: Dataset, number: int) -> Path:
    """The local prepared file of one version of ``dataset`` (1 = the upload itself)."""
    if number == 1:
        return _local_path(dataset.prepared, f"{dataset.pk}.npz")
    found = dataset.versions.filter(number=number).first()
    if found is None:
        raise DatasetUnavailable(f"{dataset.spec_name} has no version {number} (its latest is "
                                 f"{dataset.latest_version})")
    return _local_path(found.prepared, f"{dataset.pk}-v{number}.npz")


def resolve_version(name: str, project: Project, version: int) -> int:
    """The version a run on ``name`` uses: ``version``, or the latest for 0 (0 for a built-in
    set, which has none). DatasetUnavailable for a version that does not exist."""
    if not is_upload(name):
        return 0
    dataset = Dataset.objects.filter(pk=upload_id(name), project=project).first()
    if dataset is None:
        raise DatasetUnavailable(f"the uploaded dataset {name} is not in project {project.name}")
    latest = dataset.latest_version
    if version > latest:
        raise DatasetUnavailable(f"{name} has no version {version} (its latest is {latest})")
    return version or latest


def create_version(user: Any, dataset: Dataset, base: int, changes: Changes, note: str = ""
                   ) -> DatasetVersion:
    """Write the next version of ``dataset``: version ``base`` with ``changes`` applied (raises
    VersionError for changes that do not apply, OverStorageQuota past the user's storage
    quota). Under a row lock, so two reviewers saving at
    once get consecutive numbers; the dataset's info becomes the new version's."""
    source = version_file(dataset, base)
    buffer = io.BytesIO()
    info, diff = derive(source, changes, dataset.spec_name, buffer)
    with transaction.atomic():
        storage.reserve(user, storage.file_bytes(buffer.getbuffer().nbytes))
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        number = locked.latest_version + 1
        version = DatasetVersion(dataset=locked, number=number, info=info.to_dict(),
                                 changes={**diff, "from": base}, note=note[:500],
                                 size=buffer.getbuffer().nbytes, created_by=user)
        version.prepared.save("prepared.npz", ContentFile(buffer.getvalue()), save=False)
        try:
            version.save()
            locked.info = {**info.to_dict(), "title": locked.name}
            locked.save(update_fields=["info"])
        except BaseException:
            version.prepared.storage.delete(version.prepared.name)
            raise
    return version


def _local_path(stored: FieldFile, cache_name: str) -> Path:
    """A stored file on this machine: in place on local storage, else a cached copy."""
    try:
        return Path(stored.path)
    except NotImplementedError:  # remote storage (S3): copy once into the worker's cache
        cached = settings.MEDIA_ROOT / "dataset-cache" / cache_name
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".part")
            with stored.open("rb") as source, partial.open("wb") as target:
                shutil.copyfileobj(source, target)
            partial.replace(cached)
        return cached
