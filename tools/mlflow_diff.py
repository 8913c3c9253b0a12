"""Differential test of Fitboard's MLflow-compatible tracking API against MLflow's own server.

The same sequence of ordinary ``mlflow`` client calls (the client of ``.venv``, 3.17) runs once
against a live Fitboard (Daphne on a scratch SQLite site, as ``bench/tracking.py`` starts it)
and once against ``mlflow server`` (SQLite, its artifacts proxy), each in a child interpreter;
every answer is recorded, with ids, times close to now, generated run names, user names and
URIs normalised, and every answer that differs is printed. The count of differences is the
last line.

The full ``mlflow`` package (its server) is installed into ``var/bench-envs/mlflow`` on the
first run, as ``bench/tracking.py`` does (``--mlflow-python`` names another interpreter that has
it). Differences that docs/tracking.md describes as deliberate (no ``delete_experiment``, the
token's user as a run's user, ...) are still printed, marked ``[documented]``.

``--store`` points the scenario at Fitboard's ``fitboard+http://`` URI (the ``fitboard``
package's tracking store for the mlflow client), so that the store answers as the REST API
does.

``--client-python`` runs the scenario with another interpreter's client (an mlflow 2.x
``mlflow-skinny`` in a venv of its own): calls that client does not have (MLflow 3's logged
models, a metric's data set) are left out of both runs, each with a printed note, and mlflow 2's
``log_model`` (the model's files among the run's artifacts) is run in their place.

Usage, from the repo root: ``.venv/bin/python tools/mlflow_diff.py [--port 8110]
[--client-python /tmp/mlflow2/bin/python]`` (about two minutes once the environment is
installed). ``--scenario OUT`` runs the calls (the children).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _stack, tracking  # noqa: E402

NOW_WINDOW_MS = 86_400_000  # a time within a day of the scenario's start is "now"
GENERATED_NAME = re.compile(r"^[a-z]+-[a-z]+-\d+$")  # both servers name unnamed runs so
ID_KEYS = {"run_id": "run", "run_uuid": "run", "parent_run_id": "run", "source_run_id": "run",
           "experiment_id": "exp", "model_id": "model",
           "tags.mlflow.parentRunId": "run"}  # the last: a column of mlflow.search_runs
# log_image(key=...)'s file names, their time and random id: "+" around them (mlflow 3), "%"
# (mlflow 2; 2.16 decodes the names it lists, "%17" of the time and the id's first "%xx")
STAMPED = re.compile(r"[+%]timestamp.+?-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME_KEYS = ("start_time", "end_time", "creation_time", "last_update_time", "timestamp",
             "creation_timestamp", "last_updated_timestamp")
# Differences by design (docs/tracking.md), printed but not counted: (answer label, path of the
# difference inside it, why): regular expressions, the label's matched from its start, the
# path's whole ("" for any path).
DOCUMENTED = [
    (r"exp\.(delete|restore|get_after_)", "", "delete_experiment is refused"),
    (r"exp\.search_(deleted|all_view)", "", "no experiment is ever deleted"),
    (r"exp\.rename_taken", "", "a taken name is RESOURCE_ALREADY_EXISTS"),
    (r"exp\.search_(filter|order)\['?(tags.team IN|tags.team ASC)", "",
     "Fitboard's grammar takes IN on tags and orders experiments by tags"),
    (r"search\.(filter|order)\[.*(IN \(|lifecycle_stage|NaN|inf\]|experiment_id)", "",
     "Fitboard's grammar takes IN on params, tags and status, lifecycle_stage, experiment_id, "
     "NaN and inf"),
    (r"search\.filter\[.*\\_", "", "a backslash escapes the next character of a string"),
    (r"search\.order\['attributes.run_id'\]", "", "run ids are numbers, MLflow's random"),
    (r"history\[(rep|tie)\]$", "", "one value is kept per metric and step"),
    (r"history\.latest$", r"\.tie\.value", "one value is kept per metric and step"),
    (r"batch\.long_param$", "", "a value past MLflow's limits is refused, not truncated"),
    (r"batch\.run$", r"\.params\.long", "a value past MLflow's limits is refused, not truncated"),
    (r"batch\.(param|metric)_name\[", "", "param and metric names are not checked as paths"),
    (r"batch\.run$", r"\.params\..*|\.metrics", "param and metric names are not checked as paths"),
    (r"batch\.1001st_name", "", "a run holds at most 1,000 metric names"),
    (r"err\.(history_missing_run|search_missing_exp)", "",
     "a run or experiment that is not there is RESOURCE_DOES_NOT_EXIST"),
    (r"err\.http_unknown", "", "an unknown call is MLflow's JSON error, never a page"),
    (r"err\.http_search_bad_view", "", "an unknown run_view_type is refused"),
    (r"life\.resumed", r"\.end_time", "a resumed run has no end time while it runs"),
    (r"exp2\.(by_name_other_case|create_other_case|pages_ordered|like_case)", "",
     "experiment names are a project's, one name in any case"),
    (r"runs2\.same_batch_steps", "", "a metric's points logged at step 0 again among steps of "
     "its own are numbered after the run's last step; one value per metric and step"),
    (r"odd\.list\[", r"\[\d+\]\.file_size", "an empty file is listed with file_size 0"),
    (r"registry\.", "", "there is no model registry (ENDPOINT_NOT_FOUND)"),
    (r"genai\.", "", "MLflow 3's GenAI calls are not served (ENDPOINT_NOT_FOUND)"),
]


# --- The scenario (a child: one server) --------------------------------------------------------

class Recorder:
    """Runs calls, keeps their normalised answers (or errors) in order, under labels."""

    def __init__(self, url: str, token: str) -> None:
        # Raw requests go to the server's own address (a fitboard+http:// URI is the
        # mlflow client's, for its store).
        self.url, self.token = url.removeprefix(tracking.SCHEME_PREFIX), token
        self.entries: list[list[Any]] = []
        self.skipped: list[str] = []  # calls this client does not have, with why
        self.ids: dict[tuple[str, str], str] = {}
        self.t0 = time.time() * 1000

    def name(self, kind: str, value: Any, symbol: str) -> None:
        self.ids[(kind, str(value))] = f"<{kind}:{symbol}>"

    def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            value = fn(*args, **kwargs)
            shown = plain(value)
        except MlflowException as exc:
            value, shown = None, {"error": exc.error_code}
        except Exception as exc:  # noqa: BLE001 - a client exception is an answer to compare
            value, shown = None, {"exception": f"{type(exc).__name__}: {str(exc)[:200]}"}
        self.entries.append([label, self.normal(shown)])
        return value

    def skip(self, label: str, why: str) -> None:
        self.skipped.append(f"{label}: {why}")

    def keep(self, label: str, value: Any) -> None:
        self.entries.append([label, self.normal(plain(value))])

    def http(self, label: str, method: str, path: str, **kwargs: Any) -> None:
        """A raw request (a field left out, a bad value): its status and error code."""
        import requests

        answer = requests.request(method, f"{self.url}/api/2.0/mlflow/{path}", timeout=60,
                                  headers={"Authorization": f"Bearer {self.token}"}, **kwargs)
        try:
            code = answer.json().get("error_code")
        except ValueError:
            code = "<not json>"
        self.entries.append([label, {"status": answer.status_code, "error_code": code}])

    def normal(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            if key == "tags" and "mlflow.parentRunId" in value:
                value = {**value, "mlflow.parentRunId": self.ids.get(
                    ("run", value["mlflow.parentRunId"]), value["mlflow.parentRunId"])}
            return {k: self.normal(v, k) for k, v in value.items()}
        if isinstance(value, list):
            if key == "tags":  # a dataset input's tags: in no particular order
                value = sorted(value, key=lambda t: json.dumps(t, sort_keys=True, default=str))
            return [self.normal(v, key) for v in value]
        if key in ID_KEYS and value not in (None, ""):
            return self.ids.get((ID_KEYS[key], str(value)), "<unknown id>")
        if key in TIME_KEYS and isinstance(value, int) and abs(value - self.t0) < NOW_WINDOW_MS:
            return "<now>"
        if key == "user_id":
            return "<user>"
        if key == "run_name" and isinstance(value, str) and GENERATED_NAME.match(value):
            return "<generated>"
        if isinstance(value, str) and value.startswith(("mlflow-artifacts:", "runs:/",
                                                        "models:/")):
            return self.uri(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    def uri(self, value: str) -> str:
        head, _, rest = value.partition(":/")
        parts = rest.split("/")
        kinds = {"mlflow-artifacts": ["exp", "run"], "models": ["model"]}.get(head, ["run"])
        for i, kind in enumerate(kinds):
            if i < len(parts):
                parts[i] = self.ids.get((kind, parts[i]), parts[i])
        return f"{head}:/{'/'.join(parts)}"


def plain(value: Any) -> Any:
    """Client entities as plain JSON-like values (a page keeps whether it has a next one)."""
    from mlflow.entities import _mlflow_object
    from mlflow.store.entities.paged_list import PagedList

    entity = (getattr(_mlflow_object, "_MlflowObject", None)
              or _mlflow_object._MLflowObject)  # its name up to mlflow 2.9
    if isinstance(value, PagedList):
        return {"items": [plain(v) for v in value], "more": bool(value.token)}
    if isinstance(value, entity):
        return {k: plain(v) for k, v in value}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
        return {"columns": sorted(value.columns),
                "rows": json.loads(value.to_json(orient="records"))}
    return value


def names(runs: Any) -> Any:
    """Run names of a search's answer, in order (or its error)."""
    if runs is None:
        return None
    return {"names": [r.info.run_name for r in runs], "more": bool(getattr(runs, "token", None))}


