"""The web server: Daphne, with every request's body bounded while it is received.

Daphne (through Twisted) writes a request's whole body to a temporary file before the
application sees the request, and Django's ASGI handler copies it into another before any view,
middleware or login check runs: an anonymous PUT of any size filled the temporary folder (a
400 MB body was on disk before its 401). The upload limits of the views (FITBOARD_UPLOAD_MAX_MB,
counted by ``datasets.uploads.SizeLimitHandler`` and ``tracking.artifacts``) came too late to
stop that. Here a body declared larger than FITBOARD_MAX_REQUEST_MB is refused with 413 before
a byte of it is read, and a body sent without a length (chunked) is refused, its bytes so far
dropped, once it passes the limit; either way the connection closes.

Each body alone within that limit, bodies sent at once were not: Daphne authenticates nothing
before a body is whole, so anyone could fill the temporary folder with uploads sent together.
The bodies one process holds (received, until their request ends) are bounded too, by
FITBOARD_MAX_REQUEST_BODIES_MB: past it, a body of more than ``SMALL_BODY`` is refused with
503 (and Retry-After, which clients such as mlflow's retry on) while it is received; smaller
ones, a tracking call's JSON, still pass.

Daphne then hands the application the body it wrote to that file by putting every 8 kB of it
in the application's input queue at once: a 200 MB artifact was 200 MB of the server's memory
until the view had copied it out. ``StreamedBody`` keeps in the queue only where each piece
lies, and reads it from the file when the application asks for it. Going out, Daphne wrote
each part of a response to the connection as the application gave it, however slowly the
client read: a streamed download piled up in Twisted's write buffer, as large as the file.
``StreamingServer`` waits, before taking the next part, for that buffer to drain
(``Flow``).

``python -m webapp.serve`` takes Daphne's own arguments (``manage.py up`` and the Docker image
start it so).
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from typing import Any

from daphne import http_protocol
from daphne.cli import CommandLineInterface
from daphne.server import Server

DaphneRequest = http_protocol.WebRequest  # before install() puts BoundedRequest in its place
REFUSAL = b"the request body is larger than this server takes (FITBOARD_MAX_REQUEST_MB)\n"
BUSY = (b"the server holds as many request bodies as it takes at once "
        b"(FITBOARD_MAX_REQUEST_BODIES_MB): try again shortly\n")
SMALL_BODY = 1 << 16  # bytes of a body never refused for the others held (a tracking call's)


def max_body_bytes() -> int:
    """The largest request body served (read when a request comes: Daphne has loaded the
    application, and with it Django's settings, by then)."""
    from django.conf import settings

    return int(settings.FITBOARD_MAX_REQUEST_BYTES)


def max_bodies_bytes() -> int:
    """The most bytes of request bodies one process holds at once (read as ``max_body_bytes``)."""
    from django.conf import settings

    return int(settings.FITBOARD_MAX_REQUEST_BODIES_BYTES)


class Flow:
    """Whether a response's connection takes more now: a push producer registered with the
    request, which Twisted pauses while the connection's write buffer is full."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's names
        self.writable.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self.writable.set()

    def stopProducing(self) -> None:  # noqa: N802 - the connection is gone: wait no more
        self.writable.set()


class BoundedRequest(http_protocol.WebRequest):  # type: ignore[misc]
    """Daphne's request, refusing a body past ``max_body_bytes`` as it arrives, and telling
    when its response's connection takes more (``flow``)."""

    received = 0
    refused = False
    flow: Flow | None = None  # while a response's body goes out in parts
    held = 0  # bytes of this request's body counted in ``all_held``
    # Of every request of this process: changed on the reactor's thread alone.
    all_held = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        if length is not None and length > max_body_bytes():
            # No "100 Continue" follows: a client that waits for it sends nothing.
            self.requestHeaders.removeHeader(b"Expect")
            self._refuse(b"413 Content Too Large", REFUSAL)
        super().gotLength(0 if self.refused else length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self.refused:
            return
        self.received += len(data)
        if self.received > max_body_bytes():
            self._refuse(b"413 Content Too Large", REFUSAL)
            return
        if (self.received > SMALL_BODY
                and BoundedRequest.all_held + len(data) > max_bodies_bytes()):
            self._refuse(b"503 Service Unavailable", BUSY, b"Retry-After: 5\r\n")
            return
        self.held += len(data)
        BoundedRequest.all_held += len(data)
        super().handleContentChunk(data)

    def _release(self) -> None:
        """The request ended, and its body file with it: its bytes are held no more."""
        BoundedRequest.all_held -= self.held
        self.held = 0

    def process(self) -> Any:
        if self.refused:  # the connection is closing; the application never sees it
            return None
        return super().process()

    def handle_reply(self, message: dict[str, Any]) -> None:
        if (message.get("type") == "http.response.body" and message.get("more_body", False)
                and self.flow is None and not self.finished and self.channel is not None):
            self.flow = Flow()
            self.registerProducer(self.flow, True)
        super().handle_reply(message)

    def finish(self) -> None:
        # However the response ends (its last part, or Daphne ending it on an error), the
        # connection's next request may register its own.
        if self.flow is not None and self.channel is not None:
            self.unregisterProducer()
        self.flow = None
        self._release()
        super().finish()

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        if self.flow is not None:
            self.flow.stopProducing()
        self._release()
        super().connectionLost(reason)

    def _refuse(self, status: bytes, text: bytes, headers: bytes = b"") -> None:
        self.refused = True
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\n%s"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (status, headers, len(text), text))
        transport.loseConnection()  # stops reading at once, then closes once that is sent


class StreamedBody(asyncio.Queue[dict[str, Any]]):
    """The application's input queue for an HTTP request: each part of the body that Daphne
    puts in it is kept as its length, and read from the request's body file (which Daphne has
    read through from its start) when the application takes it out."""

    def __init__(self, request: Any) -> None:
        super().__init__()
        self.request = request
        self.offset = 0  # of the next part in the body file

    def put_nowait(self, message: dict[str, Any]) -> None:
        if message.get("type") == "http.request":
            message = {**message, "body": len(message.get("body", b""))}
        super().put_nowait(message)

    async def get(self) -> dict[str, Any]:
        message = await super().get()
        if message.get("type") != "http.request":
            return message
        content = self.request.content
        if content is None or content.closed:  # the client went away, and the file with it
            return {"type": "http.disconnect"}
        content.seek(self.offset)
        body = content.read(message["body"])
        self.offset += len(body)
        return {**message, "body": body}


class StreamingServer(Server):  # type: ignore[misc]
    """Daphne's server, giving each HTTP request's application a ``StreamedBody``, and taking
    the next part of a response once the connection has sent the last (``Flow``)."""

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        await super().handle_reply(protocol, message)
        flow = getattr(protocol, "flow", None)
        if flow is not None:
            await flow.writable.wait()

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        if not isinstance(protocol, DaphneRequest):  # a WebSocket: its messages are small
            return super().create_application(protocol, scope)
        # Daphne's own, but for the queue.
        assert "application_instance" not in self.connections[protocol]
        queue = StreamedBody(protocol)
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=queue.get,
                                    send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            instance, loop=asyncio.get_event_loop())
        return queue


def install() -> None:
    """Make Daphne's HTTP factory build ``BoundedRequest``s (it names its request class
    through this module attribute when it builds each connection's protocol)."""
    http_protocol.WebRequest = BoundedRequest


def main(argv: list[str]) -> None:
    install()
    cli = CommandLineInterface()
    cli.server_class = StreamingServer
    cli.run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
