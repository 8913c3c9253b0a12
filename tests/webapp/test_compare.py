"""Comparing runs: who may, the diff and metrics tables, the chart data, and the exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from training.spec import ExperimentSpec
from webapp.experiments import compare, metric_store
from webapp.experiments.models import Experiment
from webapp.projects.models import Project
from webapp.tracking import ingest


def finished_run(make_experiment, name: str, lr: float, val_acc: float, val_loss: float,
                 **fields) -> Experiment:
    """A succeeded run with a summary like the worker's, and a few epoch points."""
    started = timezone.now() - timedelta(minutes=3)
    run = make_experiment(
        status=Experiment.Status.SUCCEEDED, name=name,
        spec=ExperimentSpec().patched({"optim": {"lr": lr}}).to_dict(),
        started_at=started, finished_at=started + timedelta(seconds=95),
        summary={"epochs": 3, "best_metrics": {"val_acc": val_acc, "val_loss": val_loss},
                 "final_metrics": {"val_acc": val_acc - 0.01, "val_loss": val_loss + 0.1}},
        progress={"parameters": 12_345}, **fields,
    )
    points = {"val_loss": [], "epoch": []}
    for epoch in (1, 2, 3):
        points["val_loss"].append((epoch * 10, val_loss + 1 / epoch, 1e9 + epoch))
        points["epoch"].append((epoch * 10, float(epoch), 1e9 + epoch))
    points["loss"] = [(step, 2.0 / step, 1e9 + step / 10) for step in range(1, 31)]
    metric_store.append(run.pk, points)
    return run


@pytest.fixture
def three_runs(make_experiment) -> list[Experiment]:
    return [
        finished_run(make_experiment, "lr small", 1e-4, 0.91, 0.40, verdict_kind="underfitting"),
        finished_run(make_experiment, "lr default", 1e-3, 0.97, 0.12, verdict_kind="healthy"),
        finished_run(make_experiment, "lr big", 1e-2, 0.95, 0.20, verdict_kind="overfitting"),
    ]


def ids_of(runs: list[Experiment]) -> str:
    return ",".join(str(r.pk) for r in runs)


def test_the_compare_page_shows_every_run_with_its_verdict(owner_client, three_runs):
    # when the owner compares three runs
    response = owner_client.get(reverse("compare"), {"ids": ids_of(three_runs)})

    # then each run is a column, with its verdict badge
    page = response.content.decode()
    assert response.status_code == 200
    for run in three_runs:
        assert f'data-run="{run.pk}"' in page
    for kind in ("underfitting", "healthy", "overfitting"):
        assert f'class="verdict {kind}"' in page
    # and the chart offers every logged metric, validation loss first and selected
    assert re.search(r'<select id="metric"><option value="val_loss" selected>val_loss</option>'
                     r'<option value="loss">loss</option></select>', page)


def test_a_run_in_another_project_makes_the_comparison_not_found(owner_client, stranger,
                                                                 three_runs):
    # given a run in a project the owner is not a member of
    theirs = Project.objects.create(name="theirs")
    theirs.members.add(stranger)
    secret = Experiment.objects.create(project=theirs, name="secret",
                                       spec=ExperimentSpec().to_dict())

    # when the owner puts its id in a comparison (page, data or export)
    ids = f"{three_runs[0].pk},{secret.pk}"
    responses = [owner_client.get(reverse("compare"), {"ids": ids}),
                 owner_client.get(reverse("compare-data"), {"ids": ids, "key": "loss"}),
                 owner_client.get(reverse("compare-export", args=["csv"]), {"ids": ids})]

    # then every answer is 404, as for a run that does not exist
    assert [r.status_code for r in responses] == [404, 404, 404]


@pytest.mark.parametrize("ids, message", [("5", "between 2 and 20"),
                                          (",".join(str(i) for i in range(1, 22)), "(21 selected)"),
                                          ("1,x", "not a run number")])
