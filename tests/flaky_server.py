"""A proxy in front of a live server that fails the way a real network and server do: it goes
away (connections refused) and comes back on the same port, answers 5xx or 429 with a
Retry-After, or answers slowly. Tests of the native client point ``fitboard`` at it."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FlakyServer:
    """Forwards every request to ``upstream`` unless told to fail. ``down()`` stops listening
    (the client's connections are refused), ``up()`` listens again on the same port;
    ``fail(status, times, retry_after)`` answers the next ``times`` requests with ``status``;
    ``lose_answers(times)`` forwards the next ``times`` requests and cuts the connection
    instead of answering (the server stored them; the client never hears); ``delay`` seconds
    are waited before each forwarded request. ``seen`` holds each request's
    (path, status answered, monotonic time)."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "localhost", parts.port or 80)
        self.port = 0
        self.delay = 0.0
        self.seen: list[tuple[str, int, float]] = []
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.open: set[socket.socket] = set()  # kept-alive connections, cut by down()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        handler = type("Handler", (_Forward,), {"proxy": self})
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self.open):  # as a server that went away: no answer on them either
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures += [(status, retry_after)] * times

    def lose_answers(self, times: int = 1) -> None:
        self.fail(0, times)

    def next_failure(self) -> tuple[int, str | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def answered(self, route: str) -> list[tuple[int, float]]:
        """(status, time) of each request to a path ending in ``route``."""
        return [(status, when) for path, status, when in self.seen if path.endswith(route)]


class _Forward(BaseHTTPRequestHandler):
    proxy: FlakyServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.proxy.open.add(self.connection)

    def finish(self) -> None:
        self.proxy.open.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # the test's output stays readable

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        self._forward()

    def do_PUT(self) -> None:  # noqa: N802
        self._forward()

    def do_GET(self) -> None:  # noqa: N802
        self._forward()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        failure = self.proxy.next_failure()
        if failure is not None and failure[0] == 0:
            self._upstream(body)
            self.proxy.seen.append((self.path, 0, time.monotonic()))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if failure is not None:
            status, retry_after = failure
            self._answer(status, b'{"message": "injected"}',
                         {"Retry-After": retry_after} if retry_after else {})
            return
        time.sleep(self.proxy.delay)
        self._answer(*self._upstream(body), {})

    def _upstream(self, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        answer = response.status, response.read()
        conn.close()
        return answer

    def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.proxy.seen.append((self.path, status, time.monotonic()))
        self.send_response(status)
        for key, value in {**headers, "Content-Type": "application/json",
                           "Content-Length": str(len(payload))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def flaky(upstream: str) -> Iterator[FlakyServer]:
    proxy = FlakyServer(upstream)
    try:
        yield proxy
    finally:
        proxy.down()
