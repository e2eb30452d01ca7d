"""Library functions stay small: at most about 80 lines and 10 parameters, unless a comment on
the ``def`` line's block says why (``# long: ...``). Tests and notebooks are not library."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES, MAX_PARAMETERS = 80, 10


def library_files() -> list[Path]:
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"].values()
    return sorted(path for folder in folders for path in (ROOT / folder).glob("*.py"))


def oversized(source: str) -> list[str]:
    """``name: lines, parameters`` of every function over the limits without a reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        arguments = node.args
        count = (len(arguments.posonlyargs) + len(arguments.args) + len(arguments.kwonlyargs)
                 + bool(arguments.vararg) + bool(arguments.kwarg))
        if arguments.args and arguments.args[0].arg in ("self", "cls"):
            count -= 1
        length = node.end_lineno - node.lineno + 1
        header = "\n".join(lines[node.lineno - 1:node.body[0].lineno])
        if (length > MAX_LINES or count > MAX_PARAMETERS) and "# long:" not in header:
            found.append(f"{node.name}: {length} lines, {count} parameters")
    return found


def test_no_library_function_is_too_long_or_takes_too_many_parameters():
    problems = [f"{path.relative_to(ROOT)} {problem}" for path in library_files()
                for problem in oversized(path.read_text())]
    assert problems == []


def test_the_check_finds_a_long_function_and_honours_a_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    assert oversized(f"def f():\n{body}\n") == [f"f: {MAX_LINES + 1} lines, 0 parameters"]
    assert oversized(f"def f():  # long: one table\n{body}\n") == []
    many = ", ".join(f"a{i}" for i in range(MAX_PARAMETERS + 1))
    assert oversized(f"def g(self, {many}):\n    pass\n") == [
        f"g: 2 lines, {MAX_PARAMETERS + 1} parameters"]
    assert oversized(f"def g({many[4:]}):\n    pass\n") == []
