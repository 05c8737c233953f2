"""Order verification on a β ladder (eqbench.checks.order): the rule on synthetic ladders it was not tuned on, bad
ladders and precisions in one line, diverged nudged phases, the noise floor and the kink diagnostic on real models.

The synthetic ladders are what a model's error looks like as a function of β — a power law C·β^p, above it an
arbitrary pre-asymptotic region (kinks, higher orders), below it a noise floor F/β that the measured estimate knows
only within a factor (0.3–3 here) — with C, p, F, the kink region and the noise drawn by hypothesis. The properties
are what a user needs: a decade of power law well above the floor passes with its order; a bias that stays far above
the floor never passes; an error that is only floor is never judged; the verdict does not depend on the units.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from eqbench import EnergyModel
from eqbench.checks.gdu import gdu_ladder, prepare
from eqbench.checks.order import FLOOR_FACTOR, LADDER, check_precision, judge, ladder, piecewise_linear
from eqbench.cli import main
from eqbench.errors import ConfigError
from eqbench.rules import EP
from eqbench.testing import scaled_examples

pytestmark = pytest.mark.usefixtures("one_thread")

BETAS = list(LADDER)


@st.composite
def ladders(draw, bias: bool = False):
    """(errors, floors, order, C, F, β_kink) of a synthetic model: C·β^p below β_kink, anything above it, plus the
    floor F/β times a factor in [0.3, 3] that the estimate (F/β) does not know."""
    p = draw(st.sampled_from([1.0, 2.0, 3.0, 4.0]))
    C = 10 ** draw(st.floats(-3, 3))
    F = 10 ** draw(st.floats(-20, -10))
    kink = 10 ** draw(st.floats(-4, -1))
    above = [10 ** draw(st.floats(-3, 0)) for _ in BETAS]
    noise = [draw(st.floats(0.3, 3.0)) for _ in BETAS]
    c0 = 10 ** draw(st.floats(-12, -2)) if bias else 0.0
    errors = [(above[i] if b > kink else C * b ** p) + c0 + noise[i] * F / b for i, b in enumerate(BETAS)]
    return errors, [F / b for b in BETAS], p, C, F, kink, c0


def _clean_decades(C: float, p: float, F: float, kink: float, margin: float) -> list[float]:
    """The ladder's β below the kink where the power law stands ``margin``× above the floor."""
    return [b for b in BETAS if b <= kink and C * b ** p >= margin * F / b]


@settings(max_examples=scaled_examples(200), deadline=None)
@given(ladders())
def test_a_decade_and_a_half_of_power_law_above_the_floor_passes_with_its_order(data):
    errors, floors, p, C, F, kink, _ = data
    clean = _clean_decades(C, p, F, kink, 10 * FLOOR_FACTOR)
    fit = judge(BETAS, errors, floors, p)
    if clean and math.log10(clean[0] / clean[-1]) >= 1.5:
        assert fit.verdict == "pass", fit.reason
        assert fit.slope == pytest.approx(p, rel=0.1)
        assert fit.range[1] <= clean[0] * 1.0001 and fit.range[0] >= clean[-1] * 0.9999  # the range meets it
    if fit.verdict == "pass":  # a pass always has a decade of local orders within the band
        assert fit.range[0] / fit.range[1] >= 10 ** (1 - 1e-9) and 0.9 * p <= fit.slope <= 1.1 * p


@settings(max_examples=scaled_examples(200), deadline=None)
@given(ladders(bias=True))
def test_a_bias_that_stays_far_above_the_floor_never_passes(data):
    errors, floors, p, C, F, kink, c0 = data
    visible = c0 >= 10 * FLOOR_FACTOR * F / BETAS[-1] and C * (10 * BETAS[-1]) ** p <= 0.01 * c0
    fit = judge(BETAS, errors, floors, p)
    if visible:
        assert fit.verdict != "pass", (fit.range, fit.slope)


@settings(max_examples=scaled_examples(50), deadline=None)
@given(st.floats(-20, 0), st.sampled_from([1.0, 2.0]))
def test_an_error_that_is_only_its_floor_is_inconclusive(log_drift, p):
    drift = [10 ** log_drift / b for b in BETAS]  # a free phase that is no fixed point: the drift over β
    fit = judge(BETAS, drift, drift, p)
    assert fit.verdict == "inconclusive" and "noise floor" in fit.reason


@settings(max_examples=scaled_examples(50), deadline=None)
@given(ladders(bias=True), st.floats(-8, 8), st.floats(-3, 3))
def test_the_verdict_does_not_depend_on_the_units(data, log_scale, log_shift):
    """Errors and floors × a (other units of the gradient), β × k (other units of the loss): the same verdict and
    order. No bound of the rule is an absolute number."""
    errors, floors, p, *_ = data
    a, k = 10 ** log_scale, 10 ** log_shift
    one = judge(BETAS, errors, floors, p)
    two = judge([k * b for b in BETAS], [a * e for e in errors], [a * f for f in floors], p)
    assert one.verdict == two.verdict and two.slope == pytest.approx(one.slope, rel=1e-9, nan_ok=True)


