"""The import graph of a Python package, read from its source, and its circles (eqbench's own house: no module of
eqbench imports in a circle, tests/test_house.py; the architecture page of the docs draws the graph).

Every ``import`` and ``from … import`` of one of the package's modules counts, at the top of a module or inside a
function (an import inside a function is still a dependency); ``from . import x`` is a dependency on the submodule
``x``, not on the package that holds it. A circle is a strongly connected component of more than one module.
"""

from __future__ import annotations

import ast
from pathlib import Path


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (package ``a/__init__.py`` is module ``a``)."""
    mods: dict[str, Path] = {}
    for p in package.rglob("*.py"):
        parts = p.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & set(mods)
                edges[m] |= (subs or ({target} & set(mods))) - {m}
            elif isinstance(node, ast.Import):
                edges[m] |= {a.name for a in node.names if a.name in mods} - {m}
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def layers(edges: dict[str, set[str]]) -> dict[str, int]:
    """The floor of each module of an acyclic graph: 0 for a module that imports none of the package's, else one
    above the highest module it imports (so every import runs down a floor)."""
    floor: dict[str, int] = {}

    def visit(m: str) -> int:
        if m not in floor:
            floor[m] = -1  # on the stack: a circle would read −1 below, and `circles` names it first
            floor[m] = 1 + max((visit(d) for d in edges[m]), default=-1)
        return floor[m]

    for m in edges:
        visit(m)
    return floor
