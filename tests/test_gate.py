"""The regression gate and the history (eqbench.regress, eqbench.history, eqbench.tracking).

* verdict arithmetic of the tracked values (each kind of "worse", NaN, improvements never fail);
* bad input: an unknown commit or range, a dirty work tree, a commit that does not build — one line each;
* the store keeps every finished measurement, ignores a torn last line, and a rerun measures nothing twice;
* the gate's power on correctness, on throw-away commits in a temporary clone: a wrong factor in the EP
  estimator and a doubled graph are flagged, a comment-only commit is not (its values are deterministic).
  The timing side (a planted 1.5× slowdown, the false-alarm rate) is tests/test_gate_power.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from eqbench import regress
from eqbench.errors import EqbenchError
from eqbench.history import commits_of, load_results
from eqbench.regress import GateError, Row, Store, _verdict_ratio, run_gate
from eqbench.tracking import Tracked, catalogue


# ------------------------------------------------------------------------------------------------ verdicts
def test_tracked_worse_by_each_direction():
    lower = Tracked("gdu/x/symmetric_error", "", "lower", 2.0, relative=True)
    assert lower.regressed(1e-6, 2.5e-6) and not lower.regressed(1e-6, 1.9e-6)
    assert not lower.regressed(1e-6, 1e-9)  # an improvement never fails
    slope = Tracked("gdu/x/slope_symmetric", "", "target", 0.05, target=2.0)
    assert not slope.regressed(2.001, 1.96) and slope.regressed(2.001, 1.9)
    assert slope.regressed(2.0, 2.2)  # too steep is as wrong as too shallow
    acc = Tracked("accuracy/x", "%", "higher", 2.0)
    assert acc.regressed(90.0, 87.5) and not acc.regressed(90.0, 88.5) and not acc.regressed(90.0, 99.0)
    margin = Tracked("energy/x/margin", "", "lower", 0.5)
    assert margin.regressed(0.05, 0.6) and not margin.regressed(0.05, 0.5)
    assert lower.regressed(1e-6, math.nan) and lower.regressed(1e-6, math.inf)  # a NaN at HEAD is a regression


def test_tolerances_catch_the_bugs_the_suites_catch():
    """Negative control of the tolerances: a factor-of-two estimator (error ~0.5) or an O(β) one (slope 1)
    must be flagged; round-off (1e-12 relative) must not."""
    cat = catalogue()
    err, slope = cat["gdu/P_MLP/symmetric_error"], cat["gdu/P_MLP/slope_symmetric"]
    assert err.regressed(2.5e-6, 0.5) and not err.regressed(2.5e-6, 2.5e-6 * (1 + 1e-12))
    assert slope.regressed(2.0, 1.0) and not slope.regressed(2.0, 2.0 + 1e-9)
    assert cat["memory/P_MLP 784-512-10/EP graph bytes"].regressed(935936.0, 2 * 935936.0)
    assert not any(t.gated for k, t in cat.items() if k.startswith("speed/"))  # timed ratios are reported only


def test_ratio_verdicts():
    assert _verdict_ratio("t", "time", "s", 1.0, 1.2, 1.1, "", "").verdict == "REGRESSED"
    assert _verdict_ratio("t", "time", "s", 1.0, 1.05, 1.1, "", "").verdict == "ok"
    assert _verdict_ratio("t", "time", "s", 1.0, 0.5, 1.1, "", "").verdict == "improved"
    assert _verdict_ratio("t", "time", "s", None, 0.5, 1.1, "ImportError: x", "").verdict == "new"
    assert _verdict_ratio("t", "time", "s", 1.0, None, 1.1, "", "RuntimeError: boom").verdict == "FAILED at HEAD"
    assert _verdict_ratio("t", "time", "s", None, None, 1.1, "", "NotImplementedError: no CUDA").verdict == "skipped"


def test_catalogue_keys_are_unique_and_families_known():
    cat = catalogue()
    # 54 until the claims catalogue also tracked the VF tied-feedback GDU cases (3 each); 60 until the speed family
    # took the ratios of issue 16 (10, from 3); 67 until holomorphic EP's slopes N = 1 … 4 on two cases (issue 18);
    # 75 until the DCHN joined the theorem cases (its two slopes and symmetric error, issue 35)
    assert len(cat) == 78
    assert {t.family for t in cat.values()} == {"gdu", "energy", "step", "memory", "speed", "accuracy"}


# ------------------------------------------------------------------------------------------------ bad input
def test_unknown_commit_and_range_are_one_line(clone: Path):
    with pytest.raises(GateError, match="unknown commit 'no-such-rev'") as e:
        regress.resolve(clone, "no-such-rev")
    assert "\n" not in str(e.value) and isinstance(e.value, EqbenchError)
    with pytest.raises(GateError, match="unknown commit range"):
        commits_of(clone, "nope~3..nope")
    assert len(commits_of(clone, "HEAD~2..HEAD")) == 2


def test_dirty_work_tree_is_refused(clone: Path):
    (clone / "README.md").write_text("changed\n")
    with pytest.raises(GateError, match=r"uncommitted changes \(README.md\): commit or stash"):
        run_gate("HEAD~1", "HEAD", repo=clone, profile="correctness", quiet=True)


def test_results_a_history_run_wrote_never_make_the_gate_refuse(clone: Path):
    """`make history` writes asv's results into the tracked suites/asv_results; the gate reads none of them, so a
    changed or new result there is no reason to refuse (a change anywhere else still is)."""
    results = next((clone / "suites" / "asv_results").rglob("*.json"))
    results.write_text(results.read_text() + "\n")
    regress.require_clean(clone)  # no error
    (clone / "suites" / "asv_benchmarks" / "common.py").write_text("# changed\n")
    with pytest.raises(GateError, match=r"uncommitted changes \(suites/asv_benchmarks/common.py\)"):
        regress.require_clean(clone)


def test_commit_that_does_not_build_is_named(clone: Path, tmp_path: Path, plant):
    sha = plant(clone, "pyproject.toml", 'build-backend = "setuptools.build_meta"',
                'build-backend = "no_such_backend_module"', "broken build")
    with pytest.raises(GateError, match=rf"commit {sha[:12]} does not build .*results of the other commits are kept"):
        regress.install(clone, sha, tmp_path / "installs")


def test_unknown_profile_and_device(clone: Path):
    with pytest.raises(GateError, match="unknown gate profile 'nope'; known: quick, full"):
        run_gate("HEAD~1", "HEAD", repo=clone, profile="nope", quiet=True)
    with pytest.raises(GateError, match="at least 1"):
        run_gate("HEAD~1", "HEAD", repo=clone, factor=0.9, quiet=True)


# -------------------------------------------------------------------------------------------------- store
def test_store_survives_a_torn_line_and_keys_by_machine(tmp_path: Path):
    path = tmp_path / "results.jsonl"
    s = Store(path, "m1", "defs")
    s.put("abc", "time:x#r0", {"samples": [1.0]})
    with open(path, "a") as f:
        f.write('{"machine": "m1", "defs": "defs", "commit": "abc", "task": "time:x#r1", "res')  # a kill mid-write
    again = Store(path, "m1", "defs")
    assert again.get("abc", "time:x#r0") == {"samples": [1.0]} and again.get("abc", "time:x#r1") is None
    assert Store(path, "m2", "defs").get("abc", "time:x#r0") is None  # another machine's times never mix in
    assert Store(path, "m1", "other").get("abc", "time:x#r0") is None  # nor results of other definitions


def test_interrupted_gate_reruns_only_what_is_missing(clone: Path, tmp_path: Path, monkeypatch):
    """A gate killed after BASE's measurements keeps them; the rerun measures HEAD only."""
    calls: list[Path] = []
    real = regress._worker

    def counting(repo, site, tasks, threads_env=None, wait=True):
        calls.append(site)
        return real(repo, site, tasks, threads_env, wait)

    monkeypatch.setattr(regress, "_worker", counting)
    shas = {side: regress.resolve(clone, rev) for side, rev in (("BASE", "HEAD~1"), ("HEAD", "HEAD"))}
    store = Store(clone / ".asv" / "regress" / "results.jsonl", regress.machine_name(),
                  regress.definitions_hash(clone))
    store.put(shas["BASE"], "tracked:memory", {"values": {"memory/P_MLP 784-512-10/EP graph bytes": 1.0}})
    monkeypatch.setattr(regress, "_profile", lambda root, name: {"rounds": 0, "tracked": ["memory"]})
    status, rows = run_gate("HEAD~1", "HEAD", repo=clone, quiet=True, out=tmp_path / "out")
    assert [c.parent.name for c in calls] == [shas["HEAD"]]  # BASE was not measured again
    row = next(r for r in rows if r.benchmark == "memory/P_MLP 784-512-10/EP graph bytes")
    assert row.base == 1.0 and row.verdict == "REGRESSED" and status == 1  # the stored value was used
    calls.clear()
    run_gate("HEAD~1", "HEAD", repo=clone, quiet=True, out=tmp_path / "out")
    assert calls == []  # everything finished is kept


