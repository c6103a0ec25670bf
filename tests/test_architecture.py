"""Project rules checked by tools and by reading the code: the import layers (import-linter),
no import cycle, no private names imported across modules, lint, types, file length."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

from tests.paths import REPO_ROOT

BIN = Path(sys.executable).parent
PACKAGES = ("core", "app", "cli", "server")
MAX_LINES = 400


def _packages() -> list[str]:
    return [p for p in PACKAGES if (REPO_ROOT / p / "__init__.py").is_file()]


def _sources() -> list[Path]:
    out: list[Path] = []
    for top in (*_packages(), "tests", "bench", "packaging"):
        out += sorted((REPO_ROOT / top).rglob("*.py"))
    return out


def test_import_layers_hold() -> None:
    proc = subprocess.run([str(BIN / "lint-imports")], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO_ROOT), "PATH": str(BIN)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert "layers" in proc.stdout  # the layers contract ran, not only the Qt ban


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_no_import_cycles() -> None:
    """Every import counts, lazy and TYPE_CHECKING ones included: a cycle hidden in a
    function is still two modules that cannot be understood apart."""
    graph = grimp.build_graph(*_packages(), cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _strongly_connected(edges) == []


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if any(p.startswith("_") and not p.startswith("__") for p in parts):
                found.append(f"{path.name}:{node.lineno} from {node.module}")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} {alias.name} from {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(p.startswith("_") and not p.startswith("__")
                       for p in alias.name.split(".")):
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
    return found


def test_no_private_names_imported() -> None:
    """No module imports another module's private name (ours or a library's: a private
    module of llama-cpp-python can change in any release)."""
    sample = REPO_ROOT / ".cache" / "private-sample.py"
    sample.parent.mkdir(exist_ok=True)
    sample.write_text("from a.b import _c\nfrom x._y import z\nimport p._q\nfrom m import ok\n")
    assert len(_private_imports(sample)) == 3
    found = [hit for path in _sources() for hit in _private_imports(path)]
    assert found == []


def test_no_file_over_400_lines() -> None:
    long = [f"{p.relative_to(REPO_ROOT)}: {n}" for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert long == []


def test_ruff_clean() -> None:
    proc = subprocess.run([str(BIN / "ruff"), "check", *_packages(), "tests", "bench"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean() -> None:
    """Types of core/ and cli/ (pyproject's [tool.mypy], warn_unused_ignores on)."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
