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
from .gdu import GDUReport, Sweep, beta_sweep, gdu_check, prepare, report

__all__ = ["GDUReport", "Sweep", "beta_sweep", "gdu_check", "prepare", "report",
           "ConvergenceReport", "DescentReport", "contraction_scale", "convergence", "coupling_matrix",
           "coupling_norm", "energy_descent", "laborieux_energy", "phi_trace", "scale_weights"]