FAKE_TIMES = {"rounds": 3, "repeat": 1, "mem_rounds": 0,
              "time": [["a.burst", ["cpu"]], ["b.slow", ["cpu"]], ["c.same", ["cpu"]]]}


def _fake_timing(monkeypatch, seconds, profile=FAKE_TIMES):
    """The gate with a fake worker: ``seconds(side, name, call)`` is the measurement of the call-th process of
    ``name`` on that side (a time or a peak, or a list: the calls of a round); returns the list of (side, name)
    measured, in order."""
    calls: list[tuple[str, str]] = []

    def worker(repo, site, tasks, threads_env=None, wait=True):
        side = "HEAD" if site.name == regress.resolve(repo, "HEAD") else "BASE"
        answers = []
        for t in tasks:
            n = sum(1 for c in calls if c == (side, t["name"]))
            calls.append((side, t["name"]))
            v = seconds(side, t["name"], n)
            answers.append({"samples": v if isinstance(v, list) else [v]})
        return answers if wait else (lambda: answers)

    monkeypatch.setattr(regress, "_worker", worker)
    monkeypatch.setattr(regress, "install", lambda repo, sha, root: root / sha)
    monkeypatch.setattr(regress, "_profile", lambda root, name: profile)
    return calls


def test_a_timed_slowdown_must_show_again_in_fresh_rounds(clone: Path, tmp_path: Path, monkeypatch):
    """A burst that slows HEAD's first three processes of one benchmark (×1.5) is not confirmed in three fresh
    rounds and passes; a slowdown present in every process (×1.5) is confirmed and fails; a benchmark within the
    factor is not timed again."""
    def seconds(side, name, n):
        if side == "HEAD" and (name == "b.slow" or (name == "a.burst" and n < 3)):
            return 1.5
        return 1.0

    calls = _fake_timing(monkeypatch, seconds)
    status, rows = run_gate("HEAD~1", "HEAD", repo=clone, factor=1.3, quiet=True, out=tmp_path / "out")
    by = {r.benchmark: r for r in rows}
    assert by["a.burst(cpu)"].verdict == "ok" and "not confirmed" in by["a.burst(cpu)"].note
    assert by["b.slow(cpu)"].verdict == "REGRESSED" and "confirmed: ×1.500" in by["b.slow(cpu)"].note
    assert by["c.same(cpu)"].verdict == "ok" and status == 1
    count = {name: sum(1 for c in calls if c[1] == name) for name in ("a.burst", "b.slow", "c.same")}
    assert count == {"a.burst": 12, "b.slow": 12, "c.same": 6}  # 3 rounds × 2 sides, then 3 more for the flagged