def has_logged_models() -> bool:
    """Whether the client is MLflow 3's (logged models, a metric's model and data set)."""
    import mlflow

    return hasattr(mlflow.MlflowClient, "get_logged_model")


def takes(function: Callable[..., Any], argument: str) -> bool:
    """Whether the client's ``function`` has ``argument`` (older 2.x clients lack some)."""
    import inspect

    return argument in inspect.signature(function).parameters


def scenario(out: str) -> None:
    import mlflow

    rec = Recorder(os.environ["MLFLOW_TRACKING_URI"], os.environ.get("MLFLOW_TRACKING_TOKEN", ""))
    client = mlflow.MlflowClient()
    models = logged_models if has_logged_models() else run_models
    if models is run_models:
        rec.skip("logged_models", "MLflow 3's logged models: mlflow 2's log_model runs instead")
    for part in (experiments, search_data, run_searches, experiment_searches, run_details,
                 artifacts, metric_histories, batches, lifecycle, errors, more_experiments,
                 more_runs, odd_artifacts, models, endings, training_script, key_searches,
                 script_habits, autologged, unsupported, run_names, model_datasets):
        try:
            part(rec, client)
        except Exception as exc:  # noqa: BLE001 - one part's crash is an answer too
            rec.entries.append([f"{part.__name__}.CRASHED", f"{type(exc).__name__}: {exc}"])
        if mlflow.active_run():
            mlflow.end_run()
    Path(out).write_text(json.dumps({"client": mlflow.__version__, "skipped": rec.skipped,
                                     "entries": rec.entries}, indent=1, default=str))


def experiments(rec: Recorder, client: Any) -> None:
    import mlflow

    main = mlflow.set_experiment("diff-main")
    rec.name("exp", main.experiment_id, "main")
    rec.call("exp.get", client.get_experiment, main.experiment_id)
    tagged = client.create_experiment("diff-tagged", tags={"team": "a", "k": "v"})
    rec.name("exp", tagged, "tagged")
    rec.keep("exp.create_tagged", rec.ids[("exp", tagged)])
    rec.call("exp.get_by_name", client.get_experiment_by_name, "diff-tagged")
    rec.call("exp.get_by_name_missing", client.get_experiment_by_name, "diff-nowhere")
    rec.call("exp.create_taken", client.create_experiment, "diff-tagged")
    rec.call("exp.create_empty", client.create_experiment, "")
    gone = client.create_experiment("diff-gone")
    rec.name("exp", gone, "gone")
    rec.call("exp.rename", client.rename_experiment, gone, "diff-renamed")
    rec.call("exp.get_renamed", client.get_experiment, gone)
    rec.call("exp.rename_taken", client.rename_experiment, gone, "diff-tagged")
    rec.call("exp.delete", client.delete_experiment, gone)
    rec.call("exp.get_after_delete", client.get_experiment, gone)
    rec.call("exp.restore", client.restore_experiment, gone)
    rec.call("exp.get_after_restore", client.get_experiment, gone)
    rec.call("exp.set_tag", client.set_experiment_tag, main.experiment_id, "note", "x")
    rec.call("exp.get_tagged", lambda: client.get_experiment(main.experiment_id).tags)
    if hasattr(client, "delete_experiment_tag"):  # mlflow 2.x has none
        rec.call("exp.delete_tag", client.delete_experiment_tag, main.experiment_id, "note")
        rec.call("exp.delete_tag_missing", client.delete_experiment_tag, main.experiment_id,
                 "nope")
    else:
        rec.skip("exp.delete_tag", "MlflowClient.delete_experiment_tag is mlflow 3's")
    rec.call("exp.get_missing", client.get_experiment, "999999")


# Runs for the searches: name, params, metrics ({name: [(value, step)]}), tags, end status.
SEARCH_RUNS = [
    ("r1", {"lr": "0.1", "opt": "adam"}, {"loss": [(0.3, 0)], "acc": [(0.9, 0)]},
     {"team": "a"}, "FINISHED"),
    ("r2", {"lr": "0.01", "opt": "sgd"}, {"loss": [(0.6, 0)], "acc": [(0.7, 0)]},
     {"team": "b"}, "FAILED"),
    ("r3", {"lr": "1e-3", "opt": "Adam"}, {"loss": [(0.45, 0)]}, {"team": "a"}, None),
    ("r4", {"lr": "0.5", "opt": "rmsprop"}, {"loss": [(math.nan, 0)], "acc": [(0.95, 0)]},
     {"odd key": "x", "team": "c_d"}, "KILLED"),
    ("r5", {"lr": "10", "opt": "sgd"}, {}, {"team": "A"}, "FINISHED"),
    ("r6", {"lr": "2", "opt": "adam", "extra": "yes"},
     {"loss": [(0.1, 0), (0.3, 1)], "acc": [(0.8, 1)]}, {"team": "b"}, "FINISHED"),
    ("r7", {"lr": "0.1", "opt": "adam"}, {"loss": [(0.2, 0)]}, {"team": "a"}, "FINISHED"),
]


