"""The convergence check of binary-neuron networks (Laydevant et al. 2021's bin_W_N, eqbench.models.binary), which
have no energy to descend: when do the binary activities stop changing, and does the accumulator then converge at
the leaky rate (:class:`ActivityReport`)? It names a concrete model, so it lives beside the claims, not among the
generic checks of ``eqbench.checks``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .errors import ConfigError
from .models.base import EnergyModel, State
from .models.binary import BinaryEP
from .relaxation import Trace, relax
from .roundoff import roundoff_tol


@dataclass
class ActivityReport:
    """A bin_W_N relaxation (Laydevant et al. 2021, §D.3): when do the binary activities stop changing,
    and does the accumulator then converge at the leaky rate?

    While a sample's activities stay the same its drive is constant up to the nudge β(y − s_out), and the
    step s ← clamp((1 − γ_n)s + γ_n u, 0, 1) is affine in s with slope 1 − γ_n (hidden layers) or
    1 − γ_n(1 + β) (the nudged output); clamp is 1-Lipschitz, so the residuals r_t = ‖s_{t+1} − s_t‖ obey
    r_{t+1} ≤ q·r_t with q = ``rate`` = max(1 − γ_n, |1 − γ_n(1 + β)|). q < 1 is a contraction; with
    Laydevant's γ_n = ½ and β = 2 it is ½, but a negative phase (random sign, β = −2) has q = 3/2: the
    output accumulators are pushed apart until they reach the clamp. ``max_excess`` is the largest
    r_{t+1} − q·r_t over such steps (all samples); it must stay below ``tol``, the round-off of one step.
    ``max_ratio_changing`` is the largest r_{t+1}/r_t over steps where activities changed (no bound
    there: the drive jumps). ``settled`` is the fraction of samples whose activities did not change
    over the last ``window`` steps.
    """

    model: str
    n_steps: int
    gamma_neur: float
    beta: float
    rate: float
    changes: list[int]  # activity changes per step, all samples and layers
    residuals: list[float]  # worst-sample ‖s_{t+1} − s_t‖₂ per step
    last_change: int | None  # last step (1-based) at which any activity changed, None if none did
    settled: float
    max_excess: float
    max_ratio_changing: float
    tol: float
    window: int

    @property
    def contracts(self) -> bool:
        """Whether every step with unchanged activities obeyed r_{t+1} ≤ q·r_t, up to round-off."""
        return self.max_excess <= self.tol

    def to_dict(self) -> dict:
        d = asdict(self)
        d["contracts"] = self.contracts
        return d


def activity_convergence(model: EnergyModel, x: Tensor, steps: int, *, beta: float = 0.0, y: Tensor | None = None,
                         start: State | None = None, window: int = 5) -> ActivityReport:
    """Relax a binary-neuron model ``steps`` steps and report how its activities and accumulators settle."""
    if not isinstance(model, BinaryEP) or model.binary != "W_N":
        raise ConfigError(f"activity_convergence checks binary-neuron models (bin_W_N), not {model.name}")
    if steps < 2:
        raise ConfigError(f"an activity convergence check needs at least two steps, got {steps}")
    x = model.check_input(x)
    trace = Trace(keep_states=True)
    relax(model, x, model.init_state(x) if start is None else start, steps, beta=beta, y=y, trace=trace)
    S = trace.states
    act = [torch.cat([model.activity(si).detach().flatten(1) for si in st], 1) for st in S]
    flat = [torch.cat([si.flatten(1) for si in st], 1) for st in S]
    changed = torch.stack([(act[t + 1] != act[t]).sum(1) for t in range(steps)])  # (steps, B)
    res = torch.stack([(flat[t + 1] - flat[t]).norm(dim=1) for t in range(steps)])  # (steps, B)
    # steps t+1 and t+2 see the same drive when step t+1 changed none of the sample's activities
    still = changed[:-1] == 0
    g = model.gamma_neur
    rate = max(1.0 - g, abs(1.0 - g * (1.0 + beta)))
    excess = res[1:] - rate * res[:-1]
    tol = roundoff_tol(flat[0].dtype, float(max(f.norm(dim=1).max() for f in flat)))
    moving = ~still & (res[:-1] > tol)
    ratio = res[1:][moving] / res[:-1][moving]
    total = changed.sum(1)
    nz = torch.nonzero(total).flatten()
    w = min(window, steps)
    return ActivityReport(model.name, steps, g, float(beta), rate, [int(v) for v in total],
                          [float(v) for v in res.max(1).values], int(nz[-1]) + 1 if nz.numel() else None,
                          float((changed[-w:].sum(0) == 0).double().mean()),
                          float(excess[still].max()) if bool(still.any()) else -math.inf,
                          float(ratio.max()) if ratio.numel() else 0.0, float(tol), w)
