"""No import cycle among stingy's modules, each room imports only what it may, and the library
never imports the command line.

Every import statement counts, at module level or inside a function: an import inside a
function runs later, when called, but the two modules still need each other."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# {room: the stingy packages none of its modules may import}
FORBIDDEN = {
    "stingy.figures": ("stingy.empirical", "stingy.simulations", "stingy.pipeline"),
    "stingy.benchmarks": ("stingy.figures",),
}


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


def import_statements(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in the file, at any depth (functions, classes, if blocks)."""
    return [node for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))]


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The ``known`` modules that module ``name`` (file ``path``) imports, in any import
    statement. Importing ``a.b.c`` runs ``a`` and ``a.b`` first, except the importer's own
    parent packages, which are already running; taking a name (not a submodule) from a
    package needs that package to have run, parent or not."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    if path.stem == "__init__":
        own.add(name)
    found = set()
    for node in import_statements(path):
        if isinstance(node, ast.Import):
            targets, named = [alias.name for alias in node.names], []
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = submodules or [base]
            named = [base] if len(submodules) < len(node.names) else []
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                      if ".".join(parts[:i]) in known and ".".join(parts[:i]) not in own}
        found |= {base for base in named if base in known}
    found.discard(name)
    return found


def import_graph(files: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """{module: the modules it imports} over ``files`` (default: all of stingy's)."""
    files = module_files() if files is None else files
    return {name: imports(path, name, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
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


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_make_a_cycle(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("def f():\n    from p.b import g\n    return g()\n")
    (tmp_path / "b.py").write_text("def g():\n    from p import a\n    return a\n")
    files = {"p": tmp_path / "__init__.py", "p.a": tmp_path / "a.py", "p.b": tmp_path / "b.py"}
    assert import_graph(files) == {"p": set(), "p.a": {"p.b"}, "p.b": {"p.a"}}
    assert find_cycle(import_graph(files)) == ["p.a", "p.b", "p.a"]


def test_a_name_taken_from_a_running_parent_package_is_a_dependency(tmp_path):
    known = {"p", "p.a", "p.b"}
    (tmp_path / "a.py").write_text("from p.b import f\nfrom p import g\n")
    assert imports(tmp_path / "a.py", "p.a", known) == {"p.b", "p"}
    (tmp_path / "a.py").write_text("from p.b import f\nimport os\n")
    assert imports(tmp_path / "a.py", "p.a", known) == {"p.b"}


def test_the_import_graph_covers_every_layer():
    graph = import_graph()
    assert {"stingy.cli", "stingy.methods", "stingy.theory.values", "stingy.simulations.runner",
            "stingy.pipeline", "stingy.benchmarks.run"} <= set(graph)
    assert "stingy.methods" in graph["stingy.simulations.training"]
    assert "stingy.empirical.data" in graph["stingy.pipeline"]  # inside a function


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_each_room_imports_only_what_it_may():
    """Figures read result files and draw: they import neither the layers that make the
    results nor the pipeline that runs them; benchmarks do not import figures."""
    offenders = [f"{module} imports {target}"
                 for module, targets in sorted(import_graph().items())
                 for room, forbidden in FORBIDDEN.items() if within(module, room)
                 for target in sorted(targets) if any(within(target, f) for f in forbidden)]
    assert offenders == []


def test_the_theory_never_imports_matplotlib():
    offenders = []
    for name, path in module_files().items():
        if not within(name, "stingy.theory"):
            continue
        for node in import_statements(path):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""])
            offenders += [f"{name} imports {m}" for m in modules if within(m, "matplotlib")]
    assert offenders == []


def test_only_the_command_line_imports_command_line_modules():
    """Library modules never import stingy.cli or a command-line module, at any depth."""
    graph = import_graph()
    cli = {name for name in graph if name.rpartition(".")[2].endswith("cli")}
    offenders = [f"{name} imports {target}" for name, targets in sorted(graph.items())
                 if name not in cli and name != "stingy.__main__"
                 for target in sorted(targets & cli)]
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
