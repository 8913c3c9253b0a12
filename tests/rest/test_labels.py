"""A data set's labels page through /api/v1/: a scan for suspicious labels started (it runs on
a worker: here the task's own function), its rows read by class pair with the confusion
matrix, rows relabelled and excluded as new versions, and two versions compared."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from training.data.uploads import load_prepared
from webapp.datasets.labels import LOST_AFTER, execute_scan
from webapp.datasets.models import Dataset, LabelScan
from webapp.datasets.services import version_file
from webapp.projects.actions import enrol
from webapp.projects.models import Membership
from webapp.tracking import tokens

from ..noisy import noisy_digits_zip
from .conftest import IRIS, Api

FORM = {"kind": "images", "task": "classification", "missing": "drop", "image_size": 8}


def uploaded(api: Api, project, name: str = "noisy digits", **form) -> Dataset:
    archive, _ = noisy_digits_zip(rows=400)
    file = form.pop("file", SimpleUploadedFile("d.zip", archive))
    response = api.client.post("/api/v1/datasets/", {
        **FORM, "name": name, "project": project.pk, "file": file, **form},
        HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    assert response.status_code == 201, response.json()
    return Dataset.objects.get(pk=response.json()["id"])


@pytest.fixture
def digits(api, project) -> Dataset:
    return uploaded(api, project)


def test_a_scan_is_started_and_its_suspicious_rows_read_by_class_pair(api, digits):
    # given the noisy digits, when a scan is started with 3 folds
    started = api.post(f"datasets/{digits.pk}/label-scans/", {"folds": 3})
    assert started.status_code == 201, started.json()
    assert started.json()["status"] == "queued" and started.json()["version"] == 1
    waiting = api.get(started.json()["url"].removeprefix("/api/v1/")).json()
    execute_scan(started.json()["id"])  # what the datasets.find_labels task runs on a worker

    # then the scan lists its flagged rows, named, with a confusion matrix of every row
    done = api.get(started.json()["url"].removeprefix("/api/v1/"))
    assert done.status_code == 200
    scan = done.json()
    assert waiting["rows"] == [] and waiting["status"] == "queued"
    assert scan["status"] == "done" and scan["flagged"] >= 10
    assert len(scan["rows"]) == scan["flagged"]
    assert all(r["given"] != r["suggested"] for r in scan["rows"])
    assert scan["rows"][0]["given_name"] == scan["label_names"][scan["rows"][0]["given"]]
    assert sum(map(sum, scan["confusion"])) == 400
    assert [s["id"] for s in api.get(f"datasets/{digits.pk}/label-scans/").json()] == [
        scan["id"]]

    # and the page's previews of the first two rows are PNG images
    two = [r["row"] for r in scan["rows"][:2]]
    previews = api.get(f"datasets/{digits.pk}/label-scans/{scan['id']}/previews/",
                       {"rows": ",".join(map(str, two))})
    assert previews.status_code == 200
    assert [p["row"] for p in previews.json()] == two
    assert all(p["src"].startswith("data:image/png;base64,") for p in previews.json())

    # when filtered to the first row's class pair, then only that pair is listed
    first = scan["rows"][0]
    pair = api.get(f"datasets/{digits.pk}/label-scans/{scan['id']}/",
                   {"given": first["given"], "suggested": first["suggested"]}).json()["rows"]
    assert pair and all((r["given"], r["suggested"]) == (first["given"], first["suggested"])
                        for r in pair)

    # and once that row is relabelled as suggested, the scan no longer lists it
    relabelled = api.post(f"datasets/{digits.pk}/versions/",
                          {"relabel": {str(first["row"]): first["suggested"]}, "note": "ok"})
    assert relabelled.status_code == 201, relabelled.json()
    later = api.get(f"datasets/{digits.pk}/label-scans/{scan['id']}/").json()["rows"]
    assert first["row"] not in {r["row"] for r in later} and len(later) == len(scan["rows"]) - 1


def test_bad_folds_and_a_regression_set_are_refused_on_their_fields(api, project, digits):
    prices = "a,b,price\n" + "".join(f"{i},{i % 3},{i * 1.5}\n" for i in range(20))
    table = uploaded(api, project, "prices", kind="csv", task="regression",
                     file=SimpleUploadedFile("t.csv", prices.encode()))

    folds = api.post(f"datasets/{digits.pk}/label-scans/", {"folds": 11})
    regression = api.post(f"datasets/{table.pk}/label-scans/", {})

    assert folds.status_code == 400 and set(folds.json()["errors"]) == {"folds"}
    assert regression.status_code == 400 and regression.json() == {
        "errors": {"dataset": "only a classification data set has labels to check"}}
    assert not LabelScan.objects.exists()


def test_a_data_set_is_scanned_once_at_a_time(api, digits):
    # given a scan of the data set waiting for a worker
    first = api.post(f"datasets/{digits.pk}/label-scans/", {})
    assert first.status_code == 201

    # when more are asked for (a loop of a script, a button pressed again and again)
    again = [api.post(f"datasets/{digits.pk}/label-scans/", {}) for _ in range(3)]

    # then they are refused, naming the scan to read, and one scan waits
    assert {r.status_code for r in again} == {400}
    assert f"scan {first.json()['id']} of this data set is queued" in again[0].json()[
        "errors"]["dataset"]
    assert LabelScan.objects.count() == 1
    # and once it has ended, or is taken for lost a day later, another starts
    LabelScan.objects.update(status=LabelScan.Status.FAILED)
    assert api.post(f"datasets/{digits.pk}/label-scans/", {}).status_code == 201
    LabelScan.objects.filter(status=LabelScan.Status.QUEUED).update(
        created_at=timezone.now() - LOST_AFTER)
    assert api.post(f"datasets/{digits.pk}/label-scans/", {}).status_code == 201


def test_relabelling_and_excluding_make_versions_and_the_diff_shows_both(api, digits):
    before = load_prepared(version_file(digits, 1), digits.spec_name).y
    to = (int(before[0]) + 1) % 10

    relabelled = api.post(f"datasets/{digits.pk}/versions/", {"relabel": {"0": to}})
    excluded = api.post(f"datasets/{digits.pk}/versions/", {"exclude": [7, 3], "note": "blur"})
    diff = api.get(f"datasets/{digits.pk}/diff/", {"from": 1, "to": 3})
    default = api.get(f"datasets/{digits.pk}/diff/")

    assert relabelled.status_code == 201 and relabelled.json()["number"] == 2
    assert excluded.status_code == 201 and excluded.json()["number"] == 3
    assert excluded.json()["note"] == "blur" and excluded.json()["info"]["rows"] == 398
    assert diff.json() == {"from": 1, "to": 3, "relabelled": [[0, int(before[0]), to]],
                           "removed": [3, 7], "added": []}
    assert default.json() == diff.json()
    assert api.get(f"datasets/{digits.pk}/").json()["latest_version"] == 3


@pytest.mark.parametrize(("body", "field"), [
    ({}, "request"),
    ({"relabel": {"zero": 1}}, "relabel"),
    ({"relabel": {"0": -1}}, "relabel.0"),
    ({"exclude": "7"}, "exclude"),
    ({"relabel": {"0": 99}}, "request"),
    ({"exclude": [100000]}, "request"),
])
def test_a_bad_change_is_refused_on_its_field_and_makes_no_version(api, digits, body, field):
    response = api.post(f"datasets/{digits.pk}/versions/", body)

    assert response.status_code == 400 and list(response.json()["errors"]) == [field]
    assert not digits.versions.exists()


def test_a_version_that_does_not_exist_is_refused_on_its_field(api, digits):
    response = api.get(f"datasets/{digits.pk}/diff/", {"to": 4})

    assert response.status_code == 400 and list(response.json()["errors"]) == ["to"]
    assert "has no version 4" in response.json()["errors"]["to"]


def test_a_read_token_reads_scans_but_cannot_start_one_or_relabel(owner, digits):
    reader = Api(Client(), tokens.create_token(owner, "ci", "read", None)[1])

    listed = reader.get(f"datasets/{digits.pk}/label-scans/")
    scan = reader.post(f"datasets/{digits.pk}/label-scans/", {})
    version = reader.post(f"datasets/{digits.pk}/versions/", {"exclude": [1]})

    assert listed.status_code == 200 and listed.json() == []
    assert scan.status_code == 403 and version.status_code == 403
    assert not LabelScan.objects.exists() and not digits.versions.exists()


@pytest.mark.parametrize(("rows", "message"), [
    ("", "may not be blank"),
    (" , ", "name at least one row"),
    ("1,x", "'x' is not a row id"),
    (",".join(map(str, range(101))), "at most 100 rows"),
    ("999999", "not among the scan's suspicious rows"),
])
def test_previews_of_rows_the_scan_did_not_flag_are_refused_on_rows(api, digits, rows,
                                                                    message):
    scan = LabelScan.objects.create(dataset=digits, version=1, status=LabelScan.Status.DONE,
                                    result={"flagged": 1, "rows": [
                                        {"row": 3, "position": 3, "given": 0, "suggested": 1}]})

    response = api.get(f"datasets/{digits.pk}/label-scans/{scan.pk}/previews/", {"rows": rows})

    assert response.status_code == 400 and list(response.json()["errors"]) == ["rows"]
    assert message in response.json()["errors"]["rows"]


def test_a_user_has_at_most_the_job_limit_of_scans_and_they_count_as_jobs(api, project,
                                                                            settings):
    # given at most 2 jobs per user, three uploads of the owner, and a second member's upload
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 2
    mine = [uploaded(api, project, name=f"digits {i}") for i in range(3)]
    other = User.objects.create_user("other")
    enrol(project, other, Membership.Role.MEMBER)
    theirs = Api(Client(), tokens.create_token(other, "laptop", "write", None)[1])

    # when the owner scans each of their uploads
    answers = [api.post(f"datasets/{d.pk}/label-scans/", {}) for d in mine]

    # then the third is refused with the limit, and two scans wait
    assert [a.status_code for a in answers] == [201, 201, 400]
    assert "the limit is 2 per user" in answers[2].json()["errors"]["dataset"]
    assert LabelScan.objects.count() == 2
    # and their scans count as jobs: no run is launched beside them
    launch = api.post("runs/", {"project": project.pk, "name": "x",
                                "spec": IRIS})
    assert launch.status_code == 409
    # while another member scans as before
    assert theirs.post(f"datasets/{mine[2].pk}/label-scans/", {}).status_code == 201
