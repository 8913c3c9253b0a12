"""The REST API's runs: listed and filtered as on the list page, read with their downsampled
curves, launched from a spec JSON (one error per field path), cancelled by who may."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset
from webapp.experiments import metric_store
from webapp.experiments.models import Experiment, Tag
from webapp.projects.actions import create_project
from webapp.projects.models import Membership
from webapp.tracking import tokens

from ..hostile import table_csv
from ..training.test_plugins import PLUGIN_SPEC
from .conftest import IRIS, Api


def names(response) -> list[str]:
    return [run["name"] for run in response.json()["results"]]


def test_the_list_filters_by_project_status_kind_tag_and_name(api, owner, make_run):
    # given runs in two projects, of several statuses and kinds, one tagged
    audio = create_project(owner, "audio")
    make_run("cnn-a", Experiment.Status.SUCCEEDED).tags.create(name="baseline")
    make_run("cnn-b", Experiment.Status.FAILED)
    make_run("mlp-c", Experiment.Status.SUCCEEDED, project=audio)
    make_run("study-d", kind=Experiment.Kind.TUNE)

    # when the list is asked with each filter
    every = api.get("runs/")
    by_project = api.get("runs/", {"project": audio.pk})
    by_status = api.get("runs/", {"status": "succeeded"})
    by_kind = api.get("runs/", {"kind": "tune"})
    by_tag = api.get("runs/", {"tag": "baseline"})
    by_name = api.get("runs/", {"q": "CNN", "sort": "name"})

    # then each holds the runs the list page would, newest first unless sorted
    assert every.status_code == 200 and every.json()["count"] == 4
    assert names(every) == ["study-d", "mlp-c", "cnn-b", "cnn-a"]
    assert names(by_project) == ["mlp-c"]
    assert names(by_status) == ["mlp-c", "cnn-a"]
    assert names(by_kind) == ["study-d"]
    assert names(by_tag) == ["cnn-a"] and by_tag.json()["results"][0]["tags"] == ["baseline"]
    assert names(by_name) == ["cnn-a", "cnn-b"]


def test_the_list_comes_in_pages(api, make_run):
    for i in range(5):
        make_run(f"run-{i}")

    first = api.get("runs/", {"page_size": 2}).json()
    last = api.get("runs/", {"page_size": 2, "page": 3}).json()
    beyond = api.get("runs/", {"page_size": 2, "page": 4})

    assert first["count"] == 5 and [r["name"] for r in first["results"]] == ["run-4", "run-3"]
    assert first["next"] and "page=2" in first["next"] and first["previous"] is None
    assert [r["name"] for r in last["results"]] == ["run-0"] and last["next"] is None
    assert beyond.status_code == 404


def test_a_bad_filter_is_a_400_naming_its_field(api):
    response = api.get("runs/", {"status": "sleeping", "verdict": "sad", "q": "ok"})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"status", "verdict"}


def test_the_list_holds_only_what_the_token_reaches(owner, project, make_run):
    # given the owner's run in two projects and a stranger's run in a third
    audio = create_project(owner, "audio")
    make_run("mine-vision")
    make_run("mine-audio", project=audio)
    stranger = User.objects.create_user("stranger")  # no password: none to hash
    make_run("theirs", project=create_project(stranger, "zoo"), created_by=stranger)
    narrow = Api(Client(), tokens.create_token(owner, "ci", "read", [project])[1])

    # when the token limited to "vision" lists runs
    response = narrow.get("runs/")

    # then it sees only that project's
    assert names(response) == ["mine-vision"]


def test_a_run_reads_with_its_spec_status_verdict_and_summary(api, make_run):
    verdict = {"kind": "overfitting", "evidence": "val_loss rose for 3 epochs", "remedies": []}
    run = make_run("cnn", Experiment.Status.RUNNING, progress={"epoch": 2, "verdict": verdict},
                   summary={"best_metrics": {"val_acc": 0.9}})
    run.tags.create(name="baseline")

    body = api.get(f"runs/{run.pk}/").json()

    assert body["id"] == run.pk and body["name"] == "cnn" and body["status"] == "running"
    assert body["spec"] == ExperimentSpec.from_dict(IRIS).to_dict()
    assert body["verdict"] == verdict  # the live one while it trains
    assert body["summary"] == {"best_metrics": {"val_acc": 0.9}}
    assert body["tags"] == ["baseline"] and body["project_name"] == "vision"


def test_the_metrics_are_the_run_pages_downsampled_curves(api, owner, make_run):
    # given a run with 20,000 points of loss, one a spike, and a short val_loss
    run = make_run("long", Experiment.Status.SUCCEEDED)
    loss = [(step, 1.0 / (1 + step), float(step)) for step in range(20_000)]
    loss[12_345] = (12_345, 50.0, 12_345.0)
    metric_store.append(run.pk, {"loss": loss,
                                 "val_loss": [(s, 0.5, float(s)) for s in range(3)]})
    page = Client()
    page.force_login(owner)

    # when the API and the run page's own endpoint are asked for them
    body = api.get(f"runs/{run.pk}/metrics/").json()["metrics"]
    zoom = api.get(f"runs/{run.pk}/metrics/", {"x0": 100, "x1": 199, "keys": "loss"}).json()
    drawn = page.get(reverse("experiment-metrics", args=[run.pk])).json()["metrics"]

    # then they are the same series: at most ~2000 points, the spike kept
    assert body == drawn
    assert body["loss"]["total"] == 20_000 and body["loss"]["bucketed"] is True
    assert len(body["loss"]["steps"]) <= 2000 and max(body["loss"]["values"]) == 50.0
    assert body["val_loss"]["values"] == [0.5, 0.5, 0.5]
    assert list(zoom["metrics"]) == ["loss"] and zoom["metrics"]["loss"]["steps"][0] == 100
    assert len(zoom["metrics"]["loss"]["steps"]) == 100


def test_a_range_that_is_not_a_finite_number_is_refused(api, make_run):
    run = make_run()

    response = api.get(f"runs/{run.pk}/metrics/", {"x0": "nan", "x1": "later"})

    assert response.status_code == 400 and set(response.json()["errors"]) == {"x0", "x1"}


# --- launching ----------------------------------------------------------------------------------


def test_a_spec_launches_a_queued_run(api, owner, project):
    response = api.post("runs/", {"project": project.pk, "name": "iris-mlp", "spec": IRIS})

    assert response.status_code == 201
    run = Experiment.objects.get(name="iris-mlp")
    assert response.json()["id"] == run.pk and response.json()["status"] == "queued"
    assert run.kind == "train" and run.created_by == owner and run.project == project
    assert run.spec == ExperimentSpec.from_dict(IRIS).to_dict()


def test_a_bad_spec_is_a_400_with_one_error_per_field_path(api, project):
    spec = {"data": {"dataset": "iris"}, "model": {"arch": "resnet9000"},
            "optim": {"lr": -1}, "run": {"epochs": 0}, "colour": {}}

    response = api.post("runs/", {"project": project.pk, "name": "bad", "spec": spec})

    errors = response.json()["errors"]
    assert response.status_code == 400
    assert set(errors) == {"spec.model.arch", "spec.optim.lr", "spec.run.epochs", "spec.colour"}
    assert all(isinstance(message, str) and message for message in errors.values())
    assert not Experiment.objects.exists()


def test_missing_fields_and_a_spec_that_is_not_an_object_are_named(api, project):
    missing = api.post("runs/", {"spec": IRIS})
    not_object = api.post("runs/", {"project": project.pk, "name": "x", "spec": [1, 2]})

    assert missing.status_code == 400 and set(missing.json()["errors"]) == {"project", "name"}
    assert not_object.status_code == 400
    assert not_object.json() == {"errors": {"spec": "must be a JSON object"}}


def test_a_model_past_the_memory_budget_is_refused_on_its_field(api, project):
    spec = {"data": {"dataset": "mnist"}, "model": {"arch": "mlp",
                                                    "hidden_sizes": [65536] * 16}}

    response = api.post("runs/", {"project": project.pk, "name": "huge", "spec": spec})

    assert response.status_code == 400
    assert "the limit is 64 GB per run" in response.json()["errors"]["spec.model.hidden_sizes"]


def test_a_launch_beyond_the_users_quota_is_409_with_the_count(api, project, make_run,
                                                                settings):
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 1
    make_run("waiting")

    response = api.post("runs/", {"project": project.pk, "name": "second", "spec": IRIS})

    assert response.status_code == 409
    assert "You have 1 jobs queued or running; the limit is 1" in response.json()["detail"]
    assert not Experiment.objects.filter(name="second").exists()


def test_a_launch_into_a_project_not_yours_is_404(api):
    stranger = User.objects.create_user("stranger")  # no password: none to hash
    zoo = create_project(stranger, "zoo")

    response = api.post("runs/", {"project": zoo.pk, "name": "in", "spec": IRIS})

    assert response.status_code == 404 and not Experiment.objects.exists()


def test_a_read_token_reads_but_cannot_launch_or_cancel(owner, project, make_run):
    run = make_run()
    reader = Api(Client(), tokens.create_token(owner, "ci", "read", None)[1])

    read = reader.get(f"runs/{run.pk}/")
    launch = reader.post("runs/", {"project": project.pk, "name": "x", "spec": IRIS})
    cancel = reader.post(f"runs/{run.pk}/cancel/")

    assert read.status_code == 200
    assert launch.status_code == 403 and cancel.status_code == 403
    run.refresh_from_db()
    assert run.status == "queued" and Experiment.objects.count() == 1


# --- cancelling ---------------------------------------------------------------------------------


def test_cancel_ends_a_queued_run_and_says_so_once(api, make_run):
    run = make_run()

    first = api.post(f"runs/{run.pk}/cancel/")
    again = api.post(f"runs/{run.pk}/cancel/")

    assert first.status_code == 200 and first.json() == {"cancelled": True,
                                                         "status": "cancelled"}
    assert again.json() == {"cancelled": False, "status": "cancelled"}


def test_a_member_cannot_cancel_another_members_run_but_a_maintainer_can(owner, project,
                                                                         make_run):
    member = User.objects.create_user("member")  # no password: none to hash
    project.members.add(member, through_defaults={"role": Membership.Role.MEMBER})
    run = make_run()  # the owner's, who maintains the project
    theirs = make_run("theirs", created_by=member)
    as_member = Api(Client(), tokens.create_token(member, "m", "write", None)[1])
    as_owner = Api(Client(), tokens.create_token(owner, "o", "write", None)[1])

    refused = as_member.post(f"runs/{run.pk}/cancel/")
    allowed = as_owner.post(f"runs/{theirs.pk}/cancel/")

    assert refused.status_code == 403
    assert allowed.status_code == 200 and allowed.json()["cancelled"] is True
    run.refresh_from_db()
    assert run.status == "queued"


# --- the browser's session ----------------------------------------------------------------------


def test_a_logged_in_browser_uses_the_api_with_its_csrf_token(owner, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    session = Api(client, None)
    body = {"project": project.pk, "name": "from-the-page", "spec": IRIS}

    listed = session.get("runs/")
    forged = session.post("runs/", body)
    client.get(reverse("experiment-list"))  # sets the CSRF cookie, as a page does
    csrf = client.cookies["csrftoken"].value
    sent = client.post("/api/v1/runs/", body, content_type="application/json",
                       HTTP_X_CSRFTOKEN=csrf)

    assert listed.status_code == 200
    assert forged.status_code == 403
    assert sent.status_code == 201 and Experiment.objects.filter(name="from-the-page").exists()


def test_without_a_token_or_session_every_call_is_401(make_run):
    run = make_run()
    anonymous = Api(Client(), None)

    codes = {anonymous.get("runs/").status_code, anonymous.get(f"runs/{run.pk}/").status_code,
             anonymous.post("runs/", {}).status_code, anonymous.get("schema/").status_code,
             anonymous.get("docs/").status_code}

    assert codes == {401}


def upload_to(user: User, project) -> str:
    """A CSV of 40 rows uploaded to ``project`` by ``user``: its spec name."""
    client = Client()
    client.force_login(user)
    assert client.post(reverse("dataset-new"), {
        "name": "table", "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("d.csv", table_csv(40))}).status_code == 302
    return Dataset.objects.latest("pk").spec_name


def test_a_run_on_an_upload_of_another_project_is_refused_before_its_facts_are_read(
        api, owner, project):
    # given an upload of the owner's "audio" project and one of a stranger's project
    audio = create_project(owner, "audio")
    stranger = User.objects.create_user("stranger")  # no password: none to hash
    theirs = upload_to(stranger, create_project(stranger, "zoo"))
    mine = upload_to(owner, audio)
    # a batch larger than either upload's training split: refused on it if the facts are read
    spec = {"model": {"arch": "mlp"}, "run": {"device": "cpu", "batch_size": 64}}

    def launch(into, dataset: str):
        return api.post("runs/", {"project": into.pk, "name": "x",
                                  "spec": {**spec, "data": {"dataset": dataset}}})

    # when runs on them are launched into "vision", and on an upload that does not exist
    elsewhere, foreign, missing = launch(project, mine), launch(project, theirs), \
        launch(project, "upload:999")
    fits = api.post("runs/", {"project": audio.pk, "name": "fits", "spec": {
        **spec, "run": {"device": "cpu", "batch_size": 8}, "data": {"dataset": mine}}})

    # then each is refused on the dataset alone, saying nothing of the stranger's rows
    assert "belongs to project audio" in elsewhere.json()["errors"]["spec.data.dataset"]
    assert foreign.json() == {"errors": {"spec.data.dataset": (
        f"it trains on uploaded dataset #{theirs.split(':')[1]}, which is not a dataset of "
        "your projects")}}
    assert list(missing.json()["errors"]) == ["spec.data.dataset"]
    assert {elsewhere.status_code, foreign.status_code, missing.status_code} == {400}
    # and the run in the upload's own project is queued
    assert fits.status_code == 201, fits.json()


def test_a_page_of_the_list_costs_the_same_queries_for_3_runs_or_30(api, make_run):
    tag = Tag.objects.create(name="t")

    def queries_for_a_page() -> int:
        api.get("runs/", {"tag": "t"})  # the token's last use is written at most once a minute
        with CaptureQueriesContext(connection) as captured:
            response = api.get("runs/", {"tag": "t", "page_size": 100})
        assert response.status_code == 200
        return len(captured)

    for i in range(3):
        make_run(f"run-{i}").tags.add(tag)
    few = queries_for_a_page()
    for i in range(3, 30):
        make_run(f"run-{i}").tags.add(tag)
    many = queries_for_a_page()

    assert few == many


def test_staff_cancel_a_job_of_a_project_they_are_not_in_as_on_the_queue_page(make_run):
    # given a staff member's token for all their projects, and one narrowed to one project
    staff = User.objects.create_user("operator", is_staff=True)  # no password: none to hash
    run = make_run()
    everywhere = Api(Client(), tokens.create_token(staff, "ops", "write", None)[1])
    narrowed = Api(Client(), tokens.create_token(
        staff, "ops-one", "write", [create_project(staff, "ops")])[1])

    unseen = everywhere.get(f"runs/{run.pk}/")
    outside = narrowed.post(f"runs/{run.pk}/cancel/")
    cancelled = everywhere.post(f"runs/{run.pk}/cancel/")

    assert unseen.status_code == 404  # staff see no more projects than anyone
    assert outside.status_code == 404
    assert cancelled.json() == {"cancelled": True, "status": "cancelled"}


def test_a_token_over_its_rate_gets_429(api, settings, one_rate_window):
    settings.FITBOARD_API_RATE_PER_MIN = 2

    codes = [api.get("projects/").status_code for _ in range(4)]

    assert codes == [200, 200, 429, 429]


def test_a_plugin_spec_launches_and_a_module_path_or_bad_option_is_refused_on_its_path(
        api, project):
    launched = api.post("runs/", {"project": project.pk, "name": "mobilenet", "spec": PLUGIN_SPEC})
    refused = api.post("runs/", {"project": project.pk, "name": "bad", "spec": {
        "data": {"dataset": "shapes"},
        "model": {"arch": "os:system", "plugin_config": {"width": 0}}}})
    bad_option = api.post("runs/", {"project": project.pk, "name": "bad", "spec": {
        **PLUGIN_SPEC, "model": {"arch": "mobilenet", "plugin_config": {"width": 0}}}})

    assert launched.status_code == 201
    assert Experiment.objects.get(name="mobilenet").spec["model"]["plugin_config"]["width"] == 8
    assert refused.status_code == 400 and set(refused.json()["errors"]) == {"spec.model.arch"}
    assert bad_option.status_code == 400
    assert bad_option.json()["errors"] == {
        "spec.model.plugin_config.width": "must be between 4 and 256 channels"}


def test_a_launch_from_another_projects_run_is_refused_like_a_missing_one(api, project,
                                                                          make_run):
    # Given a finished run of a project the user is not in
    stranger = User.objects.create_user("stranger")
    zoo = create_project(stranger, "zoo")
    theirs = make_run("theirs", Experiment.Status.SUCCEEDED, project=zoo, created_by=stranger)
    spec = {**IRIS, "model": {**IRIS["model"], "init_from": theirs.pk}}

    # When a launch starts from it
    response = api.post("runs/", {"project": project.pk, "name": "from theirs", "spec": spec})

    # Then it is refused on the field, in the words a missing run gets
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "spec.model.init_from": f"no run #{theirs.pk} in project {project.name}"}
    assert not Experiment.objects.filter(name="from theirs").exists()