def test_the_confirmation_never_hides_a_slowdown_when_the_first_pass_was_clean(clone, tmp_path, monkeypatch):
    """Without a flag in the first pass nothing is timed again: the confirmation can only clear a flag."""
    _fake_timing(monkeypatch, lambda side, name, n: 1.2 if side == "HEAD" else 1.0)
    status, rows = run_gate("HEAD~1", "HEAD", repo=clone, factor=1.3, quiet=True, out=tmp_path / "out")
    assert status == 0 and all(r.verdict == "ok" and "confirm" not in r.note for r in rows)
    status, rows = run_gate("HEAD~1", "HEAD", repo=clone, factor=1.1, quiet=True, out=tmp_path / "out2")
    assert status == 1 and all(r.verdict == "REGRESSED" and "confirmed: ×1.200" in r.note for r in rows)


def test_a_round_keeps_its_fastest_call_and_the_gate_the_median_round(clone: Path, tmp_path: Path, monkeypatch):
    """HEAD's rounds: a slow first call then a 1.0 (twice), and one round slow throughout: its fastest calls are
    1, 1 and 9, their median 1 — as fast as BASE (a mean of rounds, or a round's slowest call, would flag it)."""
    profile = {"rounds": 3, "repeat": 2, "mem_rounds": 0, "time": [["t.x", ["cpu"]]]}
    _fake_timing(monkeypatch, lambda side, name, n: 1.0 if side == "BASE" else [9.0, 9.0] if n == 2 else [5.0, 1.0],
                 profile)
    status, (row,) = run_gate("HEAD~1", "HEAD", repo=clone, factor=1.3, quiet=True, out=tmp_path / "out")
    assert (status, row.base, row.head, row.verdict) == (0, 1.0, 1.0, "ok")


def test_the_cli_passes_each_option_to_its_own_parameter(monkeypatch):
    """`eqbench regress` with every option given a value of its own: none is swapped with another on the way."""
    from eqbench.cli import main

    seen = {}
    monkeypatch.setattr(regress, "run_gate", lambda *a, **k: (seen.update(args=a, **k), (7, []))[1])
    argv = ["regress", "--base", "B", "--head", "H", "--factor", "1.7", "--mem-factor", "1.3", "--profile", "full",
            "--rounds", "4", "--device", "cpu", "--out", "o", "--false-alarm", "0.05", "--detect", "1.4"]
    assert main(argv) == 7
    assert seen == {"args": ("B", "H"), "factor": 1.7, "false_alarm": 0.05, "detect": 1.4, "mem_factor": 1.3,
                    "profile": "full", "rounds": 4, "device": "cpu", "out": "o"}
    main(["regress"])
    assert seen["factor"] is None and seen["false_alarm"] == 0.01  # the measured limits are the default