def search_data(rec: Recorder, client: Any) -> None:
    from mlflow.entities import Metric, Param, RunTag

    exp = client.create_experiment("diff-search")
    rec.name("exp", exp, "search")
    base = int(rec.t0) - 60_000
    for i, (name, params, metrics, tags, status) in enumerate(SEARCH_RUNS):
        run = client.create_run(exp, start_time=base + i * 1000, run_name=name)
        rec.name("run", run.info.run_id, name)
        points = [Metric(k, v, base + i * 1000 + step, step)
                  for k, values in metrics.items() for v, step in values]
        client.log_batch(run.info.run_id, metrics=points,
                         params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        if status:
            client.set_terminated(run.info.run_id, status, end_time=base + i * 1000 + 500)
    client.delete_run(_run_id(rec, "r7"))


def _run_id(rec: Recorder, symbol: str) -> str:
    return next(value for (_, value), s in rec.ids.items() if s == f"<run:{symbol}>")


def _exp_id(rec: Recorder, symbol: str) -> str:
    return next(value for (_, value), s in rec.ids.items() if s == f"<exp:{symbol}>")


SEARCH_FILTERS = [
    "", "params.lr = '0.1'", "params.lr != '0.1'", "params.lr LIKE '0.%'",
    "params.opt ILIKE 'AD%'", "params.opt LIKE 'a%'", "params.opt IN ('adam', 'sgd')",
    "params.opt NOT IN ('adam')", "params.lr > '0.05'", "params.lr < '1'",
    "metrics.loss < 0.5", "metrics.loss <= 0.3", "metrics.loss = 0.3", "metrics.loss != 0.3",
    "metrics.loss >= 0.45 AND params.opt = 'Adam'", "metrics.acc > 0.75",
    "metrics.loss > 1e-1", "metrics.loss < -1", "metrics.loss > '0.5'", "metrics.acc = 0.9",
    "tags.team = 'a'", "tags.team ILIKE 'a'", "tags.team LIKE 'A'", "tags.team LIKE 'c_d'",
    "tags.team LIKE 'c\\_d'", "tags.`odd key` = 'x'", "tags.\"odd key\" = 'x'",
    "tags.mlflow.runName = 'r1'", "tags.team != 'a'", "tags.missing != 'a'",
    "attributes.status = 'FINISHED'", "attributes.status != 'RUNNING'", "status = 'FAILED'",
    "attributes.status IN ('KILLED', 'FAILED')", "attributes.run_name = 'r1'",
    "attributes.run_name LIKE 'r%'", "run_name ILIKE 'R1'", "attributes.run_name != 'r1'",
    "attributes.start_time > 0", "attributes.end_time > 0", "attributes.end_time < 1",
    "attributes.lifecycle_stage = 'active'", "attributes.artifact_uri LIKE '%artifacts%'",
    "params.missing = 'x'", "params.opt = 'adam' and params.lr = '2'",
    "params.opt = \"adam\"", "metrics.loss < 0.5 AND metrics.acc > 0.85",
    "params.lr = 0.1", "foo.bar = '1'", "metrics.loss ~ 1", "params.lr = '0.1' OR params.lr = '2'",
    "attributes.status < 'Z'", "tags.team IN ('a')", "params.opt LIKE '%a%' AND tags.team = 'b'",
    "metric.loss < 0.5", "param.opt = 'sgd'", "tag.team = 'b'", "attribute.status = 'KILLED'",
    "attributes.start_time < 0", "metrics.loss = NaN", "params.lr IN ()",
    "params.extra IS NULL", "params.extra IS NOT NULL", "tags.`odd key` IS NOT NULL",
    "tags.team IS NULL", "metrics.loss IS NULL", "attributes.foo = 'x'", "attributes.foo > 1",
    "run_namez = 'r1'", "metrics.loss < 0.5 AND attributes.bogus = 'x'",
    "tags.mlflow.parentRunId IS NULL", "params.opt = \"it's\"", "tags.team LIKE '%'",
    "params.lr LIKE '%e%'", "metrics.acc >= 0.7 AND metrics.acc <= 0.9", "params.LR = '0.1'",
    "attributes.status = 'finished'", "metrics.loss > -inf",
]
SEARCH_ORDERS = [
    ["metrics.loss ASC"], ["metrics.loss DESC"], ["metrics.acc DESC"], ["metrics.acc"],
    ["params.lr ASC", "metrics.loss DESC"], ["params.lr DESC"], ["params.extra ASC"],
    ["attributes.start_time ASC"], ["attributes.start_time DESC"], ["attributes.run_name DESC"],
    ["tags.team ASC", "attributes.start_time DESC"], ["attributes.status"],
    ["attributes.end_time DESC"], ["attributes.end_time ASC"], ["metrics.loss ASC", "params.opt"],
    ["run_name"], ["attributes.created DESC"], ["metrics.`loss` DESC"], ["loss ASC"],
    ["metrics.loss SIDEWAYS"], ["attributes.lifecycle_stage"], ["attributes.run_id"],
    ["attributes.foo"], ["foo.bar ASC"], ["datasets.name"], ["tags.mlflow.runName DESC"],
    ["params.`lr` ASC"], ["attributes.user_id", "run_name"],
    ["metrics.loss ASC", "metrics.acc DESC"], ["metrics.loss asc"], ["attributes.experiment_id"],
]


def run_searches(rec: Recorder, client: Any) -> None:
    import mlflow
    from mlflow.entities import ViewType

    exp = [_exp_id(rec, "search")]
    for text in SEARCH_FILTERS:
        rec.call(f"search.filter[{text}]", lambda t=text: names(client.search_runs(exp, t)))
    for order in SEARCH_ORDERS:
        rec.call(f"search.order{order}", lambda o=order: names(client.search_runs(
            exp, order_by=o)))
    for view in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
        rec.keep(f"search.view[{view}]", names(client.search_runs(exp, run_view_type=view)))
    token, pages = None, []
    for _ in range(6):
        page = client.search_runs(exp, max_results=2, order_by=["params.lr ASC"],
                                  page_token=token)
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            break
    rec.keep("search.pages_of_2", pages)
    for size in (0, 50_001, 1):
        rec.call(f"search.max_results[{size}]", lambda n=size: names(client.search_runs(
            exp, max_results=n)))
    rec.call("search.bad_token", lambda: names(client.search_runs(exp, page_token="garbage")))
    rec.call("search.full_r1", lambda: client.search_runs(exp, "attributes.run_name = 'r1'"))
    rec.call("search.dataframe", mlflow.search_runs, exp, order_by=["attributes.run_name ASC"])
    rec.call("search.list_by_name", lambda: names(mlflow.search_runs(
        experiment_names=["diff-search"], output_format="list",
        order_by=["attributes.run_name DESC"])))
    rec.call("search.all_experiments", lambda: sorted(
        r.info.run_name for r in mlflow.search_runs(search_all_experiments=True,
                                                    output_format="list")))


def experiment_searches(rec: Recorder, client: Any) -> None:
    from mlflow.entities import ViewType

    def listed(**kwargs: Any) -> Any:
        found = client.search_experiments(**kwargs)
        return {"names": [e.name for e in found if e.name.startswith("diff-")],
                "more": bool(found.token)}

    for text in ("name LIKE 'diff-%'", "name = 'diff-tagged'", "tags.team = 'a'",
                 "tags.k != 'v'", "name ILIKE 'DIFF-T%'", "creation_time > 0",
                 "name != 'diff-main'", "tags.team IN ('a')", "attribute.name = 'diff-main'",
                 "name LIKE 'diff-%' AND tags.k = 'v'", "last_update_time > 0",
                 f"experiment_id = '{_exp_id(rec, 'main')}'", "bad.key = 'x'",
                 "params.x = '1'", "metrics.m > 1", "namez = 'x'"):
        shown = "experiment_id = <main>" if text.startswith("experiment_id") else text
        rec.call(f"exp.search_filter[{shown}]", listed, filter_string=text)
    for order in (["name ASC"], ["name DESC"], ["creation_time DESC"], ["creation_time ASC"],
                  ["last_update_time DESC"], ["tags.team ASC"], ["namez ASC"]):
        rec.call(f"exp.search_order{order}", listed, order_by=order)
    rec.call("exp.search_deleted", listed, view_type=ViewType.DELETED_ONLY)
    rec.call("exp.search_all_view", listed, view_type=ViewType.ALL)
    rec.call("exp.search_page_of_1", listed, max_results=1, filter_string="name LIKE 'diff-%'")
    rec.call("exp.search_full", lambda: [e for e in client.search_experiments(
        filter_string="name = 'diff-tagged'")])


def run_details(rec: Recorder, client: Any) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    exp = mlflow.set_experiment("diff-main").experiment_id
    with mlflow.start_run(run_name="parent") as parent:
        pid = parent.info.run_id
        rec.name("run", pid, "parent")
        mlflow.log_params({f"p{i:03}": i for i in range(250)})
        mlflow.log_param("lr", 0.1)
        mlflow.set_tags({"a": "1", "b": "2", "c": ""})
        mlflow.delete_tag("b")
        with mlflow.start_run(run_name="child", nested=True) as child:
            rec.name("run", child.info.run_id, "child")
            mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "zero": 0.0})
        mlflow.log_input(mlflow.data.from_numpy(np.arange(6.0).reshape(3, 2), name="digits"),
                         context="training")
        mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="frame"),
                         context="eval", tags={"split": "holdout"})
        rec.call("run.parent_running", client.get_run, pid)
    rec.call("run.child", client.get_run, child.info.run_id)
    rec.call("run.parent", client.get_run, pid)
    rec.call("run.search_children", lambda: names(client.search_runs(
        [exp], f"tags.mlflow.parentRunId = '{pid}'")))
    rec.call("run.search_datasets", lambda: names(client.search_runs(
        [exp], "datasets.name = 'frame' AND datasets.context = 'eval'")))
    rec.call("run.delete_tag_missing", client.delete_tag, pid, "nope")
    rec.call("run.log_param_changed", client.log_param, pid, "lr", 0.2)
    rec.call("run.log_param_same", client.log_param, pid, "lr", 0.1)
    rec.call("run.set_tag_after_end", client.set_tag, pid, "late", "yes")
    rec.call("run.tags_after_end", lambda: client.get_run(pid).data.tags)
    rec.call("run.set_run_name_tag", client.set_tag, pid, "mlflow.runName", "parent2")
    rec.call("run.name_after_tag", lambda: client.get_run(pid).info.run_name)
    with mlflow.start_run() as unnamed:
        rec.name("run", unnamed.info.run_id, "unnamed")
    rec.call("run.unnamed", lambda: client.get_run(unnamed.info.run_id).info)
    with mlflow.start_run(tags={"mlflow.runName": "by-tag"}) as by_tag:
        rec.name("run", by_tag.info.run_id, "by-tag")
    rec.call("run.named_by_tag", lambda: client.get_run(by_tag.info.run_id).info.run_name)


def _tree(folder: str) -> dict[str, int]:
    """Sizes of the files under ``folder`` by path (a logged image's time and id left out)."""
    root = Path(folder)
    return {STAMPED.sub("+<stamp>", str(p.relative_to(root))): p.stat().st_size
            for p in sorted(root.rglob("*")) if p.is_file()}


