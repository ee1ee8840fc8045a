"""The project's shape, read from its own source: one-way imports, no cycle, every command in its own home,
the CLI and MLflow in theirs, the generator and the project's own studies outside the library, and every
module and package saying what its one job is."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGES = ("research", "videogen", "studies")  # the library; the demo-video generator and our studies beside it
LIBRARY_STAGES = (
    "config",
    "data",
    "video",
    "features",
    "backbones",
    "models",
    "engine",
    "tuning",
    "tracking",
    "commands",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``: code that runs only when the module is executed, never on import."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, function-local?)`` for every import, those under the ``__main__`` guard included:
    ``python -m X`` runs them, so a guarded import that comes back to X loads a second copy of X."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, inner))
                # ``from research import tracking`` imports the module research.tracking
                found.extend((f"{child.module}.{alias.name}", inner) for alias in child.names)
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def has_main_guard(path: Path) -> bool:
    return any(_is_main_guard(node) for node in ast.parse(path.read_text()).body)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}
GRAPH = {name: sorted({m for m, _ in imports_of(path) if m in MODULES and m != name}) for name, path in MODULES.items()}
# Entry points (``python -m ...``): they may import the CLI; nothing imports them.
ENTRY_POINTS = {"studies.results", "videogen.__main__"} | {
    name for name in MODULES if name == "research.commands" or name.startswith("research.commands.")
}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for name in graph:
        if name not in state and (cycle := walk(name, [name])):
            return cycle
    return None


def misplaced_imports(name: str, imported: list[str], entry_points: set[str]) -> list[str]:
    """What ``name`` must not import: an entry point (nobody may), the CLI (only entry points may)."""
    return [m for m in imported if m in entry_points or (m == "research.cli" and name not in entry_points)]


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"research.cli"}))
def test_nothing_imports_an_entry_point_and_only_entry_points_import_the_cli(name: str) -> None:
    bad = misplaced_imports(name, GRAPH[name], ENTRY_POINTS)
    assert not bad, f"{name} imports {bad}: the CLI and entry points sit on top of the library, not inside it"


def test_only_entry_points_answer_python_m() -> None:
    """A library module with a ``__main__`` block would be loaded twice by ``python -m`` (as ``__main__`` and
    as itself, once its command imports it back): every command has a module of its own instead."""
    guarded = {name for name, path in MODULES.items() if has_main_guard(path)}
    assert guarded <= ENTRY_POINTS, f"library modules with a __main__ block: {sorted(guarded - ENTRY_POINTS)}"


def test_python_m_loads_each_entry_point_once() -> None:
    """Run every command's ``--help`` as ``python -m`` does, in one fresh process: afterwards none of them
    is in ``sys.modules`` under its own name (nothing imported a second copy)."""
    names = sorted(m.removesuffix(".__main__") for m in ENTRY_POINTS if m != "research.commands")
    script = (
        "import runpy, sys\n"
        f"names = {names!r}\n"
        "for name in names:\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        "        runpy.run_module(name, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = [n for n in names if n in sys.modules and n != 'videogen']\n"
        "loaded += ['videogen.__main__'] if 'videogen.__main__' in sys.modules else []\n"
        "print('LOADED', loaded)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("outside", ["videogen", "studies"])
def test_the_library_never_imports_the_generator_or_the_studies(outside: str) -> None:
    users = {
        f"{name}: {m}"
        for name, path in MODULES.items()
        if name.startswith("research")
        for m, _ in imports_of(path)
        if m.split(".")[0] == outside
    }
    assert not users, sorted(users)


def test_mlflow_is_imported_only_by_the_tracking_module() -> None:
    users = sorted(
        name for name, path in MODULES.items() if any(m.split(".")[0] == "mlflow" for m, _ in imports_of(path))
    )
    assert users in ([], ["research.tracking"]), users


def test_project_imports_are_at_module_level() -> None:
    """A function-local project import hides what a module depends on."""
    local = [
        f"{name}: {m}"
        for name, path in MODULES.items()
        for m, inner in imports_of(path)
        if inner and m.split(".")[0] in PACKAGES
    ]
    assert not local, local


def test_the_tree_reads_as_the_pipeline_and_every_module_says_its_job() -> None:
    """One job per module (not a line cap): each module's docstring names it, each package's why it exists."""
    stages = sorted(p.name for p in (ROOT / "research").iterdir() if (p / "__init__.py").is_file())
    assert stages == sorted(LIBRARY_STAGES)
    silent = [name for name, path in MODULES.items() if not (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert not silent, f"modules without a docstring saying what they are for: {silent}"


def test_an_old_module_name_says_where_it_went() -> None:
    """Modules that moved when the package was arranged by job: ``python -m OLD`` names the new command."""
    import research

    for old, new in research.MOVED.items():
        assert new in MODULES, (old, new)
    proc = subprocess.run(
        [sys.executable, "-m", "research.demo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "research.demo moved to research.commands.pipeline" in proc.stderr
    assert "python -m research.commands.pipeline" in proc.stderr


def test_the_checker_sees_cycles_guarded_and_local_imports(tmp_path: Path) -> None:
    """The rules above can fail: a function-local import is seen, and so is one under the main guard, which
    closes a cycle and is an import of the CLI by a library module."""
    library, command = tmp_path / "library.py", tmp_path / "command.py"
    library.write_text(
        "import os\n"
        "def f():\n    from research import errors\n"
        'if __name__ == "__main__":\n    from research.commands.tool import main\n'
    )
    command.write_text("from research.cli import run_cli\nfrom research import library\n")
    found = imports_of(library)
    assert ("os", False) in found and ("research.errors", True) in found
    assert ("research.commands.tool", False) in found
    assert has_main_guard(library) and not has_main_guard(command)
    graph = {
        "research.library": ["research.commands.tool"],
        "research.commands.tool": sorted({m for m, _ in imports_of(command)} & {"research.cli", "research.library"}),
    }
    assert find_cycle(graph) == ["research.library", "research.commands.tool", "research.library"]
    entry = {"research.commands.tool"}
    assert misplaced_imports("research.library", graph["research.library"], entry) == ["research.commands.tool"]
    assert misplaced_imports("research.commands.tool", graph["research.commands.tool"], entry) == []
    assert misplaced_imports("research.errors", ["research.cli"], entry) == ["research.cli"]