def test_the_printed_table_has_every_row_and_names_the_regressions(capsys):
    rows = [Row("t.x(cpu)", "time", "s", 1.0, 1.5, 1.5, "REGRESSED", "limit ×1.3"),
            Row("gdu/x/slope", "tracked", "", 2.0, 2.0, 1.0, "ok", "worse by 0")]
    regress.print_table(rows, {"BASE": "a" * 40, "HEAD": "b" * 40}, 1.3, 1.2)
    out = capsys.readouterr().out
    assert "BASE aaaaaaaaaa → HEAD bbbbbbbbbb (times at ×1.3, memory ×1.2" in " ".join(out.split())
    assert "1.500 s" in out and "×1.500" in out and "gdu/x/slope" in out
    assert "2 compared, 1 regressed: t.x(cpu)" in out


def test_plan_keeps_cuda_variants_only_where_cuda_is_seen(monkeypatch):
    profile = {"time": [["a", ["cpu"]], ["b", ["cuda"]]], "peakmem": [["c", ["x", 1]]], "tracked": ["gdu"]}

    def names(device):
        return {k: [t.get("name", t.get("family")) for t in v] for k, v in regress.plan(profile, device).items()}

    monkeypatch.setattr(regress, "_cuda_available", lambda: False)
    assert names("all") == names("cpu") == {"time": ["a"], "peakmem": ["c"], "track": [], "tracked": ["gdu"]}
    with pytest.raises(GateError, match="--device cuda, but torch sees no CUDA device"):
        regress.plan(profile, "cuda")
    monkeypatch.setattr(regress, "_cuda_available", lambda: True)
    assert names("all")["time"] == ["a", "b"] and names("cuda")["time"] == ["b"] and names("cpu")["time"] == ["a"]
    assert names("cuda")["peakmem"] == []  # a benchmark without a device parameter is a CPU one


def test_a_markdown_summary_goes_beside_the_report_and_into_the_ci_job_summary(clone, tmp_path, monkeypatch):
    _fake_timing(monkeypatch, lambda side, name, n: 1.5 if side == "HEAD" and name == "b.slow" else 1.0)
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_gate("HEAD~1", "HEAD", repo=clone, factor=1.3, quiet=True, out=tmp_path / "out")
    (md,) = (tmp_path / "out").glob("*.md")
    text = md.read_text()
    assert text.startswith("## eqbench regress: **1 regressed**") and "- **b.slow(cpu)**: REGRESSED" in text
    assert "| a.burst(cpu) | 1.000 s | 1.000 s | ×1.000 | ±0.0 % | ×1.300 | — | ok | limit ×1.3 |" in text
    # the strip plot of the rounds: BASE's at the fastest end, HEAD's at the slowest
    assert f"b.slow(cpu)   |B{' ' * 38}H|  1.000 s … 1.500 s" in text
    assert summary.read_text() == "earlier step\n" + text + "\n"  # appended, as GitHub expects
    ok = [Row("t.x(cpu)", "time", "s", 1.0, 1.0, 1.0, "ok", "a | b")]
    text = regress.markdown(ok, {"BASE": "a" * 40, "HEAD": "b" * 40}, 1.3, 1.3)
    assert text.startswith("## eqbench regress: no regression") and "| a \\| b |" in text  # a pipe escaped


def test_times_are_judged_by_factor_and_memory_by_mem_factor(clone: Path, tmp_path: Path, monkeypatch):
    """Both ×1.2 at HEAD: the factor that flags is the one of the row's kind, never the other."""
    profile = {"rounds": 1, "repeat": 1, "mem_rounds": 1, "time": [["t.x", ["cpu"]]], "peakmem": [["p.x", ["cpu"]]],
               "track": [["k.x", ["cpu"]]]}
    _fake_timing(monkeypatch, lambda side, name, n: 1.2 if side == "HEAD" else 1.0, profile)
    verdicts = {}
    for factor, mem in ((1.1, 1.5), (1.5, 1.1)):
        _, rows = run_gate("HEAD~1", "HEAD", repo=clone, factor=factor, mem_factor=mem, quiet=True,
                           out=tmp_path / f"{factor}")
        verdicts[factor] = {r.benchmark: r.verdict for r in rows}
    assert verdicts[1.1] == {"t.x(cpu)": "REGRESSED", "p.x(cpu)": "ok", "k.x(cpu)": "ok"}
    assert verdicts[1.5] == {"t.x(cpu)": "ok", "p.x(cpu)": "REGRESSED", "k.x(cpu)": "REGRESSED"}