def artifacts(rec: Recorder, client: Any) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    mlflow.set_experiment("diff-main")
    with mlflow.start_run(run_name="files") as run, tempfile.TemporaryDirectory() as tmp:
        rid = run.info.run_id
        rec.name("run", rid, "files")
        mlflow.log_dict({"a": 1, "b": [1, 2]}, "cfg/config.json")
        mlflow.log_dict({"a": 1}, "cfg/config.yaml")
        mlflow.log_text("hello", "notes/deep/er/hello.txt")
        mlflow.log_text("top", "top.txt")
        mlflow.log_image(np.zeros((8, 8, 3), dtype=np.uint8), "img/sample.png")
        mlflow.log_table(pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "tables/t.json")
        folder = Path(tmp, "up")
        (folder / "sub" / "subsub").mkdir(parents=True)
        (folder / "a.txt").write_text("a")
        (folder / "sub" / "subsub" / "b.bin").write_bytes(b"\0" * 100)
        mlflow.log_artifacts(str(folder), "dirs")
        mlflow.log_artifact(str(folder / "a.txt"))
        try:
            import matplotlib.figure

            figure = matplotlib.figure.Figure()
            figure.add_subplot().plot([1, 2])
            mlflow.log_figure(figure, "figs/plot.png")
        except ImportError:
            pass
    for path in (None, "cfg", "notes", "notes/deep", "notes/deep/er", "notes/deep/er/hello.txt",
                 "missing", "dirs", "dirs/sub", "dirs/sub/", "tables", "figs"):
        rec.call(f"art.list[{path}]", _sized, client.list_artifacts(rid, path))
    with tempfile.TemporaryDirectory() as tmp:
        rec.call("art.download_dir", lambda: _tree(client.download_artifacts(rid, "notes", tmp)))
    with tempfile.TemporaryDirectory() as tmp:
        rec.call("art.download_run", lambda: _tree(mlflow.artifacts.download_artifacts(
            run_id=rid, dst_path=tmp)))
    with tempfile.TemporaryDirectory() as tmp:
        rec.call("art.download_file", lambda: Path(client.download_artifacts(
            rid, "dirs/a.txt", tmp)).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        rec.call("art.download_missing", client.download_artifacts, rid, "nothing.txt", tmp)
    rec.call("art.load_dict", mlflow.artifacts.load_dict, f"runs:/{rid}/cfg/config.json")
    rec.call("art.load_text", mlflow.artifacts.load_text, f"runs:/{rid}/top.txt")
    rec.call("art.load_table", lambda: mlflow.load_table("tables/t.json", run_ids=[rid]))
    rec.call("art.tags", lambda: client.get_run(rid).data.tags)


def _sized(files: Any) -> Any:
    return [{"path": f.path, "is_dir": f.is_dir, "file_size": f.file_size} for f in files]


def metric_histories(rec: Recorder, client: Any) -> None:
    import mlflow

    mlflow.set_experiment("diff-main")
    t = 1_000_000
    with mlflow.start_run(run_name="history") as run:
        rid = run.info.run_id
        rec.name("run", rid, "history")
        for key, value, stamp, step in (
                ("rep", 1.0, t + 1, 1), ("rep", 2.0, t + 2, 1), ("rep", 0.5, t + 3, 0),
                ("rep", 3.0, t + 2, 2), ("rep", 2.5, t + 2, 1), ("late", 1.0, t + 10, 5),
                ("late", 2.0, t + 20, 2), ("same", 1.0, t, 0), ("same", 1.0, t, 0),
                ("weird", math.nan, t, 0), ("weird", math.inf, t + 1, 1),
                ("weird", -math.inf, t + 2, 2), ("neg", 1.0, t, -1), ("neg", 2.0, t + 1, -5),
                ("big", 1.0, t, 2**40), ("ts0", 1.0, 0, 1), ("tie", 2.0, t, 3),
                ("tie", 1.0, t, 3)):
            client.log_metric(rid, key, value, timestamp=stamp, step=step)
        for value in (0.3, 0.2, 0.1):
            mlflow.log_metric("nostep", value)
            time.sleep(0.005)
        mlflow.log_metric("mixed", 5.0, step=5)
        time.sleep(0.005)  # another millisecond, as a request's time apart makes it
        mlflow.log_metric("mixed", 0.0)
    for key in ("rep", "late", "same", "weird", "neg", "big", "ts0", "tie", "nostep", "mixed",
                "absent"):
        rec.call(f"history[{key}]", lambda k=key: [
            {"value": m.value, "step": m.step, "timestamp": m.timestamp}
            for m in client.get_metric_history(rid, k)])
    rec.call("history.latest", lambda: {
        m.key: {"value": m.value, "step": m.step, "timestamp": m.timestamp}
        for m in client.get_run(rid).data._metric_objs})
    rec.call("history.order_by_late", lambda: names(client.search_runs(
        [run.info.experiment_id], "metrics.late > 1.5")))


def batches(rec: Recorder, client: Any) -> None:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    mlflow.set_experiment("diff-main")
    with mlflow.start_run(run_name="batch") as run:
        rid = run.info.run_id
        rec.name("run", rid, "batch")
    rec.call("batch.empty", client.log_batch, rid, [], [], [])
    with mlflow.start_run(run_name="batch1000") as many:
        rec.name("run", many.info.run_id, "batch1000")
    rec.call("batch.1000", client.log_batch, many.info.run_id,
             metrics=[Metric(f"m{i:04}", float(i), 1000 + i, 0) for i in range(1000)])
    rec.call("batch.1000_count", lambda: len(client.get_run(many.info.run_id).data.metrics))
    rec.call("batch.1001st_name", client.log_metric, many.info.run_id, "one-more", 1.0)
    rec.call("batch.dup_param_values", client.log_batch, rid,
             params=[Param("dup", "1"), Param("dup", "2")])
    rec.call("batch.dup_param_same", client.log_batch, rid,
             params=[Param("same", "1"), Param("same", "1")])
    rec.call("batch.dup_tag", client.log_batch, rid, tags=[RunTag("t", "1"), RunTag("t", "2")])
    rec.call("batch.empty_param", client.log_batch, rid, params=[Param("empty", "")])
    rec.call("batch.names", client.log_batch, rid, metrics=[
        Metric("a/b c.d-e:f", 1.0, 1, 0)], params=[Param("x/y z", "1")])
    for bad in ("bad#name", "../up", "a//b", "/lead", "trail/", "é"):
        rec.call(f"batch.metric_name[{bad}]", client.log_metric, rid, bad, 1.0)
        rec.call(f"batch.param_name[{bad}]", client.log_param, rid, bad, "1")
    rec.call("batch.long_param", client.log_param, rid, "long", "x" * 6001)
    rec.call("batch.long_tag_key", client.set_tag, rid, "k" * 251, "v")
    rec.call("batch.run", lambda: {
        "metrics": len(client.get_run(rid).data.metrics),
        "params": client.get_run(rid).data.params,
        "tags": {k: v for k, v in client.get_run(rid).data.tags.items()
                 if not k.startswith("mlflow.")}})
    rec.call("batch.history_m0999", lambda: [(m.value, m.step, m.timestamp) for m in
                                              client.get_metric_history(many.info.run_id,
                                                                        "m0999")])
    point = {"key": "x", "value": 1.0, "timestamp": 1, "step": 0}
    rec.http("batch.http_1001_metrics", "POST", "runs/log-batch",
             json={"run_id": rid, "metrics": [point] * 1001})
    rec.http("batch.http_101_params", "POST", "runs/log-batch", json={
        "run_id": rid, "params": [{"key": f"q{i}", "value": "1"} for i in range(101)]})
    rec.http("batch.http_101_tags", "POST", "runs/log-batch", json={
        "run_id": rid, "tags": [{"key": f"q{i}", "value": "1"} for i in range(101)]})
    rec.http("batch.http_metrics_not_list", "POST", "runs/log-batch",
             json={"run_id": rid, "metrics": "x"})
    rec.http("batch.http_metric_no_value", "POST", "runs/log-batch",
             json={"run_id": rid, "metrics": [{"key": "x", "timestamp": 1}]})
    rec.http("batch.http_nothing", "POST", "runs/log-batch", json={"run_id": rid})


def lifecycle(rec: Recorder, client: Any) -> None:
    import mlflow

    exp = mlflow.set_experiment("diff-main").experiment_id
    with mlflow.start_run(run_name="life") as run:
        rid = run.info.run_id
        rec.name("run", rid, "life")
        mlflow.log_metric("loss", 1.0, step=0)
    rec.call("life.ended", lambda: client.get_run(rid).info)
    with mlflow.start_run(run_id=rid):
        rec.call("life.resumed", lambda: client.get_run(rid).info)
        mlflow.log_metric("loss", 0.5, step=1)
    rec.call("life.after_resume", lambda: client.get_run(rid).info)
    rec.call("life.update_both", client.update_run, rid, status="KILLED", name="life2")
    rec.call("life.after_update", lambda: client.get_run(rid))
    rec.call("life.update_name", client.update_run, rid, name="life3")
    rec.call("life.after_rename", lambda: client.get_run(rid))
    rec.call("life.update_bad_status", client.update_run, rid, status="BOGUS")
    rec.call("life.set_terminated", client.set_terminated, rid)
    rec.call("life.after_terminated", lambda: client.get_run(rid).info)
    rec.call("life.delete", client.delete_run, rid)
    rec.call("life.deleted", lambda: client.get_run(rid).info)
    rec.call("life.log_to_deleted", client.log_metric, rid, "loss", 0.1)
    rec.call("life.tag_deleted", client.set_tag, rid, "x", "y")
    rec.call("life.delete_again", client.delete_run, rid)
    rec.call("life.search_active", lambda: names(client.search_runs(
        [exp], "attributes.run_name = 'life3'")))
    rec.call("life.restore", client.restore_run, rid)
    rec.call("life.restored", lambda: client.get_run(rid).info)
    rec.call("life.restore_again", client.restore_run, rid)
    rec.call("life.resume_missing", mlflow.start_run, run_id="999999999")
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "0.2"
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING"] = "1"
    with mlflow.start_run(run_name="system", log_system_metrics=True) as system:
        rec.name("run", system.info.run_id, "system")
        time.sleep(2)
    rec.call("life.system_metrics", lambda: sorted(
        k for k in client.get_run(system.info.run_id).data.metrics if k.startswith("system/")
        and "gpu" not in k))


def errors(rec: Recorder, client: Any) -> None:
    import mlflow

    exp = mlflow.set_experiment("diff-main").experiment_id
    rid = _run_id(rec, "history")
    rec.call("err.get_run_missing", client.get_run, "999999999")
    rec.call("err.get_run_hex", client.get_run, "a" * 32)
    rec.call("err.log_metric_missing_run", client.log_metric, "999999999", "x", 1.0)
    rec.call("err.history_missing_run", client.get_metric_history, "999999999", "x")
    rec.call("err.search_missing_exp", client.search_runs, ["999999"])
    rec.call("err.set_terminated_missing", client.set_terminated, "999999999")
    rec.call("err.delete_missing", client.delete_run, "999999999")
    rec.call("err.log_metric_empty_key", client.log_metric, rid, "", 1.0)
    rec.call("err.create_run_missing_exp", client.create_run, "999999")
    rec.http("err.http_get_run_no_id", "GET", "runs/get")
    rec.http("err.http_get_run_garbage", "GET", "runs/get", params={"run_id": "garbage"})
    for field in ("key", "value", "timestamp", "step"):
        body = {"run_id": rid, "key": "k", "value": 1.0, "timestamp": 1, "step": 0}
        del body[field]
        rec.http(f"err.http_log_metric_no_{field}", "POST", "runs/log-metric", json=body)
    rec.http("err.http_log_metric_string_value", "POST", "runs/log-metric",
             json={"run_id": rid, "key": "k", "value": "abc", "timestamp": 1})
    rec.http("err.http_log_param_no_key", "POST", "runs/log-parameter",
             json={"run_id": rid, "value": "1"})
    rec.http("err.http_log_param_no_value", "POST", "runs/log-parameter",
             json={"run_id": rid, "key": "nv"})
    rec.http("err.http_set_tag_no_key", "POST", "runs/set-tag", json={"run_id": rid, "value": "1"})
    rec.http("err.http_exp_get_no_id", "GET", "experiments/get")
    rec.http("err.http_exp_by_name_no_name", "GET", "experiments/get-by-name")
    rec.http("err.http_exp_create_no_name", "POST", "experiments/create", json={})
    rec.http("err.http_search_bad_view", "POST", "runs/search",
             json={"experiment_ids": [exp], "run_view_type": "BOGUS"})
    rec.http("err.http_search_negative", "POST", "runs/search",
             json={"experiment_ids": [exp], "max_results": -1})
    rec.http("err.http_search_no_exp", "POST", "runs/search", json={})
    rec.http("err.http_update_no_id", "POST", "runs/update", json={"status": "FINISHED"})
    rec.http("err.http_delete_no_id", "POST", "runs/delete", json={})
    rec.http("err.http_history_no_key", "GET", "metrics/get-history", params={"run_id": rid})
    rec.http("err.http_unknown", "GET", "nope")
    rec.http("err.http_wrong_method", "GET", "runs/create")
    rec.http("err.http_exp_search_zero", "POST", "experiments/search", json={"max_results": 0})
    rec.http("err.http_not_json", "POST", "runs/log-metric", data=b"{nope")
    rec.http("err.http_set_exp_tag_no_key", "POST", "experiments/set-experiment-tag",
             json={"experiment_id": exp, "value": "1"})


def more_experiments(rec: Recorder, client: Any) -> None:
    def listed(**kwargs: Any) -> Any:
        pages, token = [], None
        for _ in range(10):
            found = client.search_experiments(page_token=token, **kwargs)
            pages.append([e.name for e in found if e.name.startswith(("diff", "Diff", "DIFF"))])
            token = found.token
            if not token:
                return pages
        return pages

    rec.call("exp2.by_name_other_case", lambda: getattr(
        client.get_experiment_by_name("DIFF-MAIN"), "name", None))
    upper = rec.call("exp2.create_other_case", client.create_experiment, "Diff-Main")
    if upper:
        rec.name("exp", upper, "Diff-Main")
    spaced = rec.call("exp2.create_spaced", client.create_experiment, "diff spaced é")
    if spaced:
        rec.name("exp", spaced, "spaced")
        rec.call("exp2.get_spaced", client.get_experiment_by_name, "diff spaced é")
    rec.call("exp2.pages_of_1", listed, max_results=1, filter_string="name LIKE 'diff%'")
    rec.call("exp2.pages_ordered", listed, max_results=2, order_by=["name DESC"],
             filter_string="name ILIKE 'diff%'")
    rec.call("exp2.like_case", listed, filter_string="name LIKE 'Diff%'")
    rec.call("exp2.tag_then_get", lambda: (
        client.set_experiment_tag(_exp_id(rec, "tagged"), "mlflow.note.content", "notes"),
        client.get_experiment_by_name("diff-tagged").tags)[1])
    rec.call("exp2.tag_filter_like", listed, filter_string="tags.k LIKE 'v%'")


def more_runs(rec: Recorder, client: Any) -> None:
    import mlflow

    search = _exp_id(rec, "search")
    ids = [_run_id(rec, name) for name in ("r1", "r2")]
    quoted = ", ".join(f"'{i}'" for i in ids)
    rec.call("runs2.id_in", lambda: names(client.search_runs(
        [search], f"attributes.run_id IN ({quoted})", order_by=["run_name"])))
    rec.call("runs2.id_eq", lambda: names(client.search_runs([search], f"run_id = '{ids[0]}'")))
    rec.call("runs2.id_not_in", lambda: names(client.search_runs(
        [search], f"attributes.run_id NOT IN ({quoted})")))
    rec.call("runs2.two_experiments", lambda: names(client.search_runs(
        [search, _exp_id(rec, "main")], "",
        order_by=["attributes.start_time ASC"], max_results=5)))
    rec.call("runs2.all_view_order", lambda: names(client.search_runs(
        [search], run_view_type=3, order_by=["metrics.loss ASC"])))
    rec.call("runs2.dataframe_page", mlflow.search_runs, [search], "metrics.loss < 1",
             max_results=2, order_by=["metrics.loss DESC"])
    old = 1_600_000_000_000
    run = client.create_run(search, start_time=old, run_name="old",
                            tags={"mlflow.note.content": "a note"})
    rec.name("run", run.info.run_id, "old")
    rec.call("runs2.old_created", lambda: client.get_run(run.info.run_id).info)
    client.set_terminated(run.info.run_id, "FAILED", end_time=old + 5000)
    rec.call("runs2.old_ended", lambda: client.get_run(run.info.run_id).info)
    rec.call("runs2.log_after_end", client.log_metric, run.info.run_id, "after", 1.0, step=3)
    rec.call("runs2.param_after_end", client.log_param, run.info.run_id, "after", "1")
    rec.call("runs2.after_end", lambda: client.get_run(run.info.run_id).data)
    rec.call("runs2.parent_of_child", lambda: getattr(
        mlflow.get_parent_run(_run_id(rec, "child")), "info", None))
    rec.call("runs2.by_created_old", lambda: names(client.search_runs(
        [search], f"attributes.created < {old + 1}")))
    rec.call("runs2.end_time_eq", lambda: names(client.search_runs(
        [search], f"attributes.end_time = {old + 5000}")))
    client.delete_run(run.info.run_id)
    rec.call("runs2.resume_deleted", lambda: mlflow.start_run(run_id=run.info.run_id).info)
    if mlflow.active_run():
        mlflow.end_run()
    rec.call("runs2.same_batch_steps", _same_batch_steps, client, search)


def _same_batch_steps(client: Any, experiment: str) -> Any:
    from mlflow.entities import Metric

    run = client.create_run(experiment, run_name="steps")
    client.log_batch(run.info.run_id, metrics=[Metric("s", float(i), 1000 + i, i % 3)
                                               for i in range(7)])
    client.log_metric(run.info.run_id, "s", 9.0, timestamp=999, step=2)
    client.delete_run(run.info.run_id)
    return {"history": [(m.value, m.step) for m in client.get_metric_history(run.info.run_id,
                                                                             "s")],
            "latest": client.get_run(run.info.run_id).data.metrics}


def odd_artifacts(rec: Recorder, client: Any) -> None:
    import mlflow
    import numpy as np

    mlflow.set_experiment("diff-main")
    with mlflow.start_run(run_name="odd files") as run, tempfile.TemporaryDirectory() as tmp:
        rid = run.info.run_id
        rec.name("run", rid, "odd files")
        mlflow.log_text("späce ünïcode", "my dir/file name é.txt")
        mlflow.log_text("", "empty.txt")
        mlflow.log_text("pct", "100%/a+b=c&d?.txt")
        if takes(mlflow.log_image, "key"):
            mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), key="digits", step=2)
        else:
            rec.skip("odd.log_image_key", "log_image(key=..., step=...) came after this client")
        Path(tmp, "zero.bin").write_bytes(b"")
        mlflow.log_artifact(str(Path(tmp, "zero.bin")), "bins")
    for path in (None, "my dir", "100%", "bins", "images"):
        rec.call(f"odd.list[{path}]", lambda p=path: [
            {"path": STAMPED.sub("+<stamp>", f.path), "is_dir": f.is_dir,
             "file_size": f.file_size} for f in client.list_artifacts(rid, p)])
    for name in ("my dir/file name é.txt", "empty.txt", "100%/a+b=c&d?.txt"):
        rec.call(f"odd.load[{name}]", mlflow.artifacts.load_text, f"runs:/{rid}/{name}")
    with tempfile.TemporaryDirectory() as tmp:
        rec.call("odd.download_all", lambda: _tree(client.download_artifacts(rid, "", tmp)))
    rec.call("odd.list_missing_run", client.list_artifacts, "999999999")
    rec.call("odd.log_to_missing_run", client.log_text, "999999999", "x", "x.txt")


