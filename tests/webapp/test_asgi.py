"""The ASGI application serves HTTP requests on threads it keeps (``RequestThreads``), and so
keeps their database connections: requests one after another open one connection, not one
each; a thread beyond those kept closes its connections before it ends."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created

from webapp.asgi import REQUEST_THREADS, RequestThreads, application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def close_kept_connections() -> Iterator[None]:
    """After each test, the kept thread's connection is closed: a test database (PostgreSQL's)
    is dropped at the session's end only when no connection to it is open."""
    yield
    executor = REQUEST_THREADS.take()
    executor.submit(connections.close_all).result()
    REQUEST_THREADS.give_back(executor)


def get_with_unknown_token() -> int:
    """A tracking API call whose token is looked up (a query) and not found: 401."""
    async def call() -> dict[str, Any]:
        communicator = HttpCommunicator(
            application, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=x",
            headers=[(b"host", b"127.0.0.1"), (b"authorization", b"Bearer fb_unknown")])
        return await communicator.get_response(timeout=10)
    return int(async_to_sync(call)()["status"])


def test_requests_one_after_another_open_one_database_connection():
    opened: list[object] = []

    def count(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(connection)

    connection_created.connect(count)
    try:
        statuses = [get_with_unknown_token() for _ in range(3)]
    finally:
        connection_created.disconnect(count)

    assert statuses == [401, 401, 401]
    assert len(opened) <= 1  # none when an earlier test left its thread's connection open


def test_a_thread_beyond_those_kept_closes_its_connections_and_ends():
    threads = RequestThreads()
    executors = [threads.take() for _ in range(RequestThreads.KEEP + 1)]
    wrappers = [e.submit(lambda: (connections["default"].ensure_connection(),
                                  connections["default"])[1]).result() for e in executors]

    for executor in executors:
        threads.give_back(executor)
    executors[-1].shutdown(wait=True)

    assert wrappers[-1].connection is None  # closed in its own thread
    assert all(wrapper.connection is not None for wrapper in wrappers[:-1])
    assert threads.take() is executors[-2]  # the last one given back and kept
    for wrapper, executor in zip(wrappers[:-1], executors[:-1], strict=True):
        executor.submit(wrapper.close).result()
        executor.shutdown()


def open_then_end_work() -> object:
    """Open this thread's connection, then end a unit of work as Django does after a request,
    a task or a consumer's database call: the connection, or None once it is closed."""
    connections["default"].ensure_connection()
    close_old_connections()
    return connections["default"].connection


def test_only_the_kept_request_threads_keep_their_connections():
    threads = RequestThreads()
    kept = threads.take()
    other = ThreadPoolExecutor(max_workers=1)  # as Channels runs a consumer's database calls
    try:
        # when each opens a connection and ends its work
        kept_connection = kept.submit(open_then_end_work).result()
        other_connection = other.submit(open_then_end_work).result()

        # then the request thread still holds its connection, the other thread none
        assert kept_connection is not None
        assert other_connection is None
    finally:
        kept.submit(connections.close_all).result()
        kept.shutdown()
        other.shutdown()
