"""A run: ``log`` puts points in a bounded buffer that a background thread sends in batches
(to the server, or to an offline file), and a second thread beats while the script is quiet,
so that Fitboard tells a live script that logs rarely from a dead one."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import ssl
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from fitboard.transport import FitboardError, Transport

Record = tuple[int, float, dict[str, float]]  # step, unix time, {name: value}
Columns = dict[str, tuple[list[int], list[float], list[float]]]  # name: steps, values, times
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# Tries of one request of a run before the run hears it failed (the transport's backoff makes
# 8 about 45 s); a batch of points is then tried again (``Run._write``).
SEND_RETRIES = 8
# What the server stores (webapp/tracking/ingest.py): a metric's name of at most MAX_NAME
# characters, at most MAX_METRICS names a run, a step within int64.
MAX_NAME = 250
MAX_METRICS = 1000
INT64 = 2**63


class Sink(Protocol):
    def write(self, columns: Columns) -> None: ...
    def checkpoint(self, path: Path, name: str) -> None: ...
    def finish(self, status: str, ended: float, reason: str = "") -> None: ...


class Run:
    """One run. Make it with ``fitboard.init``; ``log`` every step, ``finish`` at the end (or
    use it as a context manager: an exception ends it as failed)."""

    def __init__(self, sink: Sink, *, batch_points: int = 10_000, flush_s: float = 0.25,
                 max_queued_points: int = 1_000_000, finish_timeout_s: float = 120.0) -> None:
        self._sink = sink
        self._batch, self._flush_s, self._max = batch_points, flush_s, max_queued_points
        # A batch the server cannot take now is kept and sent again until it is taken; from
        # finish() on, for this long at most, so that a script whose server is gone for good
        # still exits.
        self._finish_timeout = finish_timeout_s
        self._give_up_at = float("inf")  # monotonic time; set by finish()
        self._unreachable = False  # the last try failed for want of a server (warned once)
        # The condition's lock, entered directly in ``log``: a C call, where entering the
        # condition runs Python frames (see ``log``).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._buffer: deque[Record] = deque()
        self._queued = 0  # points in the buffer
        self._logged = self._sent = 0  # records put in the buffer, and written by the sender
        self._flush_to = 0  # flush() asks for the records up to this one to be sent now
        self._closing = False
        # A resumed run goes on from the step after the last one its server holds.
        last = self.last_step
        self._next_step = 0 if last is None else last + 1
        self._names: set[str] = set()  # metric names logged, checked once each (``_add_names``)
        self.errors: list[str] = []  # batches the server refused (each also warned once)
        self.finished = False
        self._sender = threading.Thread(target=self._send_loop, name="fitboard-sender",
                                        daemon=True)
        self._sender.start()
        self._pid = os.getpid()  # a forked child has the run, not its threads (``_at_exit``)
        atexit.register(self._at_exit)

    # --- What a training script calls ---------------------------------------------------

    @property
    def id(self) -> int | None:
        """The run's number on the server (None offline)."""
        return getattr(self._sink, "run_id", None)

    @property
    def url(self) -> str:
        """The run's page on the server ("" offline)."""
        return str(getattr(self._sink, "page", ""))

    @property
    def path(self) -> Path | None:
        """The offline run's file, for ``fitboard sync`` (None online)."""
        return getattr(self._sink, "path", None)

    @property
    def last_step(self) -> int | None:
        """The last step the run held when it was resumed (``init(resume=...)``), else None."""
        last = getattr(self._sink, "last_step", None)
        return None if last is None else int(last)

    @property
    def status(self) -> str:
        """The run's status as the server last told (at each batch and heartbeat): a run
        cancelled on its page reads "cancelled", and the script may stop."""
        return str(getattr(self._sink, "status", "running"))

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log ``metrics`` (name: number; a tensor or array of one element will do; a nested
        mapping's names are joined with dots, ``{"train": {"loss": x}}`` as ``train.loss``) at
        ``step`` (default: one past the last step logged). Returns at once; blocks only while
        more than ``max_queued_points`` wait to be sent (the server is slower than the script).
        A value that is not a number raises FitboardError naming it, and nothing of the call
        is logged."""
        # This runs between two training steps, whose kernels have evicted the interpreter's
        # code and data from the CPU's caches: each line here costs a few cache misses, so
        # the usual call (a flat dict of floats) takes the shortest path.
        if self.finished:
            raise FitboardError("this run is finished")
        values = numbers(metrics)
        step = self._next_step if step is None else _step(step)
        now = time.time()
        with self._lock:
            if not self._names.issuperset(values):
                self._add_names(values)
            self._next_step = step + 1
            if self._queued >= self._max:
                self._wait_for_room()
            self._buffer.append((step, now, values))
            self._logged += 1
            self._queued += len(values)
            if self._queued >= self._batch:
                self._cond.notify_all()

    def log_records(self, records: list[Record]) -> None:
        """Log points that carry their own steps and times: ``(step, unix time in seconds,
        {name: float})`` each, as they are (the ``mlflow`` client's tracking store hands its
        points over so, ``fitboard.mlflow_store``). Blocks as ``log`` does."""
        if self.finished:
            raise FitboardError("this run is finished")
        with self._lock:
            if self._queued >= self._max:
                self._wait_for_room()
            self._buffer.extend(records)
            self._logged += len(records)
            self._queued += sum(len(values) for _, _, values in records)
            if self._queued >= self._batch:
                self._cond.notify_all()

    def _add_names(self, values: Mapping[str, float]) -> None:
        """Take the call's new metric names, or raise FitboardError for one the server would
        refuse: refused there, it would take the other points of its batch with it (a batch
        holds every metric of up to 10,000 points), here only the call is refused."""
        new = values.keys() - self._names
        for name in new:
            if not name or len(name) > MAX_NAME:
                raise FitboardError(f"metric name {name[:80]!r} has {len(name)} characters: "
                                    f"a name has 1 to {MAX_NAME}")
        if len(self._names) + len(new) > MAX_METRICS:
            raise FitboardError(f"a run holds at most {MAX_METRICS:,} metric names: this one "
                                f"has {len(self._names):,} and the call adds {len(new):,} "
                                f"({sorted(new)[0]!r}, ...); nothing of the call is logged")
        self._names.update(new)

    def _wait_for_room(self) -> None:
        """Block (the caller holds the lock) while the buffer is full and the sender alive."""
        if self._unreachable:  # else the script stops with no word of why
            warnings.warn(f"fitboard: {self._queued:,} points wait for the server: log() "
                          "waits until it answers", stacklevel=3)
        while self._queued >= self._max and self._sender.is_alive():
            self._cond.wait(1.0)

    def log_checkpoint(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Store the file at ``path`` with the run, as ``checkpoints/<name>`` (default: the
        file's name). Online it is uploaded now; offline it is copied beside the run's file."""
        source = Path(path)
        if not source.is_file():
            raise FitboardError(f"no file at {source}")
        self._sink.checkpoint(source, name or source.name)

    def flush(self) -> None:
        """Return once every point logged so far is sent (or refused)."""
        with self._cond:
            target = self._flush_to = self._logged
            self._cond.notify_all()
            while self._sent < target and self._sender.is_alive():
                self._cond.wait(0.5)

    def finish(self, status: str = "succeeded", reason: str = "") -> None:
        """Send what is left and end the run as ``status`` (succeeded, failed or cancelled);
        ``reason`` says why a failed or cancelled run ended (shown with it on its page)."""
        if self.finished:
            return
        self._give_up_at = time.monotonic() + self._finish_timeout
        self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._sender.join()
        self.finished = True
        atexit.unregister(self._at_exit)
        self._sink.finish(status, time.time(), reason)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.finish("succeeded")
            return
        try:
            self.finish(*ending(exc))
        except FitboardError as failed:  # the script's own exception is the one to see
            warnings.warn(f"fitboard: run {self.id} not ended: {failed}", stacklevel=2)

    def _at_exit(self) -> None:
        # A forked child that exits (a worker process) does not end its parent's run.
        if os.getpid() != self._pid:
            return
        # The script ended without finish(): by an exception nobody caught, or a signal.
        self.finish(*(_uncaught[0] or ("succeeded", "")))

    # --- The sender thread ----------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._flush_s
                while not self._closing and self._queued < self._batch \
                        and self._sent >= self._flush_to:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                records = self._take()
                if not records and self._closing:
                    return
            if records:
                self._write(records)
            with self._cond:
                self._sent += len(records)
                self._cond.notify_all()

    def _take(self) -> list[Record]:
        """Up to one batch of records from the buffer (the caller holds the lock)."""
        records: list[Record] = []
        points = 0
        while self._buffer and points < self._batch:
            records.append(self._buffer.popleft())
            points += len(records[-1][2])
        self._queued -= points
        return records

    def _write(self, records: list[Record]) -> None:
        """Send one batch. One the server cannot take now (it is gone, restarting, busy:
        no answer, 429, 5xx) is sent again, before any later one, until it is taken: the
        server keeps one value per metric and step, so a batch stored whose answer was lost
        is not stored twice. After finish()'s timeout, or when refused, it is reported."""
        batch = columns(records)
        while True:
            try:
                self._sink.write(batch)
            except Exception as exc:  # noqa: BLE001 - the script goes on; finish() reports it
                if (isinstance(exc, FitboardError) and exc.transient
                        and time.monotonic() < self._give_up_at):
                    self._wait_for_server(exc)
                    continue
                self._failed(exc, sum(len(c[0]) for c in batch.values()))
            else:
                if self._unreachable:
                    warnings.warn("fitboard: the server answers again: the points kept are "
                                  "being sent", stacklevel=1)
                self._unreachable = False
            return

    def _wait_for_server(self, exc: FitboardError) -> None:
        # The transport has retried with backoff already: a short pause before its next round.
        if not self._unreachable:
            warnings.warn(f"fitboard: the server does not answer ({exc}): the points are kept "
                          "and sent when it does", stacklevel=1)
            self._unreachable = True
        time.sleep(1.0)

    def _failed(self, exc: Exception, points: int) -> None:
        self._unreachable = False
        if not self.errors:
            warnings.warn(f"fitboard: {points:,} points not stored: {exc}", stacklevel=1)
        self.errors.append(str(exc))


def _step(step: Any) -> int:
    """``step`` as an int (a numpy or 0-d tensor integer will do); FitboardError for a step
    with a fraction or past 64 bits, which the server refuses."""
    try:
        number = int(step)
        whole = bool(number == step)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        whole, number = False, 0
    if not whole or not -INT64 <= number < INT64:
        shown = repr(step)[:60]
        raise FitboardError(f"step {shown} is not a whole number within 64 bits")
    return number


def numbers(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``metrics`` as name: float, nested mappings flattened (``train.loss``)."""
    values: dict[str, float] = {}
    for key, value in metrics.items():
        name = key if not prefix and type(key) is str else f"{prefix}{key}"
        if type(value) is float:  # what .item() returns: no ABC check (see Run.log)
            values[name] = value
            continue
        if isinstance(value, Mapping):
            values.update(numbers(value, name + "."))
            continue
        try:
            values[name] = _number(value)
        except (TypeError, ValueError, OverflowError, RuntimeError):  # a list, a text, 10**400
            shown = repr(value)
            raise FitboardError(
                f"metric {name!r} is {type(value).__name__} {shown[:60]}"
                f"{'...' if len(shown) > 60 else ''}, not a number: log a number, or a tensor "
                "or array of one element (.item())") from None
    return values


def _number(value: Any) -> float:
    """A number, or the one element of a tensor or array (numpy 2 refuses ``float()`` of an
    array of shape ``(1,)``; ``.item()`` takes any one-element array)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        if callable(getattr(value, "item", None)):
            return float(value.item())
        raise


def columns(records: list[Record]) -> Columns:
    """Records (step, time, {name: value}) as the API's columns, per metric."""
    found: Columns = {}
    for step, when, values in records:
        for key, value in values.items():
            column = found.get(key)
            if column is None:
                column = found[key] = ([], [], [])
            column[0].append(step)
            column[1].append(value)
            column[2].append(when)
    return found


def ending(exc: BaseException) -> tuple[str, str]:
    """The status and reason of a run its script left by ``exc``: Ctrl-C and SIGTERM are
    killed (cancelled), ``sys.exit(0)`` succeeded, any other exception failed."""
    if isinstance(exc, KeyboardInterrupt):
        return "cancelled", "KeyboardInterrupt"
    if isinstance(exc, Terminated):
        return "cancelled", f"{signal.Signals(exc.signal).name} ({exc.signal})"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "succeeded", ""
    return "failed", f"{type(exc).__name__}: {exc}"[:1000]


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM (``on_terminate``): the script unwinds, its
    ``with`` blocks and ``finally`` run, and its runs end as killed with their points sent;
    it exits with 128 + the signal's number, as a process killed by it reports."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal = signum


def on_terminate() -> None:
    """Turn SIGTERM into ``Terminated`` (``init`` calls it), unless the script or a library
    handles the signal itself, or this is not the main thread (no handler can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM kills at once
    _uncaught[0] = ending(Terminated(signum))  # seen at exit when the script catches it
    raise Terminated(signum)


_uncaught: list[tuple[str, str] | None] = [None]  # how an uncaught exception ends the runs
_previous_hook = sys.excepthook


def _note_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    _uncaught[0] = ending(exc)
    _previous_hook(kind, exc, tb)


sys.excepthook = _note_uncaught


# --- Where points go ----------------------------------------------------------------------

class ServerSink:
    """A run on a Fitboard server: its points, checkpoints and end over HTTP, and a heartbeat
    thread while it runs."""

    def __init__(self, url: str, token: str, run: Mapping[str, Any]) -> None:
        self.url, self.token = url, token
        self.run_id, self.project_id = int(run["run_id"]), int(run["project_id"])
        self.page = str(run.get("url", ""))
        last = run.get("last_step")
        self.last_step = None if last is None else int(last)
        # The sender thread's, and the script thread's (checkpoints, finish).
        self._sender = Transport(url, token, retries=SEND_RETRIES)
        self._caller = Transport(url, token, retries=SEND_RETRIES)
        self.status = "running"
        self._beat = Heartbeat(url, token, self.run_id, float(run.get("heartbeat_s", 30)),
                               on_answer=self._answered)

    def write(self, columns: Columns) -> None:
        answer = self._sender.post("runs/log", {"run_id": self.run_id, "metrics": columns})
        self.status = str(answer.get("status", self.status))

    def checkpoint(self, path: Path, name: str) -> None:
        target = f"{ARTIFACTS}/{self.project_id}/{self.run_id}/artifacts/checkpoints/{name}"
        with path.open("rb") as source:
            self._caller.put_file(target, source)

    def finish(self, status: str, ended: float, reason: str = "") -> None:
        self._beat.stop()
        try:
            answer = self._caller.post("runs/finish", {"run_id": self.run_id, "status": status,
                                                       "ended": ended, "reason": reason})
            self.status = str(answer.get("status", self.status))
        finally:
            self._caller.close()
            self._sender.close()

    def _answered(self, answer: Mapping[str, Any]) -> None:
        self.status = str(answer["status"])


class Heartbeat:
    """A thread that tells the server a run's script is alive while it is quiet: a beat every
    ``every`` seconds (the first after ``first``, default ``every``; then as often as the
    server's answer says, ``heartbeat_s``), until ``stop``. Each answer goes to ``on_answer``
    (the run's status: "cancelled" when cancelled on its page). A run the token no longer
    reaches (401, 403, 404) is not beaten for any more."""

    def __init__(self, url: str, token: str, run_id: int, every: float, *,
                 first: float | None = None, context: ssl.SSLContext | None = None,
                 on_answer: Callable[[Mapping[str, Any]], None] | None = None) -> None:
        # A transport of its own, with few retries: the next beat is the retry.
        self._transport = Transport(url, token, timeout=every, retries=1, context=context)
        self.run_id, self.every = run_id, every
        self._on_answer = on_answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every if first is None
                                                                  else first,),
                                        name="fitboard-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """End the beats; ``wait``: seconds to wait for the thread (a beat on its way)."""
        self._stop.set()
        if wait:
            self._thread.join(timeout=wait)

    def _loop(self, wait: float) -> None:
        while not self._stop.wait(wait):
            try:
                answer = self._transport.post("runs/heartbeat", {"run_id": self.run_id})
            except FitboardError as exc:
                if exc.status in (401, 403, 404):
                    break
                # a missed beat; the server fails the run only after several
            else:
                self.every = float(answer.get("heartbeat_s", self.every))
                if self._on_answer is not None:
                    self._on_answer(answer)
            wait = self.every
        self._transport.close()


class FileSink:
    """An offline run: one JSON object a line (the run, its batches of points, checkpoints,
    its end), read back by ``fitboard sync``. Checkpoints are copied into ``<file>.files/``:
    the script may overwrite its own copy before the sync."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("x", encoding="utf-8")
        self._lock = threading.Lock()
        self._line(dict(header))

    def write(self, columns: Columns) -> None:
        self._line({"metrics": columns})

    def checkpoint(self, path: Path, name: str) -> None:
        copy = self.path.with_name(self.path.name + ".files") / "checkpoints" / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        self._line({"checkpoint": str(copy.relative_to(self.path.parent)), "name": name})

    def finish(self, status: str, ended: float, reason: str = "") -> None:
        self._line({"finish": status, "ended": ended, "reason": reason})
        self._file.close()

    def _line(self, record: Mapping[str, Any]) -> None:
        # Flushed at each line: a killed script leaves every batch written before it died.
        with self._lock:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
