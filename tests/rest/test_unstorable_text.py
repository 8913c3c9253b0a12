"""Text the database cannot store, a NUL (\\u0000) or half of a surrogate pair (\\ud800), sent
to every write route of /api/v1/ and in the query strings of its read routes: each is refused
as the client's 400 in the API's own error shape, never a server error (PostgreSQL refuses
both; the suite runs there when DATABASE_URL is set), and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, resolve

from tests.checkpoints import store_checkpoint
from tests.routes import every_route
from webapp.experiments.models import Experiment
from webapp.rest import urls
from webapp.rest.parsers import first_unstorable
from webapp.tracking.models import ApiToken

from .conftest import IRIS, Api
from .test_labels import uploaded
from .test_page_actions import DROPOUT

NUL, HALF = "\x00", "\ud800"
SPACE = {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}


def json_routes(text: str, ids: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, body) for every JSON write route, ``text`` where a stored string goes
    (or a name of an object, where the route stores no string). Not "Try it" (predictions):
    it stores nothing, and refuses this run's table model before reading a body; the parser
    refuses its body as every route's (the query and form tests below)."""
    run, project, dataset, study = ids["run"], ids["project"], ids["dataset"], ids["study"]
    return [
        ("post", "runs/", {"project": project, "name": text, "spec": IRIS}),
        ("post", "runs/", {"project": project, "name": "x", "spec": {**IRIS, text: 1}}),
        ("post", "groups/", {"project": project, "name": text, "spec": IRIS, "count": 2}),
        ("post", f"runs/{run}/studies/", {"name": text, "spec": {"space": SPACE}}),
        ("post", f"runs/{run}/compressions/", {"name": text, "spec": {}}),
        ("post", f"runs/{run}/remedies/dropout/", {"name": text}),
        ("post", f"runs/{run}/remedies/dropout/verify/", {"count": 2, "name": text}),
        ("post", f"runs/{run}/annotations/", {"tags": [text], "notes": ""}),
        ("post", f"runs/{run}/annotations/", {"tags": [], "notes": text}),
        ("post", f"runs/{run}/repeats/", {"count": 2, "name": text}),
        ("post", f"studies/{study}/promote/", {"name": text}),
        ("post", f"studies/{study}/checks/", {"top": 2, "count": 2, text: 1}),
        ("post", "projects/", {"name": text}),
        ("post", f"projects/{project}/members/", {"username": text}),
        ("patch", f"projects/{project}/members/{ids['owner']}/", {"role": text}),
        ("put", f"projects/{project}/email/", {"events": [text]}),
        ("post", f"projects/{project}/webhooks/", {"url": f"https://example.com/{text}"}),
        ("post", f"datasets/{dataset}/label-scans/", {"folds": 3, text: 1}),
        ("post", f"datasets/{dataset}/versions/", {"exclude": [1], "note": text}),
    ]


