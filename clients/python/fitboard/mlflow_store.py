"""The ``mlflow`` client's tracking store for ``fitboard+http://`` and ``fitboard+https://``
tracking URIs.

A script that logs with ``mlflow`` and sets ``MLFLOW_TRACKING_URI=fitboard+https://host`` (and
``MLFLOW_TRACKING_TOKEN``) logs into Fitboard unchanged, as with ``https://host``, except that
its metrics stop waiting on the network: for a run it created or resumed, ``log_metric`` and
``log_batch`` put the points in a buffer that a background thread sends in batches over
Fitboard's native API (``fitboard.Run``), as MLflow's ``synchronous=False`` does with its own
server, and a second thread beats while the run is open. Over ``https://``, each
``log_metric`` is one request that the training loop waits for, and each point of a
``log_batch`` is an object serialized through protobuf.

Everything else goes over MLflow's REST API exactly as ``https://`` sends it (``RestStore``).
Before any of it, the points logged so far are sent: a script reads back what it logged
(``get_metric_history``), a param or tag lands after the points logged before it, and
``end_run`` returns once every point is stored. Points the server refused (a full quota, a
step past 64 bits) raise ``MlflowException`` naming the run and the reason at the run's next
``log_metric`` or ``log_batch``, or at its ``end_run`` (after the run is ended), as MLflow's
own asynchronous logging raises at its flush. Over the REST API, each point stored before its
call returns, go the points of any other run (another process's, an ended one), a forked
child's, nameless ones, and those linked to a logged model or a data set (mlflow 3's
``model_id``, ``dataset_name``), which the REST API links.

Registered by the ``fitboard`` package's entry points (``fitboard.mlflow_plugin``:
``mlflow.tracking_store``, ``mlflow.model_registry_store``, and ``mlflow.artifact_repository``
for ``mlflow-artifacts:`` URIs, which MLflow resolves against the tracking URI and would refuse
for its scheme).
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from collections.abc import Sequence
from typing import Any

from mlflow.entities import RunStatus
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
from mlflow.store.tracking.rest_store import RestStore

try:
    from mlflow.utils.credentials import get_default_host_creds
except ImportError:  # mlflow before 2.10 kept it here
    from mlflow.tracking._tracking_service.utils import (  # type: ignore[attr-defined,no-redef]
        _get_default_host_creds as get_default_host_creds,
    )

from fitboard.mlflow_plugin import SCHEME_PREFIX
from fitboard.run import Columns, Heartbeat, Record, Run
from fitboard.transport import FitboardError, Transport


def rest_uri(uri: str) -> str:
    """``fitboard+https://host`` as ``https://host``: where MLflow's REST API is."""
    return uri[len(SCHEME_PREFIX):] if uri.startswith(SCHEME_PREFIX) else uri