def test_a_bad_selection_goes_back_to_the_list_with_the_reason(owner_client, project, ids,
                                                              message):
    response = owner_client.get(reverse("compare"), {"ids": ids}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("experiment-list")
    assert message in response.content.decode()


def test_checkbox_ids_and_comma_ids_mean_the_same_selection():
    assert compare.parse_ids(["3", "1", "3"]) == compare.parse_ids(["3,1"]) == [3, 1]


def test_the_compare_page_costs_the_same_queries_for_2_and_12_runs(owner_client, make_experiment):
    # given 12 finished runs
    runs = [finished_run(make_experiment, f"run {i}", 1e-3 * (i + 1), 0.9, 0.3)
            for i in range(12)]

    # when the page is rendered for 2 and then for 12 of them
    counts = []
    for selection in (runs[:2], runs):
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.get(reverse("compare"), {"ids": ids_of(selection)})
        assert response.status_code == 200
        counts.append(len(queries))

    # then the number of queries does not grow with the runs
    assert counts[0] == counts[1]


def test_the_chart_data_costs_the_same_queries_for_any_number_of_runs(
        owner_client, make_experiment, django_assert_max_num_queries):
    runs = [finished_run(make_experiment, f"run {i}", 1e-3, 0.9, 0.3) for i in range(15)]

    # session, user, runs, the chunks' summaries, their full points: whatever the selection
    with django_assert_max_num_queries(5):
        response = owner_client.get(reverse("compare-data"),
                                    {"ids": ids_of(runs), "key": "val_loss"})

    assert len(response.json()["runs"]) == 15


def test_the_config_diff_highlights_only_the_fields_that_differ(three_runs):
    # when the specs of runs that differ only in learning rate are compared
    rows = {row.field: row for row in compare.config_diff(three_runs)}

    # then every spec field is a row, and only optim.lr is marked as differing
    assert set(rows) >= {"data.dataset", "model.arch", "optim.lr", "run.epochs"}
    assert [name for name, row in rows.items() if row.differs] == ["optim.lr"]
    assert rows["optim.lr"].cells == ["0.0001", "0.001", "0.01"]


def test_the_config_diff_names_an_uploaded_data_set(project, make_experiment):
    # given a run on an uploaded data set beside one on digits
    from webapp.datasets.models import Dataset

    upload = Dataset.objects.create(project=project, name="churn table", kind="csv",
                                    folder="f", prepared="f/prepared.npz")
    spec = ExperimentSpec().to_dict()
    spec["data"]["dataset"] = upload.spec_name
    runs = [make_experiment(name="on upload", spec=spec), make_experiment(name="on digits")]

    # when their specs are compared
    rows = {row.field: row for row in compare.config_diff(runs)}

    # then the upload's cell names it, beside the id a spec refers to it by
    assert rows["data.dataset"].cells == [f"churn table ({upload.spec_name})", "digits"]
    assert rows["data.dataset"].differs


def test_beside_a_scripts_run_only_what_differs_among_the_runs_holding_a_field_differs(
        owner, project, three_runs):
    # given two scripts' runs (params and tags, no spec) beside the three form runs
    scripts = [ingest.create_run(owner, project, name, {"team": "nlp"}) for name in "ab"]
    ingest.log_to_run(scripts[0], params={"lr": "0.1", "layers": "2"})
    ingest.log_to_run(scripts[1], params={"lr": "0.1", "layers": "3"})

    # when they are compared
    rows = {row.field: row for row in compare.config_diff([*three_runs, *scripts])}

    # then a spec field the scripts' runs lack, or a param the form runs lack, is no difference
    # in itself: what differs is what differs among the runs that have it
    assert sorted(name for name, row in rows.items() if row.differs) == [
        "optim.lr", "params.layers"]
    assert rows["params.layers"].cells == ["—", "—", "—", "2", "3"]
    assert rows["model.arch"].cells[3:] == ["—", "—"] and not rows["model.arch"].differs


def test_the_page_marks_differing_rows_and_hides_the_same_ones_by_default(owner_client,
                                                                          three_runs):
    page = owner_client.get(reverse("compare"), {"ids": ids_of(three_runs)}).content.decode()

    assert 'class="differs" data-field="optim.lr"' in page
    assert 'class="same" data-field="model.arch"' in page
    assert 'class="compare only-diff" id="diff-table"' in page


def test_the_metrics_table_marks_the_best_value_of_each_row(three_runs):
    # when the metrics of the three runs are tabulated
    rows = {row.key: row for row in compare.metrics_table(three_runs)}

    # then the highest accuracy and the lowest loss are marked (run 2 in both)
    assert rows["best_val_acc"].best == {1}
    assert rows["best_val_loss"].best == {1}
    assert rows["final_val_loss"].best == {1}
    assert rows["duration_s"].values == [95.0, 95.0, 95.0]
    assert rows["parameters"].cells[0] == ("12,345", False)


def run_on(make_experiment, name: str, dataset: str, loss: str, val_loss: float) -> Experiment:
    """A succeeded run on ``dataset`` trained with ``loss`` (so of that loss's task)."""
    spec = ExperimentSpec().patched({"data": {"dataset": dataset}, "optim": {"loss": loss},
                                   "model": {"arch": "mlp"}})
    return make_experiment(status=Experiment.Status.SUCCEEDED, name=name, spec=spec.to_dict(),
                           summary={"best_metrics": {"val_loss": val_loss}})


def test_a_best_value_is_marked_only_among_runs_on_the_same_data_set(owner_client,
                                                                      make_experiment):
    # given two wine runs and one diabetes run, whose loss is the lowest number of the three
    runs = [run_on(make_experiment, "wine a", "wine", "cross_entropy", 0.30),
            run_on(make_experiment, "diabetes", "diabetes", "mse", 0.05),
            run_on(make_experiment, "wine b", "wine", "cross_entropy", 0.20)]

    # when they are tabulated
    row = {row.key: row for row in compare.metrics_table(runs)}["best_val_loss"]

    # then the best loss is the better wine run's, and the row says what its mark means
    assert row.best == {2}
    assert row.note == "best marked among runs on the same data set and task"
    # and without a second wine run nothing is marked, and the row says why
    alone = {row.key: row for row in compare.metrics_table(runs[:2])}["best_val_loss"]
    assert alone.best == set() and alone.note == "different data sets or tasks: no best"
    # and the page names the data sets and their runs
    page = owner_client.get(reverse("compare"), {"ids": ids_of(runs[:2])}).content.decode()
    assert 'class="num best"' not in page and "different data sets or tasks: no best" in page
    assert re.search(r'id="data-groups">.*<strong>wine · classification</strong> \(wine a #\d+\)'
                     r'; <strong>diabetes · regression</strong> \(diabetes #\d+\)', page)


def test_scripts_runs_are_grouped_by_the_data_sets_they_logged(make_experiment):
    # given three scripts' runs: two that logged wine as input, one diabetes (a regression)
    def script(name: str, dataset: str, task: str) -> Experiment:
        spec = {"params": {}, "tags": {"fitboard.task": task},
                "inputs": [{"dataset": {"name": dataset, "digest": "d"}, "tags": []}]}
        return make_experiment(kind=Experiment.Kind.EXTERNAL, name=name, spec=spec,
                               status=Experiment.Status.SUCCEEDED,
                               summary={"final_metrics": {"val_loss": 0.5 - len(name) / 100}})
    runs = [script("wine one", "wine", "classification"),
            script("diabetes, the lowest loss", "diabetes", "regression"),
            script("wine two!", "wine", "classification")]

    # when they are grouped and tabulated
    groups = compare.data_groups(runs)
    row = {row.key: row for row in compare.metrics_table(runs, groups)}["final_val_loss"]

    # then each data set and task is a group, and the best loss is marked among the wine runs
    assert [(g.label, g.columns) for g in groups] == [("wine · classification", (0, 2)),
                                                      ("diabetes · regression", (1,))]
    assert row.best == {2}


def test_the_chart_data_puts_points_on_the_epoch_axis(owner_client, three_runs):
    # when the batch loss is asked for against epochs
    body = owner_client.get(reverse("compare-data"),
                            {"ids": ids_of(three_runs), "key": "loss", "x": "epoch"}).json()

    # then step 10 (the end of epoch 1) is at x = 1 and step 5 halfway through it
    trace = body["runs"][0]
    x_of = dict(zip(trace["steps"], trace["x"], strict=True))
    assert x_of[10] == 1.0 and x_of[5] == 0.5 and x_of[30] == 3.0


def test_a_scripts_run_that_logs_no_epoch_counts_its_evaluations_as_epochs(
        owner_client, owner, project, three_runs):
    # given a script's run beside the form runs that logs a loss every step and a validation
    # loss every 100 steps, and no epoch (before: all its points stood at epoch 0)
    script = ingest.create_run(owner, project, "script", {})
    ingest.log_to_run(script, [ingest.Point("loss", 1.0 / step, step, 1e9 + step)
                               for step in range(1, 301)])
    ingest.log_to_run(script, [ingest.Point("val_loss", 1.0 / step, step, 1e9 + step)
                               for step in (100, 200, 300)])

    # when its training loss is asked for against epochs, whole and zoomed on the second
    ids = ids_of([*three_runs, script])
    whole = owner_client.get(reverse("compare-data"),
                             {"ids": ids, "key": "train_loss", "x": "epoch"}).json()["runs"][-1]
    zoom = owner_client.get(reverse("compare-data"), {
        "ids": ids, "key": "train_loss", "x": "epoch", "x0": 1, "x1": 2}).json()["runs"][-1]

    # then each evaluation ends an epoch, as the run's verdict counts them
    x_of = dict(zip(whole["steps"], whole["x"], strict=True))
    assert x_of[100] == 1.0 and x_of[150] == 1.5 and x_of[300] == 3.0
    assert zoom["steps"][0] <= 100 and 200 <= zoom["steps"][-1] < 300


def test_the_chart_data_of_a_zoom_holds_only_that_range(owner_client, three_runs):
    body = owner_client.get(reverse("compare-data"), {
        "ids": ids_of(three_runs), "key": "loss", "x": "step", "x0": 11, "x1": 20}).json()

    assert [t["steps"] for t in body["runs"]] == [list(range(11, 21))] * 3


def test_an_unknown_x_axis_is_a_clear_error(owner_client, three_runs):
    response = owner_client.get(reverse("compare-data"),
                                {"ids": ids_of(three_runs), "key": "loss", "x": "banana"})

    assert response.status_code == 400
    assert "x axis must be one of" in response.json()["error"]


def test_the_csv_export_escapes_cells_a_spreadsheet_would_run(owner_client, make_experiment):
    # given runs whose names start like spreadsheet formulas
    names = ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tindent", "\rcr", "plain"]
    runs = [finished_run(make_experiment, name, 1e-3, 0.9, 0.3) for name in names]

    # when the comparison is exported as CSV
    response = owner_client.get(reverse("compare-export", args=["csv"]), {"ids": ids_of(runs)})

    # then every such name is prefixed with a quote, and numbers stay numbers
    records = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["name"] for r in records] == ["'" + n for n in names[:-1]] + ["plain"]
    assert records[0]["best_val_acc"] == "0.9"
    assert response["Content-Disposition"].endswith('filename="fitboard-compare.csv"')


