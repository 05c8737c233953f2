"""Energy, convergence and contraction checks of a relaxation (suites/energy, suites/properties).

Energy (Laborieux et al. 2021, §A.3; Scellier & Bengio 2017, Eq. 1 with a hard-clipped ρ).
For a clipping activation σ(u) = clip(u/a, 0, 1) the discrete-time dynamics s_l ← σ(∂Φ_β/∂s_l)
descend the energy

    E_β(x, s) = (a/2)·Σ_l ‖s_l‖² − Φ_β(x, s),        Φ_β = Φ − β·L,

because, when Φ_β is linear (or convex) in s_l with the other layers held fixed, clip(u_l/a, 0, 1)
with u_l = ∂Φ_β/∂s_l is the exact minimiser over s_l ∈ [0, 1]^n of (a/2)‖s_l‖² − ⟨u_l, s_l⟩ (or a
majorise–minimise step of it). Layers couple only to their neighbours, so updating every other
layer at once (``mode="async"``) is a block-coordinate descent step on E; updating all layers at
once (``mode="sync"``, the authors' dynamics) is not, and may increase E. Nudged (MSE, L convex
with unit Hessian): the linearised loss term majorises −β·L for β < 0, and the descent lemma gives
E_β(new) ≤ E_β(old) − (a − β)/2·‖Δs‖² for 0 < β ≤ a; beyond a, descent can fail (measured, not
pinned, by suites/energy).

Contraction. When Φ is multilinear in the layers (no max pooling, symmetric weights), its drive at
β = 0 is affine, u = H·s + c, with H = ∂²Φ/∂s² a constant symmetric block-tridiagonal operator.
The synchronous map s ↦ σ(H·s + c) is then Lipschitz with constant L_σ·‖H‖₂, and scaling every
weight by γ scales H by γ: `contraction_scale` returns the γ that makes the map a contraction of
a chosen factor q, so that ‖s_{t+1} − s_t‖ ≤ q^t·‖s_1 − s_0‖ (Banach fixed-point theorem).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError
from ..models.base import EnergyModel, State
from ..relaxation import Trace, relax
from ..roundoff import roundoff_tol


# --------------------------------------------------------------------------------------- energy
def laborieux_energy(model: EnergyModel, x: Tensor, s: State, a: float | None = None,
                     beta: float = 0.0, y: Tensor | None = None) -> Tensor:
    """E_β(x, s) = (a/2)·Σ_l ‖s_l‖² − Φ_β(x, s), one value per sample (shape ``(B,)``).

    With ``a`` omitted it is the model's declared energy (`EnergyModel.energy`: for the layered models
    the same formula with their clip slope a, 1 for hard_sigmoid, 2 for my_hard_sig); a model that
    declares none (a smooth activation) needs an explicit ``a`` or ConfigError is raised.
    Laborieux et al. 2021 §A.3 (primitive Φ); Scellier & Bengio 2017 Eq. 1 (the ‖s‖²/2 term).
    It is the dynamics' Lyapunov function only when every layer's activation is that clip.
    """
    x = model.check_input(x)
    if a is None:
        e = model.energy(x, s, beta, y)
        if e is None:
            raise ConfigError(f"{model.name} declares no energy (its activation is not a clip σ(u) = clip(u/a, 0, 1)); "
                              "pass a= explicitly to evaluate E = (a/2)·Σ‖s_l‖² − Φ anyway")
        return e
    a = float(a)
    if not (math.isfinite(a) and a > 0):
        raise ConfigError(f"the energy's slope parameter a must be finite and positive, got {a}")
    sq = x.new_zeros(x.shape[0])
    for si in s:
        sq = sq + (si.flatten(1) ** 2).sum(1)
    return 0.5 * a * sq - model.phi(x, s, beta, y)


def state_norm(s: State) -> float:
    """The largest per-sample ‖s‖₂ over every layer together: the scale of a state's round-off."""
    return float(sum((si.detach().flatten(1).abs().double() ** 2).sum(1) for si in s).sqrt().max())


