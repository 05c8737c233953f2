"""The house: eqbench's modules import each other without a circle and without an import running back up a floor
of eqbench.house (eqbench.testing.imports reads the graph from the source, function-level imports included).
Imports sit at the top of a module, except where a lazy import is the point, which a ``# lazy:`` comment says.
Controls: a package written here with a circle through a function-level import, with an upward import, with a
module no floor declares and with an unexplained function-level import; each is found and named.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eqbench.house import FLOORS
from eqbench.testing.imports import circles, import_graph, unexplained_lazy_imports, upward

ROOT = Path(__file__).resolve().parents[1] / "eqbench"


def test_no_module_of_eqbench_imports_in_a_circle():
    assert circles(import_graph(ROOT)) == []


def test_no_module_of_eqbench_imports_a_module_on_a_higher_floor():
    assert upward(import_graph(ROOT), FLOORS) == []  # also: every module has a declared floor (else ValueError)


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


def test_a_circle_through_a_package_init_is_found(tmp_path):
    """Importing pkg.models.base runs pkg/models/__init__.py first: a model that imports the relaxation, which
    imports the contract, closes a circle through the package (the one eqbench.activity took apart)."""
    pkg = tmp_path / "pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("from .binary import B\n")
    (pkg / "models" / "base.py").write_text("class M: ...\n")
    (pkg / "models" / "binary.py").write_text("from ..relax import relax\nfrom .base import M\nclass B(M): ...\n")
    (pkg / "relax.py").write_text("from .models.base import M\ndef relax(): ...\n")
    assert circles(import_graph(pkg)) == [["pkg.models", "pkg.models.binary", "pkg.relax"]]
    (pkg / "models" / "binary.py").write_text("from .base import M\nclass B(M): ...\n")
    assert circles(import_graph(pkg)) == []


def test_an_upward_import_and_an_undeclared_module_are_named(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from .high import g\n")  # up, inside a function
    (pkg / "high.py").write_text("from . import low\ng = 1\n")
    floors = {"bottom": ["pkg", "pkg.low"], "top": ["pkg.high"]}
    assert upward(import_graph(pkg), floors) == [("pkg.low", "pkg.high")]
    assert upward(import_graph(pkg), {"bottom": ["pkg.*"]}) == []  # one floor: nothing runs up
    (pkg / "new.py").write_text("")
    with pytest.raises(ValueError, match=r"^no floor declared for pkg\.new$"):
        upward(import_graph(pkg), floors)


def test_every_function_level_import_of_eqbench_says_why_it_is_lazy():
    assert unexplained_lazy_imports(ROOT) == []


def test_an_unexplained_function_level_import_is_named(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("import os\n\n\ndef f():\n    # lazy: scipy takes a second to import\n"
                              "    import scipy\n    from scipy import stats\n\n\ndef g():\n    import json\n"
                              "    return json\n\n\ndef h():\n    import csv  # lazy: an inline reason counts\n\n\n"
                              "def k():\n    def inner():\n        import glob\n")
    assert unexplained_lazy_imports(pkg) == ["pkg/m.py:11", "pkg/m.py:21"]  # a nested function's import once
