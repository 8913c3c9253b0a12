"""Two database writers racing for one lock, for the tests of what a lock serialises."""

from __future__ import annotations

import threading
from collections.abc import Callable


def second_while_first_holds(first: Callable[[], None], first_in: threading.Event,
                             second: Callable[[], None], commit: threading.Event) -> None:
    """Run ``first`` until it holds its lock (it sets ``first_in``, then waits for ``commit``),
    start ``second``, give it a second to finish if nothing holds it back (it waits for the
    lock when one is taken), then let ``first`` commit and wait for both."""
    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert first_in.wait(timeout=60)
    second_thread = threading.Thread(target=second)
    second_thread.start()
    second_thread.join(timeout=1)
    commit.set()
    first_thread.join()
    second_thread.join()
