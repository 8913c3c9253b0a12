"""A local webhook receiver for the notification tests: it records each POST (lowercased
headers, body), holds it until ``release`` is set (set from the start: a receiver as slow as a
test wants once it clears it), then answers the next of ``statuses`` (200 once they run out)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_LIMIT = 120  # seconds a held request waits for the test at most (a failed test's end)


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.answered = 0
        self.release = threading.Event()
        self.release.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/fitboard?team=ml"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.server.release.wait(HOLD_LIMIT)
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.server.answered += 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving() -> Iterator[Receiver]:
    """A receiver answering on a loopback port until the block ends."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
