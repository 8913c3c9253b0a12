"""API tokens: made and revoked on their page, stored hashed, scoped to projects and to reading
or writing, rate-limited; every API route refuses a token that may not reach its object.

The routes come from the URL resolver (like tests/webapp/test_security_routes.py), so an API
route added later is swept without editing this file."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.routes import every_route
from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment, RunGroup
from webapp.notifications.models import Webhook
from webapp.projects.actions import add_member, create_project
from webapp.projects.models import Invitation, Project
from webapp.tracking import ingest, tokens
from webapp.tracking.models import ApiToken, LoggedModel


def api_routes() -> list[tuple[str, str]]:
    """(pattern, name) of every route under api/."""
    return [(text, pattern.name) for text, pattern in every_route() if text.startswith("api/")]


API_ROUTES = api_routes()


def methods_of(name: str) -> list[str]:
    """The methods the route's view answers (``api.endpoint`` records them; a REST API view
    is a class with one method per verb)."""
    from webapp.rest import urls as rest_urls
    from webapp.tracking import urls

    if name.startswith("rest-"):
        view = next(p.callback for p in rest_urls.urlpatterns if p.name == name).view_class
        return [m.upper() for m in view.http_method_names
                if hasattr(view, m) and m not in ("options", "head")]
    view = next(p.callback for p in urls.api_urlpatterns if p.name == name)
    return list(view.api_methods)


# Routes of the REST API that name no object: a live token of another project gets its own
# (empty) list or the schema, and must see nothing of the victim's there.
OWN_ANSWERS = {"mlflow-experiment-search", "mlflow-run-search", "mlflow-logged-model-search",
               "rest-runs", "rest-projects", "rest-schema", "rest-docs", "rest-datasets",
               "rest-queue", "rest-invitations"}
# Routes that create a project: they name no object, and a live token may make its own.
CREATES_A_PROJECT = {"mlflow-experiment-create", "rest-projects"}


def rest_path(route: str, run: Experiment, project: Project) -> tuple[str, dict[str, Any]]:
    """The path of a /api/v1/ route aimed at the victim's objects (``victim_run`` made one
    of each kind in ``project``), and the query of a GET."""
    form = Experiment.objects.get(project=project, kind=Experiment.Kind.TRAIN,
                                  name="okapi form")
    study = Experiment.objects.get(project=project, kind=Experiment.Kind.TUNE)
    # by name: the victim's own token, probing, makes groups and data sets of its own
    dataset = Dataset.objects.get(project=project, name="okapi data")
    invited = Invitation.objects.filter(user_id=run.created_by_id).first()
    objects = {"api/v1/groups/": RunGroup.objects.get(project=project, name="okapi seeds").pk,
               # the project the victim is invited into, when they are
               "api/v1/invitations/": invited.project_id if invited else run.pk,
               "api/v1/studies/": study.pk,
               "api/v1/datasets/": dataset.pk,
               "api/v1/projects/": project.pk,
               # the routes that need a run trained here: the form run
               "remedies/": form.pk, "checkpoints/": form.pk, "repeats/": form.pk,
               "predictions/": form.pk, "onnx/": form.pk}
    pk = next((pk for part, pk in objects.items() if part in route), run.pk)
    path = "/" + (route.replace("<int:pk>", str(pk)).replace("<slug:key>", "dropout")
                  .replace("<slug:tag>", "best").replace("<path:path>", "secret.txt")
                  .replace("<int:user_id>", str(run.created_by_id)))
    if "<int:scan>" in path:
        path = path.replace("<int:scan>", str(dataset.label_scans.get().pk))
    if "<int:hook>" in path:
        path = path.replace("<int:hook>", str(Webhook.objects.get(project=project).pk))
    query: dict[str, Any] = {"project": project.pk}
    if route.endswith("diff/"):
        query = {"from": 2}  # a version it lacks: its own token is answered 400, not 404
    elif route.endswith("groups/compare/"):
        query = {"a": objects["api/v1/groups/"], "b": objects["api/v1/groups/"]}
    elif route.endswith("compare/"):
        query = {"ids": f"{run.pk},{form.pk}", "key": "loss"}
    return path, query


def call_rest(client: Client, route: str, method: str, raw: str, run: Experiment,
              project: Project) -> Any:
    """One request on a /api/v1/ route aimed at ``run`` / ``project``: a valid request for a
    token that reaches them."""
    path, query = rest_path(route, run, project)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    if method == "GET":
        return client.get(path, query, **headers)
    if method == "DELETE":
        return client.delete(path, **headers)
    if route.endswith("datasets/"):  # an upload: multipart, as a form posts it
        upload = SimpleUploadedFile("okapi.csv", b"a,b,label\n1,2,0\n3,4,1\n" * 10)
        return client.post(path, {"name": "hijack", "project": project.pk, "kind": "csv",
                                  "file": upload, "task": "classification",
                                  "missing": "drop"}, **headers)
    body = {"project": project.pk, "name": "hijack", "count": 2, "role": "member", "spec": {
        "data": {"dataset": "iris"}, "model": {"arch": "mlp"}, "run": {"device": "cpu"},
        "space": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1}}}}
    send = {"PUT": client.put, "PATCH": client.patch}.get(method, client.post)
    return send(path, json.dumps(body), content_type="application/json", **headers)


def call(client: Client, route: str, method: str, raw: str, run: Experiment,
         project: Project) -> Any:
    """One request on ``route`` aimed at ``run`` / ``project``, with token ``raw``."""
    if route.startswith("api/v1/"):
        return call_rest(client, route, method, raw, run, project)
    fields = {"run_id": str(run.pk), "experiment_id": str(project.pk),
              "experiment_name": project.name, "project": project.name, "metric_key": "loss",
              "key": "k", "value": "1",
              "name": "new-project", "new_name": "hijacked", "status": "FINISHED",
              "experiment_ids": [str(project.pk)],
              "metrics": [{"key": "loss", "value": 1.0, "timestamp": 1, "step": 1}],
              "path": f"{project.pk}/{run.pk}/artifacts"}
    model = LoggedModel.objects.get(project=project)
    path = "/" + route.replace("<path:artifact_path>",
                               f"{project.pk}/{run.pk}/artifacts/secret.txt") \
        .replace("<str:model_id>", model.model_id).replace("<path:tag_key>", "okapi")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    if method == "GET":
        return client.get(path, {k: v for k, v in fields.items() if isinstance(v, str)},
                          **headers)
    if method == "PUT":
        return client.put(path, b"hijacked", content_type="application/octet-stream",
                          **headers)
    return client.generic(method, path, json.dumps(fields), content_type="application/json",
                          **headers)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but sessions and the tokens' last-use times."""
    tables = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.label_lower in ("sessions.session", "tracking.apitoken"):
            continue
        tables[model._meta.label_lower] = [tuple(map(repr, row)) for row in
                                           model.objects.order_by("pk").values_list()]
    return tables


