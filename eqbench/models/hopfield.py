"""Gammell et al. 2021's continuous Hopfield network with layer-skipping ("small-world") topologies.

One symmetric weight matrix W (zero diagonal, masked to the topology's connections) over all
neurons z = [x | h_1 | … | h_{L−1} | y], biases b on the state s = [h_1 | … | y], ρ = clamp(·, 0, 1):

    E(x, s) = ½‖s‖² − ½ ρ(z)ᵀ W ρ(z) − bᵀ ρ(s),      C(s, y) = ½‖y − s_y‖²       (Gammell §C.2)
    s ← clamp(s + ε·u, 0, 1),  u = ρ(z)W + b − ρ(s)  (= −∂E/∂s on the box [0, 1])     (§C.3)

Φ = −E − βC is the engine's primitive function, so the EP estimator, BPTT and the checks apply as
they are. Two nudges (``nudge``):

* ``"reference"`` (default, the authors' code): after the free increment the output moves by
  2εβ(y − s_y), i.e. u_y ← (1 − 2εβ)·u_y + 2β(y − s_y). At a fixed point this is the gradient nudge
  with β' = 2β / (1 − 2εβ) (pinned by a test): with the paper's ε = 0.5 and β = ±1 a positive phase
  clamps the output to y (β' = ∞) and a negative one nudges with β' = −1, while the update still
  divides by β. The factor is absorbed by the learning rate; the GDU theorem is checked on
* ``"gradient"``: u_y += β(y − s_y) = −β ∂C/∂s_y, the nudge of EP's theory.

Parametrisation: the lower triangle of W is stored in blocks — ``inter.k`` (layer k → k+1, Glorot
init) and, for small-world topologies, ``skip.j`` (every other connection into layer j: bypasses
from layers ≤ j − 2 and, for SW_intra, intra-layer ones) — and W = T + Tᵀ with T the assembled
strictly lower-triangular matrix. ∂Φ/∂T_ij = ρ_iρ_j is then the authors' update (they symmetrise dW
from its lower triangle), and each layer's parameters form one torch.optim group, so per-layer
learning rates apply to every connection into layer j and to its biases (lr of block j − 1).
The reference code scales only the inter-layer blocks and leaves bypass weights and biases at
lr 1 when given per-layer rates (§C.5 pitfalls a, b); ``reference_rates=True`` reproduces that.

Topologies (§C.6, RNG ``numpy.random.RandomState(seed)``, the same draws in the same order as the
authors' ``initialize_weight_matrices``, so a seed gives their mask and weights): ``MLFF``
(layered), ``SW_no_intra`` (each existing connection rewired with probability p to a random
layer-skipping one; the paper's "SW") and ``SW_intra`` (hidden layers fully intra-connected first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import EnergyModel, State

TOPOLOGIES = ("MLFF", "SW_no_intra", "SW_intra")
NUDGES = ("reference", "gradient")


def rho(s: Tensor) -> Tensor:
    """ρ(s) = clamp(s, 0, 1) with ρ'(s) = 1 on [0, 1] INCLUSIVE (Gammell §C.1, ``rhoprime``).

    torch's clamp has a zero gradient at the bounds, where clamped states sit; with it the autograd
    step would differ from the authors' closed form on every saturated unit.
    """
    inside = (s >= 0.0) & (s <= 1.0)
    return torch.where(inside, s, s.detach().clamp(0.0, 1.0))


def topology(sizes: Sequence[int], kind: str, p: float = 0.0, bypass_mag: float = 0.0,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(W, mask, p_actual): the symmetric initial weights and connection mask of Gammell et al. §C.6.

    Inter-layer blocks are Glorot-uniform U(±√(6/(n_in + n_out))); small-world types first draw
    U(−a, a) everywhere (a = ``bypass_mag``) so rewired connections keep that magnitude. ``p_actual``
    is the fraction of the initial connections that were rewired.
    """
    idx = np.cumsum([0, *sizes])
    n = int(idx[-1])
    rng = np.random.RandomState(seed)
    W = np.zeros((n, n))
    mask = np.zeros((n, n))
    conns = []
    for i, j, k in zip(idx[:-2], idx[1:-1], idx[2:]):
        c = np.zeros((n, n), dtype=bool)
        c[j:k, i:j] = c[i:j, j:k] = True
        conns.append(c)
        mask[c] = 1.0
    candidates = [(row, col) for m in range(len(sizes) - 2)
                  for row in range(idx[m + 2], n) for col in range(idx[m], idx[m + 1])]
    rewired, initial = 0, 1
    if kind != "MLFF":
        if kind == "SW_intra":
            for i, j in zip(idx[1:-2], idx[2:-1]):
                mask[i:j, i:j] = 1.0
            existing = [(row, col) for col in range(n) for row in range(col, n) if mask[row, col]]
        else:
            existing = [(row, col) for row in range(1, n) for col in range(row) if mask[row, col]]
        initial = len(existing)
        for conn in existing:
            if rng.uniform(0, 1) < p:
                pick = rng.randint(len(candidates))
                new = candidates[pick]
                mask[conn] = mask[conn[::-1]] = 0.0
                mask[new] = mask[new[::-1]] = 1.0
                candidates.append(conn)
                del candidates[pick]
                rewired += 1
        W += rng.uniform(low=-bypass_mag, high=bypass_mag, size=W.shape)
    for c, n_in, n_out in zip(conns, sizes[:-1], sizes[1:]):
        bound = math.sqrt(6.0 / (n_in + n_out))
        W[c] = rng.uniform(low=-bound, high=bound, size=W.shape)[c]
    W *= mask
    W = np.tril(W, -1) + np.tril(W, -1).T
    mask = np.tril(mask, -1) + np.tril(mask, -1).T
    return W, mask, rewired / initial