@dataclass
class DescentReport:
    """Whether a relaxation descended E = (a/2)·Σ‖s_l‖² − Φ_β at every state it visited."""

    model: str
    mode: str
    a: float | None  # the explicit slope of E = (a/2)·Σ‖s‖² − Φ; None when the model's declared energy was used
    n_steps: int
    max_increase: float  # largest per-sample E_{t+1} − E_t over the run (negative: strict descent)
    n_increases: int  # number of (transition, sample) pairs with E_{t+1} − E_t > tol
    tol: float
    beta: float = 0.0
    max_abs_energy: float = 0.0  # max |E| over the run, the scale of the default tolerance
    energies: list[float] = field(default_factory=list, repr=False)  # batch-mean E per visited state

    @property
    def passed(self) -> bool:
        return self.max_increase <= self.tol  # False for NaN; −inf (no transition) passes vacuously

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def energy_descent(model: EnergyModel, x: Tensor, steps: int, mode: str = "async", a: float | None = None,
                   closed_form: bool = True, tol: float | None = None, *, beta: float = 0.0,
                   y: Tensor | None = None, start: State | None = None) -> DescentReport:
    """Relax ``steps`` steps from ``start`` (default ``model.init_state(x)``) and record E_β at every
    visited state.

    In ``mode="async"`` E is observed after every half-step (each block update), in ``"sync"``
    after every step. ``tol`` defaults to a round-off bound 64·eps·max|E| (see
    `roundoff_tol`). E is the model's declared energy (`EnergyModel.energy`; ``a`` is then reported
    as None), or, with an explicit ``a``, (a/2)·Σ‖s_l‖² − Φ_β. With a clip activation and β = 0 the
    asynchronous relaxation must pass (the block-coordinate argument in this module's docstring).
    """
    x = model.check_input(x)
    if a is None and model.energy(x, model.init_state(x), beta, y) is None:
        raise ConfigError(f"{model.name} declares no energy (EnergyModel.energy returns None); pass a= to test "
                          "E = (a/2)·Σ‖s_l‖² − Φ anyway")
    observe = lambda xx, s: laborieux_energy(model, xx, s, a, beta, y)  # noqa: E731
    trace = Trace(observe=observe)
    start = model.init_state(x) if start is None else start
    relax(model, x, start, steps, beta=beta, y=y, mode=mode, closed_form=closed_form, trace=trace)
    dtype = trace.values[0].dtype
    values = torch.stack(trace.values).double()  # (visits, B)
    max_abs = float(values.abs().max()) if values.numel() else 0.0
    if tol is None:
        tol = roundoff_tol(dtype, max_abs)
    if values.shape[0] > 1:
        diff = values[1:] - values[:-1]
        max_inc = float(diff.max())
        n_inc = int((diff > tol).sum())
        if not bool(torch.isfinite(values).all()):
            max_inc = math.inf
    else:
        max_inc, n_inc = -math.inf, 0
    return DescentReport(model.name, mode, None if a is None else float(a), steps, max_inc, n_inc, float(tol),
                         float(beta), max_abs,
                         [float(v) for v in values.mean(1)])


# --------------------------------------------------------------------------------------- convergence
@dataclass
class ConvergenceReport:
    """Per-step residuals ‖s_{t+1} − s_t‖₂ (worst sample) of a relaxation from the zero state."""

    model: str
    mode: str
    n_steps: int
    residuals: list[float]
    final_residual: float
    first_converged_step: int | None  # first t (1-based step count) with residual ≤ tol, or None
    tol: float

    @property
    def passed(self) -> bool:
        return math.isfinite(self.final_residual) and self.final_residual <= self.tol

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def convergence(model: EnergyModel, x: Tensor, steps: int, mode: str = "sync", closed_form: bool = True,
                tol: float | None = None) -> ConvergenceReport:
    """Relax from zeros and report the residual of every step (`Trace.residual`)."""
    if steps < 1:
        raise ConfigError(f"a convergence check needs at least one step, got {steps}")
    x = model.check_input(x)
    trace = Trace()
    s = relax(model, x, model.init_state(x), steps, mode=mode, closed_form=closed_form, trace=trace)
    norm = state_norm(s)
    if tol is None:
        tol = roundoff_tol(s[0].dtype, norm)
    res = list(trace.residual)
    first = next((t + 1 for t, r in enumerate(res) if r <= tol), None)
    return ConvergenceReport(model.name, mode, steps, res, res[-1], first, float(tol))


def phi_trace(model: EnergyModel, x: Tensor, steps: int, beta: float = 0.0, y: Tensor | None = None,
              mode: str = "sync") -> list[float]:
    """Batch-mean Φ_β at every state a relaxation from zeros visits (after each half-step if async)."""
    trace = Trace(observe=lambda xx, s: model.phi(xx, s, beta, y))
    relax(model, x, model.init_state(x), steps, beta=beta, y=y, mode=mode, trace=trace)
    return [float(v.mean()) for v in trace.values]


# --------------------------------------------------------------------------------------- contraction
def _check_multilinear(model: EnergyModel) -> None:
    reason = model.why_drive_not_affine()
    if reason is not None:
        raise ConfigError(f"contraction_scale needs a drive u = H·s + c with symmetric H; {model.name}: {reason}")


def _activation_lipschitz(model: EnergyModel) -> float:
    out = 0.0
    for act in model.activations():
        lip = getattr(act, "lipschitz", None)
        out = max(out, 1.0 if lip is None else float(lip))  # a plain callable is the identity layer
    return out


