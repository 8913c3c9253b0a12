"""A data set's labels page, for scripts: a scan for suspicious labels started and read, rows
relabelled or excluded as a new version, and two versions compared. Thin views over
``datasets.labels`` and ``datasets.services``, the pages' own code."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training.data.versions import VersionError, diff, parse_changes
from webapp.datasets import labels, services
from webapp.datasets.models import Dataset, LabelScan
from webapp.projects import access, storage
from webapp.rest import auth, errors
from webapp.rest import serializers as s
from webapp.rest.more_views import NOT_YOURS, _row
from webapp.rest.views import BAD, READ_ONLY, REFUSED


def _dataset(request: Request, pk: int) -> Dataset:
    dataset: Dataset = _row(auth.datasets(request).prefetch_related("versions"), pk,
                            "data set")
    return dataset


def _scan_json(scan: LabelScan) -> dict[str, Any]:
    return {"id": scan.pk, "url": f"/api/v1/datasets/{scan.dataset_id}/label-scans/{scan.pk}/",
            "dataset": scan.dataset_id, "version": scan.version, "folds": scan.folds,
            "status": scan.status, "progress": scan.progress,
            "flagged": scan.result.get("flagged"), "error": scan.error,
            "created_at": scan.created_at, "finished_at": scan.finished_at}


class LabelScans(APIView):
    @extend_schema(operation_id="datasets_label_scans",
                   responses={200: s.LabelScanSerializer(many=True), **REFUSED, **NOT_YOURS})
    def get(self, request: Request, pk: int) -> Response:
        """The data set's label scans, newest first."""
        dataset = _dataset(request, pk)
        return Response(s.LabelScanSerializer(
            [_scan_json(scan) for scan in dataset.label_scans.all()], many=True).data)

    @extend_schema(operation_id="datasets_label_scan_start", request=s.LabelScanStartSerializer,
                   responses={201: s.LabelScanSerializer, **BAD, **REFUSED, **NOT_YOURS,
                              **READ_ONLY})
    def post(self, request: Request, pk: int) -> Response:
        """Scan the latest version for suspicious labels on a worker (the labels page's
        "Scan"); read its progress and result at its ``url``. Only a classification data set
        has labels to check (400 on ``dataset``)."""
        dataset = _dataset(request, pk)
        body = s.LabelScanStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            scan = labels.start_scan(request.user, dataset, dataset.latest_version,
                                     body.validated_data["folds"])
        except labels.ScanRefused as exc:
            raise errors.invalid({"dataset": str(exc)}) from None
        return Response(s.LabelScanSerializer(_scan_json(scan)).data,
                        status=status.HTTP_201_CREATED)


class LabelScanDetail(APIView):
    @extend_schema(operation_id="datasets_label_scan", parameters=[s.LabelScanQuerySerializer],
                   responses={200: s.LabelScanResultSerializer, **BAD, **REFUSED,
                              **NOT_YOURS})
    def get(self, request: Request, pk: int, scan: int) -> Response:
        """A scan; once done, its suspicious rows as the labels page lists them (best first,
        ``given`` / ``suggested`` picking one class pair, less the rows a later version
        relabelled or removed) and its confusion matrix."""
        dataset = _dataset(request, pk)
        found: LabelScan = _row(dataset.label_scans.all(), scan, "label scan")
        query = s.LabelScanQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        names: list[str] = found.result.get("label_names", [])
        chosen = labels.Filter(query.validated_data.get("given"),
                               query.validated_data.get("suggested"))
        rows = (labels.listed_rows(found, chosen, labels.changed_since(dataset, found.version))
                if found.status == LabelScan.Status.DONE else [])
        return Response(s.LabelScanResultSerializer({
            **_scan_json(found), "label_names": names,
            "confusion": found.result.get("confusion", []),
            "rows": [{**row, "given_name": names[row["given"]],
                      "suggested_name": names[row["suggested"]]} for row in rows]}).data)


def is_number(text: str) -> bool:
    """Whether ``text`` is a row id ``int`` reads: ASCII digits ("²" is a digit to isdigit),
    not so many that ``int`` refuses them (4,300) or no row could have them."""
    return text.isascii() and text.isdigit() and len(text) <= 18


