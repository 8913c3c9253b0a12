"""Every URL route, probed with another project's objects under every HTTP method: nothing of
that project is shown or changed, and no form is accepted without its CSRF token.

The routes come from the URL resolver, so a route added later is probed without editing this
file; a route whose parameters this file cannot fill fails the test until it is taught how.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset, LabelScan
from webapp.experiments import actions
from webapp.experiments.models import Checkpoint, Experiment
from webapp.experiments.tuning_forms import TuneForm
from webapp.notifications.models import Webhook
from webapp.projects.models import Membership, Project

from ..hostile import table_csv

METHODS = ("get", "post", "put", "patch", "delete")
# Words that appear only in the foreign project's objects: none may reach the stranger.
SECRETS = ("okapi-run", "okapi-notes", "okapi-study", "okapi-data", "okapi-tag", "victim-okapi",
           "okapi-hook")
# Tables a request may legitimately write whoever sends it (sessions, login records, admin log).
BOOKKEEPING = {"sessions.session", "axes.accesslog", "axes.accessattempt",
               "axes.accessfailurelog", "admin.logentry", "axes.accessattemptexpiration"}
IRIS = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 2, "batch_size": 64, "device": "cpu"},
})
REMEDY = {"key": "lower-lr", "title": "Lower the learning rate",
          "patch": {"optim": {"lr": 0.0001}}}


@dataclass
class Route:
    path: str  # the pattern, e.g. "experiments/<int:pk>/cancel/"
    name: str
    regex: bool

    @property
    def params(self) -> list[str]:
        if self.regex:
            return re.findall(r"\(\?P<(\w+)>", self.path)
        return re.findall(r"<(?:\w+:)?(\w+)>", self.path)

    @property
    def is_admin(self) -> bool:
        return self.path.startswith("admin/")

    @property
    def is_api(self) -> bool:
        """The tracking API: authenticated by token only, so a session (or none) gets 401
        (tests/tracking/test_tokens.py sweeps it with tokens)."""
        return self.path.startswith("api/") and not self.is_rest

    @property
    def is_rest(self) -> bool:
        """The REST API: a token or the session, so a session is checked as on the pages
        (and its writes need the CSRF token); without either it answers 401."""
        return self.path.startswith("api/v1/")


def all_routes() -> list[Route]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[Route]:
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, text)
            elif isinstance(pattern, URLPattern):
                yield Route(text, pattern.name or text, "(?P<" in text or "$" in text)

    return list(walk(get_resolver().url_patterns, ""))


# Routes that delete the object they name: a member's sweep sends them last, so that the
# routes after them still find the foreign run and data set.
DELETIONS = ("experiment-delete", "dataset-delete")
ROUTES = sorted(all_routes(), key=lambda r: r.name in DELETIONS)
OBJECT_ROUTES = [r for r in ROUTES if r.params and not r.is_admin]


@dataclass
class Foreign:
    """A project the stranger is not a member of, with one object of every kind."""

    project: Project
    victim: User
    run: Experiment
    study: Experiment
    dataset: Dataset
    webhook: Webhook
    scan: LabelScan


@pytest.fixture
def foreign(db: Any, settings: Any) -> Foreign:
    victim = User.objects.create_user("victim-okapi", password="victim-pass-123")
    project = Project.objects.create(name="zoo")
    project.members.add(victim, through_defaults={"role": Membership.Role.MAINTAINER})
    webhook = Webhook.objects.create(project=project, url="https://okapi-hook.example/",
                                     secret="okapi-hook-secret", events=["run.failed"])
    run = Experiment.objects.create(
        project=project, name="okapi-run", spec=IRIS.to_dict(), created_by=victim,
        status=Experiment.Status.SUCCEEDED, notes="okapi-notes",
        verdict={"kind": "overfitting", "remedies": [REMEDY]}, best_metric_name="val_acc",
        best_metric_value=0.5)
    run.tags.create(name="okapi-tag")
    archive = settings.MEDIA_ROOT / "runs" / str(run.pk) / "best.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"okapi-run weights")
    Checkpoint.objects.create(experiment=run, tag="best", path=f"runs/{run.pk}/best.zip",
                              sha256="0" * 64, size=17)
    form = TuneForm({"name": "okapi-study", "project": project.pk, "algorithm": "random",
                     "objective": "val_acc", "n_trials": 2, "timeout": 0, "parallelism": 1,
                     "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3,
                     "lr_high": 1e-1, "lr_log": "on"}, user=victim, base=IRIS)
    assert form.is_valid() and form.spec is not None, form.errors
    study = actions.create_study(victim, project, "okapi-study", form.spec, run)
    client = Client()
    client.force_login(victim)
    response = client.post(reverse("dataset-new"), {
        "name": "okapi-data", "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("d.csv", table_csv(40))})
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    scan = LabelScan.objects.create(dataset=dataset, version=1, created_by=victim,
                                    status=LabelScan.Status.DONE, result={
                                        "flagged": 0, "label_names": ["a", "b"], "rows": [],
                                        "confusion": [[1, 0], [0, 1]]})
    return Foreign(project, victim, run, study, dataset, webhook, scan)


def url_for(route: Route, foreign: Foreign) -> str:
    """The route filled with the foreign project's objects."""
    top = route.path.removeprefix("api/v1/").split("/", 1)[0]
    pk = {"projects": foreign.project.pk, "datasets": foreign.dataset.pk,
          "studies": foreign.study.pk, "webhooks": foreign.webhook.pk}.get(top, foreign.run.pk)
    values = {
        "pk": pk, "user_id": foreign.victim.pk, "key": REMEDY["key"], "tag": "best",
        "fmt": "csv", "object_id": foreign.run.pk, "id": foreign.victim.pk,
        "content_type_id": ContentType.objects.get_for_model(Experiment).pk,
        "app_label": "experiments", "url": "experiments/", "path": "model.txt",
        "artifact_path": f"{foreign.project.pk}/{foreign.run.pk}/artifacts/model.txt",
        "model_id": "m-1", "tag_key": "stage", "unknown": "mlflow/model-versions/get",
        "hook": foreign.webhook.pk, "scan": foreign.scan.pk,
    }
    unknown = set(route.params) - set(values)
    assert not unknown, f"teach this test the parameters {unknown} of {route.path}"
    if route.regex:
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m[1]]), route.path)
        path = path.replace("^", "").replace("$", "")
    else:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m[1]]), route.path)
    return "/" + path