def test_every_api_route_is_swept():
    names = {name for _, name in API_ROUTES}
    assert {"mlflow-log-batch", "mlflow-run-create", "mlflow-artifact",
            "mlflow-metric-history", "mlflow-experiment-get-by-name", "fitboard-run-create",
            "fitboard-run-log", "fitboard-run-heartbeat", "fitboard-run-finish",
            "mlflow-run-delete", "mlflow-run-restore", "mlflow-delete-tag", "mlflow-log-inputs",
            "mlflow-log-outputs", "mlflow-log-model", "mlflow-experiment-update",
            "mlflow-experiment-delete", "mlflow-experiment-set-tag",
            "mlflow-experiment-delete-tag", "mlflow-logged-model-create", "mlflow-logged-model",
            "mlflow-logged-model-params", "mlflow-logged-model-tags",
            "mlflow-logged-model-tag-delete", "mlflow-unknown"} <= names
    assert {"rest-runs", "rest-run", "rest-run-metrics", "rest-run-cancel", "rest-run-study",
            "rest-run-compression", "rest-schema", "rest-docs", "rest-run-remedies",
            "rest-run-remedy-apply", "rest-run-annotations", "rest-run-checkpoint",
            "rest-run-artifacts", "rest-run-artifact", "rest-run-repeat", "rest-group",
            "rest-study-promote", "rest-compare", "rest-datasets", "rest-dataset",
            "rest-run-remedy-verify", "rest-group-compare", "rest-study",
            "rest-project-members", "rest-project-member", "rest-queue",
            "rest-run-predictions", "rest-run-onnx", "rest-dataset-label-scans",
            "rest-dataset-label-scan", "rest-dataset-versions", "rest-dataset-diff",
            "rest-study-checks", "rest-project-email", "rest-project-webhooks",
            "rest-project-webhook", "rest-run-diagnostics", "rest-groups",
            "rest-dataset-label-scan-previews", "rest-invitations", "rest-invitation"} <= names
    # and every method of each: a member's role is changed with PATCH
    assert set(methods_of("rest-project-member")) == {"PATCH", "DELETE"}


