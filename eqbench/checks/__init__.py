"""The checks, as a library: each returns a small report with numbers and, given a bound, a verdict."""

from .gdu import GDUReport, Sweep, beta_sweep, gdu_check, prepare, report

__all__ = ["GDUReport", "Sweep", "beta_sweep", "gdu_check", "prepare", "report"]
