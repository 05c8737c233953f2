"""Root conftest of the suites: Hypothesis profiles.

Select one with ``EQBENCH_HYPOTHESIS_PROFILE`` (default ``ci``):

* ``ci``    — reproducible (derandomized, no example database), 25 examples per test;
* ``dev``   — 10 random examples per test, for quick local iterations;
* ``debug`` — 500 examples, verbose, to hunt a counterexample.

Expensive tests lower ``max_examples`` with their own ``@settings``.
"""

from __future__ import annotations

import os

from hypothesis import Verbosity, settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=25, print_blob=True)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.register_profile("debug", max_examples=500, verbosity=Verbosity.verbose, deadline=None)
settings.load_profile(os.environ.get("EQBENCH_HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def float64_default():
    """Numerical properties are checked in float64: make it the default dtype for one test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="module")
def one_thread():
    # Tiny tensors: one intra-op thread is fastest and does not spin against other processes on
    # a small CI machine. Restored after the module.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