@pytest.mark.parametrize("whose", ["revoked", "other-project", "no-token"])
def test_a_token_that_may_not_reach_a_run_gets_401_or_404_on_every_api_route(
        whose, victim_run, owner, project):
    # given the victim's run, and a token that may not reach it: the victim's own token once
    # revoked, or a live token of a user who is not in the victim's project
    run, victim_project = victim_run
    if whose == "revoked":
        token, raw = tokens.create_token(run.created_by, "old", "write", None)
        assert tokens.revoke_token(run.created_by, token.pk)
        expected = {401}
    elif whose == "other-project":
        raw = tokens.create_token(owner, "mine", "write", None)[1]
        expected = {404}
    else:
        raw = "fb_" + "x" * 43
        expected = {401}
    client = Client()
    before = snapshot()
    problems = []
    for route, name in API_ROUTES:
        for method in methods_of(name):
            # when it sends every API route at the victim's run and project
            response = call(client, route, method, raw, run, victim_project)
            body = b"".join(response.streaming_content) if response.streaming \
                else response.content
            # then each answer is a refusal that shows nothing of them
            ok = response.status_code in expected or (
                # creating a project names no object: a live token may make its own
                name in CREATES_A_PROJECT and method == "POST" and whose == "other-project"
                and response.status_code in (200, 201)) or (
                # a run in a project named as the victim's: the native client makes a project
                # it does not find, and that name is taken (as the New project form says to
                # anyone), which it says instead of making one
                name == "fitboard-run-create" and whose == "other-project"
                and response.status_code == 403) or (
                # lists hold only what the token reaches: nothing of the victim's (the run
                # list refuses a filter on a project the token does not reach, with a 400)
                name in OWN_ANSWERS and whose == "other-project"
                and response.status_code in ((200, 400) if name == "rest-runs" else (200,)))
            if not ok:
                problems.append(f"{method} {route}: {response.status_code}")
            if b"okapi" in body:  # its run's name, tag, param and artifact all say okapi
                problems.append(f"{method} {route} shows the victim's run")
    after = snapshot()
    created = {p.name for p in Project.objects.all()} - {"zoo", "vision"}

    assert problems == []
    # and nothing of the victim's changed (a live token may create its own project only)
    if whose == "other-project":
        assert created == {"new-project", "hijack"}
        mine = ("projects.project", "projects.membership")
        after = {k: v for k, v in after.items() if not k.startswith(mine)}
        before = {k: v for k, v in before.items() if not k.startswith(mine)}
    assert after == before