def test_the_rule_on_the_issue_s_measurements():
    """The errors that made the fixed-window kit call a correct model broken (a clip network, digits, float64):
    orders 1 and 2 below β ≈ 3e-3, kinks above, float64's floor at 1e-5 — both pass, on the range the data show."""
    betas = [1e-1, 3.2e-2, 1e-2, 3.2e-3, 1e-3, 3.2e-4, 1e-4, 3e-5, 1e-5]
    one = [4.2e-1, 2.0e-1, 1.4e-2, 4.6e-3, 1.46e-3, 4.6e-4, 1.46e-4, 4.4e-5, 1.47e-5]
    sym = [2.9e-1, 1.2e-1, 3.5e-3, 2.4e-5, 2.37e-6, 2.4e-7, 2.37e-8, 2.1e-9, 1.1e-9]
    floor = [1.1e-14 / b for b in betas]  # ~1e-9 at β = 1e-5, as measured
    a, b = judge(betas, one, floor, 1), judge(betas, sym, floor, 2)
    assert a.verdict == b.verdict == "pass"
    assert a.range == (1e-2, 1e-5) and b.range == (3.2e-3, 3e-5)  # local orders 0.98 from 1e-2, 1.99 from 3.2e-3


def test_what_no_range_means_is_said():
    flat = [1.0] * len(BETAS)  # an O(1) error far above its floor: order 0 over the last decade
    fit = judge(BETAS, flat, [1e-16 / b for b in BETAS], 2)
    assert fit.verdict == "FAIL" and fit.reason.startswith("the error is O(β^0.00), not O(β^2)")
    still = [1.0]  # local orders 0.3, 0.5, …, 2.1: still changing at the ladder's end
    for k in range(len(BETAS) - 1):
        still.append(still[-1] * (BETAS[k + 1] / BETAS[k]) ** (0.3 + 0.2 * k))
    fit = judge(BETAS, still, [1e-30 for _ in BETAS], 1)
    assert fit.verdict == "inconclusive" and "extend the ladder" in fit.reason
    steep = [b ** 3.5 for b in BETAS]  # settled at another order, steeper than O(β): FAIL, as a shallower one
    assert judge(BETAS, steep, [1e-30 for _ in BETAS], 1).verdict == "FAIL"
    diverged = [math.nan, math.nan] + [b for b in BETAS[2:]]
    fit = judge(BETAS, diverged, [1e-16 / b for b in BETAS], 1)
    assert fit.verdict == "pass" and fit.range == (BETAS[2], BETAS[-1])  # the range among the others


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("betas, message", [
    ([1e-1, 5e-2, 2e-2], "spanning a decade"),
    ([1e-1, 1e-3], "at least 3 distinct values"),
    ([1e-1, 0.0, 1e-3], "positive and finite"),
    ([1e-1, -1e-2, 1e-3], "positive and finite"),
    ([1e-1, float("nan"), 1e-3], "positive and finite"),
    (["a", 1e-2, 1e-3], "a list of numbers"),
])
def test_a_bad_ladder_is_one_line(betas, message):
    with pytest.raises(ConfigError, match=message) as info:
        ladder(betas)
    assert "\n" not in str(info.value)
    assert ladder([1e-3, 1e-1, 1e-2, 1e-2]) == [1e-1, 1e-2, 1e-3]  # sorted, duplicates dropped


def test_a_dtype_without_an_asymptotic_range_is_one_line():
    for dtype, u in ((torch.bfloat16, "3.9e-03"), (torch.float16, "4.9e-04")):
        with pytest.raises(ConfigError, match=rf"cannot run in {str(dtype)[6:]}: its unit round-off u = {u}"):
            check_precision(dtype)
    check_precision(torch.float32)
    check_precision(torch.complex128)


