"""The house: eqbench's modules import each other without a circle (eqbench.testing.imports reads the graph from
the source, function-level imports included). The control: a package written here with a circle through a
function-level import is found.
"""

from __future__ import annotations

from pathlib import Path

from eqbench.testing.imports import circles, import_graph

ROOT = Path(__file__).resolve().parents[1] / "eqbench"


def test_no_module_of_eqbench_imports_in_a_circle():
    assert circles(import_graph(ROOT)) == []


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("from . import a\ng = 1\n")
    (pkg / "d.py").write_text("from . import a, c\n")  # depends on the circle, is not in it
    assert circles(import_graph(pkg)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (pkg / "c.py").write_text("g = 1\n")
    assert circles(import_graph(pkg)) == []
