"""The package's shape, read from its own source: one-way imports, no cycle, the CLI and MLflow in their homes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "research"
# Entry points (``python -m ...``): they may import the CLI; no library module may import them.
ENTRY_POINTS = {"research.demo", "research.ablation", "research.results", "research.commands", "research.cv"}
LONG_ALLOWED = {"research.data.synthetic"}  # the procedural generator: one drawing routine per subcategory


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
    """``(imported module, function-local?)`` for every import outside the ``__main__`` guard."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_main_guard(child):
                continue
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


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: sorted({m for m, _ in imports_of(path) if m in MODULES and m != name}) for name, path in MODULES.items()}


def test_there_is_no_import_cycle() -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in GRAPH[node]:
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for name in GRAPH:
        if name not in state:
            walk(name, [name])


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"research.cli"}))
def test_nothing_imports_an_entry_point_and_only_entry_points_import_the_cli(name: str) -> None:
    bad = [m for m in GRAPH[name] if m in ENTRY_POINTS or (m == "research.cli" and name not in ENTRY_POINTS)]
    assert not bad, f"{name} imports {bad}: the CLI and entry points sit on top of the library, not inside it"


def test_mlflow_is_imported_only_by_the_tracking_module() -> None:
    users = sorted(
        name for name, path in MODULES.items() if any(m.split(".")[0] == "mlflow" for m, _ in imports_of(path))
    )
    assert users in ([], ["research.tracking"]), users


def test_project_imports_are_at_module_level() -> None:
    """A function-local ``research.*`` import hides what a module depends on."""
    local = [
        f"{name}: {m}"
        for name, path in MODULES.items()
        for m, inner in imports_of(path)
        if inner and m.startswith("research")
    ]
    assert not local, local


def test_modules_stay_short() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if name not in LONG_ALLOWED and (n := len(path.read_text().splitlines())) > 420
    }
    assert not long, f"split these modules by job: {long}"


def test_the_checker_sees_cycles_and_local_imports(tmp_path: Path) -> None:
    """The rules above can fail: a function-local import is seen, the main guard is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "def f():\n    from research import cli\n"
        'if __name__ == "__main__":\n    from research.commands import features_main\n'
    )
    found = imports_of(sample)
    assert ("os", False) in found and ("research.cli", True) in found
    assert not any(m.startswith("research.commands") for m, _ in found)
