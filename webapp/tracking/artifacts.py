"""Artifacts of external runs, in Django's storage (the media folder or the S3 bucket) under
``external/<run>/artifacts/``: MLflow's artifacts proxy (``/api/2.0/mlflow-artifacts/
artifacts/<experiment>/<run>/artifacts/<path>``: PUT to upload, GET to download, and a list)
and the run page's list and downloads. A logged model's files go the same way, under
``<experiment>/models/m-<id>/artifacts/<path>`` (``LoggedModel.artifacts_root``)."""

from __future__ import annotations

import posixpath
import tempfile
import unicodedata
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from webapp.downloads import file_response
from webapp.experiments import external
from webapp.experiments.files import listing
from webapp.experiments.models import Experiment, StoredArtifact, parse_pk
from webapp.projects import storage
from webapp.tracking import access
from webapp.tracking.api import ApiError, endpoint, not_found
from webapp.tracking.models import ApiToken

CHUNK = 1 << 20
# Bounds of an artifact path, within what every file system and S3 take: a longer name or a
# deeper folder is the client's 400, not the storage's crash.
MAX_NAME_BYTES = 255  # one part, as a Linux file name
MAX_PATH_BYTES = 1024  # the whole path, from the experiment's id
MAX_DEPTH = 32  # parts, from the experiment's id
# Files one run (or logged model) holds: its page and the REST API list every one, each read
# from storage. A per-epoch plot of a long run is a few hundred; a script uploading tiny files
# in a loop made a run page of any length for every member who opened it.
MAX_FILES = 10_000


def storage_root(run: Experiment) -> str:
    return external.artifacts_root(run.pk)


def clean_path(path: str) -> str:
    """A relative artifact path, or ApiError: no absolute paths, no "..", no empty parts, no
    name longer than a file system takes."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts or "\\" in path or "\x00" in path:
        raise ApiError("INVALID_PARAMETER_VALUE", f"invalid artifact path {path[:100]!r}")
    if (len(parts) > MAX_DEPTH or len(path.encode()) > MAX_PATH_BYTES
            or any(len(part.encode()) > MAX_NAME_BYTES for part in parts)):
        raise ApiError("INVALID_PARAMETER_VALUE", f"artifact path {path[:100]!r}… is too long: "
                       f"at most {MAX_DEPTH} parts, {MAX_NAME_BYTES} bytes a name and "
                       f"{MAX_PATH_BYTES} in all")
    return "/".join(parts)


DECODINGS = 10  # percent-decodings of a path before it is refused, as MLflow's server has it


def as_mlflow_reads(path: str) -> str:
    """An artifact path as MLflow's server reads one (``validate_path_is_safe``): its
    percent-escapes decoded until none is left, then each control character written back as
    its escape (``%17``). mlflow 2's ``log_image(key=...)`` names its files
    ``<key>%step%<n>%timestamp%<ms>%<id>``; the 2.16 client decodes the names it lists and
    downloads by those, so the file was stored and downloaded under two names (``%17`` of the
    time a control character, ``%6a`` of the id a ``j``) and never found."""
    for _ in range(DECODINGS):
        decoded = unquote(path)
        if decoded == path:
            return "".join(f"%{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c
                           for c in path)
        path = decoded
    raise ApiError("INVALID_PARAMETER_VALUE", f"artifact path {path[:100]!r} is still "
                   f"percent-encoded after {DECODINGS} decodings")


# Characters that change how the names after them read (right-to-left overrides and isolates):
# "report\u202efdp.exe" showed on the run page as "reportexe.pdf".
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def check_new_name(inner: str) -> None:
    """ApiError for a name no new artifact takes: one holding a control character (a tab, a
    carriage return, U+0085; the URL router already answers a newline with 404), a line or
    paragraph separator (U+2028, U+2029) or a bidi control, which the run page and a terminal
    show as another name. Files already stored under such names are still read and deleted."""
    for char in inner:
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ApiError("INVALID_PARAMETER_VALUE", f"artifact path {inner[:100]!r} holds "
                           f"the control character U+{ord(char):04X}, which shows as another "
                           "name: rename the file")


def _locate(token: ApiToken, path: str, write: bool) -> tuple[str, str, Any]:
    """The storage folder of the run or logged model that ``<experiment>/<run>/artifacts/
    <path>`` or ``<experiment>/models/<model id>/artifacts/<path>`` names, the path inside it,
    and that run or logged model; 404 for what the token does not reach. The path is checked
    as sent, then read as MLflow's server reads it (a ".." encoded twice is refused too)."""
    parts = clean_path(as_mlflow_reads(clean_path(path))).split("/")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        model = access.logged_models(token).filter(project_id=parse_pk(parts[0])).filter(
            pk=parse_pk(parts[2].removeprefix("m-")) or 0).first()
        if model is None or not parts[2].startswith("m-"):
            raise not_found(f"logged model {parts[2][:40]!r}")
        if write:
            access.check_change(token, model, f"logged model {model.model_id}")
        return model.artifacts_root, "/".join(parts[4:]), model
    if len(parts) < 3 or parts[2] != "artifacts":
        raise not_found(f"artifact {path[:100]!r}")
    project_id, run_id = parse_pk(parts[0]), parse_pk(parts[1])
    run = access.runs(token, deleted=True).filter(pk=run_id, project_id=project_id).first() \
        if project_id and run_id else None
    if run is None:
        raise not_found(f"run {parts[1][:40]!r}")
    if write and not run.is_external:
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is trained by Fitboard")
    if write:
        access.check_change(token, run, f"run {run.pk}")
    if write and run.deleted_at:  # its files are read (as MLflow serves them), not written
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is deleted: restore it "
                       "(restore_run) to upload to it")
    return storage_root(run), "/".join(parts[3:]), run


