"""The web server: Daphne, with every request's body bounded while it is received.

Daphne (through Twisted) writes a request's whole body to a temporary file before the
application sees the request, and Django's ASGI handler copies it into another before any view,
middleware or login check runs: an anonymous PUT of any size filled the temporary folder (a
400 MB body was on disk before its 401). The upload limits of the views (FITBOARD_UPLOAD_MAX_MB,
counted by ``datasets.uploads.SizeLimitHandler`` and ``tracking.artifacts``) came too late to
stop that. Here a body declared larger than FITBOARD_MAX_REQUEST_MB is refused with 413 before
a byte of it is read, and a body sent without a length (chunked) is refused, its bytes so far
dropped, once it passes the limit; either way the connection closes.

``python -m webapp.serve`` takes Daphne's own arguments (``manage.py up`` and the Docker image
start it so).
"""

from __future__ import annotations

import sys
from typing import Any

from daphne import http_protocol
from daphne.cli import CommandLineInterface

REFUSAL = b"the request body is larger than this server takes (FITBOARD_MAX_REQUEST_MB)\n"


def max_body_bytes() -> int:
    """The largest request body served (read when a request comes: Daphne has loaded the
    application, and with it Django's settings, by then)."""
    from django.conf import settings

    return int(settings.FITBOARD_MAX_REQUEST_BYTES)


class BoundedRequest(http_protocol.WebRequest):  # type: ignore[misc]
    """Daphne's request, refusing a body past ``max_body_bytes`` as it arrives."""

    received = 0
    refused = False

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        if length is not None and length > max_body_bytes():
            # No "100 Continue" follows: a client that waits for it sends nothing.
            self.requestHeaders.removeHeader(b"Expect")
            self._refuse()
        super().gotLength(0 if self.refused else length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self.refused:
            return
        self.received += len(data)
        if self.received > max_body_bytes():
            self._refuse()
            return
        super().handleContentChunk(data)

    def process(self) -> Any:
        if self.refused:  # the connection is closing; the application never sees it
            return None
        return super().process()

    def _refuse(self) -> None:
        self.refused = True
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (len(REFUSAL), REFUSAL))
        transport.loseConnection()  # stops reading at once, then closes once that is sent


def install() -> None:
    """Make Daphne's HTTP factory build ``BoundedRequest``s (it names its request class
    through this module attribute when it builds each connection's protocol)."""
    http_protocol.WebRequest = BoundedRequest


def main(argv: list[str]) -> None:
    install()
    CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
