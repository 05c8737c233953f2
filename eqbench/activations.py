"""Neuron activations of Laborieux et al. 2021 (`model_utils.py`), with the facts the checks need.

Each activation records its Lipschitz constant (used to scale weights into a contraction,
suites/properties) and, for the clipping ones σ(u) = clip(u/a, 0, 1), the slope parameter ``a``
that makes the update s ← σ(∂Φ/∂s) the exact minimiser of E = (a/2)‖s‖² − Φ (suites/energy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import unknown


@dataclass(frozen=True)
class Activation:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    lipschitz: float
    clip_a: float | None = None  # σ(u) = clip(u/a, 0, 1) when set
    doc: str = ""
    #: whether σ extends to a holomorphic function of complex u with real values on the real axis (what
    #: holomorphic EP needs, Laborieux & Zenke 2022); clips and kinks do not
    holomorphic: bool = False

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return self.fn(u)


def _my_sigmoid(u: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(4.0 * (u - 0.5))


def _my_holotanh(u: torch.Tensor) -> torch.Tensor:
    # Laborieux & Zenke 2022 (utils/functions.py) with the a = 1 of their Table 2 runs ("mholo1"): a smooth,
    # holomorphic version of clip(u/2, 0, 1), ½u·σ(au) + (1 − ½u)·σ(a(u − 2))
    return 0.5 * u * torch.sigmoid(u) + (1.0 - 0.5 * u) * torch.sigmoid(u - 2.0)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("my_hard_sig", lambda u: torch.clamp(0.5 * u, 0.0, 1.0), 0.5, 2.0,
                   "clip(u/2, 0, 1): slope 1/2, used by every README CIFAR-10 run"),
        Activation("hard_sigmoid", lambda u: torch.clamp(u, 0.0, 1.0), 1.0, 1.0, "clip(u, 0, 1)"),
        Activation("my_sigmoid", _my_sigmoid, 1.0, None, "1/(1 + exp(-4(u - 1/2))): smooth, slope 1 at 1/2", True),
        Activation("my_holotanh", _my_holotanh, 0.43, None,  # max |σ′| = 0.4277 (dense grid)
                   "½u·σ(u) + (1 − ½u)·σ(u − 2): holomorphic clip(u/2, 0, 1) (Laborieux & Zenke 2022, a = 1)", True),
        Activation("tanh", torch.tanh, 1.0, None, "tanh(u): smooth, odd", True),
        Activation("sigmoid", torch.sigmoid, 0.25, None, "logistic sigmoid", True),
    ]
}
# Laborieux's CLI names, accepted as aliases.
ALIASES = {"mysig": "my_sigmoid"}


def get_activation(name: str) -> Activation:
    """Look an activation up by name (``my_hard_sig``, ``hard_sigmoid``, ``my_sigmoid``, ``tanh``, ...)."""
    name = ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