@endpoint(("GET", "PUT", "DELETE"), raw=True)
def artifact(request: HttpRequest, token: ApiToken, body: dict[str, Any],
             artifact_path: str) -> Any:
    if request.method == "GET":
        root, inner, _ = _locate(token, artifact_path, write=False)
        name = posixpath.join(root, inner)
        # A folder is listed (artifact_list), not downloaded: opening one was a server error.
        if not inner or not default_storage.exists(name) or _is_dir(name):
            raise not_found(f"artifact {inner[:100]!r}")
        return file_response(request, default_storage.open(name, "rb"),
                             posixpath.basename(inner))
    if not token.may_write:
        raise ApiError("PERMISSION_DENIED", "this token is read-only")
    root, inner, holder = _locate(token, artifact_path, write=True)
    if not inner:
        raise ApiError("INVALID_PARAMETER_VALUE", "name the artifact's file")
    if request.method == "DELETE":
        delete(root, inner)
    else:
        check_new_name(artifact_path)  # as sent: a tab is refused, not stored as "%09"
        store(token.user, root, inner, request, holder, declared_length(request))
    return {}


def declared_length(request: HttpRequest) -> int | None:
    """The length of the body its sender declared (Content-Length), or None (sent in chunks,
    or no number)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def save(run: Experiment, inner: str, source: Any) -> None:
    """Store the bytes read from ``source`` as the run's artifact ``inner`` (see ``store``), as
    uploaded by the run's creator."""
    store(run.created_by, storage_root(run), inner, source, run)


def store(user: Any, root: str, inner: str, source: Any, holder: Any,
          declared: int | None = None) -> None:
    """Store the bytes read from ``source`` as ``inner`` under the storage folder ``root`` of
    ``holder`` (a run or logged model; replacing a file of that name), uploaded by ``user``:
    refused past FITBOARD_UPLOAD_MAX_MB, past MAX_FILES files under ``root``, past the user's
    storage quota (the file counted as at least FITBOARD_STORAGE_BYTES_PER_FILE, and the file
    it replaces, when theirs, counted out), under a name ``check_new_name`` refuses, or once
    ``holder`` is
    deleted, before anything stored changes. ``declared``: the bytes its sender said it holds
    (Content-Length), refused past either limit before a byte of it is read."""
    check_new_name(inner)
    name = posixpath.join(root, inner)
    if declared is not None:
        _check_declared(user, name, inner, declared)
    limit = settings.FITBOARD_UPLOAD_MAX_BYTES
    with tempfile.SpooledTemporaryFile(max_size=CHUNK * 8) as spool:
        size = 0
        while block := source.read(CHUNK):
            size += len(block)
            if size > limit:
                raise _too_large(inner, limit)
            spool.write(block)
        spool.seek(0)
        with transaction.atomic():
            # Under the holder's row lock: a deletion of it committed while the file came in
            # deleted its artifacts' rows, and this one would be left counted in the quota with
            # nothing that deletes it.
            if not type(holder).objects.select_for_update().filter(pk=holder.pk).exists():
                raise ApiError("RESOURCE_DOES_NOT_EXIST", f"{holder._meta.verbose_name} "
                               f"{holder.pk} was deleted: artifact {inner[:100]!r} not stored")
            replaced = StoredArtifact.objects.filter(name=name).first()
            if replaced is None and StoredArtifact.objects.filter(
                    name__startswith=f"{root}/").count() >= MAX_FILES:
                raise ApiError("INVALID_PARAMETER_VALUE", f"artifact {inner[:100]!r} not "
                               f"stored: a run or logged model holds at most {MAX_FILES:,} "
                               "files; delete some, or upload them as one archive")
            try:
                # Each file at least FITBOARD_STORAGE_BYTES_PER_FILE: empty ones were free.
                storage.reserve(user, storage.file_bytes(size), freeing=_freeing(user, replaced))
            except storage.OverStorageQuota as exc:
                raise _over_quota(inner, str(exc)) from None
            _write(name, inner, spool)
            StoredArtifact.objects.update_or_create(name=name, defaults={
                "size": size, "created_by": user, "created_at": timezone.now()})