MAX_PREVIEWS = 100  # rows one request shows: each decodes a row of the version's file


def _asked_rows(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    bad = [part for part in parts if not is_number(part)]
    if bad or not parts:
        raise errors.invalid({"rows": f"{bad[0]!r} is not a row id" if bad
                              else "name at least one row"})
    if len(parts) > MAX_PREVIEWS:
        raise errors.invalid({"rows": f"at most {MAX_PREVIEWS} rows at once"})
    return [int(part) for part in parts]


class LabelScanPreviews(APIView):
    @extend_schema(operation_id="datasets_label_scan_previews",
                   parameters=[s.PreviewQuerySerializer],
                   responses={200: s.PreviewSerializer(many=True), **BAD, **REFUSED,
                              **NOT_YOURS})
    def get(self, request: Request, pk: int, scan: int) -> Response:
        """How the labels page shows some of the scan's suspicious rows (``rows``: their
        ids): an image as a PNG data URI, a text, or a table row's first features."""
        dataset = _dataset(request, pk)
        found: LabelScan = _row(dataset.label_scans.all(), scan, "label scan")
        query = s.PreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        asked = _asked_rows(query.validated_data["rows"])
        positions = {row["row"]: row["position"] for row in found.result.get("rows", [])}
        missing = [row for row in asked if row not in positions]
        if missing:
            raise errors.invalid({"rows": f"row {missing[0]} is not among the scan's "
                                          "suspicious rows"})
        try:
            shown = labels.previews(dataset, found.version, [positions[r] for r in asked])
        except services.DatasetUnavailable as exc:
            raise errors.invalid({"rows": str(exc)}) from None
        return Response([{"row": row, **shown[positions[row]]} for row in asked])


def _changes(body: dict[str, Any]) -> Any:
    relabel = body.get("relabel") or {}
    bad = [key for key in relabel if not is_number(str(key))]
    if bad:
        raise errors.invalid({"relabel": f"{bad[0]!r} is not a row id"})
    if not relabel and not body.get("exclude"):
        raise errors.invalid({"request": "relabel or exclude at least one row"})
    return parse_changes([(int(row), label) for row, label in relabel.items()],
                         body.get("exclude") or [])


class DatasetVersions(APIView):
    @extend_schema(operation_id="datasets_version_create", request=s.VersionCreateSerializer,
                   responses={201: s.VersionSerializer, **BAD, **REFUSED, **NOT_YOURS,
                              403: OpenApiResponse(description="a read-only token, or not "
                                                   "your data set and not a maintainer")})
    def post(self, request: Request, pk: int) -> Response:
        """Relabel and exclude rows (ids as the scan names them) of the latest version: the
        next version, as the labels page's "Relabel" and "Exclude" make it; runs train on it
        from then on (its uploader, its project's maintainers, staff)."""
        dataset = _dataset(request, pk)
        if not access.may_change(request.user, dataset):
            raise PermissionDenied(labels.RELABEL_REFUSED)
        body = s.VersionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = _changes(body.validated_data)
        try:
            version = services.create_version(request.user, dataset, dataset.latest_version,
                                              changes, note=body.validated_data.get("note", ""))
        except (VersionError, services.DatasetUnavailable, storage.OverStorageQuota) as exc:
            raise errors.invalid({"request": str(exc)}) from None
        return Response(s.VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class DatasetDiff(APIView):
    @extend_schema(operation_id="datasets_diff", parameters=[s.DiffQuerySerializer],
                   responses={200: s.DiffSerializer, **BAD, **REFUSED, **NOT_YOURS})
    def get(self, request: Request, pk: int) -> Response:
        """Rows relabelled, removed and added between two versions (rows named by their id in
        version 1)."""
        dataset = _dataset(request, pk)
        query = s.DiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        older = query.validated_data.get("from") or 1
        newer = query.validated_data.get("to") or dataset.latest_version
        files = {}
        for field, number in (("from", older), ("to", newer)):
            try:
                files[field] = services.version_file(dataset, number)
            except services.DatasetUnavailable as exc:
                raise errors.invalid({field: str(exc)}) from None
        return Response({"from": older, "to": newer, **diff(files["from"], files["to"])})
