"""The package's import structure: no cycle between its modules, and imports only point down
(panels -> operators -> core; core imports neither, nor bpy)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "operators", "panels")
LAYER = {"panels": 2, "operators": 1, "core": 0}  # a module may import its own layer and those below


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[:max(0, len(parts) - (node.level - 1))] if node.level else []  # level 2 = the parent
            prefix = ".".join(base + ([node.module] if node.module else []))
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` where there is one
            subs = [f"{prefix}.{a.name}" if prefix else a.name for a in node.names]
            targets = [sub if sub in known else prefix for sub in subs]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import core.fit.invert`` -> the deepest module we have
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if LAYER[b.split(".")[0]] > LAYER[a.split(".")[0]])


def test_graph_finds_relative_and_lazy_imports(tmp_path):
    files = {"core/__init__.py": "from .api import run\n", "core/api.py": "from .config import A\n",
             "core/config.py": "def f():\n    from .api import run\n", "core/fit/__init__.py": "",
             "core/fit/step.py": "from ..config import A\nfrom . import other\nimport os\n",
             "operators/__init__.py": "", "operators/op.py": "from ..core.fit import step\nfrom .. import panels\n",
             "panels/__init__.py": "", "panels/ui.py": "from ..operators import op\nimport bpy\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["core.fit.step"] == {"core.config", "core.fit"}
    assert graph["operators.op"] == {"core.fit.step", "panels"}
    assert graph["panels.ui"] == {"operators.op"}
    assert cycles(graph) == [["core.api", "core.config"]]
    assert upward_imports(graph) == ["operators.op -> panels"]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_imports_only_point_down():
    graph = import_graph()
    assert len(graph) > 30 and any(b.startswith("core.") for b in graph["operators.runner"])
    assert upward_imports(graph) == []
