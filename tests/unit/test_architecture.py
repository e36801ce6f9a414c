"""The architecture holds: no import cycles (function-local imports included), pure statistics,
and data flowing one way (``docs/architecture.md``).

Imports are read from the source with ``ast`` (every ``import`` anywhere in a module, not only
at its top); imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("judge", "metricsources")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    _module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, module: str) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import that runs, resolved to the longest known
    module name (``from judge.config import CanaryConfig`` -> ``judge.config``)."""
    is_package = MODULES[module].name == "__init__.py"
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            stack.append(child)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else base), node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target, _line in _imports(tree, name):
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _outside(module: str, allowed: tuple[str, ...]) -> list[tuple[str, int]]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (target, line)
        for target, line in _imports(tree, module)
        if not any(target == a or target.startswith(a + ".") for a in allowed)
    ]


def test_the_modules_were_found() -> None:
    # A guard for the tests below: an empty or wrong module list would make them pass.
    assert {"judge", "judge.judges.default.evaluate", "judge.stats.sequential",
            "metricsources.prometheus", "judge.api.app"} <= set(MODULES)
    assert "judge.config" in _graph()["judge.judges.common"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_counting_function_local_imports() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


STDLIB = tuple(sys.stdlib_module_names)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("judge.stats")))
def test_stats_imports_only_numpy_scipy_and_the_standard_library(module: str) -> None:
    # numba (the optional ``fast`` extra) compiles pure array code, and only the kernels
    # module, which judge.stats._compiled imports on demand, may use it.
    compiler = ("numba",) if module == "judge.stats._kernels" else ()
    assert _outside(module, ("numpy", "scipy", "judge.stats", "__future__", *compiler,
                             *STDLIB)) == []


LAYERS = {
    # Data flows one way: sources -> pairs -> judge -> score. The core never sees a source or
    # a door; sources never see a door.
    "judge.judges": ("judge.api", "metricsources", "judge.analysis", "judge.lab"),
    "judge.config": ("judge.api", "metricsources", "judge.judges", "judge.analysis"),
    "judge.scoring": ("judge.api", "metricsources", "judge.judges", "judge.analysis"),
    "judge.report": ("judge.api", "metricsources", "judge.judges", "judge.analysis"),
    "judge.analysis": ("judge.api", "metricsources"),
    # Fetching hands the judges their input type (judge.judges.common.MetricData), never a judge.
    "judge.fetching": ("judge.api", "metricsources", "judge.analysis", "judge.judges.default",
                       "judge.judges.kayenta"),
    "metricsources": ("judge.api", "judge.judges", "judge.analysis"),
    # Report pages render what the store kept; the service and the CLI hand it to them.
    "judge.pages": ("judge.api", "metricsources", "judge.analysis", "judge.fetching"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_do_not_import_what_sits_above_them(layer: str) -> None:
    forbidden = LAYERS[layer]
    offending = [
        (module, target, line)
        for module, path in MODULES.items()
        if module == layer or module.startswith(layer + ".")
        for target, line in _imports(ast.parse(path.read_text()), module)
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert offending == []