@pytest.mark.parametrize("whose", ["other-project", "read-only"])
def test_a_logged_models_files_are_out_of_reach_of_a_token_that_may_not_touch_them(
        whose, victim_run, owner):
    # given the victim's logged model with a file, and a token of a stranger (or the victim's
    # own read-only token)
    run, project = victim_run
    model = LoggedModel.objects.get(project=project)
    user = owner if whose == "other-project" else run.created_by
    raw = tokens.create_token(user, "t", "write" if whose == "other-project" else "read",
                              None)[1]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    folder = f"{project.pk}/models/{model.model_id}/artifacts"
    client = Client()

    # when it reads, lists, overwrites the file and finalizes the model
    read = client.get(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/MLmodel", **headers)
    listed = client.get("/api/2.0/mlflow-artifacts/artifacts", {"path": folder}, **headers)
    put = client.put(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/MLmodel", b"hijacked",
                     content_type="application/octet-stream", **headers)
    finalize = client.patch(f"/api/2.0/mlflow/logged-models/{model.model_id}", json.dumps(
        {"status": "LOGGED_MODEL_UPLOAD_FAILED"}), content_type="application/json", **headers)

    # then a stranger finds nothing, a read-only token reads but writes nothing
    if whose == "other-project":
        assert [r.status_code for r in (read, listed, put, finalize)] == [404] * 4
    else:
        assert (read.status_code, listed.status_code) == (200, 200)
        assert [r.status_code for r in (put, finalize)] == [403, 403]
    with default_storage.open(f"{model.artifacts_root}/MLmodel") as stored:
        assert stored.read() == b"okapi flavor"
    assert LoggedModel.objects.get(pk=model.pk).status == LoggedModel.Status.PENDING


def test_a_read_only_token_reads_but_cannot_write(owner, project):
    # given a read-only token of the project's member and an external run in the project
    run = ingest.create_run(owner, project, "ext", {})
    raw = tokens.create_token(owner, "ci", "read", None)[1]
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    # when it reads, and when it tries to log
    read = client.get("/api/2.0/mlflow/runs/get", {"run_id": run.pk}, **headers)
    write = client.post("/api/2.0/mlflow/runs/log-metric", json.dumps(
        {"run_id": str(run.pk), "key": "loss", "value": 1, "timestamp": 1, "step": 1}),
        content_type="application/json", **headers)
    upload = client.put(f"/api/2.0/mlflow-artifacts/artifacts/{project.pk}/{run.pk}/artifacts/a",
                        b"x", content_type="application/octet-stream", **headers)

    # then the read succeeds and both writes are refused, storing nothing
    assert read.status_code == 200 and read.json()["run"]["info"]["run_name"] == "ext"
    assert write.status_code == 403 and write.json()["error_code"] == "PERMISSION_DENIED"
    assert upload.status_code == 403
    assert not run.chunks.exists()


def test_a_token_limited_to_one_project_does_not_reach_the_users_others(owner, project):
    # given a user in two projects and a token for only the first
    other = create_project(owner, "audio")
    run = ingest.create_run(owner, other, "ext", {})
    token, raw = tokens.create_token(owner, "ci", "write", [project])
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    # when it asks for the other project's run and experiment, and to create a project
    runs = client.get("/api/2.0/mlflow/runs/get", {"run_id": run.pk}, **headers)
    by_name = client.get("/api/2.0/mlflow/experiments/get-by-name",
                         {"experiment_name": "audio"}, **headers)
    create = client.post("/api/2.0/mlflow/experiments/create", json.dumps({"name": "x"}),
                         content_type="application/json", **headers)

    # then both are unknown to it, and it may not create projects
    assert runs.status_code == 404 and runs.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert by_name.status_code == 404
    assert create.status_code == 403 and not Project.objects.filter(name="x").exists()


def test_no_token_is_stored_in_clear(owner, project):
    # given tokens made through the page (one since revoked)
    client = Client()
    client.force_login(owner)
    shown = []
    for name in ("laptop", "ci"):
        page = client.post(reverse("api-tokens"), {"name": name, "scope": "write"})
        shown.append(re.search(r'id="token-value">([^<]+)<', page.content.decode())[1])
    tokens.revoke_token(owner, ApiToken.objects.get(name="ci").pk)

    # then no column of any table holds a token, though both were shown and one works
    dump = json.dumps(snapshot() | {"tokens": [list(map(repr, row)) for row in
                                               ApiToken.objects.values_list()]})
    assert all(raw.startswith("fb_") and len(raw) > 40 for raw in shown)
    assert not any(raw in dump or raw[SHOWN:] in dump for raw in shown for SHOWN in (10,))
    assert tokens.authenticate(f"Bearer {shown[0]}") is not None
    assert tokens.authenticate(f"Bearer {shown[1]}") is None  # revoked


def test_the_page_shows_a_token_once_and_refuses_a_blank_name(owner, project):
    client = Client()
    client.force_login(owner)

    bad = client.post(reverse("api-tokens"), {"name": "  ", "scope": "write"})
    refused = not ApiToken.objects.exists()
    made = client.post(reverse("api-tokens"), {"name": "laptop", "scope": "read",
                                               "projects": [project.pk]})
    later = client.get(reverse("api-tokens"))

    assert 'data-field-error="name"' in bad.content.decode() and refused
    token = ApiToken.objects.get()
    assert token.scope == "read" and not token.all_projects
    assert list(token.projects.all()) == [project]
    assert 'id="token-value"' in made.content.decode()
    assert 'id="token-value"' not in later.content.decode()
    assert token.prefix in later.content.decode()


def test_basic_auth_with_the_token_as_password_works(owner, project):
    raw = tokens.create_token(owner, "laptop", "read", None)[1]
    basic = base64.b64encode(f"anyone:{raw}".encode()).decode()

    response = Client().get("/api/2.0/mlflow/experiments/get-by-name",
                            {"experiment_name": "vision"}, HTTP_AUTHORIZATION=f"Basic {basic}")

    assert response.status_code == 200
    assert response.json()["experiment"]["experiment_id"] == str(project.pk)


def test_a_token_over_its_rate_gets_429(owner, project, settings, one_rate_window):
    # given a limit of 3 requests a minute
    settings.FITBOARD_API_RATE_PER_MIN = 3
    raw = tokens.create_token(owner, "laptop", "read", None)[1]
    client = Client()

    codes = [client.get("/api/2.0/mlflow/experiments/get-by-name",
                        {"experiment_name": "vision"},
                        HTTP_AUTHORIZATION=f"Bearer {raw}").status_code for _ in range(5)]

    assert codes == [200, 200, 200, 429, 429]


def test_a_users_tokens_share_one_allowance(owner, project, settings, one_rate_window):
    # given a limit of 4 requests a minute, and a user who made a second token to get more
    settings.FITBOARD_API_RATE_PER_MIN = 4
    first, second = (tokens.create_token(owner, name, "read", None)[1] for name in "ab")
    client = Client()

    codes = [client.get("/api/2.0/mlflow/experiments/get-by-name",
                        {"experiment_name": "vision"},
                        HTTP_AUTHORIZATION=f"Bearer {raw}").status_code
             for raw in (first, second) * 3]

    # then the two count together, and the REST API refuses the fifth request too
    assert codes == [200, 200, 200, 200, 429, 429]
    assert client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {second}"
                      ).status_code == 429