class FitboardStore(RestStore):  # type: ignore[misc]
    """MLflow's REST store, with metrics sent in batches by a background thread per run."""

    def __init__(self, store_uri: str, artifact_uri: str | None = None) -> None:
        self.rest_uri = rest_uri(store_uri)
        super().__init__(functools.partial(get_default_host_creds, self.rest_uri))
        self._runs: dict[str, Run] = {}  # run id: its buffer, sender and heartbeat threads
        self._runs_lock = threading.Lock()
        self._forked = False
        os.register_at_fork(after_in_child=self._forget_runs)

    def _forget_runs(self) -> None:
        # A forked child has none of the parent's threads, and a worker process ends with
        # os._exit, which runs no exit handler that could flush a buffer of its own: the child
        # logs over the REST API, each point stored before its call returns.
        self._runs, self._runs_lock, self._forked = {}, threading.Lock(), True

    # --- Metrics: into the run's buffer ------------------------------------------------

    def log_metric(self, run_id: str, metric: Any) -> None:
        self._raise_refused(run_id)
        sender = None if _for_rest(metric) else self._runs.get(run_id)
        if sender is None or sender.finished:
            super().log_metric(run_id, metric)
        else:
            sender.log_records([(int(metric.step or 0), int(metric.timestamp) / 1000,
                                 {metric.key: float(metric.value)})])

    def log_batch(self, run_id: str, metrics: Sequence[Any], params: Sequence[Any],
                  tags: Sequence[Any]) -> None:
        self._raise_refused(run_id)
        sender = self._runs.get(run_id) if metrics else None
        if sender is not None and not sender.finished:
            records, metrics = _records(metrics)
            if records:
                sender.log_records(records)
        if metrics or params or tags:
            super().log_batch(run_id, metrics, params, tags)

    def create_run(self, *args: Any, **kwargs: Any) -> Any:
        run = super().create_run(*args, **kwargs)
        self._start(run.info.run_id)  # it beats from now, before its first point
        return run

    def update_run_info(self, run_id: str, run_status: Any, end_time: Any = None,
                        run_name: Any = None) -> Any:
        # The run ends (or is renamed) even when some of its points were refused; then the
        # script is told, unless it is ending the run as failed or killed (an exception of
        # its own is on its way, which this would hide). An ended run's threads end with it
        # (a study's hundreds of runs do not keep two each).
        info = super().update_run_info(run_id, run_status, end_time, run_name)
        if RunStatus.is_terminated(run_status):
            self._stop(run_id, quiet=run_status != RunStatus.FINISHED)
        elif run_status == RunStatus.RUNNING and not run_name:
            self._start(run_id)  # start_run(run_id=...) resumed it (a rename names it)
        self._raise_refused(run_id)
        return info

    def flush_async_logging(self) -> None:
        super().flush_async_logging()
        self.flush()

    def delete_run(self, run_id: str) -> None:
        super().delete_run(run_id)
        # Its next point goes over the REST API, which refuses it (and says why) at once.
        self._stop(run_id)

    # --- The rest: MLflow's REST API, after the points logged before it ----------------

    def _call_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        self.flush()
        return super()._call_endpoint(*args, **kwargs)

    def flush(self) -> None:
        """Return once every point logged so far is stored or refused."""
        with self._runs_lock:
            runs = list(self._runs.values())
        for run in runs:
            run.flush()

    def _raise_refused(self, run_id: str, run: Run | None = None) -> None:
        """MlflowException if the server refused points of the run since this was last
        raised (the call that raises logs nothing)."""
        run = run or self._runs.get(run_id)
        if run is None or not run.errors:
            return
        errors = run.errors[:]  # the sender may append meanwhile: only these are told
        del run.errors[:len(errors)]
        more = f" (and {len(errors) - 1} more batches)" if len(errors) > 1 else ""
        raise MlflowException(f"metrics logged earlier were not stored: run {run_id}: "
                              f"{errors[0]}{more}")

    def _start(self, run_id: str) -> None:
        """Start the buffer and heartbeat of a run this script created or resumed (it runs,
        and it is this process's to keep alive). Any other run (another process's, an ended
        one, a mistyped id) gets its points over the REST API, which stores each or refuses
        it at once, as over ``http(s)://``; so do a forked child's runs, and every run with
        credentials the native API does not take."""
        run = self._runs.get(run_id)
        if self._forked or (run is not None and not run.finished):
            return
        with self._runs_lock:
            run = self._runs.get(run_id)
            if run is None or run.finished:
                sink = _sink(self.rest_uri, self.get_host_creds(), run_id)
                if sink is not None:
                    self._runs[run_id] = Run(sink)

    def _stop(self, run_id: str, quiet: bool = False) -> None:
        """End the run's buffer and heartbeat (after sending what it holds); raise what the
        server refused of it (``quiet``: only warned, as it was when refused)."""
        with self._runs_lock:
            run = self._runs.pop(run_id, None)
        if run is not None:
            run.finish()
            if not quiet:
                self._raise_refused(run_id, run)


def _for_rest(metric: Any) -> bool:
    """A point for the REST API: linked to a logged model or a data set (mlflow 3), which it
    links, or without a name, which it refuses (the mlflow client does not check)."""
    return not metric.key or bool(
        getattr(metric, "model_id", None) or getattr(metric, "dataset_name", None)
        or getattr(metric, "dataset_digest", None))


