"""The claims catalogue (eqbench.claims), asserted: every claim with a bound holds on its case, and every
negative control violates its bound, as it must.

The catalogue is the one place where a claim, its case, its bound and the bound's derivation live; ``make
bench`` prints the same claims as its table and the regression gate tracks their values. It holds the GDU
theorem on every theorem case of eqbench.cases (the premise, and both orders judged per layer on the asymptotic
range that the β ladder finds, eqbench.checks.order), the float32 sign bounds, the energy and convergence
claims, closed form = autograd, the flip optimizer, and the controls (independent feedback, a flipped
estimator, an unconverged free phase, the authors' nudges, a retrieval with values unlike keys, a wrong energy
slope, an Euler step past its bound, a closed form off by 1 + 1e-9, a fused relaxation without the nudge, a
drive that reads another sample).
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