def test_eqbench_check_refuses_a_bad_ladder_or_bfloat16_in_one_line(capsys):
    for args, message in ((["--betas", "0.1", "0.05", "0.02"], "spanning a decade"),
                          (["--betas", "0.1", "-0.01", "0.001"], "positive and finite"),
                          (["--dtype", "bfloat16"], "cannot run in bfloat16"),
                          (["--dtype", "float8"], "unknown dtype 'float8'")):
        assert main(["check", "P_MLP", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------------------------------------- real models
class LogOutput(EnergyModel):
    """Φ = ⟨Wx + b, s1⟩ + ⟨V s1 + c, s2⟩ − β·L with s1 = sigmoid(u1) and s2 = log(u2): the output's drive u2 ≈ 3
    stays positive in the free phase and for small β, but the nudge drives it negative at β = 10, where log is NaN —
    a nudged phase that diverges at the top of a ladder."""

    name, in_shape, n_classes, has_closed_form = "LOG_OUTPUT", (64,), 10, False

    def __init__(self):
        super().__init__()
        self.w, self.v = nn.Linear(64, 12), nn.Linear(12, 10)
        with torch.no_grad():
            self.v.weight.mul_(0.1), self.v.bias.fill_(3.0)

    def state_shapes(self):
        return [(12,), (10,)]

    def phi(self, x, s, beta=0.0, y=None):
        return (self.w(x) * s[0]).sum(1) + (self.v(s[0]) * s[1]).sum(1) + self.nudge_term(s, beta, y)

    def loss(self, s, y):
        return 0.5 * ((s[1] - torch.nn.functional.one_hot(y, 10).to(s[1])) ** 2).sum(1)

    def output(self, s):
        return s[1]

    def activations(self):
        return [torch.sigmoid, torch.log]


def _digits():
    from eqbench.cases import build_case

    return build_case("P_MLP", act="my_sigmoid")[1:]


def test_a_nudged_phase_that_diverges_is_reported_and_the_range_found_among_the_others():
    torch.manual_seed(0)
    model, (x, y) = LogOutput().double(), _digits()
    rule = EP(beta=1e-3, T1=300, T2=10, estimator="one_sided")
    lad = gdu_ladder(prepare(model, x, y, rule), rule, [10.0, *LADDER])
    assert lad.diverged == [10.0]
    for variant in ("one_sided", "symmetric"):
        v = lad.verdict(variant)
        assert v.verdict == "pass" and v.range[0] <= 0.1, v.reason
    d = json.loads(json.dumps(lad.to_dict()))  # plain JSON: the diverged β's errors are null
    assert d["diverged"] == [10.0] and d["layers"]["s1"]["one_sided"]["errors"][0] is None


def test_the_measured_noise_floor_explains_the_errors_below_the_range():
    """On P_MLP the symmetric error leaves O(β²) below β ≈ 3e-5: there it lies within FLOOR_FACTOR of the measured
    floor (so it is explained), while inside the range it stands ≥ 100× above it."""
    from eqbench.claims import subject

    lad = subject("P_MLP").ladder()
    for key, fit in lad.fits["symmetric"].items():
        below = [(e, f) for b, e, f in zip(lad.betas, fit.errors, fit.floors) if b < fit.range[1]]
        inside = [(e, f) for b, e, f in zip(lad.betas, fit.errors, fit.floors) if fit.range[1] <= b <= fit.range[0]]
        assert all(e <= FLOOR_FACTOR * f for e, f in below), key
        assert all(e > f for e, f in inside), key


def test_piecewise_linear_activations_and_the_kink_diagnostic():
    assert piecewise_linear(lambda u: u.clamp(0, 1)) and piecewise_linear(torch.relu)
    assert not piecewise_linear(torch.tanh) and not piecewise_linear(torch.sigmoid)
    assert not piecewise_linear(lambda u: "not a tensor")
    from eqbench.claims import subject

    lad = subject("BIN_MLP bin_W, gradient nudge").ladder()  # clip units: the nudge crosses kinks at large β only
    assert lad.kinks[0] > 0 and lad.kinks[-1] == 0 and lad.kink_beta is not None
    assert lad.verdict("symmetric").range[0] <= lad.kink_beta * 1.0001  # the range begins where kinks stop
    assert subject("P_MLP").ladder().kinks is None  # smooth units: no diagnostic


def test_the_floor_is_never_below_the_textbook_floor_of_a_difference_quotient(monkeypatch):
    """A measured floor of exactly zero (equal ± perturbations that cancel, a layer the perturbation misses) must
    not make round-off look like a bias: the floor is at least u·‖A‖/β (`roundoff_floor`) for every key."""
    from eqbench.checks import gdu
    from eqbench.checks.order import roundoff_floor
    from eqbench.claims import subject

    sub = subject("P_MLP")
    run, rule = sub.gdu()
    monkeypatch.setattr(gdu, "noise_floor", lambda *a, **k: {key: torch.zeros_like(v) for key, v in run.bptt.items()})
    betas = [1e-2, 3e-3, 1e-3]
    lad = gdu.gdu_ladder(run, rule, betas)
    least = roundoff_floor(run.model, run.x, run.free, run.T2)
    assert set(lad.floors) == set(least) and all(v > 0 for v in least.values())
    for key, floors in lad.floors.items():
        assert floors == pytest.approx([least[key] / b for b in betas], rel=1e-12), key
