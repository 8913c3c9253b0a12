"""The web server (``webapp.serve``: Daphne) reads no more of a request's body than
FITBOARD_MAX_REQUEST_MB. Daphne wrote any body whole to a temporary file before the application
(and its login check) saw the request: an anonymous 400 MB PUT was on disk before its 401.

The connection is Daphne's own protocol, fed bytes through Twisted's in-memory transport."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from typing import Any

import pytest
from daphne import http_protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from webapp import serve

LIMIT = 1000  # bytes, for the tests: FITBOARD_MAX_REQUEST_MB counts megabytes


class Server:
    """What Daphne's requests ask of its server before they reach the application, and as
    they answer."""

    server_name = ""

    def log_action(self, protocol: str, action: str, details: Any) -> None:
        pass

    def protocol_connected(self, request: Any) -> None:
        pass

    def protocol_disconnected(self, request: Any) -> None:
        pass


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch, settings: Any) -> tuple[Any, StringTransport,
                                                                           list[Any]]:
    """A connection to the server as ``python -m webapp.serve`` builds it, and the requests
    that reached the application."""
    settings.FITBOARD_MAX_REQUEST_BYTES = LIMIT
    monkeypatch.setattr(http_protocol, "WebRequest", http_protocol.WebRequest)  # restored after
    serve.install()
    served: list[Any] = []
    monkeypatch.setattr(serve.BoundedRequest.__mro__[1], "process",
                        lambda request: served.append(request))
    protocol = http_protocol.HTTPFactory(Server()).buildProtocol(("127.0.0.1", 50000))
    protocol.callLater = Clock().callLater  # its idle timeout, off the real reactor
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, served


def headers(*lines: str) -> bytes:
    return ("PUT /api/2.0/mlflow-artifacts/artifacts/1/2/artifacts/x HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def test_a_body_declared_too_large_is_refused_before_a_byte_of_it_is_read(connection):
    protocol, transport, served = connection

    # when a request announces one byte more than the limit, and waits to be told to send it
    protocol.dataReceived(headers(f"Content-Length: {LIMIT + 1}", "Expect: 100-continue"))

    # then it is answered 413 and the connection closes, with no "100 Continue" and nothing
    # handed to the application
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer
    assert transport.disconnecting
    assert served == []


def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_not_kept(connection):
    protocol, transport, served = connection
    protocol.dataReceived(headers("Transfer-Encoding: chunked"))

    # when chunks of 300 bytes keep coming, past the limit
    for _ in range(10):
        protocol.dataReceived(b"12c\r\n" + b"x" * 300 + b"\r\n")
    protocol.dataReceived(b"0\r\n\r\n")

    # then it is refused, what it sent past the limit is dropped, and the application never
    # sees it
    [request] = protocol._channel.requests  # Twisted's HTTP channel, inside its wrapper
    assert transport.value().startswith(b"HTTP/1.1 413 ") and transport.disconnecting
    assert served == []
    request.content.seek(0, 2)
    assert request.content.tell() <= LIMIT


def test_a_body_at_the_limit_reaches_the_application_whole(connection):
    protocol, transport, served = connection

    protocol.dataReceived(headers(f"Content-Length: {LIMIT}") + b"y" * LIMIT)

    assert transport.value() == b"" and not transport.disconnecting
    [request] = served
    request.content.seek(0)
    assert request.content.read() == b"y" * LIMIT


def test_a_body_waits_in_its_file_until_the_application_reads_it():
    """Daphne puts a body in the application's queue 8 kB at a time, all at once: the queue
    keeps where each part lies, and the application reads the parts from the file."""

    class Request:
        content = io.BytesIO(bytes(range(256)) * 16384)  # 4 MB

    body = Request.content.getvalue()

    async def scenario() -> bytes:
        queue = serve.StreamedBody(Request())
        tracemalloc.start()
        while chunk := Request.content.read(8192):  # as Daphne's WebRequest.process does
            queue.put_nowait({"type": "http.request", "body": chunk, "more_body": True})
        queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert held < len(body) // 4  # its parts' lengths, not their bytes
        read = b""
        while (message := await queue.get())["more_body"]:
            read += message["body"]
        Request.content.close()  # the client went away: no more parts to read
        queue.put_nowait({"type": "http.request", "body": b"late", "more_body": False})
        assert await queue.get() == {"type": "http.disconnect"}
        return read

    assert asyncio.run(scenario()) == body


def test_a_response_waits_while_the_connection_cannot_take_more(connection):
    protocol, transport, served = connection
    protocol.dataReceived(b"GET /artifact HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    [request] = served
    request.handle_reply({"type": "http.response.start", "status": 200, "headers": []})
    server = serve.StreamingServer.__new__(serve.StreamingServer)
    server.connections = {request: {}}
    part = {"type": "http.response.body", "body": b"x" * 100, "more_body": True}

    async def scenario() -> None:
        await server.handle_reply(request, part)
        # when the connection's write buffer fills (Twisted pauses its producers)
        transport.producer.pauseProducing()
        sending = asyncio.ensure_future(server.handle_reply(request, part))
        await asyncio.sleep(0.01)
        # then the next part is not taken until it empties
        assert not sending.done()
        transport.producer.resumeProducing()
        await asyncio.wait_for(sending, 5)
        await server.handle_reply(request, {"type": "http.response.body", "body": b"end"})

    asyncio.run(scenario())
    assert transport.value().endswith(b"x" * 100 + b"\r\n3\r\nend\r\n0\r\n\r\n")
    # and the finished response leaves the connection free for the next one's producer
    assert request.flow is None and protocol._channel._requestProducer is None
