"""Bal & Sengupta 2023's convergent RNN with modern-Hopfield projection layers (sequence EP).

The input x is a sequence of ``segments`` × L token vectors of size d (IMDB: one segment of 600 tokens;
SNLI: premise then hypothesis, 25 tokens each). Projection layer k has a token-wise map P_k (Linear d → d,
no bias) from its source segment and a state s_k of shape (L, d); fully connected layers follow on the
concatenated projection states:

    Φ(x, s) = Σ_k ⟨P_k x_{src_k}, s_k⟩ + ⟨W_0 flat(s_1 … s_K) + b_0, h_1⟩ + Σ_i ⟨W_i h_i + b_i, h_{i+1}⟩
              − β·½‖h_out − y‖²

(Bal & Sengupta §E.1–E.2). The step is Laborieux's s ← σ(∂Φ/∂s) on the fully connected layers and, on a
projection layer, the modern-Hopfield retrieval with the drive as query and the (constant) key/value
segment X_k of the input:

    s_k ← softmax(c · g_k X_kᵀ) X_k,       g_k = ∂Φ/∂s_k = P_k x_{src_k} + (W_0ᵀ h_1)_k,   row-wise over tokens

with c = ``scale`` (1/√d for IMDB, 0.16 for SNLI). ``projections`` lists (source segment, key/value segment)
per projection layer: IMDB ``[[0, 0]]``; SNLI ``[[0, 1], [1, 0], [0, 0], [1, 1]]`` (two cross-attention, two
self-attention layers).

The retrieval r(g) = softmax(c·gXᵀ)X is the gradient of the convex function (1/c)·lse(c·gXᵀ), so its
Jacobian c·Xᵀ(diag p − ppᵀ)X is symmetric positive semi-definite: it plays the role of σ′ in Laborieux's
prototypical step, which is why the engine's GDU check applies to it unchanged (suites/gdu measures how
far EP is from BPTT on it).

``retrieval: cccp`` is the energy-consistent variant (not in the authors' code). Each projection layer adds
Ramsauer et al.'s (2021) modern-Hopfield term to Φ, so that the model's energy E = ½‖s‖² − Φ contains the
modern-Hopfield energy ½‖s_k‖² − (1/c)·lse(c·s_k X_kᵀ) of every projection state:

    Φ_cccp = Φ + Σ_k (1/c) Σ_tokens lse(c · s_k X_kᵀ)

With the other states fixed, E is a convex ½‖s_k‖² − ⟨g_k, s_k⟩ minus a convex lse term; the concave–convex
procedure (CCCP; Yuille & Rangarajan 2003, the update rule of Ramsauer et al.) linearises the lse at the
current state and minimises the convex bound exactly:

    s_k ← g_k + softmax(c · s_k X_kᵀ) X_k = ∂Φ_cccp/∂s_k

so the step IS ∂Φ/∂s on the projection layers (the premise of Ernoult et al.'s theorem, with σ on the fc
layers as in Laborieux's step). The query is now the state itself; the drive g_k is added to the retrieval
rather than fed through the softmax. ∂Φ/∂θ has the same form in both variants (the lse term holds no
parameter), so EP's update formula is unchanged; only the fixed points differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..activations import get_activation
from ..errors import ConfigError
from .base import EnergyModel, State

#: projection-layer steps: the authors' retrieval with the drive as query, or the CCCP step of Φ_cccp
RETRIEVALS: tuple[str, ...] = ("authors", "cccp")


class SequenceEP(EnergyModel):
    """IMDB / SNLI models of Bal & Sengupta 2023 (``SEQ_IMDB`` / ``SEQ_SNLI`` in the registry)."""

    has_closed_form = False
    step_uses_input = True

    def __init__(self, seq_len: int = 600, dim: int = 300, *, segments: int = 1,
                 projections: Sequence[Sequence[int]] = ((0, 0),), fc: Sequence[int] = (1000, 40, 2),
                 scale: float | None = None, act: str = "my_hard_sig", retrieval: str = "authors",
                 name: str = "SEQ") -> None:
        super().__init__()
        self.seq_len, self.dim, self.segments = int(seq_len), int(dim), int(segments)
        if min(self.seq_len, self.dim, self.segments) < 1 or not fc or min(fc) < 1:
            raise ConfigError(f"{name}: seq_len, dim, segments and fc sizes must be positive")
        self.projections = [tuple(int(v) for v in p) for p in projections]
        if not self.projections or any(len(p) != 2 or not all(0 <= v < segments for v in p)
                                       for p in self.projections):
            raise ConfigError(f"{name}: projections are (source, key/value) segment pairs in [0, {segments}), "
                              f"got {list(projections)}")
        if retrieval not in RETRIEVALS:
            raise ConfigError(f"{name}: retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
        self.retrieval = retrieval
        self.scale = 1.0 / math.sqrt(dim) if scale is None else float(scale)
        if self.scale < 0 or (retrieval == "cccp" and self.scale == 0):
            raise ConfigError(f"{name}: scale must be positive (≥ 0 with the authors' retrieval, where 0 means "
                              f"uniform attention), got {self.scale}")
        self.act = get_activation(act)
        self.name = name
        self.in_shape = (self.segments * self.seq_len, self.dim)
        self.n_classes = int(fc[-1])
        self.proj = nn.ModuleList([nn.Linear(dim, dim, bias=False) for _ in self.projections])
        sizes = [len(self.projections) * self.seq_len * self.dim, *[int(v) for v in fc]]
        self.synapses = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    # ----------------------------------------------------------------------------- declarations
    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.seq_len, self.dim)] * len(self.projections) + [(m.out_features,) for m in self.synapses]

    def activations(self) -> list:
        return [None] * len(self.projections) + [self.act] * len(self.synapses)

    def segment(self, x: Tensor, k: int) -> Tensor:
        return x[:, k * self.seq_len:(k + 1) * self.seq_len]

    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        x = self.check_input(x)
        K = len(self.projections)
        total = sum((P(self.segment(x, src)) * sk).flatten(1).sum(1)
                    for P, (src, _), sk in zip(self.proj, self.projections, s[:K]))
        layers = [torch.cat([sk.flatten(1) for sk in s[:K]], 1), *s[K:]]
        for f, lo, hi in zip(self.synapses, layers[:-1], layers[1:]):
            total = total + (f(lo) * hi).sum(1)
        if self.retrieval == "cccp":
            c = self.scale
            total = total + sum(torch.logsumexp(c * sk @ self.segment(x, kv).transpose(1, 2), -1).sum(1) / c
                                for (_, kv), sk in zip(self.projections, s[:K]))
        return total if beta == 0.0 else total + self.nudge_term(s, beta, y)

    def loss(self, s: State, y: Tensor) -> Tensor:
        """½‖h_out − onehot(y)‖² (MSE only, as the authors)."""
        if y is None:
            raise ConfigError("a nudged phase or a loss needs targets y")
        out = s[-1]
        return 0.5 * ((out - self.target_matrix(y, out.dtype)) ** 2).sum(1)

    def output(self, s: State) -> Tensor:
        return s[-1]

    def retrieve(self, g: Tensor, keys: Tensor) -> Tensor:
        """softmax(c·g Xᵀ) X per token: the modern-Hopfield retrieval with query g (Ramsauer et al. 2021)."""
        return torch.softmax(self.scale * g @ keys.transpose(1, 2), dim=-1) @ keys

    def update(self, s: State, u: State, x: Tensor | None = None) -> State:
        """Retrieval on the projection layers (keys = values = the detached input segment), σ on the others;
        ``retrieval: cccp``: the projection states take u = ∂Φ_cccp/∂s itself (the CCCP step, see the module)."""
        K = len(self.projections)
        if self.retrieval == "cccp":
            return list(u[:K]) + [self.act(ui) for ui in u[K:]]
        out = [self.retrieve(uk, self.segment(x, kv).detach()) for uk, (_, kv) in zip(u[:K], self.projections)]
        return out + [self.act(ui) for ui in u[K:]]

    def parity_groups(self) -> list[list[int]]:
        raise ConfigError(f"{self.name} relaxes synchronously (Bal & Sengupta): every projection layer couples "
                          "to the first fc layer, so there is no even/odd split")

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        """The projection maps first (one group each), then one group per fc connection (the authors' lrs)."""
        return [list(p.parameters()) for p in self.proj] + [list(f.parameters()) for f in self.synapses]


def seq_imdb(seq_len: int = 600, dim: int = 300, fc: Sequence[int] = (1000, 40, 2), *,
             cls: type[SequenceEP] = SequenceEP, **kw) -> SequenceEP:
    """IMDB model: one token-wise projection layer, retrieval over the review itself, scale 1/√d (``cls``: a
    subclass with another retrieval, as the negative control below)."""
    return cls(seq_len, dim, segments=1, projections=((0, 0),), fc=fc, name="SEQ_IMDB", **kw)


def seq_snli(seq_len: int = 25, dim: int = 300, fc: Sequence[int] = (400, 3), scale: float = 0.16, **kw) -> SequenceEP:
    """SNLI model: premise (segment 0) and hypothesis (1); two cross- and two self-attention projection layers."""
    return SequenceEP(seq_len, dim, segments=2, projections=((0, 1), (1, 0), (0, 0), (1, 1)), fc=fc, scale=scale,
                      name="SEQ_SNLI", **kw)


class ValuesUnlikeKeys(SequenceEP):
    """A negative control: Bal & Sengupta's model with a retrieval whose values V = XM differ from its keys X.

    r(g) = softmax(c·gXᵀ)X is the gradient of (1/c)·lse(c·gXᵀ), with the symmetric Jacobian c·Xᵀ(diag p − ppᵀ)X;
    with values XM the Jacobian c·Mᵀ Xᵀ(diag p − ppᵀ)X is not symmetric, r is no gradient, and EP must part
    from BPTT (the GDU check must fail).
    """

    def retrieve(self, g: Tensor, keys: Tensor) -> Tensor:
        d = keys.shape[-1]
        M = torch.eye(d, dtype=keys.dtype) + 0.5 * torch.linspace(-1, 1, d * d, dtype=keys.dtype).reshape(d, d)
        return torch.softmax(self.scale * g @ keys.transpose(1, 2), dim=-1) @ (keys @ M)


def seq_imdb_values_unlike_keys(**kw) -> SequenceEP:
    """`seq_imdb` with the broken retrieval of :class:`ValuesUnlikeKeys` (a negative control)."""
    return seq_imdb(cls=ValuesUnlikeKeys, **kw)
