"""The package's shape: the arrow points from hydra_plugins to bn_study and never back, no two modules
import each other (directly or around a loop), and no module grows past a screenful or three."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bn_study", "hydra_plugins")
MAX_LINES = 300


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module ``name`` imports, wherever the import statement stands (top level, inside a
    function, under TYPE_CHECKING): a lazy import still ties the two modules together."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_bn_study_never_imports_hydra_plugins():
    offenders = {name: sorted(t for t in targets if t.startswith("hydra_plugins"))
                 for name, targets in graph().items() if name.startswith("bn_study")}
    assert {k: v for k, v in offenders.items() if v} == {}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports between modules, ignoring a module's import of its own package's __init__
    (Python runs a package's __init__ first anyway) — or None."""
    def deps(name: str) -> set[str]:
        return {t for t in edges.get(name, ()) if not name.startswith(t + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for nxt in sorted(deps(name)):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(edges):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, " → ".join(cycle)


def test_the_cycle_check_finds_a_planted_cycle():
    edges = graph()
    edges["bn_study.train.model"] = edges["bn_study.train.model"] | {"bn_study.app"}  # app → … → model → app
    assert find_cycle(edges) is not None


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_a_few_screens(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by what its parts do"


def test_hydra_startup_imports_nothing_heavy():
    """Hydra imports the task module and every plugin module on each start, ``--cfg job`` included: none
    of them may pull in torch, MLflow or Optuna at import time."""
    code = ("import sys, importlib, pkgutil, hydra_plugins.bn_study_sweepers as p, bn_study.app\n"
            "for m in pkgutil.iter_modules(p.__path__): importlib.import_module(f'{p.__name__}.{m.name}')\n"
            "print(' '.join(sorted(m for m in ('torch', 'mlflow', 'optuna', 'matplotlib') if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == ""
