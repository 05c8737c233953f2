"""eqbench: reference implementations of equilibrium propagation and other local learning rules,
with suites that check them against BPTT, their energies and published baselines."""

from .errors import ConfigError, DivergenceError, EqbenchError, ShapeError
from .models import MODELS, EnergyModel, build_model
from .relaxation import Trace, relax
from .rules import BPTT, EP

__version__ = "0.1.0"
__all__ = ["BPTT", "EP", "MODELS", "ConfigError", "DivergenceError", "EnergyModel", "EqbenchError", "ShapeError",
           "Trace", "build_model", "relax"]
