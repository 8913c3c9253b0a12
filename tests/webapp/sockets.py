"""The WebSocket test client of the web tests."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator


class Communicator(WebsocketCommunicator):
    """Channels' communicator with a 10 s wait for the handshake: its default of 1 s is shorter
    than a consumer's first database round trips can take on a loaded 2-core machine (a refused
    connection still answers at once)."""

    async def connect(self, timeout: float = 10) -> tuple[bool, int | str | None]:
        return await super().connect(timeout)
