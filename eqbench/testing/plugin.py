"""pytest plugin of eqbench's conformance kit (entry point ``pytest11: eqbench``).

Installed with eqbench, it is active in every pytest run of the environment, so it stays cheap:
nothing heavier than eqbench itself is imported until a hook or fixture needs it.

* ``pytest_configure`` (tryfirst) registers the hypothesis profiles ``ci``, ``dev`` and ``debug``
  and loads ``$EQBENCH_HYPOTHESIS_PROFILE`` (default ``ci``: derandomized, reproducible); hypothesis's
  own ``--hypothesis-profile`` option, applied after this hook, still wins. Without hypothesis
  installed the hook does nothing.
* ``float64_default``: float64 as torch's default dtype for one test (numerical properties are
  checked in float64), restored afterwards.
* ``eqbench_profile``: the name of the active hypothesis profile.

Disable it for one run with ``pytest -p no:eqbench``.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        # lazy: this plugin loads in every pytest session where eqbench is installed: hypothesis, torch when used
        from .profiles import load_profile
    except ImportError:  # hypothesis is a test extra: nothing to configure without it
        return
    load_profile()


@pytest.fixture
def float64_default():
    """Numerical properties are checked in float64: make it the default dtype for one test."""
    # lazy: as above: torch only when the fixture is used
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def eqbench_profile() -> str | None:
    """The name of the active hypothesis profile (``ci``, ``dev``, ``debug`` or one of the user's)."""
    # lazy: as above
    from .profiles import active_profile

    return active_profile()
