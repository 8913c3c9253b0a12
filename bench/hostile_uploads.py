"""Time and peak extra memory of the web request's work for every hostile upload of
``tests/webapp/test_security_uploads.py``: each case runs in a fresh child process that builds
the upload, then calls the form's action (``webapp.datasets.services.prepare_upload``) and
measures its wall time and the growth of the process's peak resident memory (ru_maxrss).

Usage, from the repo root: ``.venv/bin/python bench/hostile_uploads.py`` (a few minutes: one
Python start per case). Prints one line per case and a SCORECARD summary: refused / total, the
slowest case in seconds and the largest peak growth in MB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def setup() -> Path:
    """Django on a scratch var folder (no real database or media is touched); the folder."""
    sys.path.insert(0, str(ROOT))
    scratch = Path(tempfile.mkdtemp(prefix="fitboard-hostile-"))
    os.environ["FITBOARD_VAR_DIR"] = str(scratch / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    return scratch


def measure(name: str) -> dict[str, Any]:
    """Run one case in this process (a fresh child) and return its figures."""
    scratch = setup()
    from django.conf import settings

    from tests.webapp.test_security_uploads import CLEANING, HOSTILE, build
    from training.data.uploads import UploadError
    from webapp.datasets.services import prepare_upload

    case = HOSTILE[name]
    for setting, value in case.settings.items():
        setattr(settings, setting, value)
    settings.MEDIA_ROOT = scratch / "media"
    settings.FITBOARD_DATASETS_LOCAL_DIRS = [scratch / "data"]
    (scratch / "data").mkdir()
    (scratch / "data" / "outside").symlink_to("/etc")
    content = build(case, scratch)
    options = {**CLEANING, **case.fields}
    if len(content) > settings.FITBOARD_UPLOAD_MAX_BYTES:  # the form refuses it unread
        return {"case": name, "refused_on": "file", "seconds": 0.0, "extra_mb": 0.0}
    upload = tempfile.SpooledTemporaryFile(max_size=2**21)
    upload.write(content)
    upload.seek(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        prepare_upload(case.kind, options, upload if content else None, case.file_name, "bench")
        refused_on = ""
    except UploadError as exc:
        refused_on = exc.field
    seconds = time.perf_counter() - started
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux
    return {"case": name, "refused_on": refused_on, "expected": case.refused_on,
            "seconds": round(seconds, 3), "extra_mb": round(extra, 1)}


def main() -> None:
    setup()
    from tests.webapp.test_security_uploads import HOSTILE

    results = []
    for name in HOSTILE:
        out = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True,
                             cwd=ROOT, timeout=600)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"case": name, "error": out.stderr[-300:]}
        results.append(result)
        print(json.dumps(result), flush=True)
    refused = sum(1 for r in results if r.get("refused_on") and
                  r.get("refused_on") == r.get("expected", r.get("refused_on")))
    print(f"SCORECARD hostile uploads refused on their field: {refused}/{len(results)}; "
          f"slowest {max(r.get('seconds', 0) for r in results):.2f} s; "
          f"largest peak growth {max(r.get('extra_mb', 0) for r in results):.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(measure(sys.argv[1])))
    else:
        main()
