"""The claims catalogue (eqbench.claims), asserted: every claim with a bound holds on its case, and every
negative control violates its bound, as it must.

The catalogue is the one place where a claim, its case, its bound and the bound's derivation live; ``make
bench`` prints the same claims as its table and the regression gate tracks their values. It holds the GDU
theorem on every theorem case of eqbench.cases (the premise, and both orders judged per layer on the asymptotic
range that the β ladder finds, eqbench.checks.order), the float32 sign bounds, the energy and convergence
claims, closed form = autograd, the flip optimizer, NCHW = NHWC for every conv model with max pooling from its
own start, and the controls (independent feedback, a flipped estimator, an unconverged free phase, the authors'
nudges, a retrieval with values unlike keys, a wrong energy slope, an Euler step past its bound, a closed form off
by 1 + 1e-9, a fused relaxation without the nudge, a drive that reads another sample, a BIN_CNN whose plain max
pooling breaks ties by the layout's rounding).
A new model joins by a case in eqbench.cases and its claims in eqbench.claims — or, outside eqbench, through
``eqbench check`` and eqbench.testing.
"""

from __future__ import annotations

import pytest

from eqbench.claims import claims
from eqbench.kit import check
from eqbench.models import MODELS, model_factories


def _id(claim) -> str:
    return f"{claim.family}|{claim.label}|{claim.check}"


@pytest.mark.parametrize("claim", [c for c in claims() if c.bound is not None], ids=_id)
def test_claim(claim, record_property):
    result = claim.evaluate()
    record_property("measured", result.value)
    assert result.verdict == "pass", result.message


#: models other packages register (entry-point group ``eqbench.models``): the generic claims must hold on each
OUTSIDE = sorted(set(model_factories()) - set(MODELS))


@pytest.mark.parametrize("name", OUTSIDE)
def test_every_registered_model_of_another_package_holds_the_generic_claims(name, one_thread):
    results = check(name).results
    assert [r.message for r in results if r.verdict == "FAIL"] == []


# ------------------------------------------------------------------------------------- controls can fail
def test_a_control_whose_broken_variant_is_in_fact_correct_reads_FAIL():
    """A control is itself a claim: run on a variant that is not broken, it must read FAIL (a catalogue whose
    control always passed would otherwise stay green). The sign-flipped and 3-step controls of P_MLP, their
    breakage undone: the rule as it is and the free phase of the case's own length."""
    from dataclasses import replace

    from eqbench.claims import generic_controls, order, premise, subject, with_control

    sub = subject("P_MLP")
    sign, steps, prem = generic_controls("P_MLP", "P_MLP")
    assert [sign.evaluate(sub).verdict, prem.evaluate(sub).verdict] == ["pass", "pass"]  # broken: caught
    unbroken = [replace(sign, measure=order("symmetric")), replace(steps, measure=order("symmetric")),
                replace(prem, measure=with_control(premise, T1=None))]
    assert [c.evaluate(sub).verdict for c in unbroken] == ["FAIL"] * 3


def test_control_verdict_arithmetic():
    """The verdict of a control on plain values: inside its bound is a FAIL (not caught), outside a pass, a
    measurement that FAILs or is inconclusive by its own rule is caught; a positive claim reads the reverse."""
    from eqbench.claims import Claim, Measured, le

    def verdict(value, control, own=None):
        c = Claim("control", "x", "x", lambda sub: Measured(value, verdict=own), le(1.0), "", control=control)
        return c.evaluate(sub=object()).verdict

    assert [verdict(0.5, True), verdict(2.0, True), verdict(0.5, True, "FAIL"), verdict(0.5, True, "inconclusive")] \
        == ["FAIL", "pass", "pass", "pass"]
    assert [verdict(0.5, False), verdict(2.0, False), verdict(0.5, False, "FAIL"),
            verdict(0.5, False, "inconclusive")] == ["pass", "FAIL", "FAIL", "inconclusive"]