def test_resume_never_reuses_a_measurement_of_other_benchmark_definitions(clone, tmp_path, monkeypatch, plant):
    """The definitions are part of the store's key: after a commit that changes a benchmark file, the same two
    commits are measured again; without a change, nothing is."""
    calls = _fake_timing(monkeypatch, lambda side, name, n: 1.0)
    base, head = (regress.resolve(clone, r) for r in ("HEAD~1", "HEAD"))
    run_gate(base, head, repo=clone, quiet=True, out=tmp_path / "1")
    first = len(calls)
    run_gate(base, head, repo=clone, quiet=True, out=tmp_path / "2")
    assert first == 18 and len(calls) == first  # 3 benchmarks × 3 rounds × 2 sides, then all reused
    plant(clone, "suites/asv_benchmarks/common.py", "(scikit-learn's", "(as scikit-learn's", "benchmarks changed")
    run_gate(base, head, repo=clone, quiet=True, out=tmp_path / "3")
    assert len(calls) == 2 * first


# ------------------------------------------------------------------------------------- power on correctness
def _verdicts(rows: list[Row], prefix: str) -> dict[str, str]:
    return {r.benchmark: r.verdict for r in rows if r.benchmark.startswith(prefix)}


def test_gate_flags_planted_gdu_and_memory_errors_and_passes_a_comment(clone: Path, tmp_path: Path, plant):
    out = tmp_path / "reports"
    base = regress.resolve(clone, "HEAD")
    comment = plant(clone, "eqbench/rules/__init__.py", '"""The (s1, β1, s2, β2) pair of a two-point estimator',
                    '"""(a comment-only change) The (s1, β1, s2, β2) pair of a two-point estimator', "comment only")
    status, rows = run_gate(base, comment, repo=clone, profile="correctness", quiet=True, out=out)
    assert status == 0 and all(r.verdict == "ok" for r in rows), [r for r in rows if r.verdict != "ok"]
    report = json.loads((out / f"{base[:10]}-{comment[:10]}.json").read_text())
    # 9 until the correctness profile's GDU cases also tracked holomorphic EP's slopes N = 1 … 4 (issue 18)
    assert report["pass"] and len(report["rows"]) == len(rows) == 17

    factor = plant(clone, "eqbench/rules/__init__.py", "obj = obj * (-weight / denom)",
                   "obj = obj * (-2.0 * weight / denom)", "estimator ×2")
    status, rows = run_gate(base, factor, repo=clone, profile="correctness", quiet=True, out=out)
    gdu = _verdicts(rows, "gdu/")
    assert status == 1
    assert all(v == "REGRESSED" for k, v in gdu.items() if k.endswith("symmetric_error")), gdu
    assert _verdicts(rows, "memory/")["memory/P_MLP 784-512-10/EP graph bytes"] == "ok"

    plant.git(clone, "reset", "-q", "--hard", comment)
    # the objective evaluated twice, each time on its own copy of the states: the same gradient, twice the graph
    doubled = plant(clone, "eqbench/rules/__init__.py",
                    "            obj = model.ep_objective(x, y, [t.detach() for t in free], [t.detach() for t in s1], "
                    "beta1,\n                                     [t.detach() for t in s2], beta2)",
                    "            def copy():\n"
                    "                return (x.clone(), y, [t.detach().clone() for t in free], "
                    "[t.detach().clone() for t in s1], beta1,\n"
                    "                        [t.detach().clone() for t in s2], beta2)\n"
                    "            obj = 0.5 * (model.ep_objective(*copy()) + model.ep_objective(*copy()))",
                    "the EP objective's graph held twice")
    status, rows = run_gate(base, doubled, repo=clone, profile="correctness", quiet=True, out=out)
    mem = _verdicts(rows, "memory/")
    assert status == 1 and mem["memory/P_MLP 784-512-10/EP graph bytes"] == "REGRESSED", mem
    assert all(v == "ok" for v in _verdicts(rows, "gdu/").values())  # same values, only the memory doubled


def test_history_reads_asv_results(tmp_path: Path):
    """load_results expands asv's parametrized result rows (cartesian order) and drops failed (NaN/None) ones."""
    (tmp_path / "asv.conf.json").write_text(json.dumps({"results_dir": "res"}))
    folder = tmp_path / "res" / "m"
    folder.mkdir(parents=True)
    (folder / "machine.json").write_text("{}")
    row = [[1.0, None, 3.0, float("nan")], [["'EP'", "'BPTT'"], ["'cpu'", "'cuda'"]]]
    (folder / "abc-env.json").write_text(json.dumps({"commit_hash": "abc", "result_columns": ["result", "params"],
                                                     "results": {"m.C.time_x": row}}))
    got = load_results(tmp_path, "m")["abc"]
    assert got == {"m.C.time_x(EP, cpu)": 1.0, "m.C.time_x(EP, cuda)": None, "m.C.time_x(BPTT, cpu)": 3.0,
                   "m.C.time_x(BPTT, cuda)": None}


