"""No import cycle among cmlab's modules, counting the imports inside
functions and under TYPE_CHECKING: a module below (a lab) never reaches back
up to one above it (a run, a replay, the API)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cmlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> the cmlab modules it imports, anywhere in its body."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # ``from pkg import module`` depends on the module; ``from pkg import name`` on pkg.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_imports_inside_functions_and_type_checking_blocks():
    graph = imports()
    assert "cmlab.lab" in graph["cmlab.trials"]  # under TYPE_CHECKING
    assert "cmlab.runtime.snapshots" in graph["cmlab.lab"]  # inside Lab.up
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_back_up_the_layers():
    assert cycles(imports()) == []


def test_the_lab_imports_none_of_the_runs_bundles_replays_or_the_api():
    above = {"cmlab.api", "cmlab.cli", "cmlab.trials", "cmlab.sweep", "cmlab.bundle", "cmlab.replay",
             "cmlab.scenarios.schedule", "cmlab.pytest_plugin"}
    assert not imports()["cmlab.lab"] & above


def test_the_cli_and_the_pytest_plugin_go_through_the_api_only():
    graph = imports()
    allowed = {"cmlab", "cmlab.api", "cmlab.errors", "cmlab.progress"}
    for shell in ("cmlab.cli", "cmlab.pytest_plugin", "cmlab.testcontainers"):
        assert graph[shell] - {shell} <= allowed, f"{shell} imports {sorted(graph[shell] - allowed - {shell})}"