def test_a_session_without_a_token_is_refused_by_the_api(owner, project):
    # the API never authenticates by cookie: CSRF-exempt only because of that
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post("/api/2.0/mlflow/experiments/create", json.dumps({"name": "x"}),
                           content_type="application/json")

    assert response.status_code == 401 and not Project.objects.filter(name="x").exists()


def test_the_rest_probes_reach_their_objects_with_the_victims_own_token(victim_run):
    # the sweep's 404s come from the access checks, not from probes that miss: the same
    # requests with the victim's own live token find the run and the project
    run, victim_project = victim_run
    raw = tokens.create_token(run.created_by, "own", "write", None)[1]
    inviter = User.objects.create_user("inviter")
    add_member(inviter, create_project(inviter, "den"), run.created_by)
    client = Client()
    missed = []
    probes = [(route, method) for route, name in API_ROUTES if route.startswith("api/v1/")
              for method in methods_of(name)]
    # a deletion last: the probes after it would not find what it deleted
    for route, method in sorted(probes, key=lambda probe: probe[1] == "DELETE"):
        code = call(client, route, method, raw, run, victim_project).status_code
        if code in (401, 403, 404):
            missed.append(f"{method} {route}: {code}")

    assert missed == []


def test_the_page_links_the_rest_apis_docs_and_names_the_tracking_guide(owner):
    client = Client()
    client.force_login(owner)

    page = client.get(reverse("api-tokens")).content.decode()
    docs = client.get(reverse("rest-docs"))

    assert f'href="{reverse("rest-docs")}"' in page and docs.status_code == 200
    assert "docs/tracking.md" in page
