"""Checkpoint archives in Django's storage: the local media folder by default, an
S3-compatible bucket (django-storages) when several machines share the work.

A worker writes each archive to its local run folder under MEDIA_ROOT (fast, crash-safe, what
the loop knows), then ``publish`` puts it in the storage under the same name. On local storage
that name *is* the file, so nothing is copied; the database row keeps the name and digest.
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage


class MissingFile(LookupError):
    """The storage has no file under that name (or the name is not a storage name)."""


class AlteredFile(ValueError):
    """The stored file's bytes are not the ones whose digest was recorded."""


def storage_name(path: Path) -> str:
    """The storage name of a file a worker wrote under MEDIA_ROOT: its relative path."""
    return Path(path).resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()).as_posix()


def _checked(name: str) -> str:
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts:
        raise MissingFile(name)
    return name


def _local_path(name: str) -> Path | None:
    """Where the storage keeps ``name`` on this machine's disk; None for a remote store."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        return None


def publish(path: Path, name: str) -> None:
    """Make the file at ``path`` the storage's ``name``, replacing what was there."""
    local = _local_path(_checked(name))
    if local is not None and local.resolve() == Path(path).resolve():
        return  # local storage: the worker wrote it in place
    if default_storage.exists(name):
        default_storage.delete(name)
    with Path(path).open("rb") as handle:
        saved = default_storage.save(name, File(handle, name=Path(name).name))
    if saved != name:  # a store that renames on conflict would detach the row from its file
        raise RuntimeError(f"storage saved {name} as {saved}")


def open_file(name: str) -> File:
    """The stored file, opened for reading (the download view streams it)."""
    if not default_storage.exists(_checked(name)):
        raise MissingFile(name)
    return default_storage.open(name, "rb")


def open_verified(name: str, sha256: str) -> File:
    """The stored file opened for reading, after checking its bytes against ``sha256``
    (MissingFile when it is gone, AlteredFile when it differs)."""
    handle = open_file(name)
    try:
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        if digest.hexdigest() != sha256:
            raise AlteredFile(name)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


def local_copy(name: str, sha256: str) -> Path:
    """A path on this machine holding the stored file: in place on local storage, else a copy
    in the media folder's cache, fetched again when its digest is not ``sha256``."""
    local = _local_path(_checked(name))
    if local is not None:
        return local
    cached = Path(settings.MEDIA_ROOT) / "storage-cache" / name
    if cached.exists() and _digest(cached) == sha256:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(cached.name + ".part")
    with open_file(name) as source, partial.open("wb") as target:
        shutil.copyfileobj(source, target)
    partial.replace(cached)
    return cached


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing(root: str) -> list[tuple[str, int]]:
    """Every file under ``root`` in the default storage as (path inside it, bytes), sorted."""
    return sorted(_walk(root, ""))


def _walk(root: str, inner: str) -> Iterator[tuple[str, int]]:
    try:
        dirs, names = default_storage.listdir(posixpath.join(root, inner))
    except FileNotFoundError:
        return
    for name in names:
        path = posixpath.join(inner, name)
        yield path, default_storage.size(posixpath.join(root, path))
    for name in dirs:
        yield from _walk(root, posixpath.join(inner, name))
