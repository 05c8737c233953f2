"""The checks, as a library: each returns a small report with numbers and, given a bound, a verdict."""

from .energy import (
                     ConvergenceReport,
                     DescentReport,
                     contraction_scale,
                     convergence,
                     coupling_matrix,
                     coupling_norm,
                     energy_descent,
                     laborieux_energy,
                     phi_trace,
                     scale_weights,
)
from .gdu import GDUReport, gdu_check, gdu_ladder, prepare, report
from .order import GDULadder, OrderFit, OrderVerdict, judge, ladder

__all__ = ["GDUReport", "GDULadder", "OrderFit", "OrderVerdict", "gdu_check", "gdu_ladder", "judge", "ladder",
           "prepare", "report",
           "ConvergenceReport", "DescentReport", "contraction_scale", "convergence", "coupling_matrix",
           "coupling_norm", "energy_descent", "laborieux_energy", "phi_trace", "scale_weights"]
