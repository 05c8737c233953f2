"""``eqbench check``: the catalogue's generic claims on models eqbench does not have, and bad input in one line.

The models come from a module written into a temporary folder (code outside eqbench) and, when it is installed,
from the example package examples/third_party_model (CI installs it): its correct model passes every claim and
its broken twin (independent feedback) fails the GDU claims, and only those.
"""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import entry_points

import pytest

from eqbench.cli import main
from eqbench.errors import ConfigError
from eqbench.kit import check

MODULE = '''
import torch
from torch import nn
from eqbench import EP, EnergyModel


class Tiny(EnergyModel):
    """Φ = ⟨W x + b, s1⟩ + ⟨V s1 + c, s2⟩ − β·L with a sigmoid step: a Laborieux-style network of two layers."""

    name, in_shape, n_classes, has_closed_form = "TINY", (64,), 10, False

    def __init__(self, shapes_ok=True, phi_ok=True):
        super().__init__()
        self.w, self.v = nn.Linear(64, 12), nn.Linear(12, 10)
        with torch.no_grad():
            self.v.weight.mul_(0.5)
        self.shapes_ok, self.phi_ok = shapes_ok, phi_ok

    def state_shapes(self):
        return [(12,), (10,)] if self.shapes_ok else [(12,), (9,)]

    def init_state(self, x):
        return [x.new_zeros(x.shape[0], 12), x.new_zeros(x.shape[0], 10)]

    def phi(self, x, s, beta=0.0, y=None):
        total = (self.w(x) * s[0]).sum(1) + (self.v(s[0]) * s[1]).sum(1)
        total = total if beta == 0.0 else total + self.nudge_term(s, beta, y)
        return total if self.phi_ok else total[:, None] * s[1]

    def loss(self, s, y):
        return 0.5 * ((s[1] - torch.nn.functional.one_hot(y, 10).to(s[1])) ** 2).sum(1)

    def output(self, s):
        return s[1]

    def activations(self):
        return [torch.sigmoid, torch.sigmoid]


def tiny(**kw):
    return Tiny(**kw)


def not_a_model():
    return torch.nn.Linear(2, 2)


def loud(**kw):
    """Strong inhibitory coupling: from s = 0 both layers switch on together, then off together (s1 = σ(40 − 80·s̄2),
    s2 = σ(48 − 96·s̄1)), so the synchronous free phase cycles with period two and never settles."""
    m = Tiny(**kw)
    with torch.no_grad():
        m.w.weight.zero_(), m.w.bias.fill_(40.0), m.v.weight.fill_(-8.0), m.v.bias.fill_(48.0)
    return m


class HalvedEP(EP):
    """A rule from outside eqbench whose updates are half of EP's: a factor-of-two bug the GDU claims must catch."""

    def detailed_gradients(self, *args, **kwargs):
        return {k: 0.5 * v for k, v in super().detailed_gradients(*args, **kwargs).items()}


class PlainEP(EP):
    """The same rule without the bug: written outside eqbench, checked against BPTT through detailed_gradients."""
'''