def test_the_readme_shows_the_measured_power_and_the_measurement_holds_the_gates_promise():
    """The README's power table is `power_table` of the committed measurement (a stale table fails, and so does a
    table rendered from a changed measurement), and that measurement shows what the gate promises at its defaults:
    15 gates or more per planted commit, every ×1.5 and ×2 failed, no comment-only one."""
    import copy

    from eqbench.io import replace_block

    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / regress.POWER_FILE).read_text(encoding="utf-8"))
    readme = (root / regress.POWER_PAGE).read_text(encoding="utf-8")
    assert replace_block(readme, *regress.POWER_MARKERS, regress.power_table(doc)) == readme, \
        f"{regress.POWER_PAGE}'s gate power table is stale: render it from {regress.POWER_FILE} with " \
        "eqbench.regress.power_table"
    changed = copy.deepcopy(doc)
    changed["table"]["×1.5"]["failed"] -= 1
    assert replace_block(readme, *regress.POWER_MARKERS, regress.power_table(changed)) != readme  # the control
    t = doc["table"]
    assert set(t) == {"comment only", "×1.2", "×1.5", "×2"} and all(v["gates"] >= 15 for v in t.values())
    assert t["comment only"]["failed"] == 0 and all(t[k]["failed"] == t[k]["gates"] for k in ("×1.5", "×2"))
    assert doc["provenance"]["command"].startswith("EQBENCH_GATE_POWER=1")


def test_an_empty_range_and_results_of_another_machine_are_one_line(clone: Path, monkeypatch):
    from eqbench import history

    with pytest.raises(GateError, match="the range 'HEAD..HEAD' holds no commit"):
        commits_of(clone, "HEAD..HEAD")
    # asv ran (here: did nothing) and the results folder holds only the committed machine's results
    monkeypatch.setattr(history, "_asv", lambda repo, *args: 0)
    monkeypatch.setattr(history, "machine_name", lambda: "another-machine")
    with pytest.raises(GateError, match=r"suites/asv_results has no results of this machine \(another-machine\), "
                                        r"only of x86-64") as e:
        history.run_history("HEAD~1..HEAD", repo=clone, publish=False)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ measured limits
def _gates(rng, n: int, rounds: int, shift: float = 1.0, sigma: float | None = None, bursts: float = 0.0):
    """n gates of one benchmark: Gaussian log times with a noise (drawn from ±0.3 % to ±30 % unless given) and a
    time scale (10 µs to 10 s) of their own, HEAD ``shift`` times slower; a share ``bursts`` of the rounds slowed
    as a whole by ×1.1 to ×1.6. Returns (base, head) arrays, one gate a row."""
    sig = rng.uniform(0.003, 0.3, (n, 1)) if sigma is None else sigma
    logs = np.log(10 ** rng.uniform(-5, 1, (n, 1))) + sig * rng.standard_normal((n, 2 * rounds))
    logs += (rng.random((n, 2 * rounds)) < bursts) * np.log(rng.uniform(1.1, 1.6, (n, 2 * rounds)))
    logs[:, rounds:] += math.log(shift)
    return np.exp(logs[:, :rounds]), np.exp(logs[:, rounds:])


def _flagged(base, head, alpha: float, shrink: float = 1.0) -> float:
    """The share of gates whose ratio is over their measured limit (the limit's log × ``shrink``)."""
    cals = [regress.calibrate(list(b), list(h), alpha) for b, h in zip(base, head)]
    return sum(c.ratio > c.limit ** shrink for c in cals) / len(cals)


@pytest.mark.parametrize("rounds", [2, 3, 5, 6])
def test_the_measured_limit_flags_an_unchanged_commit_at_the_chosen_rate(rounds: int):
    """4000 A/A gates of Gaussian log times with noise from ±0.3 % to ±30 % and times from 10 µs to 10 s: the share
    over the measured limit is α within 4.5 binomial standard deviations (independent draws: the limits come from
    the gate's own fixed-seed simulation). Negative control, which this check must reject: limits whose log is
    1/√2 of the measured one (a standard error of one side's mean only)."""
    rng, alpha, n = np.random.default_rng(rounds), 0.05, 4000
    base, head = _gates(rng, n, rounds)
    sd = math.sqrt(alpha * (1 - alpha) / n)
    assert abs(_flagged(base, head, alpha) - alpha) < 4.5 * sd
    assert _flagged(base, head, alpha, shrink=1 / math.sqrt(2)) > alpha + 4.5 * sd


