"""Whether each catalog data set can be read by a worker: present in ``FITBOARD_DATA_DIR``,
downloadable (image sets, when downloads are on and their source answers), or missing.

The form says it beside the dataset field and refuses a missing set at submit, so a run never
queues only to fail with "could not download ... Name or service not known".
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from pathlib import Path

from django.conf import settings

from training.data.catalog import CATALOG
from training.data.files import REMOTE

PRESENT, DOWNLOADABLE, MISSING = "present", "downloadable", "missing"
# Files the text sets are read from (training/data/text.py); they have no download source.
TEXT_FILES: dict[str, tuple[str, ...]] = {
    "sst2": ("sst2/train.tsv", "sst2/dev.tsv"),
    "imdb_sentences": ("uci_sentiment/imdb_labelled.txt",),
}
# A source host's answer is remembered this long (seconds): the form is drawn often, and an
# unreachable host costs up to REACH_TIMEOUT_S on each look.
REACH_TTL_S = 300.0
REACH_TIMEOUT_S = 2.0
_reach: dict[tuple[str, int], tuple[float, bool]] = {}  # (host, port) → (when, answered)


def _files(name: str) -> tuple[str, ...]:
    if name in REMOTE:
        return tuple(f"{REMOTE[name].folder}/{f}" for f in REMOTE[name].sha256)
    return TEXT_FILES.get(name, ())


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _probe(urls: list[str]) -> None:
    """Try a TCP connection to each url's host whose answer is not remembered, all at once,
    for at most REACH_TIMEOUT_S in all, name lookups included (getaddrinfo has no timeout of
    its own, so each runs in a thread that an unanswered lookup leaves behind)."""
    now = time.monotonic()
    stale = {_address(u) for u in urls
             if _address(u) not in _reach or now - _reach[_address(u)][0] > REACH_TTL_S}
    answers: dict[tuple[str, int], bool] = {}

    def attempt(address: tuple[str, int]) -> None:
        try:
            socket.create_connection(address, timeout=REACH_TIMEOUT_S).close()
            answers[address] = True
        except OSError:
            answers[address] = False

    threads = [threading.Thread(target=attempt, args=(a,), daemon=True) for a in stale]
    for thread in threads:
        thread.start()
    deadline = now + REACH_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for address in stale:
        _reach[address] = (now, answers.get(address, False))


def reachable(url: str) -> bool:
    """Whether ``url``'s host accepts connections, remembered for REACH_TTL_S."""
    _probe([url])
    return _reach[_address(url)][1]


def availability(name: str) -> str:
    """PRESENT, DOWNLOADABLE or MISSING for a catalog set (sklearn's sets ship with sklearn)."""
    files = _files(name)
    root = Path(settings.FITBOARD_DATA_DIR)
    if all((root / f).is_file() for f in files):
        return PRESENT
    if (name in REMOTE and settings.FITBOARD_DATA_DOWNLOAD
            and any(reachable(url) for url in REMOTE[name].base_urls)):
        return DOWNLOADABLE
    return MISSING


def catalog_availability() -> dict[str, str]:
    """Every catalog set's availability, for the form's dataset menu."""
    _probe([url for remote in REMOTE.values() for url in remote.base_urls])
    return {name: availability(name) for name in CATALOG}


def missing_problem(name: str) -> str:
    """Why a run on ``name`` would fail to find its data ("" when it would not)."""
    if name not in CATALOG or availability(name) != MISSING:
        return ""
    why = ("downloads are off (FITBOARD_DATA_DOWNLOAD=false)"
           if name in REMOTE and not settings.FITBOARD_DATA_DOWNLOAD
           else "its source cannot be reached from here" if name in REMOTE
           else "it has no download source")
    fetch = (f"run `python manage.py fetchdata {name}` on a machine with the internet, or "
             if name in REMOTE else "")
    return (f"{CATALOG[name].title} is not in the data directory (FITBOARD_DATA_DIR = "
            f"{settings.FITBOARD_DATA_DIR}) and {why}: {fetch}copy its files into "
            "FITBOARD_DATA_DIR")
