"""Root conftest of the suites.

The Hypothesis profiles (``ci``, ``dev``, ``debug``, selected with ``EQBENCH_HYPOTHESIS_PROFILE``,
default ``ci``) and the ``float64_default`` fixture come from eqbench's pytest plugin,
`eqbench.testing.plugin` (the ``eqbench`` pytest11 entry point of pyproject.toml), loaded in every
pytest run of an environment where eqbench is installed; see `eqbench.testing.profiles`.

Expensive tests lower ``max_examples`` with their own ``@settings``.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    # Tiny tensors: one intra-op thread is fastest and does not spin against other processes on
    # a small CI machine. Restored after the module.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
