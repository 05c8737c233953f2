"""`make mutation ... --again` (suites/mutation/run.py): after tests are added, only what the last run did not
kill, and every mutant of a function changed since, runs again; the other results are carried over."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "suites" / "mutation" / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

BEFORE = '''
def f(x):
    return x + 1


class C:
    def m(self):
        return 2
'''


def test_functions_are_named_as_mutmut_names_them():
    assert run.functions(BEFORE, "pkg.mod") == {"pkg.mod.x_f": "def f(x):\n    return x + 1",
                                                "pkg.mod.xǁCǁm": "def m(self):\n        return 2"}


def test_again_runs_survivors_and_changed_functions_and_carries_the_rest(tmp_path):
    work, root = tmp_path / "work", tmp_path / "repo"
    (work / "mutants" / "pkg").mkdir(parents=True)
    (root / "pkg").mkdir(parents=True)
    (work / "pkg").mkdir()
    (work / "pkg" / "mod.py").write_text(BEFORE)  # the code the last run mutated
    (root / "pkg" / "mod.py").write_text(BEFORE.replace("return 2", "return 3") + "\n\ndef g():\n    pass\n")
    codes = {"pkg.mod.x_f__mutmut_1": 1, "pkg.mod.x_f__mutmut_2": 0, "pkg.mod.x_f__mutmut_3": None,
             "pkg.mod.xǁCǁm__mutmut_1": 1}  # killed, survived, not run yet; a killed one of a changed method
    (work / "mutants" / "pkg" / "mod.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    names, carried = run.again(work, ["pkg/mod.py"], root=root)
    assert sorted(names) == ["pkg.mod.x_f__mutmut_2", "pkg.mod.x_f__mutmut_3", "pkg.mod.x_g__mutmut_*",
                             "pkg.mod.xǁCǁm__mutmut_*"]
    assert carried == {"pkg.mod.x_f__mutmut_1": 1}


def test_a_module_is_named_as_mutmut_names_its_mutants():
    """A package's ``__init__`` is left out of the name (mutmut does), so equivalents and --again match its mutants."""
    assert run._dotted("eqbench/rules/__init__.py") == "eqbench.rules"
    assert run._dotted("eqbench/rules/forward.py") == "eqbench.rules.forward"


def test_a_mutated_module_brings_its_own_slow_test_files_into_the_tier():
    """regress.py's mutants are judged with tests/test_gate.py, launch.py's with tests/test_launch.py, …; a module
    without slow tests keeps the fast tier; the rest of [tool.mutmut] is kept and only_mutate set."""
    import tomllib

    slow = ["--ignore=tests/test_gate.py", "--ignore=tests/test_launch.py", "--ignore=tests/test_estimate.py",
            "--ignore=tests/test_distributed.py", "--ignore=tests/test_gate_power.py"]
    sel = ["tests", "suites/claims", *slow]
    assert run.tier(sel, ["eqbench/rules/__init__.py"]) == sel
    assert run.tier(sel, ["eqbench/regress.py", "eqbench/estimate.py"]) == ["tests", "suites/claims", *slow[1:2],
                                                                            *slow[3:]]
    assert run.tier(sel, ["eqbench/runlock.py", "eqbench/launch.py", "eqbench/distributed.py"]) == \
        ["tests", "suites/claims", slow[0], slow[2], slow[4]]
    text = ('[tool.ruff]\nline-length = 120\n\n[tool.mutmut]\nsource_paths = ["eqbench"]\n'
            f"pytest_add_cli_args_test_selection = {json.dumps(sel)}\n\n[tool.other]\nx = 1\n")
    out = tomllib.loads(run.configure(text, ["eqbench/regress.py"]))
    assert out["tool"]["mutmut"] == {"source_paths": ["eqbench"], "only_mutate": ["eqbench/regress.py"],
                                     "pytest_add_cli_args_test_selection": run.tier(sel, ["eqbench/regress.py"])}
    assert out["tool"]["ruff"] == {"line-length": 120} and out["tool"]["other"] == {"x": 1}
