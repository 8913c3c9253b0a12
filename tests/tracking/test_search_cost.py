"""What a search costs a read token's hostile request: LIKE and ILIKE match as their definition
and a pattern of many ``%`` costs no more than a plain one (each ``%`` was a backtracking
``.*``: hours against a long param), a long run of spaces in a filter or an order is read once
(once per space: 43 s for 20,000), a search asks for a bounded number of comparisons, and a
list naming one experiment many times reads it once (each was a query of its own)."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.tracking import ingest, tokens
from webapp.tracking.mlflow_views import MAX_EXPERIMENTS
from webapp.tracking.search import MAX_CLAUSES, MAX_FILTER_CHARS, like

pytestmark = pytest.mark.django_db
SEARCH = "/api/2.0/mlflow/runs/search"
TEXT = st.text(alphabet="aAb%_\n", max_size=8)


def reference(pattern: str, text: str, flags: int) -> bool:
    """LIKE as one regex (the definition; fine on short texts)."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags | re.DOTALL) is not None


@settings(max_examples=2000, deadline=None)
@given(pattern=TEXT, text=TEXT, ignore_case=st.booleans())
def test_like_matches_as_its_definition(pattern, text, ignore_case):
    flags = re.IGNORECASE if ignore_case else 0

    assert like(pattern, text, flags) == reference(pattern, text, flags)


@contextmanager
def refused_after(seconds: int) -> Iterator[None]:
    """Turn a search that would run for hours into a failure, not a hung suite (``re`` checks
    signals while it matches)."""
    def give_up(*_: Any) -> None:
        raise AssertionError(f"the search still ran after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_pattern_of_many_wildcards_is_answered_as_any_search(owner, project):
    # given a run holding a long param, and a read-only token of its project
    run = ingest.create_run(owner, project, "long", {})
    ingest.log_to_run(run, params={"notes": "a" * ingest.MAX_PARAM})
    raw = tokens.create_token(owner, "reader", "read", None)[1]

    # when the token searches with a pattern of 30 wildcards that cannot match
    with refused_after(60):  # the regex of 30 ".*" would take longer than the universe's age
        response = Client().post(
            "/api/2.0/mlflow/runs/search", json.dumps({
                "experiment_ids": [str(project.pk)],
                "filter": "params.notes LIKE '" + "%a" * 30 + "%b'"}),
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")

    # then it is answered: no run matches
    assert response.status_code == 200
    assert response.json().get("runs", []) == []


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/runs/search",
                                  "/api/2.0/mlflow/logged-models/search"])
def test_an_experiment_named_many_times_over_is_read_once(path, owner, project,
                                                          django_assert_max_num_queries):
    raw = tokens.create_token(owner, "reader", "read", None)[1]

    with django_assert_max_num_queries(10):  # 20,000 queries (18 s) before
        response = Client().post(path, json.dumps({"experiment_ids": [str(project.pk)] * 20_000}),
                                 content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 200


def test_a_search_of_more_experiments_than_the_limit_is_refused(owner, project):
    raw = tokens.create_token(owner, "reader", "read", None)[1]

    response = Client().post("/api/2.0/mlflow/runs/search", json.dumps({
        "experiment_ids": [str(i) for i in range(1, MAX_EXPERIMENTS + 2)]}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 400
    assert f"at most {MAX_EXPERIMENTS} experiments" in response.json()["message"]


def search(project: Any, raw: str, **body: Any) -> Any:
    return Client().post(SEARCH, json.dumps({"experiment_ids": [str(project.pk)], **body}),
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.mark.parametrize("body", [
    {"filter": "params.a" + " " * 19_000 + "x"},  # within MAX_FILTER_CHARS: parsed
    {"filter": "params.a = '1'" + " " * 60_000 + "x"},
    {"order_by": ["metrics.a" + " " * 60_000 + "x"]},
])
def test_a_long_run_of_spaces_is_read_once(body, owner, project):
    raw = tokens.create_token(owner, "reader", "read", None)[1]

    with refused_after(30):  # minutes before: each space began a scan of the rest of the run
        response = search(project, raw, **body)

    assert response.status_code == 400  # then refused: none of them is a clause or a key


@pytest.mark.parametrize(("body", "words"), [
    ({"filter": " and ".join(["params.a = '1'"] * (MAX_CLAUSES + 1))}, "comparisons"),
    ({"filter": f"params.a = '{'x' * MAX_FILTER_CHARS}'"}, "characters"),
    ({"order_by": ["metrics.loss"] * (MAX_CLAUSES + 1)}, "order_by keys"),
])
def test_a_search_asks_for_a_bounded_number_of_comparisons(body, words, owner, project):
    # (each is checked or sorted against every run of the experiments)
    raw = tokens.create_token(owner, "reader", "read", None)[1]

    response = search(project, raw, **body)

    assert response.status_code == 400
    assert words in response.json()["message"]


def test_a_search_of_models_takes_a_bounded_order_too(owner, project):
    raw = tokens.create_token(owner, "reader", "read", None)[1]

    response = Client().post("/api/2.0/mlflow/logged-models/search", json.dumps({
        "experiment_ids": [str(project.pk)],
        "order_by": [{"field_name": "name"}] * (MAX_CLAUSES + 1)}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 400