def query(foreign: Foreign) -> dict[str, Any]:
    """Query parameters naming foreign objects, for the routes that take ids there."""
    return {"ids": f"{foreign.run.pk},{foreign.study.pk}", "from": foreign.run.pk,
            "dataset": foreign.dataset.spec_name, "key": "val_loss", "project": foreign.project.pk}


def body(foreign: Foreign, stranger: User) -> dict[str, Any]:
    """A form body aimed at the foreign project: a valid submission for its members."""
    return {"project": foreign.project.pk, "name": "zoo", "username": stranger.username,
            "tags": "hijacked", "notes": "hijacked", "ids": f"{foreign.run.pk}",
            "dataset": foreign.dataset.spec_name, "from": foreign.run.pk,
            **{k: v for k, v in IRIS.to_dict()["optim"].items() if not isinstance(v, dict)}}


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but bookkeeping), to compare before and after a request."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for model in apps.get_models(include_auto_created=True):
        label = model._meta.label_lower
        if label in BOOKKEEPING:
            continue
        # A login (the probes log in again before each request) stamps last_login.
        fields = [f.attname for f in model._meta.concrete_fields if f.name != "last_login"]
        rows = model.objects.order_by("pk").values_list(*fields)
        tables[label] = [tuple(map(repr, row)) for row in rows]
    return tables


