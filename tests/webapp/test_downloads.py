"""A file download served over ASGI goes out a block at a time: Django's FileResponse read
the whole file into memory first (a 200 MB artifact took 380 MB of the web process)."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from django.test import AsyncRequestFactory, RequestFactory

from webapp.downloads import BLOCK, file_response

SIZE = 16 * BLOCK


def test_a_file_served_over_asgi_is_read_a_block_at_a_time(tmp_path: Path, db: None):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * (SIZE // 256))
    file = path.open("rb")
    response = file_response(AsyncRequestFactory().get("/weights"), file, "weights.bin")
    assert response["Content-Length"] == str(SIZE)
    assert 'filename="weights.bin"' in response["Content-Disposition"]

    async def sent() -> tuple[int, int, int]:
        tracemalloc.start()
        size = largest = 0
        async for block in response:  # as Django's ASGI handler sends it
            size, largest = size + len(block), max(largest, len(block))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size, largest, peak

    size, largest, peak = asyncio.run(sent())
    assert size == SIZE and largest <= BLOCK
    assert peak < SIZE // 4
    response.close()  # as the handler does once it is sent
    assert file.closed


def test_a_file_served_over_wsgi_is_the_file_response_django_streams(tmp_path: Path, db: None):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"trained elsewhere")
    response = file_response(RequestFactory().get("/notes"), path.open("rb"), "notes.txt",
                             "text/plain")
    assert not response.is_async and response["Content-Type"] == "text/plain"
    assert b"".join(response) == b"trained elsewhere"
    response.close()
