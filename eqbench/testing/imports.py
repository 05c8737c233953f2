"""The import graph of a Python package, read from its source, its circles and the imports that run up a declared
floor (eqbench's own house: no module of eqbench imports in a circle or up a floor of eqbench.house,
tests/test_house.py; the architecture page of the docs draws the graph by those floors).

Every ``import`` and ``from … import`` of one of the package's modules counts, at the top of a module or inside a
function (an import inside a function is still a dependency); ``from . import x`` is a dependency on the submodule
``x``, not on the package that holds it. Importing ``a.b.c`` runs ``a/b/__init__.py`` first, so it is a dependency
on the package ``a.b`` too (unless ``a.b`` holds the importer, which Python has already begun to run, or is the
root). A circle is a strongly connected component of more than one module.
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
    root = package.name
    for m, deps in edges.items():  # the packages Python runs on the way to each imported module
        parents = {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)}
        deps |= {p for p in parents & set(mods) if p != root and not m.startswith(p + ".")}
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


def floor_of(floors: dict[str, list[str]], modules) -> dict[str, int]:
    """Each module's declared floor (the index of its floor in ``floors``): an exact name before a ``pkg.*`` pattern,
    the longest pattern first. Raises ValueError naming every module no floor declares."""
    index: dict[str, int] = {}
    for i, names in enumerate(floors.values()):
        for n in names:
            index[n] = i
    out, missing = {}, []
    for m in modules:
        if m in index:
            out[m] = index[m]
            continue
        pats = [p for p in index if p.endswith(".*") and (m + ".").startswith(p[:-1])]
        if not pats:
            missing.append(m)
        else:
            out[m] = index[max(pats, key=len)]
    if missing:
        raise ValueError(f"no floor declared for {', '.join(sorted(missing))}")
    return out


def upward(edges: dict[str, set[str]], floors: dict[str, list[str]]) -> list[tuple[str, str]]:
    """The imports (importer, imported) that run up: to a module on a higher declared floor than the importer's."""
    floor = floor_of(floors, edges)
    return sorted((m, d) for m, deps in edges.items() for d in deps if floor[d] > floor[m])


def unexplained_lazy_imports(package: Path) -> list[str]:
    """``path:line`` of every import inside a function of the package that does not say why it is there: a
    function-level import is for laziness only (an optional extra, a heavy library, a subcommand's own modules), and
    says so in a ``# lazy: <reason>`` comment on its line or on the line above its block of imports."""
    out: set[str] = set()  # a set: a nested function's imports are walked with its outer function's too
    for p in sorted(package.rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        lines = text.splitlines()
        for fn in ast.walk(ast.parse(text)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                i = node.lineno - 1  # walk up the block of imports (and blank lines between them) to its comment
                while i > 0 and (lines[i - 1].strip().startswith(("import ", "from ")) or not lines[i - 1].strip()):
                    i -= 1
                if "# lazy:" not in lines[node.lineno - 1] and not lines[i - 1].strip().startswith("# lazy:"):
                    out.add(f"{p.relative_to(package.parent)}:{node.lineno}")
    return sorted(out, key=lambda loc: (loc.rpartition(":")[0], int(loc.rpartition(":")[2])))
