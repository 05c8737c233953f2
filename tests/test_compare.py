"""``eqbench compare`` (eqbench.compare): the paper's findings as relative claims on paired seeds, the study's
configs on an equal footing, bad input in one line, the report end to end on a miniature, and the README's tables
rendered from the committed measurements."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from eqbench import compare as cmp
from eqbench.errors import ConfigError
from eqbench.io import replace_block
from eqbench.rules.algorithms import SEVEN

ROOT = Path(__file__).resolve().parents[1]


def _errors(best_shift: float, noise: float, seeds: int = 5) -> dict[str, list[float]]:
    """Per-seed errors: every algorithm at 10 % plus a seed effect shared by all (paired), C-EP and the negative
    variants ``best_shift`` lower, and independent noise of size ``noise``."""
    import random

    rng = random.Random(0)
    seed_effect = [rng.gauss(0, 2.0) for _ in range(seeds)]
    out = {}
    for alg in SEVEN:
        shift = best_shift * (2 if alg == "CEP" else 1 if alg in ("NEP", "NCpL") else 0)
        out[alg] = [10 + e - shift + rng.gauss(0, noise) for e in seed_effect]
    return out


def test_a_clear_ordering_passes_and_its_reverse_fails():
    errors = _errors(best_shift=1.0, noise=0.1)
    verdicts = [cmp.test_finding(s, b, o, errors)["verdict"] for s, b, o in cmp.FINDINGS]
    assert verdicts == ["pass", "pass", "pass"]
    flipped = {a: [20 - v for v in vs] for a, vs in errors.items()}  # the control: every difference reversed
    assert [cmp.test_finding(s, b, o, flipped)["verdict"] for s, b, o in cmp.FINDINGS] == ["fail"] * 3


def test_differences_inside_the_seed_noise_are_not_measurable_with_the_reason():
    f = cmp.test_finding(*cmp.FINDINGS[1], _errors(best_shift=0.05, noise=1.0))
    assert f["verdict"] == "not measurable at this scale"
    assert "within the seed-to-seed spread" in f["reason"] and "seeds" in f["reason"]


def test_holm_rejects_step_down():
    assert cmp.holm([0.01, 0.04, 0.03]) == [True, False, False]  # 0.01 ≤ .05/3; 0.03 > .05/2 stops
    assert cmp.holm([0.001, 0.02, 0.04]) == [True, True, True]


@pytest.mark.parametrize("kw, match", [
    ({"dataset": "cifar11"}, "no comparative-study entries for dataset 'cifar11'"),
    ({"dataset": "svhn"}, "has no 'ci' config"),
    ({"seeds": 1}, "at least 2 seeds"),
])
def test_bad_input_is_one_line(kw, match):
    with pytest.raises(ConfigError, match=match) as e:
        cmp.study_configs(**{"dataset": "mnist", "scale": "ci", "seeds": 3, **kw})
    assert "\n" not in str(e.value)


def test_the_seven_configs_differ_in_the_rule_only():
    configs = cmp.study_configs("mnist", "ci", 2)
    assert list(configs) == list(SEVEN)
    assert len({json.dumps(replace(c[0], rule={}).to_dict(), sort_keys=True) for c in configs.values()}) == 1
    assert [c[0].rule["name"] for c in configs.values()] == list(SEVEN)


def test_the_report_end_to_end_on_a_miniature(tmp_path, monkeypatch, one_thread):
    """Two seeds of one epoch on a tiny DCHN: every algorithm trained into its run folder, the report written; a
    second call reuses the finished runs (the same numbers)."""
    real = cmp.study_configs

    def tiny(dataset, scale, seeds, device=None):
        return {a: [replace(c, epochs=1, schedule=None, model={**c.model, "channels": [2, 3]})
                    for c in cfgs] for a, cfgs in real(dataset, scale, seeds, device).items()}

    monkeypatch.setattr(cmp, "study_configs", tiny)
    rep = cmp.compare("mnist", "ci", 2, results=str(tmp_path / "r"), out=str(tmp_path / "o"), progress=False)
    assert [r["algorithm"] for r in rep["rows"]] == list(SEVEN) and len(rep["findings"]) == 3
    assert json.loads((tmp_path / "o" / "mnist-ci.json").read_text())["rows"] == rep["rows"]
    assert "| CEP |" in (tmp_path / "o" / "mnist-ci.md").read_text()
    again = cmp.compare("mnist", "ci", 2, results=str(tmp_path / "r"), out=str(tmp_path / "o2"), progress=False)
    assert again["rows"] == rep["rows"]


@pytest.mark.parametrize("file, markers, render", [
    (cmp.REPORT_FILE, cmp.COMPARE_MARKERS, lambda d: cmp.markdown(d).rstrip("\n").split("\n")),
    (cmp.SPEEDUP_FILE, cmp.SPEEDUP_MARKERS, cmp.speedup_table),
])
def test_the_readme_tables_are_rendered_from_the_measurements(file, markers, render):
    """The docs' comparison and speed-up tables are the committed measurements rendered (stale: fails)."""
    readme = (ROOT / cmp.PAGE).read_text()
    doc = json.loads((ROOT / file).read_text())
    assert replace_block(readme, *markers, render(doc)) == readme, f"{cmp.PAGE}'s block is stale: render {file}"
    doc["provenance"]["commit"] = "0000000"  # the control: another measurement renders another block
    assert replace_block(readme, *markers, render(doc)) != readme


def test_estimate_knows_the_study_configs(one_thread):
    """``eqbench estimate`` on a Table-1 cell (the ci config here: the paper's is GPU-sized)."""
    from eqbench.estimate import estimate

    e = estimate("scellier2023/mnist/dchn-cep", "ci", batches=2)
    assert e.dataset == "digits" and e.train_batches == 45 and e.epoch_s > 0


def test_the_command_reports_bad_input_in_one_line(capsys):
    from eqbench.cli import main

    assert main(["compare", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "eqbench: error: a comparison needs at least 2 seeds (a paired test needs a spread), got 1\n"
