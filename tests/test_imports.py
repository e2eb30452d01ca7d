"""No import cycle among stingy's modules, and the library never imports the command line."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files() -> dict[str, Path]:
    """{module name: file} through pyproject.toml's package-dir mapping."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    modules = {}
    for package, folder in mapping.items():
        for path in (ROOT / folder).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def load_time_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """stingy modules that must run when ``path`` loads: module-level imports only (an import
    inside a function runs later, when called). Importing ``a.b.c`` runs ``a`` and ``a.b``
    first, except the importer's own parent packages, which are already running; taking a
    name (not a submodule) from a package needs that package to have run, parent or not."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    if path.stem == "__init__":
        own.add(name)
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            targets, named = [alias.name for alias in node.names], []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = submodules or [base]
            named = [base] if len(submodules) < len(node.names) else []
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                      if ".".join(parts[:i]) in known and ".".join(parts[:i]) not in own}
        found |= {base for base in named if base in known}
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: load_time_imports(path, name, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_name_taken_from_a_running_parent_package_is_a_dependency(tmp_path):
    known = {"p", "p.a", "p.b"}
    (tmp_path / "a.py").write_text("from p.b import f\nfrom p import g\n")
    assert load_time_imports(tmp_path / "a.py", "p.a", known) == {"p.b", "p"}
    (tmp_path / "a.py").write_text("from p.b import f\nimport os\n")
    assert load_time_imports(tmp_path / "a.py", "p.a", known) == {"p.b"}


def test_the_import_graph_covers_every_layer():
    graph = import_graph()
    assert {"stingy.cli", "stingy.methods", "stingy.theory.values", "stingy.simulations.runner",
            "stingy.pipeline", "stingy.benchmarks.run"} <= set(graph)
    assert "stingy.methods" in graph["stingy.simulations.training"]


def test_no_module_level_import_cycle():
    assert find_cycle(import_graph()) is None


def test_only_the_command_line_imports_command_line_modules():
    """Library modules never import stingy.cli or a layer's cli module, at any depth."""
    files = module_files()
    cli = {name for name in files if name == "stingy.cli" or name.endswith(".cli")}
    offenders = []
    for name, path in files.items():
        if name in cli or name == "stingy.__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in cli:
                offenders.append(f"{name} imports {node.module}")
            if isinstance(node, ast.Import):
                offenders += [f"{name} imports {a.name}" for a in node.names if a.name in cli]
    assert offenders == []


def test_fresh_interpreters_import_the_command_line_and_reproduce_apart():
    code = ("import sys, stingy.cli; "
            "assert not [m for m in sys.modules if m.startswith('stingy.figures')]; "
            "print('ok')")
    other = ("import sys, stingy.pipeline, stingy.simulations, stingy.theory; "
             "assert 'stingy.cli' not in sys.modules; print('ok')")
    for source in (code, other):
        result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                                timeout=120)
        assert result.stdout.strip() == "ok", result.stderr