def _check_declared(user: Any, name: str, inner: str, declared: int) -> None:
    """ApiError, as ``store`` answers once it has read a body, for one whose declared length
    already takes it past FITBOARD_UPLOAD_MAX_MB or ``user``'s storage quota: a script
    uploading 100 MB files past its quota had each copied to a temporary file before it was
    refused. Counted without the user's lock (``store`` counts again under it, with the
    bytes it read)."""
    limit = settings.FITBOARD_UPLOAD_MAX_BYTES
    if declared > limit:
        raise _too_large(inner, limit)
    replaced = StoredArtifact.objects.filter(name=name).first()
    problem = storage.problem(user, storage.file_bytes(declared), _freeing(user, replaced))
    if problem is not None:
        raise _over_quota(inner, problem)


def _freeing(user: Any, replaced: StoredArtifact | None) -> int:
    """What the file an upload replaces frees in ``user``'s quota: its room when it is theirs."""
    mine = replaced is not None and user is not None and replaced.created_by_id == user.pk
    return storage.file_bytes(replaced.size) if mine and replaced else 0


def _too_large(inner: str, limit: int) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", f"artifact {inner!r} is larger than "
                    f"{limit // 2**20} MB (FITBOARD_UPLOAD_MAX_MB)")


def _over_quota(inner: str, problem: str) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", f"artifact {inner[:100]!r} not stored: {problem}")


def _write(name: str, inner: str, spool: Any) -> None:
    if default_storage.exists(name):
        if _is_dir(name):  # a folder of artifacts is not replaced by one file
            raise ApiError("INVALID_PARAMETER_VALUE", f"artifact {inner[:100]!r} is a folder")
        default_storage.delete(name)
    try:
        default_storage.save(name, File(spool, name=posixpath.basename(inner)))
    except (FileExistsError, NotADirectoryError):  # a file where the path needs a folder
        raise ApiError("INVALID_PARAMETER_VALUE", f"artifact {inner[:100]!r}: a part of "
                       "its path is a file") from None


def delete(root: str, inner: str) -> None:
    """Delete the artifact ``inner`` under ``root``, or the folder of that name with every file
    in it (MLflow's ``delete_artifacts``), freeing their place in their uploaders' quota."""
    name = posixpath.join(root, inner)
    if not default_storage.exists(name):
        raise not_found(f"artifact {inner[:100]!r}")
    names = [name]
    if _is_dir(name):
        names = [posixpath.join(name, inside) for inside, _ in listing(name)]
    for stored in names:
        default_storage.delete(stored)
    StoredArtifact.objects.filter(name__in=names).delete()


@endpoint(("GET",))
def artifact_list(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                  ) -> dict[str, Any]:
    """The files and folders directly inside ``path`` (``<experiment>/<run>/artifacts[/..]``),
    as MLflow's server lists them: paths relative to ``path``; nothing for a file, as MLflow's
    server answers (a client takes a path whose list is empty for a file: mlflow 2.x
    downloads a file listed as itself from ``<file>/<file>``)."""
    root, inner, _ = _locate(token, str(body.get("path") or ""), write=False)
    folder = posixpath.join(root, inner).rstrip("/")
    if inner and default_storage.exists(folder) and not _is_dir(folder):
        return {}
    try:
        dirs, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):  # a path through a file: nothing in it
        return {}
    return {"files": [{"path": d, "is_dir": True} for d in sorted(dirs)]
            + [{"path": f, "is_dir": False,
                "file_size": default_storage.size(posixpath.join(folder, f))}
               for f in sorted(files)]}


def _is_dir(name: str) -> bool:
    try:
        default_storage.listdir(name)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def download(request: HttpRequest, run: Experiment, inner: str) -> HttpResponse:
    """The run page's download of one artifact (the caller checked the user may see it)."""
    try:
        path = clean_path(inner)
    except ApiError:
        return HttpResponse("no such artifact", status=404)
    name = posixpath.join(storage_root(run), path)
    if not path or not default_storage.exists(name) or _is_dir(name):
        return HttpResponse("no such artifact", status=404)
    return file_response(request, default_storage.open(name, "rb"), posixpath.basename(path))
