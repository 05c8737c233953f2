"""Helpers for the suites (and for users' own suites built on them)."""

from __future__ import annotations

from hypothesis import settings


def scaled_examples(n: int) -> int:
    """A per-test example count ``n`` at the ``ci`` profile's 25, scaled with the active profile."""
    return max(2, settings.default.max_examples * n // 25)
