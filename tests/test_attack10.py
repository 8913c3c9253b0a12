"""Round ten of attacks, as a plain member with an API token who logs from scripts.

What a script stored outside the storage quota: files of no bytes. The quota counted an
artifact as its bytes, so a loop uploading empty files (10,000 a run, 1,000 runs an hour)
added an inode on the disk and a row of up to 1 kB of name in the database for each, counted
as nothing: within any quota, enough to use up the disk's inodes for everyone; and tiny data
sets uploaded in a loop cost a row and two files each, counted as their few hundred bytes.

What a member's artifact names made others fetch or see: the REST API listed each artifact's
URL with its name unquoted, so "model.pt?v=2" (or "model.pt#2") was listed at a URL that
downloads the run's "model.pt"; and a name holding a right-to-left override showed on the run
page as another ("report\\u202efdp.exe" as "reportexe.pdf"), a tab or carriage return as
spaces or nothing.

What a script could not take back: a logged model it deleted (MLflow's delete_logged_model) was
hidden with its files kept, counted in its uploader's quota, and reachable by nothing that
could delete them: for a model of no run, room lost for good.

What an anonymous sender held on the server: the web server bounded each request's body, and
wrote it whole to its disk before anything authenticated it, but not bodies sent at once: a
hundred uploads of 110 MB put 11 GB in its temporary folder.

What a script was answered for a path no route takes: the site's HTML page, under the REST
API (a run id that is no number, /api/v1/runs/abc/) as under MLflow's (a path holding a line
break), where clients read JSON.

What a webhook's form told any user (each may maintain a project of their own): the addresses
the server's own network names resolve to, in its refusal ("localhost resolves to 127.0.0.1,
::1"), a way to map that network by name.

What anyone could do to any user's login behind the TLS proxy the production set-up puts in
front of the server: lock it out. Failures are counted per username and address, and every
connection came from the proxy's address: five wrong passwords from anywhere locked the user
out for everyone, again every 15 minutes."""

from __future__ import annotations

import importlib
from io import BytesIO
from typing import Any
from urllib.parse import quote

import pytest
from daphne import http_protocol
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from webapp import serve
from webapp.datasets.models import Dataset
from webapp.experiments.models import StoredArtifact
from webapp.notifications.models import Webhook
from webapp.projects import storage
from webapp.projects.actions import create_project
from webapp.tracking import artifacts, ingest, tokens
from webapp.tracking.models import LoggedModel

from .hostile import table_csv
from .webapp.conftest import _forget_uploads, mallory, owner, project  # noqa: F401
from .webapp.test_security_request_size import Server, headers

A = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    """Storage in the test's own folder, with the site's default charge per file."""
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    return tmp_path