def test_the_json_export_has_one_record_per_run_with_metrics_and_spec(owner_client, three_runs):
    body = owner_client.get(reverse("compare-export", args=["json"]),
                            {"ids": ids_of(three_runs)}).json()

    assert [r["id"] for r in body["runs"]] == [r.pk for r in three_runs]
    assert body["runs"][1]["best_val_acc"] == 0.97
    assert body["runs"][2]["spec.optim.lr"] == 0.01
    assert body["runs"][0]["verdict"] == "underfitting"


def test_the_list_page_links_selected_runs_to_the_compare_page(owner_client, three_runs):
    page = owner_client.get(reverse("experiment-list")).content.decode()

    assert re.search(r'<form method="get" action="/compare/" id="compare-form"', page)
    assert page.count('name="ids"') == 3


def test_a_zoom_on_the_epoch_axis_returns_the_steps_of_those_epochs(owner_client, three_runs):
    # when the chart is zoomed to epochs 1..2 (steps 10..20: 10 steps per epoch)
    body = owner_client.get(reverse("compare-data"), {
        "ids": ids_of(three_runs), "key": "loss", "x": "epoch", "x0": 1, "x1": 2}).json()

    # then each run's trace covers those steps, and hardly more
    for trace in body["runs"]:
        assert set(range(10, 21)) <= set(trace["steps"]) <= set(range(9, 22))