class HopfieldEP(EnergyModel):
    """Continuous Hopfield EP network (Gammell et al. 2021) — MLFF or small-world.

    ``sizes`` lists every layer, input first; ``epsilon`` is the Euler step; ``p`` and
    ``bypass_mag`` the rewiring probability and the magnitude a of new connections (small-world
    types only); ``seed`` the topology's RNG seed (the run seed when built from a config).
    """

    name = "HOPFIELD"
    has_closed_form = True

    def __init__(self, sizes: Sequence[int] = (10, 10, 10, 1), *, topology_type: str = "MLFF", p: float = 0.1,
                 bypass_mag: float = 0.0, epsilon: float = 0.5, nudge: str = "reference",
                 reference_rates: bool = False, seed: int = 0) -> None:
        super().__init__()
        sizes = [int(v) for v in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError(f"HOPFIELD needs at least an input and an output layer of positive sizes, got {sizes}")
        if topology_type not in TOPOLOGIES:
            raise ConfigError(f"unknown topology {topology_type!r}; known: {', '.join(TOPOLOGIES)}")
        if nudge not in NUDGES:
            raise ConfigError(f"unknown nudge {nudge!r}; known: {', '.join(NUDGES)}")
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"the rewiring probability p must lie in [0, 1], got {p}")
        if not epsilon > 0:
            raise ConfigError(f"the Euler step epsilon must be positive, got {epsilon}")
        self.sizes, self.topology_type, self.epsilon, self.nudge = sizes, topology_type, float(epsilon), nudge
        self.reference_rates = bool(reference_rates)
        self.in_shape = (sizes[0],)
        self.n_classes = sizes[-1]
        self.offsets = [int(v) for v in np.cumsum([0, *sizes])]
        W, mask, self.p_actual = topology(sizes, topology_type, p, bypass_mag, seed)
        low, low_mask = np.tril(W, -1), np.tril(mask, -1)
        o = self.offsets
        self.inter = nn.ParameterList()
        self.skip = nn.ParameterDict()
        for k in range(len(sizes) - 1):
            rows, cols = slice(o[k + 1], o[k + 2]), slice(o[k], o[k + 1])
            self.inter.append(nn.Parameter(torch.tensor(low[rows, cols])))
            self.register_buffer(f"inter_mask{k}", torch.tensor(low_mask[rows, cols]))
        for j in range(1, len(sizes)):
            rows = slice(o[j], o[j + 1])
            m = low_mask[rows, :o[j + 1]].copy()
            m[:, o[j - 1]:o[j]] = 0.0  # the inter-layer block lives in inter[j - 1]
            if m.any():
                self.skip[str(j)] = nn.Parameter(torch.tensor(low[rows, :o[j + 1]] * m))
                self.register_buffer(f"skip_mask{j}", torch.tensor(m))
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(n)) for n in sizes[1:]])
        self.float()

    # ----------------------------------------------------------------------------- declarations
    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.offsets[-1] - self.sizes[0],)]

    def activations(self) -> list:
        return [rho]

    def _symmetric(self, inter: list[Tensor], skip: dict[int, Tensor]) -> Tensor:
        """T + Tᵀ for the strictly lower-triangular N×N matrix T holding the given blocks."""
        o, n = self.offsets, self.offsets[-1]
        rows = [inter[0].new_zeros(self.sizes[0], n)]
        for j in range(1, len(self.sizes)):
            block = F.pad(inter[j - 1], (o[j - 1], n - o[j]))
            if j in skip:
                block = block + F.pad(skip[j], (0, n - o[j + 1]))
            rows.append(block)
        T = torch.cat(rows)
        return T + T.T

    def weights(self) -> Tensor:
        """The symmetric, masked N×N matrix W = T + Tᵀ assembled from the blocks (differentiable)."""
        return self._symmetric([w * getattr(self, f"inter_mask{k}") for k, w in enumerate(self.inter)],
                               {int(j): w * getattr(self, f"skip_mask{j}") for j, w in self.skip.items()})

    def mask(self) -> Tensor:
        """The symmetric 0/1 connection mask (zero diagonal)."""
        return self._symmetric([getattr(self, f"inter_mask{k}") for k in range(len(self.inter))],
                               {int(j): getattr(self, f"skip_mask{j}") for j in self.skip})

    def energy(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        """E(x, s) per sample (Gammell §C.2, the authors' dead ``calc_E`` made to run); the free phase only."""
        if beta != 0.0:
            raise ConfigError(f"{self.name}'s energy covers the free phase (β = 0), got β = {beta}")
        z = rho(torch.cat([x, s[0]], 1))
        b = torch.cat(list(self.bias))
        return 0.5 * (s[0] ** 2).sum(1) - 0.5 * ((z @ self.weights()) * z).sum(1) - rho(s[0]) @ b

    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        out = -self.energy(x, s)
        return out if beta == 0.0 else out + self.nudge_term(s, beta, y)

    def loss(self, s: State, y: Tensor) -> Tensor:
        """C = ½‖y − s_y‖² per sample (one-hot targets for classes)."""
        out = self.output(s)
        return 0.5 * ((self.target_matrix(y, out.dtype) - out) ** 2).sum(1)

    def output(self, s: State) -> Tensor:
        return s[0][:, -self.sizes[-1]:]

    def parity_groups(self) -> list[list[int]]:
        raise ConfigError("HOPFIELD relaxes synchronously (forward Euler, Gammell et al.); skip connections join "
                          "layers of equal parity, so there is no asynchronous even/odd split")

    # ----------------------------------------------------------------------------- dynamics
    def drive(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None, *, closed_form: bool = True,
              create_graph: bool = False, cache: dict | None = None) -> State:
        """u of the step s ← clamp(s + εu): −∂E_β/∂s for the gradient nudge, the authors' rule otherwise."""
        if self.nudge == "gradient" or beta == 0.0:
            return super().drive(x, s, beta, y, closed_form=closed_form, create_graph=create_graph, cache=cache)
        (u,) = super().drive(x, s, 0.0, None, closed_form=closed_form, create_graph=create_graph, cache=cache)
        n = self.sizes[-1]
        target = self.target_matrix(y, u.dtype)
        eb = 2.0 * self.epsilon * beta
        u_y = (1.0 - eb) * u[:, -n:] + 2.0 * beta * (target - s[0][:, -n:])
        return [torch.cat([u[:, :-n], u_y], 1)]

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        """u = ρ(z)W + b − ρ(s) (+ β(y − s_y) for the gradient nudge), the authors' ``step_free``."""
        if cache is not None and "W" in cache:
            W, b = cache["W"], cache["b"]
        else:
            W, b = self.weights()[:, self.sizes[0]:], torch.cat(list(self.bias))
            if cache is not None:
                cache["W"], cache["b"] = W, b
        r = rho(s[0])
        u = rho(torch.cat([x, s[0]], 1)) @ W + b - r
        if beta != 0.0:
            n = self.sizes[-1]
            u = u + F.pad(beta * (self.target_matrix(y, u.dtype) - s[0][:, -n:]), (u.shape[1] - n, 0))
        return [u]

    def update(self, s: State, u: State) -> State:
        """Forward Euler with clamping to [0, 1] (Gammell §C.3)."""
        return [(s[0] + self.epsilon * u[0]).clamp(0.0, 1.0)]

    @torch.no_grad()
    def euler_step_bound(self) -> float:
        """The step below which a free Euler step never increases E: 2 / λ_max(I − W_ss) (∞ if ≤ 0).

        On the box E is quadratic with Hessian H = I − W_ss, and the step is projected gradient
        descent s⁺ = Π(s − ε∇E); the descent lemma with the projection's variational inequality
        gives E(s⁺) ≤ E(s) − (1/ε − λ_max(H)/2)·‖s⁺ − s‖² (suites/energy; Beck 2017, Lemma 10.4).
        """
        n0 = self.sizes[0]
        W = self.weights()[n0:, n0:].double()
        lam = 1.0 - float(torch.linalg.eigvalsh(W)[0])
        return math.inf if lam <= 0 else 2.0 / lam

    @torch.no_grad()
    def fast_relax(self, x: Tensor, s: State, steps: int, beta: float = 0.0, y: Tensor | None = None, *,
                   cache: dict | None = None, mode: str = "sync", clamped: tuple[int, ...] = ()) -> State | None:
        """The same steps as ``relax`` with the closed form, one fused ``addmm`` and a clamp each.

        On the box, s + εu = s·A + c with A = (1 − ε)I + εW_ss and c = ε(ρ(x)W_xs + b); either nudge
        is affine in s_y, so it folds into A's output columns and c. States must lie in [0, 1]
        (they do after any step); pinned to the generic step by suites/properties.
        """
        if mode != "sync" or clamped:  # one state layer: the fused form is the synchronous Euler step, unclamped
            return None
        eps, n0, n = self.epsilon, self.sizes[0], self.sizes[-1]
        W = self.weights()
        A = eps * W[n0:, n0:]
        A.diagonal().add_(1.0 - eps)
        c = eps * (rho(x) @ W[:n0, n0:] + torch.cat(list(self.bias)))
        if beta != 0.0:
            target = self.target_matrix(y, c.dtype)
            if self.nudge == "gradient":  # s_y ← s_y(1 − εβ) + εβ y + (the free terms)
                A[:, -n:].diagonal(-(A.shape[0] - n)).sub_(eps * beta)
                c[:, -n:] += eps * beta * target
            else:  # s_y ← (1 − 2εβ)(free step)_y + 2εβ y
                eb = 2.0 * eps * beta
                A[:, -n:] *= 1.0 - eb
                c[:, -n:] = (1.0 - eb) * c[:, -n:] + eb * target
        out = s[0].clamp(0.0, 1.0)
        for _ in range(steps):
            out = torch.addmm(c, out, A).clamp_(0.0, 1.0)
        return [out]

    # ----------------------------------------------------------------------------- learning
    def layer_parameters(self) -> list[list[nn.Parameter]]:
        """Layer j's group: the block from layer j − 1, its skip connections, its biases."""
        groups = []
        for j in range(1, len(self.sizes)):
            g = [self.inter[j - 1]]
            if str(j) in self.skip:
                g.append(self.skip[str(j)])
            groups.append(g + [self.bias[j - 1]])
        return groups

    def param_groups(self, lrs: Sequence[float], wds: Sequence[float]) -> list[dict]:
        """torch.optim groups; with ``reference_rates`` only inter-layer blocks get their rate and the
        bypass weights and biases learn at lr 1 with no weight decay (the authors' code, §C.5)."""
        if not self.reference_rates:
            return [{"params": g, "lr": lr, "weight_decay": wd} for g, lr, wd in zip(self.layer_parameters(), lrs, wds)]
        groups = [{"params": [w], "lr": lr, "weight_decay": wd} for w, lr, wd in zip(self.inter, lrs, wds)]
        return groups + [{"params": [*self.skip.values(), *self.bias], "lr": 1.0}]  # no decay: torch.optim's default 0

    @torch.no_grad()
    def correction_rates(self) -> list[float]:
        """Per-layer rate ‖dW ⊙ conn_k‖_F / √‖mask ⊙ conn_k‖₁ of the last update (Gammell §C.7, Figs. 3, 5)."""
        rates = []
        for k, w in enumerate(self.inter):
            count = float(getattr(self, f"inter_mask{k}").sum())
            g = w.grad
            rates.append(0.0 if g is None or count == 0 else float(g.norm()) / math.sqrt(count))
        return rates

    # ----------------------------------------------------------------------------- what the trainer logs
    def batch_metrics(self) -> dict[str, float]:
        """The correction rate of each layer (``rate/k``), read after the rule wrote ``.grad``."""
        return {f"rate/{k + 1}": r for k, r in enumerate(self.correction_rates())}

    def epoch_metrics(self, batches: list[dict[str, float]]) -> dict[str, float | None]:
        """The epoch's mean rate per layer, their log-spread (Gammell's Table 1; JSON null when a layer never
        learned, counted in ``dead_layers``) and the Euler step bound ε must stay below for E to descend."""
        out: dict[str, float | None] = {"step_bound": self.euler_step_bound()}
        if batches:
            means = {k: float(np.mean([b[k] for b in batches])) for k in batches[0]}
            spread = log_spread(list(means.values()))
            out.update(means)
            out.update(log_spread=spread if math.isfinite(spread) else None,
                       dead_layers=sum(m == 0 for m in means.values()))
        return out

    def run_metrics(self) -> dict[str, float]:
        """The fraction of connections the small-world topology rewired."""
        return {"p_actual": self.p_actual}


def log_spread(rates: Sequence[float]) -> float:
    """Std over layers of log10 of the per-layer mean correction (Gammell et al., Table 1's spread).

    A layer whose correction is exactly zero (every unit of a layer stuck at a clamp for the whole epoch,
    so it never learns) makes the spread infinite, as log10(0) does in the authors' computation.
    """
    r = np.asarray(rates, dtype=float)
    return math.inf if np.any(r <= 0) else float(np.std(np.log10(r)))


def euler_overshoot(model, x: Tensor, factor: float) -> tuple[State, float]:
    """Biases and a start where one free Euler step of Gammell's Hopfield model must raise E (factor > 1).

    With H = I − W_ss (E's Hessian on the box) and v its top eigenvector (eigenvalue λ), the biases are
    set so that ∇E(s) = δ·v at s = ½·1, and ε = factor·2/λ; δ keeps the step inside the box, where it is
    exact gradient descent on a quadratic: E(s⁺) − E(s) = δ²(−ε + ½ε²λ), positive iff factor > 1.
    Sets ``model.epsilon`` and the biases (x must be one sample); returns (start, predicted ΔE).
    """
    if x.shape[0] != 1:
        raise ConfigError(f"euler_overshoot sets the biases from one sample; got a batch of {x.shape[0]}")
    n0 = model.sizes[0]
    with torch.no_grad():
        W = model.weights()
        H = torch.eye(W.shape[0] - n0, dtype=W.dtype) - W[n0:, n0:]
        lam, vecs = torch.linalg.eigh(H)
        v, lam_max = vecs[:, -1], float(lam[-1])
        if lam_max <= 0:
            raise ConfigError("I − W_ss has no positive eigenvalue: every Euler step descends E")
        eps = factor * 2.0 / lam_max
        s = torch.full((1, H.shape[0]), 0.5, dtype=W.dtype)
        delta = 0.4 / (eps * float(v.abs().max()))  # |εδv| ≤ 0.4: s⁺ stays inside (0, 1)
        b = (s @ H - delta * v - x.clamp(0, 1) @ W[:n0, n0:])[0]  # ∇E(s) = Hs − (ρ(x)W_xs + b) = δv
        start = 0
        for bias in model.bias:
            bias.copy_(b[start:start + bias.numel()])
            start += bias.numel()
    model.epsilon = eps
    return [s], delta**2 * (-eps + 0.5 * eps**2 * lam_max)
