"""`make lint`: count the imports of ``webapp.*`` written inside functions, print them, and fail
when there are 5 or more. Such imports used to hold import cycles together; the import-linter
contracts (.importlinter) now forbid the cycles, and the few left are ones Django or torchrun
require (an app's ``ready()``, a Celery signal handler that runs before the apps load)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 5
ROOT = Path(__file__).resolve().parent.parent


def inner_imports(package: Path) -> list[str]:
    """``path:line module`` of every ``webapp.*`` import inside a function of ``package``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                         else [a.name for a in node.names] if isinstance(node, ast.Import)
                         else [])
                for name in names:
                    if name == "webapp" or name.startswith("webapp."):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return sorted(set(found))


def main() -> int:
    found = inner_imports(ROOT / "webapp")
    print(f"imports of webapp.* inside functions: {len(found)} (limit: fewer than {LIMIT})")
    for line in found:
        print(f"  {line}")
    return 0 if len(found) < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