def test_slow_bursts_cost_power_not_false_alarms():
    """Rounds slowed as a whole (×1.1–1.6, one round in seven, as seen on the 2-core CI machine), five rounds a side,
    ±2 % noise: unchanged commits are flagged at α = 1 % or less (4.5 binomial standard deviations), a ×1.5
    slowdown in at least 9 gates of 10 (measured 0.987)."""
    rng, alpha, n = np.random.default_rng(11), 0.01, 3000
    assert _flagged(*_gates(rng, n, 5, sigma=0.02, bursts=1 / 7), alpha) < alpha + 4.5 * math.sqrt(alpha / n)
    assert _flagged(*_gates(rng, n, 5, shift=1.5, sigma=0.02, bursts=1 / 7), alpha) > 0.9


def test_detects_is_the_slowdown_caught_nine_times_in_ten():
    """Gates whose HEAD is slower by exactly the reported ``detects`` of the true noise (±5 %, three rounds a side)
    are flagged POWER = 90 % of the time, within 4.5 binomial standard deviations."""
    rng, alpha, n, sigma = np.random.default_rng(3), 0.01, 3000, 0.05
    _, delta, _ = regress._quantiles(3, 3, alpha)  # detects = exp(δ · noise), here at the true noise
    shift = math.exp(delta * sigma)
    rate = _flagged(*_gates(rng, n, 3, shift=shift, sigma=sigma), alpha)
    assert abs(rate - regress.POWER) < 4.5 * math.sqrt(0.09 / n), rate


def test_calibrate_needs_two_rounds_a_side_and_is_scale_free():
    assert regress.calibrate([1.0], [1.1, 1.2], 0.01) is None and regress.calibrate([1.0, 1.1], [], 0.01) is None
    base, head = [1.0, 1.1, 0.95], [1.2, 1.3, 1.25]
    c = regress.calibrate(base, head, 0.01)
    scaled = regress.calibrate([7e-4 * v for v in base], [7e-4 * v for v in head], 0.01)
    assert (scaled.ratio, scaled.limit, scaled.noise) == pytest.approx((c.ratio, c.limit, c.noise))
    louder = regress.calibrate([v ** 2 for v in base], [v ** 2 for v in head], 0.01)  # every log doubled
    assert math.log(louder.limit) == pytest.approx(2 * math.log(c.limit))
    assert louder.noise == pytest.approx(2 * c.noise) and louder.ratio == pytest.approx(c.ratio ** 2)
    assert regress.calibrate(base, head, 0.001).limit > c.limit > regress.calibrate(base, head, 0.1).limit


def test_the_false_alarm_rate_is_per_gate_not_per_benchmark(clone: Path, tmp_path: Path, monkeypatch):
    """150 gates of five unchanged benchmarks with ±5 % noise at a false-alarm rate of 0.3: the share of gates whose
    first pass flags any time is 1 − (1 − 0.3/5)⁵ = 0.266 (each benchmark at α/5), within 4.5 binomial standard
    deviations; a limit at α for each benchmark would flag 1 − 0.7⁵ = 0.83 of them."""
    rng = np.random.default_rng(7)
    profile = {"rounds": 3, "repeat": 1, "mem_rounds": 0, "time": [[f"t.{i}", ["cpu"]] for i in range(5)]}
    _fake_timing(monkeypatch, lambda side, name, n: float(np.exp(0.05 * rng.standard_normal())), profile)
    n, flagged = 150, 0
    for _ in range(n):
        (clone / ".asv" / "regress" / "results.jsonl").unlink(missing_ok=True)
        _, rows = run_gate("HEAD~1", "HEAD", repo=clone, false_alarm=0.3, quiet=True, out=tmp_path / "out")
        flagged += any("confirm" in r.note for r in rows)
    expected = 1 - (1 - 0.3 / 5) ** 5
    assert abs(flagged / n - expected) < 4.5 * math.sqrt(expected * (1 - expected) / n), flagged


def _rounds(values: dict[str, list[float]]):
    """A fake timing whose k-th process of a side measures ``values[side][k % len]``."""
    return lambda side, name, n: values[side][n % len(values[side])]