def logged_models(rec: Recorder, client: Any) -> None:
    """MLflow 3's logged models, as ``mlflow.pytorch.log_model`` makes them."""
    import mlflow
    import torch

    exp = mlflow.set_experiment("diff-main").experiment_id
    model = torch.nn.Linear(2, 1)
    with mlflow.start_run(run_name="model") as run:
        rec.name("run", run.info.run_id, "model")
        info = mlflow.pytorch.log_model(model, name="net", params={"width": 2},
                                        input_example=torch.zeros(1, 2).numpy())
        mlflow.log_metric("loss", 0.5, step=1, model_id=info.model_id)
    rec.name("model", info.model_id, "net")
    rec.call("model.get", lambda: _model(client.get_logged_model(info.model_id)))
    rec.call("model.search", lambda: [_model(m) for m in mlflow.search_logged_models(
        experiment_ids=[exp], output_format="list")])
    for text in ("name = 'net'", "metrics.loss < 1", "metrics.loss > 1", "params.width = '2'"):
        rec.call(f"model.search_filter[{text}]", lambda t=text: [
            m.name for m in mlflow.search_logged_models(experiment_ids=[exp], filter_string=t,
                                                         output_format="list")])
    rec.call("model.set_tags", client.set_logged_model_tags, info.model_id, {"stage": "x"})
    rec.call("model.tags", lambda: client.get_logged_model(info.model_id).tags)
    rec.call("model.run_outputs", lambda: client.get_run(run.info.run_id).outputs)
    rec.call("model.load", lambda: mlflow.pytorch.load_model(f"models:/{info.model_id}")(
        torch.ones(1, 2)).shape[-1])
    rec.call("model.files", lambda: sorted(f.path for f in client.list_logged_model_artifacts(
        info.model_id)))
    rec.call("model.get_missing", client.get_logged_model, "m-999999")
    rec.call("model.delete", client.delete_logged_model, info.model_id)
    rec.call("model.get_deleted", lambda: _model(client.get_logged_model(info.model_id)))


