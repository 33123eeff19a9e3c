"""The layout's rules, checked on the source: imports flow down the rooms and never in a circle.

import-linter (``lint-imports``, run by ``scripts/test.sh``) checks the layers between the
packages; this test checks what it does not: that no module imports, directly or through
others, a module that imports it back. Imports inside functions count too: a circle that
only closes at call time still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("coplay", "envs", "agents", "memory", "scenarios", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> nx.DiGraph:
    modules = {
        module_name(path): path
        for package in PACKAGES for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                # ``from a import b`` may name a submodule b or an attribute of a.
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                if target in modules and target != name and not name.startswith(target + "."):
                    graph.add_edge(name, target)
    return graph


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert graph.number_of_edges() > 100  # the graph was really read
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert circles == []


def test_the_base_imports_nothing_of_the_rooms() -> None:
    graph = import_graph()
    base = [n for n in graph if n == "coplay" or n.startswith("coplay.")]
    assert base and all(t.split(".")[0] == "coplay" for n in base for t in graph.successors(n))
