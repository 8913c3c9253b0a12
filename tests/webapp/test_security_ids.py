"""Ids typed into URLs and query strings: a number no bigint column holds, a negative one, or
digits ``int`` refuses ("²") get a clean answer (400, 404, or a message on the list), never a
500 from the database driver."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from webapp.datasets.models import Dataset

from ..hostile import table_csv
from .test_security_routes import OBJECT_ROUTES

HUGE = "9" * 30  # past 2**63 - 1: SQLite's driver raises OverflowError on it
LONG = "9" * 5000  # past the 4,300 digits int() reads
BAD_IDS = [HUGE, "-3", "²", "1e3", str(2**63), LONG]


@pytest.fixture
def pair(make_experiment):
    return make_experiment(name="a").pk, make_experiment(name="b").pk


@pytest.mark.parametrize("bad", BAD_IDS)
def test_compare_page_sends_a_bad_id_back_to_the_list_with_a_message(owner_client, pair, bad):
    response = owner_client.get(reverse("compare"), {"ids": f"{pair[0]},{bad}"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("experiment-list")
    assert "is not a run number" in response.content.decode()


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("route", ["compare-data", "compare-export"])
def test_compare_data_and_export_answer_400_to_a_bad_id(owner_client, pair, bad, route):
    url = reverse(route, kwargs={"fmt": "csv"} if route == "compare-export" else {})

    response = owner_client.get(url, {"ids": f"{pair[0]},{pair[1]},{bad}"})

    assert response.status_code == 400
    assert "is not a run number" in response.json()["error"]


def test_the_largest_bigint_is_a_run_number_that_does_not_exist(owner_client, pair):
    response = owner_client.get(reverse("compare-export", kwargs={"fmt": "csv"}),
                                {"ids": f"{pair[0]},{2**63 - 1}"})

    assert response.status_code == 404


@pytest.mark.parametrize("query", [{"from": "²"}, {"from": HUGE}, {"dataset": "upload:²"},
                                   {"dataset": f"upload:{HUGE}"}, {"from": LONG},
                                   {"init_from": LONG}, {"project": LONG},
                                   {"dataset": f"upload:{LONG}"}])
def test_new_experiment_form_ignores_ids_it_cannot_read(owner_client, query):
    response = owner_client.get(reverse("experiment-new"), query)

    assert response.status_code == 200


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=lambda r: r.name)
def test_no_route_fails_on_huge_ids_in_its_path_or_query(owner_client, pair, route):
    # Every int parameter of the path, and every id the views read from a query string, huge.
    path = "/" + re.sub(r"<int:(\w+)>", HUGE, route.path)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"fmt": "csv"}.get(m[1], "best"), path)
    query = {"ids": f"{pair[0]},{HUGE}", "from": HUGE, "dataset": f"upload:{HUGE}",
             "project": HUGE, "page": HUGE, "x0": HUGE, "x1": f"-{HUGE}"}

    for method in ("get", "post"):
        # The test client raises the view's exception instead of answering 500.
        response = getattr(owner_client, method)(path + "?" + "&".join(
            f"{k}={v}" for k, v in query.items()), query)

        assert response.status_code < 500, (method, path)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_the_data_set_pages_and_api_answer_numbers_int_refuses_without_a_500(
        owner_client, project, bad):
    # given an uploaded data set (its pages read rows, versions, scans and labels as numbers)
    response = owner_client.post(reverse("dataset-new"), {
        "name": "flowers", "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("d.csv", table_csv(40))})
    assert response.status_code == 302
    pk = Dataset.objects.get().pk
    owner_client.raise_request_exception = False

    # when each of those numbers is sent as ``bad``
    answers = [
        *(owner_client.get(reverse("dataset-labels", args=[pk]), {name: bad})
          for name in ("scan", "given", "suggested")),
        owner_client.get(reverse("dataset-diff", args=[pk]), {"from": bad, "to": bad}),
        owner_client.post(reverse("dataset-labels-scan", args=[pk]), {"folds": bad}),
        owner_client.post(reverse("dataset-labels-apply", args=[pk]),
                          {"rows": [bad, "1"], "label_1": bad, "action": "relabel"}),
        owner_client.post(f"/api/v1/datasets/{pk}/versions/", {"relabel": {bad: 1}},
                          content_type="application/json"),
        owner_client.get(f"/api/v1/datasets/{pk}/label-scans/1/previews/", {"rows": bad}),
    ]

    # then each is answered, never with a server error
    assert [r.status_code for r in answers if r.status_code >= 500] == []


@pytest.mark.parametrize("route", ["group-compare", "group-compare-export"])
def test_the_group_comparison_answers_a_number_int_refuses_with_a_404(owner_client, route):
    response = owner_client.get(reverse(route), {"a": LONG, "b": "1"})

    assert response.status_code == 404