def stored(exclude: tuple[type, ...] = (ApiToken,)) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (but the token's, whose last use each request notes)."""
    return {model._meta.label: list(model.objects.order_by("pk").values())
            for model in apps.get_models() if not issubclass(model, exclude)}


@pytest.fixture
def ids(api: Api, project, owner, make_run) -> dict[str, int]:
    run = make_run("wide", Experiment.Status.SUCCEEDED, best_metric_name="val_acc",
                   best_metric_value=0.9, verdict={"kind": "overfitting",
                                                   "remedies": [DROPOUT]})
    store_checkpoint(run, b"weights")
    study = make_run("sweep", Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TUNE,
                     spec={"base": IRIS, "space": SPACE, "objective": "val_acc"})
    return {"run": run.pk, "project": project.pk, "owner": owner.pk, "study": study.pk,
            "dataset": uploaded(api, project).pk}


def send(api: Api, method: str, path: str, body: Any) -> Any:
    client = Client(raise_request_exception=False)
    return getattr(client, method)("/api/v1/" + path, json.dumps(body),
                                   content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {api.raw}")


@pytest.mark.parametrize("text", [NUL, HALF, f"a{NUL}b", f"x{HALF}y"])
def test_every_json_write_route_refuses_unstorable_text_and_stores_nothing(api, ids, text):
    before = stored()

    answers = {f"{method} {path} {sorted(body)}": send(api, method, path, body)
               for method, path, body in json_routes(text, ids)}

    wrong = {route: (answer.status_code, answer.content[:160])
             for route, answer in answers.items()
             if answer.status_code != 400 or "errors" not in answer.json()}
    assert wrong == {}
    assert stored() == before


def test_the_sweep_reaches_every_write_route_of_the_api():
    ids = {"run": 1, "project": 1, "owner": 1, "dataset": 1, "study": 1}
    swept = {(method, resolve("/api/v1/" + path).route)
             for method, path, _ in json_routes("x", ids)}
    # "Try it" and the data set upload also read forms (the form test below); a cancel reads
    # no body, and an invitation's answer stores no text
    swept |= {("post", "api/v1/runs/<int:pk>/predictions/"), ("post", "api/v1/datasets/"),
              ("post", "api/v1/runs/<int:pk>/cancel/"), ("post", "api/v1/invitations/<int:pk>/")}

    writes = {(method, route) for route, pattern in every_route()
              if route.startswith("api/v1/") for method in ("post", "put", "patch")
              if hasattr(getattr(pattern.callback, "cls", None), method)}
    assert writes == swept


def test_the_error_names_the_field_that_holds_the_text(api, ids):
    answer = send(api, "post", "runs/", {"project": ids["project"], "name": "x",
                                         "spec": {**IRIS, "run": {"device": NUL}}})

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["spec.run.device"]


def test_a_form_field_holding_a_nul_is_refused(api, project):
    # when a data set is uploaded (multipart) with a NUL in its name
    answer = Client(raise_request_exception=False).post("/api/v1/datasets/", {
        "name": f"digits{NUL}", "project": project.pk, "kind": "images",
        "file": SimpleUploadedFile("d.zip", b"PK")}, HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["name"]
    assert not apps.get_model("datasets", "Dataset").objects.exists()


def read_routes() -> list[str]:
    return [str(pattern.pattern) for pattern in urls.urlpatterns
            if isinstance(pattern, URLPattern) and "<" not in str(pattern.pattern)]


def test_a_read_routes_query_string_holding_a_nul_is_refused(api, ids):
    # (half a surrogate pair cannot arrive in a query string: Django replaces what is not
    # UTF-8 as it decodes it)
    queries = [{"q": NUL}, {"status": NUL}, {"metric": NUL}, {NUL: "1"},
               {"runs": f"{ids['run']},{NUL}"}, {"project": NUL}]
    paths = read_routes() + [f"runs/{ids['run']}/metrics/", f"datasets/{ids['dataset']}/diff/",
                             f"runs/{ids['run']}/artifacts/"]

    wrong = {(path, str(query)): answer.status_code
             for path in paths for query in queries
             if (answer := Client(raise_request_exception=False).get(
                 "/api/v1/" + path, query, HTTP_AUTHORIZATION=f"Bearer {api.raw}")
                 ).status_code != 400}
    assert wrong == {}


def test_a_path_holding_a_nul_is_refused(api, ids):
    answer = Client(raise_request_exception=False).get(
        f"/api/v1/runs/{ids['run']}/artifacts/a%00b", HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    assert answer.status_code == 400


def test_the_path_of_the_unstorable_text_is_found():
    assert first_unstorable({"a": [{"b": "ok"}], "c": "é"}) is None
    assert first_unstorable({"a": [{"b": f"x{NUL}"}]}) == "a.0.b"
    assert first_unstorable({"a": {HALF: 1}}) == "a"
    assert first_unstorable(NUL) == "request"
