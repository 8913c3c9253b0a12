"""No function in the engine or the web app is longer than a screen: past that a function does
several things, and each deserves a name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60  # from the ``def`` line to the last line of the body, docstring included


def long_functions(package: Path) -> list[str]:
    """``path:line name (N lines)`` for each function (nested ones too) in ``package``'s
    Python files over MAX_LINES lines; generated migrations are not read."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    where = path.relative_to(package.parent)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


@pytest.mark.parametrize("package", ["training", "webapp"])
def test_no_function_is_longer_than_sixty_lines(package: str) -> None:
    assert long_functions(ROOT / package) == []


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    # given a module with one function of 61 lines and one of 60
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    (tmp_path / "module.py").write_text(f"def long():\n{body}    return 0\n\n\n"
                                        f"def short():\n{body}")

    # then only the long one is listed
    assert [entry.split(" ")[1] for entry in long_functions(tmp_path)] == ["long"]
