"""Hypothesis profiles of eqbench's suites, for users' suites too.

Select one with ``EQBENCH_HYPOTHESIS_PROFILE`` (default ``ci``):

* ``ci``    — reproducible (derandomized, no example database), 25 examples per test;
* ``dev``   — 10 random examples per test, for quick local iterations;
* ``debug`` — 500 examples, verbose, to hunt a counterexample.

Expensive tests lower ``max_examples`` with their own ``@settings`` (or scale a count with
`eqbench.testing.scaled_examples`). The pytest plugin (`eqbench.testing.plugin`, registered as the
``eqbench`` pytest11 entry point) calls `load_profile` at ``pytest_configure``; hypothesis's own
``--hypothesis-profile`` option, when given, still wins.
"""

from __future__ import annotations

import os

from hypothesis import Verbosity, settings

ENV_VAR = "EQBENCH_HYPOTHESIS_PROFILE"
DEFAULT = "ci"
PROFILES = ("ci", "dev", "debug")


def register_profiles() -> None:
    """Register ``ci``, ``dev`` and ``debug`` with hypothesis (idempotent)."""
    settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=25, print_blob=True)
    settings.register_profile("dev", max_examples=10, deadline=None)
    settings.register_profile("debug", max_examples=500, verbosity=Verbosity.verbose, deadline=None)


register_profiles()


def load_profile(name: str | None = None) -> str:
    """Load profile ``name``, by default ``$EQBENCH_HYPOTHESIS_PROFILE`` or ``ci``; return its name.

    Any profile registered with hypothesis may be named, not only eqbench's three; an unknown name
    raises hypothesis's InvalidArgument listing how to register one.
    """
    name = name or os.environ.get(ENV_VAR) or DEFAULT
    settings.load_profile(name)
    return name


def active_profile() -> str | None:
    """The name of the hypothesis profile loaded last (``None`` if hypothesis does not tell)."""
    return getattr(settings, "_current_profile", None)
