"""A fresh Python process for the plugin tests: as installed, or with the example plugin absent
from its path (not an environment switch the code honours: its package is simply not there)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The loader under test: this checkout's, whatever an editable install elsewhere points at.
LOADER_SRC = ROOT / "packages" / "fitboard-model" / "src"
EXAMPLE_NAMES = ("fitboard_example_plugin", "__editable__.fitboard_example_plugin",
                 "__editable___fitboard_example_plugin")


def site_without_example(folder: Path) -> Path:
    """A site folder holding links to every entry of this environment's site-packages but the
    example plugin's module, metadata and editable-install hooks."""
    folder.mkdir(parents=True, exist_ok=True)
    for lib in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(lib).iterdir():
            if entry.name.startswith(EXAMPLE_NAMES) or (folder / entry.name).exists():
                continue
            if entry.suffix == ".pth" and "example" in entry.read_text(errors="replace"):
                continue
            (folder / entry.name).symlink_to(entry)
    return folder


def fresh_python(code: str, tmp: Path, *, without_example: bool) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter; ``without_example``: isolated (``-I -S``: no
    PYTHONPATH, no site-packages), then the links of ``site_without_example`` as its site."""
    if not without_example:
        setup = f"import sys; sys.path.insert(0, {str(LOADER_SRC)!r})\n"
        return subprocess.run([sys.executable, "-c", setup + code], capture_output=True,
                              text=True, timeout=300, cwd=tmp)
    site = site_without_example(tmp / "site")
    setup = (f"import site, sys; site.addsitedir({str(site)!r}); "
             f"sys.path.insert(0, {str(LOADER_SRC)!r})\n")
    return subprocess.run([sys.executable, "-I", "-S", "-c", setup + code],
                          capture_output=True, text=True, timeout=300, cwd=tmp)
