"""HTTP to a Fitboard server with the standard library: one kept-alive connection per thread,
JSON in and out, retries of what may pass on a second try (a dropped connection, 429, 5xx)."""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import ssl
import time
import urllib.parse
from typing import Any, BinaryIO

API = "/api/fitboard/v1/"
RETRIED = {429, 500, 502, 503, 504}
# Seconds of a server's Retry-After that are waited at most: Fitboard's own 429 says the rest
# of its minute; a longer wait is cut so that a wrong header does not park the client.
MAX_RETRY_AFTER = 120.0


class FitboardError(RuntimeError):
    """The server refused a request (a bad token, a project the token does not reach, bad
    input), or did not answer after every retry. ``status``: the HTTP status of a refusal,
    else None."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """The server did not answer, or answered that it cannot now (429, 5xx): the same
        request may pass later, unlike a refusal of what it carries."""
        return self.status is None or self.status in RETRIED


class Transport:
    """Requests to one server with one token. Not shared between threads: each thread of a
    run has its own (a connection carries one request at a time)."""

    def __init__(self, url: str, token: str, timeout: float = 30.0, retries: int = 8,
                 context: ssl.SSLContext | None = None) -> None:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FitboardError(f"FITBOARD_URL must be http(s)://host[:port], got {url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path
        self.token, self.timeout, self.retries = token, timeout, retries
        self.context = context  # https only: certificates other than the system's
        self._conn: http.client.HTTPConnection | None = None

    def post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to ``/api/fitboard/v1/<route>``; the answer's JSON."""
        # NaN and infinities are written as JSON's extension (Python reads them back); a
        # diverged loss is a point like any other.
        data = json.dumps(body, separators=(",", ":")).encode()
        return self.request("POST", API + route, data, "application/json")

    def put_file(self, path: str, source: BinaryIO) -> dict[str, Any]:
        """PUT a file's bytes at ``path`` (the artifacts proxy)."""
        return self.request("PUT", path, source.read(), "application/octet-stream")

    def request(self, method: str, path: str, data: bytes, kind: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": kind,
                   "Accept": "application/json"}
        delay = 0.5
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                conn = self._connection()
                conn.request(method, self.prefix + path, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()  # a half-read or dropped connection is not reused
                if last:
                    raise FitboardError(f"{self.host}: {exc}") from exc
            else:
                if response.status < 300:
                    return json.loads(payload or b"{}")  # type: ignore[no-any-return]
                if response.status not in RETRIED or last:
                    raise FitboardError(_message(response.status, payload), response.status)
                # A 429 or 503 that says when to come back is waited for as it says: retrying
                # sooner would only be refused again (and count against the same limit).
                asked = retry_after(response.getheader("Retry-After"))
                if asked is not None:
                    time.sleep(asked)
                    continue
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(self.host, self.port,
                                                         timeout=self.timeout,
                                                         context=self.context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), at most
    MAX_RETRY_AFTER; None without one that reads."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _message(status: int, payload: bytes) -> str:
    try:
        answer = json.loads(payload)
        return f"HTTP {status}: {answer.get('message') or answer}"
    except ValueError:
        return f"HTTP {status}: {payload[:200].decode(errors='replace')}"