def write_count() -> int:
    """Rows written so far on this connection (the test's transaction), or -1 where the database
    cannot say: one query that tells whether a full snapshot could differ at all."""
    queries = {"sqlite": "SELECT total_changes()",
               "postgresql": "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                             "FROM pg_stat_xact_user_tables"}
    if connection.vendor not in queries:
        return -1
    with connection.cursor() as cursor:
        cursor.execute(queries[connection.vendor])
        return int(cursor.fetchone()[0])


class DatabaseWatch:
    """Whether any table (but bookkeeping) changed since the last look. The full snapshot, which
    reads every table, is taken again only when the connection's write counter moved: the
    sweep sends about a thousand requests, and nearly all of them write nothing."""

    def __init__(self) -> None:
        self.state = snapshot()
        self.writes = write_count()

    def changed(self) -> bool:
        writes = write_count()
        if writes >= 0 and writes == self.writes:
            return False
        state = snapshot()
        changed, self.state, self.writes = state != self.state, state, write_count()
        return changed


def send(client: Client, method: str, url: str, foreign: Foreign, stranger: User) -> Any:
    if method == "get":
        return client.get(url, query(foreign))
    if method == "post":
        return client.post(url + "?" + "&".join(f"{k}={v}" for k, v in query(foreign).items()),
                           body(foreign, stranger))
    return getattr(client, method)(url, body(foreign, stranger),
                                   content_type="application/json")


def logged_in(client: Client, user: User) -> None:
    """Log ``user`` in again when a probe (of a logout route) logged them out: a login per
    request would cost the sweep more than the requests themselves."""
    if client.session.get("_auth_user_id") != str(user.pk):
        client.force_login(user)


def content(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_every_route_is_probed():
    # the resolver sees the app's object routes (a guard against probing nothing)
    names = {r.name for r in OBJECT_ROUTES}
    assert {"experiment-detail", "checkpoint-download", "dataset-detail", "study-promote",
            "project-member-remove", "remedy-apply"} <= names
    assert len(ROUTES) >= 90


def stranger_problems(client: Client, route: Route, foreign: Foreign, stranger: User,
                      watch: DatabaseWatch) -> Iterator[str]:
    """What is wrong with the answers to a stranger's requests on ``route`` (nothing, we hope)."""
    url = url_for(route, foreign)
    for method in METHODS:
        logged_in(client, stranger)  # again: a probe of a logout route logged them out

        response = send(client, method, url, foreign, stranger)

        where, code = f"{method.upper()} {url}", response.status_code
        if code >= 500:
            yield f"{where}: server error {code}"
        if route.path in ("admin/login/", "admin/logout/"):
            pass  # public forms, like the site's own login
        elif route.is_admin and code not in (302, 404, 405):  # not staff: sent to log in
            yield f"{where}: {code} from the admin to a non-staff user"
        elif route.is_admin and code == 302 and not response["Location"].startswith(
                "/admin/login/"):
            yield f"{where}: the admin redirects a non-staff user to {response['Location']}"
        elif route.is_api:
            if code not in (401, 405):
                yield f"{where}: {code} from the token-only API to a session"
        elif route.params and not route.is_admin and code not in (403, 404, 405):
            yield f"{where}: {code} for another project's object"
        leaked = [word for word in SECRETS if word in content(response)]
        if leaked:
            yield f"{where} shows {leaked}"
        location = response.get("Location", "").split("?")[0]
        if any(f"/{pk}/" in location for pk in (foreign.run.pk, foreign.study.pk)):
            yield f"{where} redirects to {location}"
        if watch.changed():
            yield f"{where} changed the database"


def test_a_stranger_can_neither_see_nor_change_another_projects_objects(
        foreign, stranger, stranger_client):
    # given a stranger to the "zoo" project, when they aim every route at its objects with
    # every method, then no answer shows, changes or points to any of them
    watch = DatabaseWatch()
    problems = [p for route in ROUTES
                for p in stranger_problems(stranger_client, route, foreign, stranger, watch)]

    assert problems == [], "\n".join(problems)
    print(f"{len(ROUTES)} routes ({len(OBJECT_ROUTES)} with object ids) x {len(METHODS)} "
          f"methods probed: 0 leaks, 0 changes")


def test_the_probes_reach_their_views_for_a_member(foreign):
    # The same URLs find their objects for a member of the project: the stranger's 404s above
    # come from the permission checks, not from malformed probes.
    client = Client()
    client.force_login(foreign.victim)
    missed = []
    for route in OBJECT_ROUTES:
        url = url_for(route, foreign)
        codes = {}
        for method in ("get", "post"):
            logged_in(client, foreign.victim)
            codes[method] = send(client, method, url, foreign, foreign.victim).status_code
        if set(codes.values()) <= {404}:
            missed.append(f"{url}: {codes}")

    assert missed == []


def test_anonymous_visitors_reach_no_route_but_login(foreign):
    client = Client()
    problems = []
    for route in ROUTES:
        if route.name in ("login", "logout"):
            continue
        url = url_for(route, foreign)
        for method in METHODS:
            response = send(client, method, url, foreign, foreign.victim)
            allowed = (401, 405) if route.is_api or route.is_rest else (302, 404, 405)
            if response.status_code not in allowed:
                problems.append(f"{method} {url}: {response.status_code}")
            if [w for w in SECRETS if w in content(response)]:
                problems.append(f"{method} {url} leaks")

    assert problems == []


def test_no_state_changing_request_is_accepted_without_a_csrf_token(foreign):
    # given a member of the project whose browser sends no CSRF token
    client = Client(enforce_csrf_checks=True)
    client.force_login(foreign.victim)
    watch = DatabaseWatch()
    problems = []
    for route in ROUTES:
        url = url_for(route, foreign)
        for method in ("post", "put", "patch", "delete"):
            logged_in(client, foreign.victim)

            response = send(client, method, url, foreign, foreign.victim)

            # then it is refused (or the method is not allowed at all), and nothing changes;
            # the API ignores sessions altogether: without a token it answers 401
            if response.status_code not in ((401, 405) if route.is_api else (403, 405)):
                problems.append(f"{method} {url}: {response.status_code}")
            if watch.changed():
                problems.append(f"{method} {url} changed the database")

    assert problems == []


def test_no_route_queues_a_job_past_the_users_quota(foreign, settings):
    # given the victim at their quota (the study they launched waits in the queue), the study
    # with a completed trial, which its promotion and its check would queue runs of
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 1
    Experiment.objects.create(
        project=foreign.project, name="okapi-trial", spec=IRIS.to_dict(), parent=foreign.study,
        kind=Experiment.Kind.TRIAL, created_by=foreign.victim, status=Experiment.Status.SUCCEEDED,
        summary={"trial": {"number": 0, "state": "complete", "value": 0.9,
                           "params": {"optim.lr": 0.01}}})
    client = Client()
    client.force_login(foreign.victim)
    jobs = Experiment.objects.count()
    queued = []
    # when they send every route that could launch something (the token-only API aside: it
    # creates runs logged from scripts, which no worker trains)
    for route in ROUTES:
        if route.is_admin or route.is_api:
            continue
        url = url_for(route, foreign)
        for method in ("post", "put", "patch"):
            logged_in(client, foreign.victim)
            send(client, method, url, foreign, foreign.victim)
            count = Experiment.objects.count()  # fewer after a deletion
            if count > jobs:
                queued.append(f"{method.upper()} {url}")
            jobs = count

    # then none queued a job
    assert queued == []
