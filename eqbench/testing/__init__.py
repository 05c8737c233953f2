"""eqbench's conformance kit: check your own EP model against eqbench's theorems from your own pytest file.

Helpers for the suites (and for users' own suites built on them)::

    from eqbench.testing import assert_gdu, assert_converges, strategies

    def test_my_model_follows_bptt():
        model, x, y = my_model().double(), my_inputs(), my_targets()
        assert_converges(model, x)                 # the GDU theorem's premise: a fixed point
        assert_gdu(model, x, y)                    # EP = BPTT as β → 0, with the predicted orders

* assertions (`eqbench.testing.assertions`): `assert_gdu`, `assert_converges`, `assert_energy_descends`,
  `assert_closed_form_matches_autograd`, `assert_batch_equivariant` — each raises an AssertionError
  with one line naming the measured value, its bound and the layer or step (`Inconclusive`, a subclass, when
  the GDU ladder cannot decide), and returns its report;
* hypothesis strategies (`eqbench.testing.strategies`): `layer_sizes`, `betas`, `inputs`, `targets`,
  `states`, `weight_scales`, `seeds`, `models`;
* hypothesis profiles (`eqbench.testing.profiles`): ``ci``, ``dev``, ``debug``, selected by
  ``$EQBENCH_HYPOTHESIS_PROFILE`` and loaded by the pytest plugin (`eqbench.testing.plugin`, the
  ``eqbench`` pytest11 entry point), which also provides the fixtures ``float64_default`` and
  ``eqbench_profile``.

The names are imported on first use, so that the pytest plugin, active in every pytest run of an
environment where eqbench is installed, costs no more than ``import eqbench``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import strategies
    from .assertions import (
        Inconclusive,
        assert_batch_equivariant,
        assert_closed_form_matches_autograd,
        assert_converges,
        assert_energy_descends,
        assert_gdu,
    )
    from .profiles import load_profile

_LAZY = {
    "assert_gdu": "assertions",
    "assert_converges": "assertions",
    "assert_energy_descends": "assertions",
    "assert_closed_form_matches_autograd": "assertions",
    "assert_batch_equivariant": "assertions",
    "GDUResult": "assertions",
    "Inconclusive": "assertions",
    "load_profile": "profiles",
    "strategies": None,
    "assertions": None,
    "profiles": None,
}

__all__ = ["GDUResult", "Inconclusive", "assert_batch_equivariant", "assert_closed_form_matches_autograd",
           "assert_converges", "assert_energy_descends", "assert_gdu", "hopfield_config", "load_profile",
           "scaled_examples", "strategies"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    value = (importlib.import_module(f"{__name__}.{name}") if module is None
             else getattr(importlib.import_module(f"{__name__}.{module}"), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def scaled_examples(n: int) -> int:
    """A per-test example count ``n`` at the ``ci`` profile's 25, scaled with the active profile."""
    # lazy: hypothesis is a test dependency: eqbench.testing imports without it until a strategy is asked for
    from hypothesis import settings

    return max(2, settings.default.max_examples * n // 25)


def hopfield_config(**over) -> dict:
    """Gammell et al.'s protocol in miniature (the ``run`` case of eqbench.cases): persistent particles, fixed
    batches, a regression cost."""
    # lazy: this package loads its parts on first use (module __getattr__), the catalogue of cases included
    from ..cases import CASES

    return CASES["hopfield diabetes, miniature"].run_config(**over)