def _records(metrics: Sequence[Any]) -> tuple[list[Record], list[Any]]:
    """A batch's points as the buffer's records, and those for the REST API (``_for_rest``).
    Consecutive points of one step and time share a record (a batch usually holds a step's
    metrics); a name logged again at them starts another, as MLflow keeps both. float() and
    int(): the mlflow client passes numpy scalars and ints through."""
    records: list[Record] = []
    linked = []
    values: dict[str, float] = {}
    at = None
    for metric in metrics:
        if _for_rest(metric):
            linked.append(metric)
            continue
        step, stamp, key = metric.step, metric.timestamp, metric.key
        if (step, stamp) != at or key in values:
            values, at = {}, (step, stamp)
            records.append((int(step or 0), int(stamp) / 1000, values))
        values[key] = float(metric.value)
    return records, linked


class _PointsSink:
    """Where a run's buffer goes: Fitboard's native ``runs/log`` (one request a batch), and a
    thread that beats while the run is open, as the native client's does: Fitboard fails a
    beating run whose script died within FITBOARD_EXTERNAL_HEARTBEAT_S, and never one that
    is quiet in a long epoch. The run is ended by the mlflow client (``update_run_info``), not
    here."""

    def __init__(self, url: str, token: str, run_id: int,
                 context: ssl.SSLContext | None) -> None:
        self.run_id = run_id
        # The sender thread's, with the mlflow client's own retries and timeout.
        self.transport = Transport(url, token, timeout=MLFLOW_HTTP_REQUEST_TIMEOUT.get(),
                                   retries=MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(),
                                   context=context)
        # The first beat at once: it tells the server this run's client beats.
        self._beat = Heartbeat(url, token, run_id, 30.0, first=0.0, context=context)

    def write(self, columns: Columns) -> None:
        try:
            self.transport.post("runs/log", {"run_id": self.run_id, "metrics": columns})
        except FitboardError as exc:
            # A batch is stored whole or not at all: a refusal for one metric's points (a
            # step past int64, a name too many) would lose every other metric's with it,
            # where over the REST API only the call that logged them fails. Each metric
            # again, alone; what is still refused is told.
            if exc.status != 400 or len(columns) < 2:
                raise
            refused = []
            for key, column in columns.items():
                try:
                    self.transport.post("runs/log", {"run_id": self.run_id,
                                                     "metrics": {key: column}})
                except FitboardError as alone:
                    if alone.status != 400:
                        raise
                    refused.append(str(alone))
            if refused:
                more = f" (and {len(refused) - 1} more metrics)" if len(refused) > 1 else ""
                raise FitboardError(refused[0] + more, 400) from None

    def checkpoint(self, path: Any, name: str) -> None:
        raise FitboardError("the mlflow client logs files with log_artifact")

    def finish(self, status: str, ended: float, reason: str = "") -> None:
        self.transport.close()
        # Gone with the run, unless a beat is on its way to a server that does not answer.
        self._beat.stop(wait=2)


def _sink(url: str, creds: Any, run_id: str) -> _PointsSink | None:
    token = creds.token or creds.password  # Fitboard reads a token as basic auth's password
    if not run_id.isdigit() or not token or getattr(creds, "client_cert_path", None) \
            or getattr(creds, "aws_sigv4", False) or getattr(creds, "auth", None):
        return None
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=getattr(creds, "server_cert_path", None))
        if getattr(creds, "ignore_tls_verification", False):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return _PointsSink(url, token, int(run_id), context)


def registry_store(store_uri: str, **_: Any) -> RegistryRestStore:
    """The model registry at a ``fitboard+http(s)://`` URI: MLflow's REST store, as for
    ``http(s)://``."""
    return RegistryRestStore(functools.partial(get_default_host_creds, rest_uri(store_uri)))


class ArtifactsRepository(MlflowArtifactsRepository):  # type: ignore[misc]
    """``mlflow-artifacts:`` URIs, resolved against the tracking URI's server as MLflow does,
    with ``fitboard+http(s)://`` read as ``http(s)://``; any other tracking URI exactly as
    MLflow's own repository reads it."""

    @classmethod
    def resolve_uri(cls, artifact_uri: str, tracking_uri: str) -> str:
        return str(super().resolve_uri(artifact_uri, rest_uri(tracking_uri)))
