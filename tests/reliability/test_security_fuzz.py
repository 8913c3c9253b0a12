"""Every form of the web app, fuzzed through its real view with hypothesis: 1,000 submissions
each (FITBOARD_FUZZ_EXAMPLES changes the count) built from a valid one with some fields
replaced by hostile values: text, unicode, empty, NaN, infinities, huge, tiny and negative
numbers. No submission may raise a server error, and every accepted one must have stored only
finite numbers. Each example runs in a transaction that is rolled back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.spec import ExperimentSpec
from webapp.datasets.forms import DatasetForm
from webapp.datasets.models import Dataset
from webapp.experiments.browse import AnnotationForm, RunFilterForm
from webapp.experiments.compression_forms import CompressionForm, compression_initial
from webapp.experiments.forms import ExperimentForm, RemedyForm, spec_initial
from webapp.experiments.models import Checkpoint, Experiment
from webapp.experiments.tuning_forms import TuneForm
from webapp.projects.forms import MemberForm, ProjectForm
from webapp.projects.models import Membership, Project

from ..hostile import table_csv

EXAMPLES = int(os.environ.get("FITBOARD_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
NASTY = ["", " ", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-Infinity", "1e309",
         "-1e309", "1e308", "1e-400", "5e-324", "9" * 400, "-" + "9" * 30, "-0", "-1", "0",
         "1", "2", "3.5", "0.999999999999", "1e6", "2147483648", "9223372036854775808",
         "0x10", "1_000", "١٢", "½", "Ⅻ", "𝟙", "1,5", " 7 ", "\t", "null", "None", "true",
         "[]", "{}", "'; DROP TABLE experiments_experiment; --", "<script>alert(1)</script>",
         "../../etc/passwd", "=cmd|' /C calc'!A0", "é" * 300, "a" * 5000]
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(str),
)
IRIS = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 2, "batch_size": 64, "device": "cpu"},
})


def nonfinite(value: Any, path: str = "") -> Iterator[str]:
    """Paths of the numbers in a JSON document that are not finite."""
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{path}={value}"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from nonfinite(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nonfinite(item, f"{path}[{i}]")


def state() -> list[Any]:
    """Every row the forms can write, to tell an accepted submission from a refused one."""
    return [list(model.objects.order_by("pk").values_list()) for model in (
        Experiment, Dataset, Project, Project.members.through, Experiment.tags.through, User)]


def stored_json() -> list[Any]:
    """Every JSON document the submission may have written."""
    docs: list[Any] = []
    for row in Experiment.objects.all():
        docs += [row.spec, row.progress, row.summary, row.verdict, row.remedy]
    for dataset in Dataset.objects.all():
        docs += [dataset.options, dataset.info, dataset.report]
    return docs


@dataclass
class Stats:
    sent: int = 0
    accepted: int = 0


def fuzz_form(client: Client, method: str, url: Callable[[], str], valid: dict[str, Any],
              fields: list[str], extra: Callable[[], dict[str, Any]] | None = None
              ) -> Callable[..., None]:
    """A hypothesis test body: ``valid`` with up to four of ``fields`` replaced or dropped."""
    stats = Stats()

    @FUZZ
    @given(changes=st.dictionaries(st.sampled_from(fields), st.one_of(VALUES, st.none()),
                                   max_size=4))
    def run(changes: dict[str, str | None]) -> None:
        data = {**valid, **changes}
        data = {k: v for k, v in data.items() if v is not None}
        with transaction.atomic():
            if extra is not None:
                data.update(extra())
            before = state()
            response = getattr(client, method)(url(), data)
            stats.sent += 1
            # the test client re-raises a view's exception; a 5xx would be a handled error
            assert response.status_code < 500, (response.status_code, data)
            if state() != before:
                stats.accepted += 1
                bad = [p for doc in stored_json() for p in nonfinite(doc)]
                assert not bad, (bad, data)
            transaction.set_rollback(True)

    run.stats = stats  # type: ignore[attr-defined]
    return run


def check(run: Callable[..., None], capsys: Any, name: str) -> None:
    run()
    stats = run.stats  # type: ignore[attr-defined]
    with capsys.disabled():
        print(f"\n{name}: {stats.sent} submissions, {stats.accepted} accepted, 0 server "
              f"errors, 0 non-finite numbers stored")
    # a fuzz that never gets past validation would prove little
    assert stats.accepted > 0 or name in NEVER_ACCEPTED


NEVER_ACCEPTED: set[str] = set()


@pytest.fixture
def member(db: Any) -> tuple[User, Project, Client]:
    user = User.objects.create_user("member", password="member-pass-123")
    project = Project.objects.create(name="fuzz")
    # its maintainer: the member form is a maintainer's (a plain member is refused with 403)
    project.members.add(user, through_defaults={"role": Membership.Role.MAINTAINER})
    client = Client()
    client.force_login(user)
    return user, project, client


@pytest.fixture
def finished(member: tuple[User, Project, Client], settings: Any) -> Experiment:
    user, project, _ = member
    run = Experiment.objects.create(
        project=project, name="iris", spec=IRIS.to_dict(), created_by=user,
        status=Experiment.Status.SUCCEEDED, best_metric_name="val_acc", best_metric_value=0.9,
        verdict={"kind": "overfitting", "remedies": [
            {"key": "lower-lr", "title": "Lower the learning rate",
             "patch": {"optim": {"lr": 1e-4}}}]})
    Checkpoint.objects.create(experiment=run, tag="best", path=f"runs/{run.pk}/best.zip",
                              sha256="0" * 64, size=1)
    return run


def form_fields(form_class: type, **kwargs: Any) -> list[str]:
    return list(form_class(**kwargs).fields)


def booleans(data: dict[str, Any]) -> dict[str, Any]:
    """Initial values as a browser posts them: checked boxes "on", unchecked ones absent."""
    out = {}
    for key, value in data.items():
        if value is True:
            out[key] = "on"
        elif value is not False and value is not None:
            out[key] = value
    return out


def test_the_experiment_form(member, capsys):
    user, project, client = member
    valid = booleans({"name": "fuzz", "project": project.pk, **spec_initial(IRIS)})
    run = fuzz_form(client, "post", lambda: reverse("experiment-new"), valid,
                    form_fields(ExperimentForm, user=user))
    check(run, capsys, "experiment form")


def test_the_tune_form(member, finished, capsys):
    user, project, client = member
    valid = {"name": "study", "project": project.pk, "algorithm": "random",
             "objective": "val_acc", "n_trials": 4, "timeout": 0, "parallelism": 2,
             "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1,
             "lr_log": "on", "batch_size_on": "on", "batch_size_choices": "32; 64",
             "dropout_on": "on", "dropout_low": 0.0, "dropout_high": 0.5, "dropout_step": 0.1}
    run = fuzz_form(client, "post", lambda: reverse("study-new", args=[finished.pk]), valid,
                    form_fields(TuneForm, user=user, base=IRIS))
    check(run, capsys, "tune form")


def test_the_compression_form(member, finished, capsys):
    user, _, client = member
    valid = booleans(compression_initial(finished))
    run = fuzz_form(client, "post", lambda: reverse("compress-new", args=[finished.pk]), valid,
                    form_fields(CompressionForm, source=finished, user=user))
    check(run, capsys, "compression form")


def test_the_dataset_upload_form(member, capsys):
    user, project, client = member
    valid = {"name": "flowers", "project": project.pk, "kind": "csv", "missing": "drop",
             "drop_duplicates": "on", "drop_unlabelled": "on", "standardise": "on",
             "task": "classification", "image_size": "16", "label_column": "species"}
    csv = table_csv(12)
    run = fuzz_form(client, "post", lambda: reverse("dataset-new"), valid,
                    [f for f in form_fields(DatasetForm, user=user) if f != "file"],
                    extra=lambda: {"file": SimpleUploadedFile("d.csv", csv)})
    check(run, capsys, "dataset upload form")


CELLS = st.one_of(VALUES, st.floats().map(str), st.integers().map(str))


def test_the_dataset_upload_form_with_fuzzed_csv_cells(member, capsys):
    # The same form with a valid set of options and a CSV whose feature cells are hostile:
    # "inf", "1e999", NaN, huge numbers, text; every accepted table stores finite numbers only.
    _, project, client = member
    valid = {"name": "cells", "project": project.pk, "kind": "csv", "missing": "mean",
             "drop_duplicates": "", "drop_unlabelled": "on", "standardise": "on",
             "task": "classification", "image_size": "16"}
    rows = st.lists(st.tuples(CELLS, CELLS), min_size=1, max_size=3)

    def table(cells: list[tuple[str, str]]) -> bytes:
        lines = ["a,b,label"] + [f"{i % 7},{i % 5},{'xy'[i % 2]}" for i in range(8)]
        lines += [f'"{a.replace(chr(34), "")}","{b.replace(chr(34), "")}",x' for a, b in cells]
        return "\n".join(lines).encode("utf-8", "replace")

    stats = Stats()

    @FUZZ
    @given(cells=rows)
    def run(cells: list[tuple[str, str]]) -> None:
        with transaction.atomic():
            response = client.post(reverse("dataset-new"), {
                **valid, "file": SimpleUploadedFile("d.csv", table(cells))})
            stats.sent += 1
            assert response.status_code < 500
            if Dataset.objects.exists():
                stats.accepted += 1
                bad = [p for doc in stored_json() for p in nonfinite(doc)]
                assert not bad, (bad, cells)
                # and the arrays the model will train on hold no infinity (NaN marks a cell to
                # impute with the training split's statistics when the set is loaded)
                with np.load(Dataset.objects.get().prepared.path, allow_pickle=False) as arrays:
                    assert not any(np.isinf(arrays[k]).any() for k in arrays.files
                                   if arrays[k].dtype.kind == "f"), cells
            transaction.set_rollback(True)

    run.stats = stats  # type: ignore[attr-defined]
    check(run, capsys, "dataset upload form, fuzzed CSV cells")


def test_the_annotation_form(member, finished, capsys):
    _, _, client = member
    run = fuzz_form(client, "post", lambda: reverse("experiment-annotate", args=[finished.pk]),
                    {"tags": "baseline", "notes": "first"}, form_fields(AnnotationForm))
    check(run, capsys, "annotation form")


def test_the_remedy_form(member, finished, capsys):
    _, _, client = member
    run = fuzz_form(client, "post",
                    lambda: reverse("remedy-apply", args=[finished.pk, "lower-lr"]),
                    {"name": "iris lower lr"}, form_fields(RemedyForm))
    check(run, capsys, "remedy form")


def test_the_project_form(member, capsys):
    _, _, client = member
    run = fuzz_form(client, "post", lambda: reverse("project-list"), {"name": "new project"},
                    form_fields(ProjectForm))
    check(run, capsys, "project form")


def test_the_member_form(member, capsys):
    user, project, client = member
    User.objects.create_user("friend", password="friend-pass-123")
    run = fuzz_form(client, "post", lambda: reverse("project-detail", args=[project.pk]),
                    {"username": "friend"}, form_fields(MemberForm, project=project))
    check(run, capsys, "member form")


def test_the_run_filter_form(member, finished, capsys):
    user, _, client = member
    NEVER_ACCEPTED.add("run filter form")  # a GET form: it filters, it stores nothing
    fields = form_fields(RunFilterForm, data=None, user=user) + ["page"]
    run = fuzz_form(client, "get", lambda: reverse("experiment-list"),
                    {"q": "iris", "sort": "-created"}, fields)
    check(run, capsys, "run filter form")