def run_models(rec: Recorder, client: Any) -> None:
    """mlflow 2's ``mlflow.pytorch.log_model``: the model's files among the run's artifacts,
    its description in the run's ``mlflow.log-model.history`` tag (``runs/log-model``)."""
    import mlflow
    import torch

    mlflow.set_experiment("diff-main")
    with mlflow.start_run(run_name="model") as run:
        rid = run.info.run_id
        rec.name("run", rid, "model")
        info = mlflow.pytorch.log_model(torch.nn.Linear(2, 1), artifact_path="net",
                                        input_example=torch.zeros(1, 2).numpy())
    rec.call("model2.info", lambda: {"artifact_path": info.artifact_path, "run_id": info.run_id,
                                     "flavors": sorted(info.flavors),
                                     "model_uri": info.model_uri})
    rec.call("model2.files", lambda: sorted(f.path for f in client.list_artifacts(rid, "net")))
    rec.call("model2.history_tag", lambda: [
        {"artifact_path": m["artifact_path"], "run_id": m["run_id"],
         "flavors": sorted(m["flavors"])}
        for m in json.loads(client.get_run(rid).data.tags["mlflow.log-model.history"])])
    rec.call("model2.load", lambda: mlflow.pytorch.load_model(f"runs:/{rid}/net")(
        torch.ones(1, 2)).shape[-1])
    rec.call("model2.record_missing_run", lambda: client._record_logged_model(
        "999999999", mlflow.models.Model.load(f"runs:/{rid}/net")))


def endings(rec: Recorder, client: Any) -> None:
    """How scripts end runs: an exception in the block, a nested run left open, set_experiment
    by id, log_metrics to a run by id, a metric of a data set."""
    import mlflow
    import numpy as np

    exp = mlflow.set_experiment(experiment_id=_exp_id(rec, "main")).experiment_id
    try:
        with mlflow.start_run(run_name="raised") as raised:
            rec.name("run", raised.info.run_id, "raised")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    rec.call("end.raised", lambda: client.get_run(raised.info.run_id).info)
    with mlflow.start_run(run_name="outer") as outer:
        rec.name("run", outer.info.run_id, "outer")
        inner = mlflow.start_run(run_name="inner", nested=True)
        rec.name("run", inner.info.run_id, "inner")
        mlflow.end_run()
        rec.call("end.active_after_inner", lambda: mlflow.active_run().info.run_name)
    rec.call("end.inner", lambda: client.get_run(inner.info.run_id).info.status)
    if takes(mlflow.log_metrics, "run_id"):
        rec.call("end.log_metrics_by_id", mlflow.log_metrics, {"a": 1.0, "b": 2.0}, step=4,
                 run_id=outer.info.run_id)
    else:
        rec.skip("end.log_metrics_by_id", "log_metrics(run_id=...) came after this client")
    if has_logged_models():
        digits = mlflow.data.from_numpy(np.arange(4.0).reshape(2, 2), name="digits")
        rec.call("end.metric_with_dataset", client.log_metric, outer.info.run_id, "acc", 0.5,
                 step=1, dataset_name=digits.name, dataset_digest=digits.digest)
        rec.call("end.history_with_dataset", lambda: [
            (m.value, m.step, m.dataset_name, m.dataset_digest == digits.digest)
            for m in client.get_metric_history(outer.info.run_id, "acc")])
    else:
        rec.skip("end.metric_with_dataset", "a metric's data set is MLflow 3's")
    rec.call("end.outer", lambda: client.get_run(outer.info.run_id).data.metrics)
    rec.call("end.search_ended", lambda: names(client.search_runs(
        [exp], "attributes.status = 'FAILED'", order_by=["attributes.run_name"])))


def training_script(rec: Recorder, client: Any) -> None:
    """An ordinary training script of the mlflow 2 days: an experiment by name, a parent run
    with nested runs per fold, params, metrics per epoch, tags, artifacts, then the searches and
    histories a notebook reads it back with."""
    import mlflow

    exp = mlflow.set_experiment("diff-script").experiment_id
    rec.name("exp", exp, "script")
    with mlflow.start_run(run_name="train") as parent, tempfile.TemporaryDirectory() as tmp:
        rec.name("run", parent.info.run_id, "train")
        mlflow.log_params({"lr": 0.01, "epochs": 3, "optimizer": "adam", "layers": [64, 32]})
        mlflow.set_tags({"team": "vision", "stage": "dev"})
        for fold in range(2):
            with mlflow.start_run(run_name=f"fold{fold}", nested=True) as child:
                rec.name("run", child.info.run_id, f"fold{fold}")
                mlflow.log_param("fold", fold)
                for epoch in range(3):
                    mlflow.log_metrics({"train_loss": 1.0 / (epoch + 1 + fold),
                                        "val_loss": 1.2 / (epoch + 1 + fold),
                                        "val_acc": 0.5 + 0.1 * epoch + 0.05 * fold}, step=epoch)
        Path(tmp, "report.txt").write_text("done")
        Path(tmp, "ckpt").mkdir()
        Path(tmp, "ckpt", "weights.bin").write_bytes(b"\1" * 64)
        mlflow.log_artifact(str(Path(tmp, "report.txt")))
        mlflow.log_artifacts(str(Path(tmp, "ckpt")), artifact_path="checkpoints")
        mlflow.log_dict({"lr": 0.01, "layers": [64, 32]}, "config.json")
        mlflow.log_text("a summary", "summary.txt")
        mlflow.log_metric("final_acc", 0.9)
    with mlflow.start_run(run_name="crashed") as crashed:
        rec.name("run", crashed.info.run_id, "crashed")
        mlflow.end_run(status="FAILED")
    pid, first = parent.info.run_id, _run_id(rec, "fold0")
    rec.call("script.parent", client.get_run, pid)
    rec.call("script.children", lambda: names(client.search_runs(
        [exp], f"tags.mlflow.parentRunId = '{pid}'", order_by=["attributes.run_name"])))
    rec.call("script.dataframe", mlflow.search_runs, [exp], order_by=["attributes.run_name"])
    rec.call("script.dataframe_by_name", mlflow.search_runs, experiment_names=["diff-script"],
             filter_string="metrics.val_acc > 0.6", order_by=["metrics.val_acc DESC"])
    rec.call("script.client_search", client.search_runs, [exp], "params.optimizer = 'adam'")
    rec.call("script.history", lambda: [(m.value, m.step) for m in
                                        client.get_metric_history(first, "val_loss")])
    rec.call("script.files", lambda: _sized(client.list_artifacts(pid)))
    rec.call("script.files_ckpt", lambda: _sized(client.list_artifacts(pid, "checkpoints")))
    rec.call("script.config", mlflow.artifacts.load_dict, f"runs:/{pid}/config.json")
    rec.call("script.crashed", lambda: names(client.search_runs(
        [exp], "attributes.status = 'FAILED'")))