def test_the_measured_limit_follows_each_benchmarks_own_noise(clone: Path, tmp_path: Path, monkeypatch):
    """A ×1.2 slowdown over rounds that vary by ±1 % is flagged (limit a few per cent) and confirmed; the same ×1.2
    over rounds that vary by ±15 % is within its limit, and the report says which slowdown it could detect."""
    quiet, loud = [1.0, 1.01, 0.99], [1.0, 1.15, 0.87]
    _fake_timing(monkeypatch, _rounds({"BASE": quiet, "HEAD": [1.2 * v for v in quiet]}),
                 {"rounds": 3, "repeat": 1, "mem_rounds": 0, "time": [["t.quiet", ["cpu"]]]})
    status, (row,) = run_gate("HEAD~1", "HEAD", repo=clone, quiet=True, out=tmp_path / "a")
    assert status == 1 and row.verdict == "REGRESSED" and "confirmed" in row.note and len(row.rounds["BASE"]) == 3
    assert row.ratio == pytest.approx(1.2) and 1.0 < row.limit < 1.1 and row.limit < row.detects < 1.2
    assert row.noise < 0.02
    _fake_timing(monkeypatch, _rounds({"BASE": loud, "HEAD": [1.2 * v for v in loud]}),
                 {"rounds": 3, "repeat": 1, "mem_rounds": 0, "time": [["t.loud", ["cpu"]]]})
    status, (row,) = run_gate("HEAD~1", "HEAD", repo=clone, quiet=True, out=tmp_path / "b")
    assert status == 0 and row.verdict == "ok" and row.ratio == pytest.approx(1.2)
    assert row.limit > 1.2 and row.detects > row.limit and row.noise > 0.1
    report = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert report["factor"] is None and report["false_alarm"] == 0.01
    # its noise hides a ×1.25 (--detect's default): R more rounds twice, up to max_rounds = 3 R; the quiet one had 3
    assert report["rows"][0]["rounds"]["HEAD"] == pytest.approx([1.2 * v for v in loud] * 3)
    _, (row,) = run_gate("HEAD~1", "HEAD", repo=clone, detect=5.0, quiet=True, out=tmp_path / "d")
    assert len(row.rounds["HEAD"]) == 3  # nothing hidden at ×5: no more rounds
    # --factor overrides the measured limit: ×1.2 over ×1.1 regresses, whatever the noise
    status, (row,) = run_gate("HEAD~1", "HEAD", repo=clone, factor=1.1, quiet=True, out=tmp_path / "c")
    assert status == 1 and row.limit == 1.1


def test_a_noisy_confirmation_gets_more_rounds_too(clone: Path, tmp_path: Path, monkeypatch):
    """×1.5 at HEAD in every process. The first three rounds are quiet and flag it; the confirmation's first three
    fresh rounds vary by ×1.5 on both sides (a noisy spell), which hides a ×1.25, so the confirmation takes three
    more, quiet again, and confirms. Judged on its first three alone it would call the slowdown noise."""
    spell = [1.0, 1.01, 0.99, 1.0, 1.25, 1.5]  # processes 0–2: the first pass; 3–5: the confirmation's first rounds

    def seconds(side, name, n):
        v = spell[n] if n < len(spell) else 1.0 + 0.01 * (n % 2)
        return 1.5 * v if side == "HEAD" else v

    _fake_timing(monkeypatch, seconds, {"rounds": 3, "repeat": 1, "mem_rounds": 0, "time": [["t.x", ["cpu"]]]})
    status, (row,) = run_gate("HEAD~1", "HEAD", repo=clone, quiet=True, out=tmp_path / "out")
    assert status == 1 and row.verdict == "REGRESSED" and "in 6 fresh rounds" in row.note, row.note


@pytest.mark.parametrize("rate", [0, 0.5, 0.7, -0.01])
def test_a_false_alarm_rate_outside_zero_to_a_half_is_one_line(clone: Path, rate: float):
    with pytest.raises(GateError, match=rf"--false-alarm must lie strictly between 0 and 0.5 \(got {rate}\)") as e:
        run_gate("HEAD~1", "HEAD", repo=clone, false_alarm=rate, quiet=True)
    assert "\n" not in str(e.value)


def test_one_round_cannot_measure_the_noise(clone: Path, monkeypatch):
    _fake_timing(monkeypatch, lambda side, name, n: 1.0)
    with pytest.raises(GateError, match="1 timed round per commit cannot measure the noise: give --rounds 2"):
        run_gate("HEAD~1", "HEAD", repo=clone, rounds=1, quiet=True)
    run_gate("HEAD~1", "HEAD", repo=clone, rounds=1, factor=1.3, quiet=True, out=clone / "out")  # a fixed limit can


def test_a_base_that_is_not_an_ancestor_is_one_line(clone: Path, plant):
    """A commit on a side branch is no BASE for HEAD (its changes would read as HEAD's regressions, reversed)."""
    head = regress.resolve(clone, "HEAD")
    plant.git(clone, "checkout", "-q", "-b", "side", "HEAD~1")
    side = plant(clone, "README.md", "# eqbench", "# eqbench (side)", "a side branch")
    plant.git(clone, "checkout", "-q", "main")
    with pytest.raises(GateError, match=rf"BASE {side[:10]} is not an ancestor of HEAD {head[:10]}: gate a commit "):
        run_gate(side, "HEAD", repo=clone, profile="correctness", quiet=True)
    regress.require_ancestor(clone, head, head)  # a commit against itself (an A/A gate) is allowed