def put(token: str, run: Any, path: str, data: bytes, method: str = "put") -> Any:
    return getattr(Client(), method)(
        f"{A}/{run.project_id}/{run.pk}/artifacts/{path}", data,
        content_type="application/octet-stream", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_an_empty_artifact_counts_towards_the_quota(media, mallory, project,  # noqa: F811
                                                    settings):
    # given room in mallory's quota for two files of 16 KiB (the least a file counts for)
    settings.FITBOARD_STORAGE_BYTES_PER_FILE = 16 * 1024
    run = ingest.create_run(mallory, project, "empties", {})
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(mallory) + 2 * 16 * 1024
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    # when her script uploads empty files in a loop
    codes = [put(token, run, f"empty/{n}", b"").status_code for n in range(3)]

    # then two are stored, each counted, and the third refused in MLflow's format, saying the
    # quota (every empty file was stored before, counted as nothing)
    assert codes == [200, 200, 400]
    third = put(token, run, "empty/2", b"")
    assert third.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "storage quota" in third.json()["message"]
    assert sorted(p.name for p in media.rglob("*") if p.is_file()) == ["0", "1"]
    # and replacing one of hers, or deleting one to make room, still works
    assert put(token, run, "empty/0", b"x" * 100).status_code == 200
    assert put(token, run, "empty/1", b"", method="delete").status_code == 200
    assert put(token, run, "empty/2", b"").status_code == 200


def test_a_tiny_data_set_counts_as_a_file_at_least(media, mallory, project,  # noqa: F811
                                                   settings):
    # given room in mallory's quota for two files of 16 KiB, and a CSV of a few hundred bytes
    settings.FITBOARD_STORAGE_BYTES_PER_FILE = 16 * 1024
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(mallory) + 2 * 16 * 1024
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    content = table_csv(20)

    # when her script uploads it as data sets in a loop
    codes = [Client().post("/api/v1/datasets/", {
        "name": f"tiny {n}", "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("t.csv", content)},
        HTTP_AUTHORIZATION=f"Bearer {token}").status_code for n in range(3)]

    # then two are stored, and the third refused on its file, saying the quota
    assert len(content) < 2000 and codes == [201, 201, 400]
    assert Dataset.objects.count() == 2


def test_each_listed_artifacts_url_downloads_that_artifact(media, owner, mallory,  # noqa: F811
                                                            project):  # noqa: F811
    # given a run of mallory's holding "model.pt" and files whose names hold "?", "#", "%"
    run = ingest.create_run(mallory, project, "names", {})
    names = {"model.pt": b"weights", "model.pt?v=2": b"query", "model.pt#2": b"fragment",
             "100%.txt": b"percent"}
    for name, data in names.items():
        artifacts.save(run, name, BytesIO(data))
    token = tokens.create_token(owner, "laptop", "read", None)[1]

    # when a teammate's script lists the run's artifacts through the REST API, and fetches
    # each at the URL listed
    listed = Client().get(f"/api/v1/runs/{run.pk}/artifacts/",
                          HTTP_AUTHORIZATION=f"Bearer {token}").json()
    fetched = {item["path"]: b"".join(Client().get(
        item["url"], HTTP_AUTHORIZATION=f"Bearer {token}").streaming_content)
        for item in listed}

    # then each URL downloads its own file ("model.pt?v=2" and "model.pt#2" downloaded
    # "model.pt", "100%.txt" nothing)
    assert fetched == names


@pytest.mark.parametrize("name", ["report\u202efdp.exe", "a\u2067b", "tab\there", "cr\rhere",
                                  "next\x85line",
                                  "line\u2028sep"])
def test_an_artifact_named_to_show_as_another_is_refused(media, mallory, project, name):  # noqa: F811
    # given a run of mallory's
    run = ingest.create_run(mallory, project, "names", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    # when her script uploads a file whose name holds a bidi or control character
    response = put(token, run, quote(f"plots/{name}"), b"png")

    # then it is refused in MLflow's format, naming the character, and nothing is stored
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "control character" in response.json()["message"]
    assert not StoredArtifact.objects.exists()
    assert not [p for p in media.rglob("*") if p.is_file()]
    # and a name of any script still uploads
    assert put(token, run, quote("plots/ünïcode ✓ 图.png"), b"png").status_code == 200


def test_deleting_a_logged_model_deletes_its_files_and_frees_their_room(
        media, mallory, project, django_capture_on_commit_callbacks):  # noqa: F811
    # given a logged model of mallory's script (of no run), its file uploaded
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    before = storage.stored_bytes(mallory)
    created = Client().post("/api/2.0/mlflow/logged-models", {
        "experiment_id": str(project.pk), "name": "net"}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}").json()["model"]["info"]
    url = f"{A}/{project.pk}/models/{created['model_id']}/artifacts/model.pt"
    assert Client().put(url, b"w" * 50_000, content_type="application/octet-stream",
                        HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    # when her script deletes the model
    with django_capture_on_commit_callbacks(execute=True):
        deleted = Client().delete(f"/api/2.0/mlflow/logged-models/{created['model_id']}",
                                  HTTP_AUTHORIZATION=f"Bearer {token}")

    # then it is gone, and so are its files and their room in her quota (they stayed, counted,
    # with nothing that reached them to delete)
    assert deleted.status_code == 200
    assert Client().get(f"/api/2.0/mlflow/logged-models/{created['model_id']}",
                        HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404
    assert not LoggedModel.objects.exists() and not StoredArtifact.objects.exists()
    assert not [p for p in media.rglob("*") if p.is_file()]
    assert storage.stored_bytes(mallory) == before


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Any:
    """Opens connections to the server as ``python -m webapp.serve`` builds them (bodies of
    1,000 bytes at most, 1,800 held at once, 100 always taken), fed bytes in memory; each
    returns the protocol, its transport and the requests that reached the application."""
    settings.FITBOARD_MAX_REQUEST_BYTES = 1000
    settings.FITBOARD_MAX_REQUEST_BODIES_BYTES = 1800
    monkeypatch.setattr(serve, "SMALL_BODY", 100)
    monkeypatch.setattr(serve.BoundedRequest, "all_held", 0)
    monkeypatch.setattr(http_protocol, "WebRequest", http_protocol.WebRequest)  # restored after
    serve.install()
    served: list[Any] = []
    monkeypatch.setattr(serve.BoundedRequest.__mro__[1], "process",
                        lambda request: served.append(request))

    def connect() -> tuple[Any, StringTransport, list[Any]]:
        protocol = http_protocol.HTTPFactory(Server()).buildProtocol(("127.0.0.1", 50000))
        protocol.callLater = Clock().callLater
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport, served

    return connect


def test_bodies_received_at_once_are_bounded_together(server):
    # given two uploads of 900 bytes each coming in (800 received), within the limit of each
    first, second, third, small = server(), server(), server(), server()
    for protocol, _, _ in (first, second):
        protocol.dataReceived(headers("Content-Length: 900") + b"x" * 800)

    # when a third comes at once, and a request of a small body
    third[0].dataReceived(headers("Content-Length: 900") + b"y" * 800)
    small[0].dataReceived(headers("Content-Length: 50") + b"z" * 50)

    # then the third is refused with 503 (with Retry-After) and closed, its bytes dropped
    # (it was taken, whatever the others held), and the small one is served
    assert third[1].value().startswith(b"HTTP/1.1 503 ") and third[1].disconnecting
    assert b"Retry-After: 5" in third[1].value()
    served = small[2]
    assert [request.content.getvalue() for request in served] == [b"z" * 50]
    # and the first two end as before: one is answered, the other's client goes away, which
    # frees both their rooms for the next upload (either alone would not make room for it)
    first[0].dataReceived(b"x" * 100)
    assert len(served) == 2 and first[1].value() == b""
    second[0].connectionLost(Failure(ConnectionError("gone")))
    served[-1].finish()
    fourth = server()
    fourth[0].dataReceived(headers("Content-Length: 1000") + b"w" * 1000)
    assert fourth[1].value() == b"" and len(served) == 3


@pytest.mark.parametrize(("url", "shape"), [
    ("/api/v1/runs/abc/", "detail"), ("/api/v1/runs/-1/", "detail"), ("/api/v1/nothing/", "detail"),
    ("/api/2.0/mlflow/runs/get%0A", "error_code"),
    (f"{A}/1/2/artifacts/a%0Ab.txt", "error_code")])
def test_a_path_no_route_takes_is_answered_in_its_apis_json(mallory, url, shape):  # noqa: F811
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 404
    assert shape in response.json()
    # and a page's path still gets the page
    page = Client()
    page.force_login(mallory)
    assert b"<html" in page.get("/no-such-page/").content


def test_a_webhook_refused_for_a_private_address_does_not_name_it(mallory):  # noqa: F811
    # given a project mallory made, which she maintains
    mine = create_project(mallory, "mallory-own")
    page = Client()
    page.force_login(mallory)
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    # when she adds a webhook to a name of the server's own network, on the page and the API
    on_page = page.post(f"/projects/{mine.pk}/notifications/", {
        "form": "webhook", "url": "http://localhost:6379/", "events": ["run.failed"]})
    by_api = Client().post(f"/api/v1/projects/{mine.pk}/webhooks/", {
        "url": "http://localhost:6379/"}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}")

    # then both are refused on the URL, saying why, without the addresses it resolves to
    assert "not a public address" in " ".join(on_page.context["hook_form"].errors["url"])
    assert "not a public address" in by_api.json()["errors"]["url"]
    for answer in (on_page.content.decode(), by_api.content.decode()):
        assert "127.0.0.1" not in answer and "::1" not in answer
    assert not Webhook.objects.exists()


def test_the_logged_models_hidden_before_are_deleted_with_their_files(
        media, mallory, project, django_capture_on_commit_callbacks):  # noqa: F811
    # given a logged model mallory keeps, and one of hers hidden by a delete before deletes
    # removed it
    models = {}
    for name in ("kept", "hidden"):
        models[name] = LoggedModel.objects.create(project=project, name=name,
                                                  created_by=mallory)
        artifacts.store(mallory, models[name].artifacts_root, "data/model.pt",
                        BytesIO(b"w" * 50_000), models[name])
        if name == "kept":
            kept_bytes = storage.stored_bytes(mallory)
    LoggedModel.objects.filter(pk=models["hidden"].pk).update(deleted_at=timezone.now())

    # when the migration runs
    migration = importlib.import_module(
        "webapp.tracking.migrations.0005_delete_hidden_logged_models")
    with django_capture_on_commit_callbacks(execute=True):
        migration.delete_hidden(apps, None)

    # then the hidden model is gone with its file and its room in her quota; the other stays
    assert list(LoggedModel.objects.values_list("name", flat=True)) == ["kept"]
    assert [p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()] == [
        f"{models['kept'].artifacts_root}/data/model.pt"]
    assert storage.stored_bytes(mallory) == kept_bytes


def test_behind_a_proxy_failures_from_one_client_do_not_lock_out_another(owner, settings):  # noqa: F811
    # given the server behind one proxy (which appends the address it was reached from), and
    # a limit of 3 failed logins
    settings.FITBOARD_TRUSTED_PROXIES = 1
    settings.AXES_FAILURE_LIMIT = 3

    def log_in(client_chain: str, password: str) -> Any:
        return Client().post("/accounts/login/", {"username": "owner", "password": password},
                             REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client_chain)

    # when someone guesses the owner's password 3 times, writing the owner's own address
    # first in the header their proxy appends theirs to
    guesses = [log_in("198.51.100.7, 203.0.113.9", f"guess-{n}").status_code for n in range(3)]

    # then they are locked out, and the owner, from another address, still logs in (before,
    # both came from the proxy's address, and the owner was locked out with them)
    assert guesses == [200, 200, 429]
    assert log_in("203.0.113.9", "owner-pass-123").status_code == 429
    assert log_in("198.51.100.7", "owner-pass-123").status_code == 302