# Runs with dotted and spaced names for the searches of ``key_searches``: name, metrics,
# params, tags.
KEYED_RUNS = [
    ("k1", {"val.loss": 0.5, "val loss": 1.0, "acc": 0.9}, {"model.lr": "0.1", "my param": "x"},
     {"env.name": "prod", "group": "g1"}),
    ("k2", {"val.loss": 0.3, "val loss": 2.0, "acc": 0.8}, {"model.lr": "0.01", "my param": "y"},
     {"env.name": "dev", "group": "g1"}),
    ("k3", {"val.loss": 0.7, "acc": 0.8}, {"model.lr": "0.1"}, {"env.name": "Prod", "group": "g2"}),
    ("k4", {"acc": 0.95}, {"model.lr": "1"}, {"group": "g2"}),
    ("k5", {"val.loss": 0.3, "acc": 0.7}, {"model.lr": "0.001"}, {"env.name": "prod_x"}),
]
KEYED_FILTERS = [
    "metrics.`val.loss` < 0.6", 'metrics."val.loss" < 0.6', "metrics.val.loss < 0.6",
    "metrics.`val loss` > 1.5", "params.`model.lr` = '0.1'", "params.model.lr = '0.1'",
    "params.`my param` LIKE '%'", "tags.env.name = 'prod'", "tags.`env.name` ILIKE 'prod%'",
    "tags.env.name LIKE 'prod_%'", "metrics.acc >= 0.8 AND metrics.acc < 0.95",
    "metrics.acc >= .8", "metrics.acc > 8e-1", "metrics.acc>0.85", "params.`model.lr`!='0.1'",
    "  tags.group = 'g1'  ", "attributes.`run name` = 'k1'", "tags.group LIKE 'G%'",
    "params.`model.lr` IS NOT NULL AND tags.env.name IS NULL",
]
KEYED_ORDERS = [
    ["metrics.`val.loss` ASC", "metrics.acc DESC"], ["tags.group DESC", "metrics.acc ASC"],
    ["metrics.acc DESC", "attributes.start_time ASC"], ["params.`model.lr`"],
    ["metrics.val.loss"], ["tags.env.name DESC"], ["start_time DESC"], ["Created DESC"],
    ["metrics.acc DESC", "params.model.lr ASC", "tags.group DESC"], ["metrics.`val loss` DESC"],
]


def key_searches(rec: Recorder, client: Any) -> None:
    """Searches on names with dots and spaces (quoted or not), orders by several keys, and
    every page size of a filtered, ordered search."""
    from mlflow.entities import Metric, Param, RunTag

    exp = client.create_experiment("diff-keys")
    rec.name("exp", exp, "keys")
    base = int(rec.t0) - 30_000
    for i, (name, metrics, params, tags) in enumerate(KEYED_RUNS):
        run = client.create_run(exp, start_time=base + i * 1000, run_name=name)
        rec.name("run", run.info.run_id, name)
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, base, 0)
                                                   for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
    for text in KEYED_FILTERS:
        rec.call(f"keys.filter[{text}]", lambda t=text: names(client.search_runs([exp], t)))
    for order in KEYED_ORDERS:
        rec.call(f"keys.order{order}", lambda o=order: names(client.search_runs(
            [exp], order_by=o)))
    for size in (1, 2, 3, 4):
        rec.call(f"keys.pages[{size}]", _pages, client, exp, size)


def _pages(client: Any, experiment: str, size: int) -> list[list[str]]:
    pages, token = [], None
    for _ in range(10):
        page = client.search_runs([experiment], "metrics.acc > 0.75", max_results=size,
                                  order_by=["metrics.acc DESC", "attributes.run_name"],
                                  page_token=token)
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            break
    return pages


def script_habits(rec: Recorder, client: Any) -> None:
    """What scripts do beside logging: experiment names with paths or stray spaces, set again
    on the next run; a data set logged each epoch; a table appended to; a file written twice;
    a run resumed under a new name; a long metric read back in pages."""
    import mlflow
    import pandas as pd

    for label, name in (("path", "/Users/me@example.com/diff-path"), ("slash", "team/diff"),
                        ("spaced", "  diff-spaced \n")):
        first = mlflow.set_experiment(name)
        again = mlflow.set_experiment(name)
        rec.keep(f"habits.set_again[{label}]", {
            "same": first.experiment_id == again.experiment_id,
            "found": client.get_experiment_by_name(name) is not None})
    frame = pd.DataFrame({"x": [1, 2, 3]})
    digits = mlflow.data.from_pandas(frame, name="digits")
    with mlflow.start_run(run_name="habits") as run:
        rid = run.info.run_id
        rec.name("run", rid, "habits")
        for epoch in range(3):
            mlflow.log_input(digits, context="training", tags={"epoch": str(epoch)})
        mlflow.log_input(digits, context="eval")
        mlflow.log_input(mlflow.data.from_pandas(frame.iloc[:2], name="digits"), context="eval")
        mlflow.log_table(pd.DataFrame({"x": [1], "y": ["a"]}), "preds.json")
        mlflow.log_table(pd.DataFrame({"x": [2], "y": ["b"]}), "preds.json")
        mlflow.log_text("one", "twice.txt")
        mlflow.log_text("two!", "twice.txt")
    rec.call("habits.inputs", lambda: [
        (i.dataset.name, sorted((t.key, t.value) for t in i.tags))
        for i in client.get_run(rid).inputs.dataset_inputs])
    rec.call("habits.table", lambda: mlflow.load_table("preds.json", run_ids=[rid]).to_dict(
        "records"))
    rec.call("habits.twice", mlflow.artifacts.load_text, f"runs:/{rid}/twice.txt")
    rec.call("habits.text_after_end", lambda: (client.log_text(rid, "late", "late.txt"),
                                               mlflow.artifacts.load_text(
                                                   f"runs:/{rid}/late.txt"))[1])
    with mlflow.start_run(run_id=rid, run_name="habits2", description="resumed"):
        pass
    rec.call("habits.resumed", lambda: (client.get_run(rid).info.run_name, {
        k: v for k, v in client.get_run(rid).data.tags.items()
        if k in ("mlflow.runName", "mlflow.note.content")}))
    _long_history(rec, client, rid)


def _long_history(rec: Recorder, client: Any, run_id: str) -> None:
    """30,000 points of one metric: the client reads them 25,000 a page."""
    from mlflow.entities import Metric

    for start in range(0, 30_000, 1000):
        client.log_batch(run_id, metrics=[Metric("long", 1.0 / (i + 1), 1_000_000 + i, i)
                                          for i in range(start, start + 1000)])
    rec.call("habits.long_history", lambda: (lambda h: (len(h), h[0].step, h[-1].step,
                                                         h[-1].value))(
        client.get_metric_history(run_id, "long")))


def autologged(rec: Recorder, client: Any) -> None:
    """``mlflow.sklearn.autolog()`` around a fit (when scikit-learn is installed): what it
    logs, and the model loaded back by the run's URI."""
    import mlflow

    try:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        rec.skip("auto", "scikit-learn is not installed")
        return
    features, labels = load_iris(return_X_y=True)
    mlflow.set_experiment("diff-main")
    mlflow.sklearn.autolog()
    try:
        with mlflow.start_run(run_name="auto") as run:
            rec.name("run", run.info.run_id, "auto")
            LogisticRegression(max_iter=200).fit(features, labels)
    finally:
        mlflow.sklearn.autolog(disable=True)
    rid = run.info.run_id
    got = client.get_run(rid)
    rec.keep("auto.run", {"metrics": got.data.metrics, "params": got.data.params,
                          "tags": sorted(got.data.tags), "status": got.info.status,
                          "inputs": [(i.dataset.name, i.dataset.source_type)
                                     for i in got.inputs.dataset_inputs]})
    rec.call("auto.files", lambda: sorted(f.path for f in client.list_artifacts(rid)))
    rec.call("auto.load", lambda: mlflow.sklearn.load_model(f"runs:/{rid}/model").predict(
        features[:3]).tolist())
    rec.call("auto.pyfunc", lambda: mlflow.pyfunc.load_model(f"runs:/{rid}/model").predict(
        features[:3]).tolist())


def unsupported(rec: Recorder, client: Any) -> None:
    """Calls Fitboard does not serve (the model registry, MLflow 3's GenAI data sets): an MLflow
    error the client raises, never a page or a hang; and MLflow 3's logged-model calls beyond
    log_model."""
    import mlflow

    mlflow.set_experiment("diff-main")
    with mlflow.start_run(run_name="unsupported") as run:
        rec.name("run", run.info.run_id, "unsupported")
        mlflow.log_text("x", "model/MLmodel")
    uri = f"runs:/{run.info.run_id}/model"
    rec.call("registry.register", lambda: mlflow.register_model(uri, "diff-model").version)
    rec.call("registry.search", lambda: [m.name for m in client.search_registered_models()])
    rec.call("registry.latest", lambda: [v.version for v in client.get_latest_versions(
        "diff-model")])
    if not has_logged_models():
        rec.skip("unsupported.logged_models", "MLflow 3's logged models and GenAI")
        return
    rec.call("genai.datasets", lambda: len(mlflow.genai.datasets.search_datasets()))
    model = mlflow.initialize_logged_model(name="diff-ext", tags={"a": "1", "b": "2"})
    rec.name("model", model.model_id, "ext")
    rec.call("model2.delete_tag", client.delete_logged_model_tag, model.model_id, "a")
    rec.call("model2.delete_tag_missing", client.delete_logged_model_tag, model.model_id, "a")
    rec.call("model2.log_params", mlflow.log_model_params, {"p": "1"}, model_id=model.model_id)
    rec.call("model2.finalize", lambda: client.finalize_logged_model(
        model.model_id, "READY").status)
    rec.call("model2.after", lambda: _model(client.get_logged_model(model.model_id)))
    external = mlflow.create_external_model(name="diff-external", params={"q": "2"})
    rec.name("model", external.model_id, "external")
    rec.call("model2.external", lambda: _model(client.get_logged_model(external.model_id)))