def _coupling(model: EnergyModel, x: Tensor) -> tuple[Callable[[Tensor], Tensor], int]:
    """v ↦ H·v = drive(x, v) − drive(x, 0) on flat float64 vectors of one example's state, and the state size n.
    The generic autograd drive is used, so the models' closed forms are not trusted here."""
    _check_multilinear(model)
    x = model.check_input(x)[:1]
    zero = model.init_state(x)
    sizes = [z.numel() for z in zero]
    c = torch.cat([u.flatten() for u in model.drive(x, zero, closed_form=False)]).double()

    def matvec(v: Tensor) -> Tensor:
        w = [p.reshape(z.shape).to(z) for p, z in zip(torch.split(v, sizes), zero)]
        return torch.cat([u.flatten() for u in model.drive(x, w, closed_form=False)]).double() - c

    return matvec, sum(sizes)


def coupling_matrix(model: EnergyModel, x: Tensor) -> Tensor:
    """The dense coupling H = ∂²Φ/∂s² (β = 0) of one example, float64, n × n: column j is drive(x, e_j) −
    drive(x, 0). n matrix–vector products and n² numbers, for small models: the exact reference that
    `coupling_norm` and the contraction properties are tested against (H is symmetric for an energy model)."""
    with torch.no_grad():
        matvec, n = _coupling(model, x)
        return torch.stack([matvec(e) for e in torch.eye(n, dtype=torch.float64)], 1)


def coupling_norm(model: EnergyModel, x: Tensor, iters: int = 100, seed: int = 0) -> float:
    """‖H‖₂ of the coupling H = ∂²Φ/∂s² (β = 0), with H·v = drive(x, v) − drive(x, 0).

    Power iteration, Krylov-accelerated: the Rayleigh–Ritz projection of H onto the span of the
    power iterates v, Hv, …, H^{m−1}v (Lanczos with full reorthogonalisation, m = min(iters, n)
    matrix–vector products, n the state size per sample), and ‖H‖ ≈ the largest |Ritz value|.
    Plain power iteration converges like (λ₂/λ₁)^k and, on the near-degenerate spectra of small
    CNNs, stays ~1e-3 below ‖H‖ after 100 steps; the Ritz value uses the same products, is never
    above ‖H‖, and is exact (to round-off) once m = n. The layer graph is a chain, hence bipartite,
    so H's spectrum is symmetric about 0 (±λ): hence |Ritz value|, not the largest one.
    The generic autograd drive is used, so the models' closed forms are not trusted here
    (`coupling_matrix` is the dense H, for checking this on small models).
    """
    with torch.no_grad():
        matvec, n = _coupling(model, x)
        gen = torch.Generator().manual_seed(seed)
        v = torch.randn(n, generator=gen, dtype=torch.float64)
        v = v / v.norm()
        basis: list[Tensor] = []
        alphas: list[float] = []
        betas: list[float] = []
        for _ in range(min(int(iters), n)):
            basis.append(v)
            w = matvec(v)
            alphas.append(float(w @ v))
            Q = torch.stack(basis, 1)
            for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
                w = w - Q @ (Q.T @ w)
            beta = float(w.norm())
            scale = max(max(abs(a) for a in alphas), max(betas, default=0.0))
            if beta <= 1e-13 * max(scale, 1e-300):  # invariant subspace: the Ritz values are exact
                break
            betas.append(beta)
            v = w / beta
        off = torch.tensor(betas[: len(alphas) - 1], dtype=torch.float64)  # β_k of a step that broke down is unused
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64)) + torch.diag(off, 1) + torch.diag(off, -1)
        return float(torch.linalg.eigvalsh(T).abs().max())


def contraction_scale(model: EnergyModel, x: Tensor, target: float = 0.5, iters: int = 100) -> float:
    """The factor γ for every weight (not bias) that makes L_σ·γ·‖H‖₂ = ``target``.

    L_σ is the largest per-layer Lipschitz constant of `model.activations()` (an identity output
    layer counts 1). After ``w ← γ·w`` the synchronous map s ↦ σ(H·s + c) is a contraction with
    factor q ≤ target, so residual_t ≤ q^t·residual_0. Raises ConfigError for max pooling or a
    feedback (VF) model, whose drive is not an affine symmetric map. ``x`` fixes the input shape
    (H does not depend on x); ‖H‖ is estimated by Krylov-accelerated power iteration
    (`coupling_norm`: never above ‖H‖, exact once ``iters`` ≥ the state size). When H = 0
    (a single state layer) the map is constant and γ = 1 is returned.
    """
    if not (math.isfinite(target) and target > 0):
        raise ConfigError(f"the contraction factor must be positive and finite, got {target}")
    h = coupling_norm(model, x, iters)
    if h == 0.0:  # one state layer (or zero weights): s ↦ σ(c) is constant, q = 0 already
        return 1.0
    return target / (_activation_lipschitz(model) * h)


def scale_weights(model: EnergyModel, gamma: float) -> None:
    """Multiply every ``*.weight`` parameter by γ in place (biases unchanged)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.mul_(gamma)


__all__ = ["ConvergenceReport", "DescentReport", "contraction_scale", "convergence", "coupling_matrix",
           "coupling_norm", "energy_descent", "laborieux_energy", "phi_trace", "scale_weights"]
