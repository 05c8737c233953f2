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


def test_a_mutated_module_brings_its_own_slow_test_files_into_the_tier(tmp_path):
    """regress.py's mutants are judged with tests/test_gate.py, launch.py's with tests/test_launch.py, …; a module
    without slow tests keeps the fast tier; the rest of [tool.mutmut] is kept and only_mutate set."""
    import tomllib

    fast = tomllib.loads((run.ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    sel = fast["pytest_add_cli_args_test_selection"]
    assert {f"--ignore={t}" for m in ("eqbench/regress.py", "eqbench/launch.py", "eqbench/runlock.py",
                                      "eqbench/estimate.py", "eqbench/distributed.py")
            for t in run.SLOW_TIERS[m]} <= set(sel)  # each is slow, so outside the fast tier
    assert run.tier(sel, ["eqbench/rules.py"]) == sel
    tiered = run.tier(sel, ["eqbench/regress.py", "eqbench/estimate.py"])
    assert set(sel) - set(tiered) == {"--ignore=tests/test_gate.py", "--ignore=tests/test_estimate.py"}
    run.prepare(tmp_path / "w", ["eqbench/regress.py"])
    cfg = tomllib.loads((tmp_path / "w" / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert cfg["only_mutate"] == ["eqbench/regress.py"]
    assert cfg["pytest_add_cli_args_test_selection"] == run.tier(sel, ["eqbench/regress.py"])
    assert {k: v for k, v in cfg.items() if k not in ("only_mutate", "pytest_add_cli_args_test_selection")} == \
        {k: v for k, v in fast.items() if k != "pytest_add_cli_args_test_selection"}