def run_names(rec: Recorder, client: Any) -> None:
    """A run's name past 200 characters (a sweep's, of its hyper-parameters), read back and
    searched for; a run created with two different names."""
    exp = _exp_id(rec, "keys")
    name = "lr=0.001_batch=32_" * 14
    run = client.create_run(exp, run_name=name)
    rec.name("run", run.info.run_id, "long")
    rec.call("names.long", lambda: client.get_run(run.info.run_id).info.run_name == name)
    rec.call("names.long_found", lambda: len(client.search_runs(
        [exp], f"attributes.run_name = '{name}'")))
    rec.call("names.two", client.create_run, exp, run_name="a", tags={"mlflow.runName": "b"})


def model_datasets(rec: Recorder, client: Any) -> None:
    """MLflow 3's search of models by a metric on one data set: "the best model on eval"."""
    import mlflow
    import numpy as np

    if not has_logged_models():
        rec.skip("model_datasets", "MLflow 3's logged models")
        return
    exp = mlflow.set_experiment("diff-model-data").experiment_id
    train = mlflow.data.from_numpy(np.zeros((2, 2)), name="train")
    held_out = mlflow.data.from_numpy(np.ones((2, 2)), name="eval")
    with mlflow.start_run() as run:
        for name, on_eval, on_train in (("first", 0.9, 0.5), ("second", 0.7, 0.8)):
            model = mlflow.initialize_logged_model(name=name)
            mlflow.log_metric("acc", on_eval, model_id=model.model_id, dataset=held_out)
            mlflow.log_metric("acc", on_train, model_id=model.model_id, dataset=train)

    def names(**kwargs: Any) -> list[str]:
        return [m.name for m in mlflow.search_logged_models(
            experiment_ids=[exp], output_format="list", **kwargs)]

    best = {"field_name": "metrics.acc", "ascending": False}
    for data in ("eval", "train", ""):
        rec.call(f"model_data.best[{data}]", names, order_by=[{**best, "dataset_name": data}])
    rec.call("model_data.any_point", names, filter_string="metrics.acc > 0.85")
    rec.call("model_data.on_train", names, filter_string="metrics.acc > 0.75", datasets=[
        {"dataset_name": "train", "dataset_digest": train.digest}])
    rec.call("model_data.run_inputs", lambda: (
        len(client.get_run(run.info.run_id).inputs.model_inputs),
        sorted(i.dataset.name for i in client.get_run(run.info.run_id).inputs.dataset_inputs)))


def _model(model: Any) -> Any:
    shown = {k: v for k, v in plain(model).items() if k not in ("artifact_location", "metrics")}
    shown["metrics"] = [{"key": m.key, "value": m.value, "step": m.step}
                        for m in model.metrics or []]
    return shown


# --- The parent: two servers, one scenario each, the differences -------------------------------

def start_fitboard(stack: _stack.Stack, port: int) -> tuple[str, str]:
    """Daphne on a migrated scratch site (``bench.tracking.start_fitboard`` on a fixed port)."""
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env = stack.configure()
    env["FITBOARD_API_RATE_PER_MIN"] = os.environ["FITBOARD_API_RATE_PER_MIN"] = "100000000"
    _stack.setup_django(migrate=True)
    from webapp.tracking import tokens

    user, _ = _stack.bench_user_and_project()
    token = tokens.create_token(user, "diff", "write", None)[1]
    daphne = stack.spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                          "webapp.asgi:application"], "daphne.log", cwd=_stack.REPO, env=env)
    _stack.wait_for_port(port, 60, daphne)
    return f"http://127.0.0.1:{port}", token


def start_mlflow(stack: _stack.Stack, python: str, port: int) -> str:
    """``mlflow server`` on SQLite, serving artifacts (``mlflow-artifacts:/`` URIs)."""
    process = stack.spawn([python, "-m", "mlflow", "server", "--backend-store-uri",
                           f"sqlite:///{stack.scratch / 'mlflow.db'}", "--artifacts-destination",
                           str(stack.scratch / "mlartifacts"), "--host", "127.0.0.1", "--port",
                           str(port), "--workers", "1"], "mlflow-server.log", cwd=stack.scratch)
    _stack.wait_for_port(port, 300, process)
    return f"http://127.0.0.1:{port}"


def run_scenario(url: str, token: str, out: Path, python: str) -> dict[str, Any]:
    """The scenario's answers against ``url`` with ``python``'s mlflow client: the client's
    version, the calls it skipped and the entries."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": token,
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "PYTHONPATH": str(_stack.REPO)}
    done = subprocess.run([python, __file__, "--scenario", str(out)], env=env,
                          capture_output=True, text=True, timeout=900, cwd=out.parent)
    if done.returncode != 0:
        raise RuntimeError(f"the scenario against {url} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def differences(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, Fitboard's, MLflow's) of each place the two answers differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            found += differences(a.get(key, "<absent>"), b.get(key, "<absent>"),
                                 f"{path}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a and all(
            isinstance(x, dict) for x in a + b):
        found = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found += differences(x, y, f"{path}[{i}]")
        return found
    return [] if a == b else [(path or ".", a, b)]


def short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


CLAMPED = 1.7976931348623157e308  # what MLflow's SQL store answers for an infinite value


def documented_as(label: str, found: list[tuple[str, Any, Any]]) -> str:
    """Why every difference of an answer is by design, or "" when one is not."""
    reasons = []
    for path, ours, theirs in found:
        why = next((why for answer, inside, why in DOCUMENTED if re.match(answer, label)
                    and re.fullmatch(inside or ".*", path)), "")
        if ours in ("inf", "-inf") and theirs == float(ours.replace("inf", "1")) * CLAMPED:
            why = "MLflow's SQL store clamps an infinite value to the largest double"
        if not why:
            return ""
        reasons.append(why)
    return "; ".join(dict.fromkeys(reasons))


def report(fitboard: list[list[Any]], mlflow: list[list[Any]]) -> int:
    theirs = dict((label, value) for label, value in mlflow)
    ours = dict((label, value) for label, value in fitboard)
    labels = list(dict.fromkeys([label for label, _ in fitboard + mlflow]))
    count = documented = 0
    for label in labels:
        found = differences(ours.get(label, "<not answered>"), theirs.get(label, "<not answered>"))
        if not found:
            continue
        why = documented_as(label, found)
        documented += bool(why)
        count += not why
        print(f"\n{'[documented: ' + why + '] ' if why else ''}{label}")
        for path, a, b in found[:12]:
            print(f"  {path}\n    fitboard: {short(a)}\n    mlflow:   {short(b)}")
    print(f"\n{len(labels)} answers compared: {count} differ, {documented} more by design "
          "(docs/tracking.md)")
    return count


def main(port: int, mlflow_python: str, client_python: str, save: str, store: bool) -> None:
    if os.sep in client_python:  # the children run in a scratch folder
        client_python = os.path.abspath(client_python)
    python = mlflow_python or str(tracking.ensure_env(
        "mlflow", f"mlflow=={tracking.MLFLOW_VERSION}", "import mlflow.server"))
    with _stack.Stack() as stack:
        fitboard, token = start_fitboard(stack, port)
        mlflow_url = start_mlflow(stack, python, port + 1)
        ours = run_scenario(tracking.SCHEME_PREFIX + fitboard if store else fitboard, token,
                            stack.scratch / "fitboard.json", client_python)
        theirs = run_scenario(mlflow_url, token, stack.scratch / "mlflow.json", client_python)
    if save:  # both answers as recorded, to read beside the differences
        Path(save).mkdir(parents=True, exist_ok=True)
        Path(save, "fitboard.json").write_text(json.dumps(ours["entries"], indent=1))
        Path(save, "mlflow.json").write_text(json.dumps(theirs["entries"], indent=1))
    print(f"mlflow client {ours['client']} ({client_python})"
          + (", to Fitboard through the fitboard package's store" if store else ""))
    for note in ours["skipped"]:
        print(f"  skipped, the client lacks it: {note}")
    report(ours["entries"], theirs["entries"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8110,
                        help="Fitboard's port; MLflow's server takes the next one")
    parser.add_argument("--mlflow-python", default="",
                        help="an interpreter with the full mlflow package (its server)")
    parser.add_argument("--client-python", default=sys.executable,
                        help="the interpreter whose mlflow client runs the scenario (another "
                        "version's, in a venv of its own)")
    parser.add_argument("--save", default="", help="a folder to write both answers to")
    parser.add_argument("--store", action="store_true",
                        help="Fitboard at its fitboard+http:// URI (the fitboard package's "
                        "tracking store; the client's interpreter must have the package)")
    parser.add_argument("--scenario", help="run the calls against MLFLOW_TRACKING_URI (a child)")
    args = parser.parse_args()
    if args.scenario:
        scenario(args.scenario)
    else:
        main(args.port, args.mlflow_python, args.client_python, args.save, args.store)