@pytest.fixture
def outside(tmp_path, monkeypatch):
    (tmp_path / "outside_ep.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _verdicts(results) -> dict[str, str]:
    return {r.claim.check: r.verdict for r in results}


def test_a_model_outside_eqbench_passes_and_says_which_claims_do_not_apply(outside, one_thread):
    results = check("outside_ep:tiny", T1=200).results
    v = _verdicts(results)
    assert "FAIL" not in v.values(), [r.message for r in results if r.verdict == "FAIL"]
    na = {r.claim.check: r.note for r in results if r.verdict == "n/a"}
    assert any("closed-form" in k for k in na) and any("no closed-form drive declared" in n for n in na.values())
    assert any("energy" in k for k in na) and any("declares no energy" in n for n in na.values())
    controls = [r for r in results if r.claim.control]
    assert len(controls) == 3 and all(r.verdict == "pass" for r in controls)  # the GDU check can fail on it


@pytest.mark.parametrize("factory, config, message", [
    ("outside_ep:nope", {}, "has no attribute 'nope'"),
    ("no_such_package.models:f", {}, "does not import"),
    ("outside_ep:not_a_model", {}, "not an eqbench.EnergyModel"),
    ("outside_ep:tiny", {"shapes_ok": False}, "init_state gives shapes"),
    ("outside_ep:tiny", {"phi_ok": False}, "phi returns shape"),
    ("outside_ep:tiny", {"unknown_option": 1}, "unknown_option"),
    ("NO_SUCH_MODEL", {}, "unknown model"),
])
def test_bad_input_is_one_line_naming_the_problem(outside, tmp_path, capsys, factory, config, message):
    args = [factory]
    if config:
        (tmp_path / "cfg.yaml").write_text(json.dumps(config))
        args += ["--config", str(tmp_path / "cfg.yaml")]
    assert main(["check", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_a_rule_outside_eqbench_is_checked_against_bptt_step_by_step(outside, one_thread):
    ok = check("outside_ep:tiny", rule="outside_ep:PlainEP", T1=200).results
    assert "FAIL" not in _verdicts(ok).values()
    halved = check("outside_ep:tiny", rule="outside_ep:HalvedEP", T1=200)
    failed = {r.claim.name for r in halved.results if r.verdict == "FAIL"}
    assert {"order/one_sided", "order/symmetric"} <= failed  # ‖½g − g‖/‖g‖ = ½ on every layer: order 0
    assert halved.ladder.relative("symmetric", "w.weight")[4] == pytest.approx(0.5, abs=1e-3)  # β = 1e-3
    assert halved.status == 1


def test_a_free_phase_that_never_converges_fails_the_premise_by_name(outside, one_thread):
    results = check("outside_ep:loud", T1=200).results
    premise = next(r for r in results if r.claim.check.startswith("free phase converged"))
    assert premise.verdict == "FAIL" and premise.value > 1e-3
    assert premise.message.startswith("TINY: free phase converged (premise)")


def test_malformed_config_file(outside, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    assert main(["check", "outside_ep:tiny", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


EXAMPLE = "LEAKY_MLP" in {ep.name for ep in entry_points(group="eqbench.models")}


@pytest.mark.skipif(not EXAMPLE, reason="examples/third_party_model is not installed (make example)")
def test_the_example_package_passes_and_its_broken_twin_fails_the_gdu_claims(one_thread, tmp_path):
    assert main(["check", "LEAKY_MLP", "--json", str(tmp_path / "ok.json")]) == 0
    assert main(["check", "leaky_ep.model:leaky_mlp_broken", "--json", str(tmp_path / "broken.json")]) == 1
    broken = json.loads((tmp_path / "broken.json").read_text())["claims"]
    failed = {c["check"] for c in broken if c["verdict"] == "FAIL"}
    assert failed == {"GDU one-sided order on its asymptotic range (float64 ladder)",
                      "GDU negative order on its asymptotic range (float64 ladder)",
                      "GDU symmetric order on its asymptotic range (float64 ladder)"}


def test_the_ladder_comes_from_betas_or_the_config_and_the_json_carries_it(outside, tmp_path, capsys):
    (tmp_path / "cfg.yaml").write_text("betas: [0.1, 0.01, 0.001, 0.0001]\n")
    assert main(["check", "outside_ep:tiny", "--T1", "200", "--config", str(tmp_path / "cfg.yaml"),
                 "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "one_sided: pass, asymptotic range [" in out and "local orders:" in out
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["case"]["betas"] == [0.1, 0.01, 0.001, 0.0001] and d["ladder"]["betas"] == d["case"]["betas"]
    for variant in ("one_sided", "symmetric"):
        layer = d["ladder"]["layers"]["s1"][variant]
        assert len(layer["errors"]) == len(layer["floors"]) == 4 and len(layer["local_slopes"]) == 3
        assert d["ladder"]["verdicts"][variant]["verdict"] == "pass"
    assert main(["check", "outside_ep:tiny", "--T1", "200", "--betas", "0.1", "0.03", "0.01", "0.003",
                 "--json", str(tmp_path / "b.json")]) == 0  # --betas wins over the default
    assert json.loads((tmp_path / "b.json").read_text())["case"]["betas"] == [0.1, 0.03, 0.01, 0.003]


def test_t1_and_t2_reach_the_case_each_as_given(outside, tmp_path):
    """--T1 free steps and --T2 nudged steps, given different values: the case (and the JSON) has each as given."""
    assert main(["check", "outside_ep:tiny", "--T1", "200", "--T2", "7", "--json", str(tmp_path / "a.json")]) == 0
    case = json.loads((tmp_path / "a.json").read_text())["case"]
    assert (case["T1"], case["T2"]) == (200, 7)


def test_a_float32_only_model_is_judged_in_float32_and_an_inconclusive_order_is_exit_status_3(outside, tmp_path):
    (tmp_path / "f32.py").write_text(textwrap.dedent('''
        import torch
        from outside_ep import Tiny

        class Float32Tiny(Tiny):
            required_dtype = torch.float32

        def tiny32(**kw):
            return Float32Tiny(**kw)
    '''))
    checked = check("f32:tiny32", T1=200)
    assert checked.case.dtype == "float32" and checked.ladder.premise_tol > 1e-6  # 64·eps·‖s*‖ of float32
    verdicts = {r.claim.name: r.verdict for r in checked.results}
    assert verdicts["premise"] == "pass" and "FAIL" not in verdicts.values()  # float32's round-off, not float64's
    assert verdicts["order/symmetric"] == "inconclusive" and checked.status == 3  # the floor comes first
    with pytest.raises(ConfigError, match="declares required_dtype float32: it cannot be checked in float64"):
        check("f32:tiny32", dtype="float64")


def test_the_exit_status_is_1_on_any_fail_even_beside_an_inconclusive_3_on_inconclusive_alone():
    from eqbench.claims import Claim, Result
    from eqbench.kit import Checked

    claim = Claim("gdu", "x", "x", lambda sub: 0.0, None, "")

    def status(*verdicts):
        return Checked(None, [Result(claim, 0.0, "", v) for v in verdicts], None).status

    assert [status("pass", "n/a", "info"), status("pass", "inconclusive"), status("inconclusive", "FAIL"),
            status("FAIL", "inconclusive"), status()] == [0, 3, 1, 1, 0]
