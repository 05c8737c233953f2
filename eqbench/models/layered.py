"""Laborieux et al. 2021's layered models: P_MLP, P_CNN and their vector-field twins VF_MLP, VF_CNN.

One class covers all four. A network is a chain of connections f_l (Linear, or Conv2d followed by
a k×k pooling P_l ∈ {max, avg, none} with stride k; k = ``pool_size``, 2 by default, 3 in Laydevant
et al.'s binary conv net) from layer l to layer l+1, layer 0 being the input x:

    Φ(x, s) = Σ_l ⟨P_l(f_l(s_l)), s_{l+1}⟩ − β·L(s, y)                     (Laborieux §A.2)

With a softmax readout (``softmax=True``, cross-entropy only) the last Linear is outside the
dynamics and L = CE(readout(s_last), y).

Vector-field models (``feedback=True``) give every connection but the first a separate feedback
module g_l shaped like f_l (no bias) and follow the "mixed" primitive

    Φ_m(pre, post) = Σ_l ⟨P_l(f_l(pre_l)), post_{l+1}⟩ + Σ_{l≥1} ⟨P_l(g_l(post_l)), pre_{l+1}⟩ − β·L(post)

whose gradient in ``post`` at pre = post = s is the VF dynamics. Deviation from the authors, in
layout only: Laborieux's VF_MLP stores its feedback matrix backward-shaped (B_l = g_lᵀ); here it is
forward-shaped like VF_CNN's, so `angle` compares like with like. With g_l = f_l a VF model is
exactly the P model (pinned by a test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import Activation, get_activation
from ..angles import angle_deg
from ..errors import ConfigError
from .base import EnergyModel, State
from .pooling import max_pool_ties, tie_gap

LOSSES = ("mse", "ce")
POOLS = {"m": "max", "a": "avg", "i": "none"}


@dataclass(frozen=True)
class _Conn:
    """Static description of connection l (the module lives in the model's ModuleLists)."""

    kind: str  # "conv" or "fc"
    pool: str  # "m", "a", "i" ("i" for every fc)
    in_shape: tuple[int, ...]  # per-sample shape of layer l
    out_shape: tuple[int, ...]  # per-sample shape of layer l+1 (after pooling)
    pre_pool: tuple[int, ...]  # per-sample shape of f_l's output before pooling


class LayeredEP(EnergyModel):
    """P_MLP / P_CNN / VF_MLP / VF_CNN (Laborieux et al. 2021), generic over depth and pooling."""

    has_closed_form = True

    def __init__(
        self,
        in_shape: Sequence[int],
        *,
        channels: Sequence[int] = (),
        kernels: Sequence[int] = (),
        strides: Sequence[int] | None = None,
        paddings: Sequence[int] | None = None,
        pools: str = "",
        fc: Sequence[int] = (10,),
        act: str = "my_hard_sig",
        loss: str = "mse",
        softmax: bool = False,
        scale: float | None = None,
        feedback: bool = False,
        same_update: bool = False,
        tied_init: bool = False,
        pool_size: int = 2,
        name: str | None = None,
        channels_last: bool = True,
        linear_output: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int(v) for v in in_shape)
        channels, kernels, fc = list(channels), list(kernels), list(fc)
        n_conv = len(channels)
        strides = list(strides) if strides is not None else [1] * n_conv
        paddings = list(paddings) if paddings is not None else [0] * n_conv
        if not fc:
            raise ConfigError("a layered model needs at least one fully connected layer (fc)")
        if any(v <= 0 for v in [*channels, *kernels, *fc, *strides]) or any(p < 0 for p in paddings):
            raise ConfigError("layer sizes, kernels and strides must be positive, paddings non-negative")
        if not (len(kernels) == len(strides) == len(paddings) == len(pools) == n_conv):
            raise ConfigError(
                f"{n_conv} conv layers need as many kernels, strides, paddings and pool letters; got "
                f"{len(kernels)}, {len(strides)}, {len(paddings)} and {len(pools)} ({pools!r})"
            )
        if any(p not in POOLS for p in pools):
            raise ConfigError(f"pool letters are m (max), a (avg), i (none); got {pools!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 2:
            raise ConfigError(f"pool_size must be an integer ≥ 2 (the k of k×k pooling, stride k), got {pool_size!r}")
        self.pool_size = k_pool = pool_size
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        if softmax and loss != "ce":
            raise ConfigError("a softmax readout goes with loss='ce' (Laborieux's --loss cel --softmax)")
        if softmax and len(fc) < 1 + (n_conv == 0):
            raise ConfigError("a softmax readout needs a hidden layer below it")
        if n_conv and len(self.in_shape) != 3:
            raise ConfigError(f"a conv model needs an image input shape (C, H, W), got {self.in_shape}")
        self.act: Activation = get_activation(act)
        if linear_output and softmax:
            raise ConfigError("a linear output layer and a softmax readout exclude each other (the readout is the "
                              "output)")
        self.loss_name, self.softmax, self.feedback, self.same_update = loss, softmax, feedback, same_update
        self.linear_output = linear_output
        self.name = name or f"{'VF' if feedback else 'P'}_{'CNN' if n_conv else 'MLP'}"

        conns: list[_Conn] = []
        modules: list[nn.Module] = []
        shape = self.in_shape
        for c, k, st, p, pl in zip(channels, kernels, strides, paddings, pools):
            if len(shape) != 3:
                raise ConfigError("conv layers must come before fully connected ones")
            h, w = ((d + 2 * p - k) // st + 1 for d in shape[1:])
            if h < 1 or w < 1 or (pl != "i" and (h < k_pool or w < k_pool)):
                raise ConfigError(f"conv layer {len(conns) + 1} (k={k}, stride={st}, pad={p}, pool={pl}) "
                                  f"does not fit a {shape[1]}×{shape[2]} input")
            pre = (c, h, w)
            out = (c, h // k_pool, w // k_pool) if pl != "i" else pre
            conns.append(_Conn("conv", pl, shape, out, pre))
            modules.append(nn.Conv2d(shape[0], c, k, stride=st, padding=p, bias=True))
            shape = out
        fc_state = fc[:-1] if softmax else fc
        for n in fc_state:
            conns.append(_Conn("fc", "i", shape, (n,), (n,)))
            modules.append(nn.Linear(math.prod(shape), n, bias=True))
            shape = (n,)
        self.conns = conns
        self.synapses = nn.ModuleList(modules)
        self.readout = nn.Linear(math.prod(shape), fc[-1], bias=True) if softmax else None
        self.n_classes = fc[-1]
        # Feedback modules for every connection but the first, shaped like the forward ones.
        self.feedbacks = nn.ModuleList(
            [self._like(m) for m in modules[1:]] if feedback else []
        )
        if scale is not None:
            with torch.no_grad():  # PyTorch default init, then ×scale on weights and biases (§A.8)
                for p in self.parameters():
                    p.mul_(scale)
        if feedback and tied_init:
            with torch.no_grad():
                for g, f in zip(self.feedbacks, modules[1:]):
                    g.weight.copy_(f.weight)
        if channels_last and n_conv:
            # conv weights stored NHWC: the conv outputs and states follow, and oneDNN's max pooling with indices
            # is ~20× faster on them than on NCHW (the closed-form free phase of a CIFAR-shaped P_CNN 1.7×);
            # the same numbers to float round-off, ties in a max pool included (max_pool_ties; the layout claim)
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _like(m: nn.Module) -> nn.Module:
        if isinstance(m, nn.Conv2d):
            return nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                             padding=m.padding, bias=False)
        return nn.Linear(m.in_features, m.out_features, bias=False)

    # ----------------------------------------------------------------------------- declarations
    def state_shapes(self) -> list[tuple[int, ...]]:
        return [c.out_shape for c in self.conns]

    def activations(self) -> list[Activation]:
        acts: list = [self.act] * len(self.conns)
        if self.linear_output or (self.loss_name == "ce" and not self.softmax):
            # output left linear: CE on the output state as logits (§A.3 step 3), or the DCHN's linear output unit
            acts[-1] = _identity
        return acts

    def _conn_out(self, l: int, module: nn.Module, inp: Tensor, indices: bool = False):
        """P_l(module(inp)) with its max-pool indices when asked; fc inputs are flattened."""
        c = self.conns[l]
        if c.kind == "fc":
            z = module(inp.flatten(1))
            return (z, None) if indices else z
        z, k = module(inp), self.pool_size
        if c.pool == "m":
            pooled, idx = self._max_pool(z, k, tie_gap(inp, module.weight, module.bias))
            return (pooled, idx) if indices else pooled
        if c.pool == "a":
            z = _avg_pool(z, k)
        return (z, None) if indices else z

    def _max_pool(self, z: Tensor, k: int, gap: Tensor) -> tuple[Tensor, Tensor]:
        """k×k max pooling of a conv output, ties within the convolution's round-off ``gap`` resolved the same way
        in NCHW and NHWC (eqbench.models.pooling): (values, indices)."""
        return max_pool_ties(z, k, gap)

    def _phi_mixed(self, x: Tensor, pre: State, post: State, beta: float, y: Tensor | None) -> Tensor:
        x = self.check_input(x)
        lo, hi = [x, *pre], [x, *post]
        total = x.new_zeros(x.shape[0])
        for l, f in enumerate(self.synapses):
            total = total + (self._conn_out(l, f, lo[l]) * hi[l + 1]).flatten(1).sum(1)
        for l, g in enumerate(self.feedbacks, start=1):
            total = total + (self._conn_out(l, g, hi[l]) * lo[l + 1]).flatten(1).sum(1)
        if beta != 0.0:
            total = total + self.nudge_term(post, beta, y)
        return total

    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        return self._phi_mixed(x, s, s, beta, y)

    def loss(self, s: State, y: Tensor) -> Tensor:
        if y is None:
            raise ConfigError("a nudged phase or a loss needs targets y")
        out = self.output(s)
        if self.loss_name == "mse":
            return 0.5 * ((out - self.target_matrix(y, out.dtype)) ** 2).sum(1)
        if y.dtype != torch.long:
            raise ConfigError("the cross-entropy loss needs class-index targets")
        if out.is_complex():  # log Σ exp − the target's logit: the holomorphic extension (no complex cross_entropy)
            return torch.logsumexp(out, 1) - out.gather(1, y[:, None])[:, 0]
        return F.cross_entropy(out, y, reduction="none")

    def output(self, s: State) -> Tensor:
        return self.readout(s[-1].flatten(1)) if self.readout is not None else s[-1]

    def drive_potential(self, x: Tensor, pre: State, post: State, beta: float, y: Tensor | None) -> Tensor:
        return self._phi_mixed(x, pre, post, beta, y) if self.feedback else self.phi(x, post, beta, y)

    # ----------------------------------------------------------------------------- closed form
    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        """u_l = P_{l-1}(f_{l-1}(s_{l-1})) + f_lᵀ·unpool(s_{l+1}) − β·∂L/∂s_l without autograd.

        The transposed terms are a Linear's ``W^T``, a conv-transpose (with the output padding that
        restores the input size), the adjoint of k×k average pooling and max-unpooling at the
        argmax positions of the current state — the same positions autograd routes through, so
        the two drives agree (suites/properties). The input's drive P_0(f_0(x)) is computed once
        per relaxation and kept in ``cache``.
        """
        x = self.check_input(x)
        layers = [x, *s]
        u: list[Tensor] = [self._input_drive(x, cache)]
        pooled_idx: list = [None] * len(self.conns)
        for l in range(1, len(self.conns)):
            z, pooled_idx[l] = self._conn_out(l, self.synapses[l], layers[l], indices=True)
            u.append(z)
        for l in range(1, len(self.conns)):
            if self.feedback:
                g = self.feedbacks[l - 1]
                idx = self._conn_out(l, g, layers[l], indices=True)[1]
            else:
                g, idx = self.synapses[l], pooled_idx[l]
            u[l - 1] = u[l - 1] + self._adjoint(l, g.weight, s[l], idx)
        if beta != 0.0:
            dl = self.loss_grad(s, y)
            u[-1] = u[-1] - beta * dl
        return u

    def _input_drive(self, x: Tensor, cache: dict | None) -> Tensor:
        """P_0(f_0(x)), the input's drive: computed once per relaxation and kept in its ``cache`` when one is given
        (the closed form, the fused synchronous and the fused asynchronous steps all read it there)."""
        if cache is not None and "input_drive" in cache:
            return cache["input_drive"]
        z = self._conn_out(0, self.synapses[0], x)
        if cache is not None:
            cache["input_drive"] = z
        return z

    def _inherits(self, *names: str) -> bool:
        """Whether this class keeps LayeredEP's ``names`` (and the drive's closed form): a subclass that redefines
        its Φ or its step (BinaryEP, a user's variant) does not inherit the fused forms written for them."""
        return all(getattr(type(self), n) is getattr(LayeredEP, n) for n in (*names, "closed_form_drive"))

    @torch.no_grad()
    def fast_relax(self, x: Tensor, s: State, steps: int, beta: float = 0.0, y: Tensor | None = None, *,
                   cache: dict | None = None, mode: str = "sync", clamped: tuple[int, ...] = ()) -> State | None:
        """``mode="async"``: `_fast_async`. Otherwise the closed-form synchronous steps of a fully connected network
        with tied weights, fused: per step and
        layer one ``addmm`` into a preallocated buffer (u_l = b_l + s_{l−1}W_lᵀ + s_{l+1}W_{l+1}, the input
        drive computed once, or taken from ``cache``) and the activation in place, two buffers swapped between
        steps. A clipped activation clip(u/a, 0, 1) has its 1/a folded into the weights, biases and input drive
        once per call, so each step is one ``clamp_`` (u/a = b_l/a + s_{l−1}(W_l/a)ᵀ + …). None (the generic
        loop) for convolutions, feedback weights or a subclass with its own step. The same arithmetic as
        `closed_form_drive` + `update` in another order of operations: pinned to the generic loop to round-off
        by suites/properties."""
        if mode == "async":
            return self._fast_async(x, s, steps, beta, y, cache, clamped)
        if clamped or self.feedback or any(c.kind != "fc" for c in self.conns) or not self._inherits("drive",
                                                                                                     "update"):
            return None
        x = self.check_input(x).flatten(1)
        W = [f.weight for f in self.synapses]
        b = [f.bias for f in self.synapses]
        n = len(W)
        acts = self.activations()
        clip = [a is not _identity and a.clip_a is not None for a in acts]
        k = [1.0 / a.clip_a if c else 1.0 for a, c in zip(acts, clip)]  # the folded 1/a of each layer

        def scaled(t: Tensor, c: float) -> Tensor:
            return t if c == 1.0 else t * c

        drive0 = scaled(self._input_drive(x, cache), k[0])
        up = [None] + [scaled(W[l].t(), k[l]) for l in range(1, n)]  # bottom-up into layer l
        bias = [None] + [scaled(b[l], k[l]) for l in range(1, n)]
        down = [scaled(W[l + 1], k[l]) for l in range(n - 1)]  # top-down into layer l
        cur = [si.clone() for si in s]
        nxt = [torch.empty_like(si) for si in s]
        for _ in range(steps):
            for l in range(n):
                u = nxt[l]
                if l == 0 and n == 1:
                    u.copy_(drive0)
                elif l == 0:
                    torch.addmm(drive0, cur[1], down[0], out=u)
                else:
                    torch.addmm(bias[l], cur[l - 1], up[l], out=u)
                    if l + 1 < n:
                        u.addmm_(cur[l + 1], down[l])
                if l + 1 == n and beta != 0.0:
                    u.sub_(self.loss_grad(cur, y), alpha=beta * k[l])
                if clip[l]:
                    u.clamp_(0.0, 1.0)
                elif acts[l] is not _identity:
                    nxt[l] = acts[l](u)
            cur, nxt = nxt, cur
        return cur

    def _fast_async(self, x: Tensor, s: State, steps: int, beta: float, y: Tensor | None, cache: dict | None,
                    clamped: tuple[int, ...]) -> State | None:
        """The asynchronous fixed-point minimiser of Scellier et al. 2023 (their ``FixedPointMinimizer``, mode
        ``asynchronous``), fused: one half-step sets every layer of one parity to σ(u_l), its minimiser given its
        neighbours (exact for a clip and a linear layer; with a max pool above it, a majorise–minimise step at the
        current pooling indices, eqbench.checks.energy), then the other parity from the refreshed states.

        Each layer's bottom-up product P_l(f_l(s_{l−1})) and its pooling indices are computed once after s_{l−1}
        changes and serve both the layer above (its bottom-up drive) and s_{l−1}'s own next top-down term (the
        indices of its pool), so a full iteration costs one synchronous step; the generic asynchronous loop
        recomputes every layer's drive at each half-step (twice the products). ``clamped`` layers are held (coupled
        learning). The same arithmetic as `closed_form_drive` + `update` per half-step, so the result equals the
        generic loop's (the fused claim, both modes). None for feedback weights or a subclass with its own step."""
        if self.feedback or not self._inherits("drive", "update"):
            return None
        x = self.check_input(x)
        n, acts, f = len(self.conns), self.activations(), self.synapses
        input_drive = self._input_drive(x, cache)
        s = list(s)
        up: list = [None] * n  # up[i] = (P_i(f_i(s_{i−1})), its max-pool indices), i ≥ 1
        for i in range(1, n):
            up[i] = self._conn_out(i, f[i], s[i - 1], indices=True)
        groups = [[i for i in g if i not in clamped] for g in self.parity_groups()]
        for _ in range(steps):
            for group in groups:
                new = {}
                for i in group:
                    u = input_drive if i == 0 else up[i][0]
                    if i + 1 < n:
                        u = u + self._adjoint(i + 1, f[i + 1].weight, s[i + 1], up[i + 1][1])
                    if i + 1 == n and beta != 0.0:
                        u = u - beta * self.loss_grad(s, y)
                    new[i] = acts[i](u)
                for i, v in new.items():
                    s[i] = v
                for i in group:
                    if i + 1 < n:
                        up[i + 1] = self._conn_out(i + 1, f[i + 1], s[i], indices=True)
        return s

    def _adjoint(self, l: int, weight: Tensor, g: Tensor, idx: Tensor | None) -> Tensor:
        """(P_l ∘ f_l)ᵀ without bias applied to g = s_{l+1}: the top-down term of layer l."""
        c = self.conns[l]
        if c.kind == "fc":
            return (g @ weight).reshape(g.shape[0], *c.in_shape)
        h, w = c.pre_pool[1:]
        k = self.pool_size
        if c.pool == "m":
            g = F.max_unpool2d(g, idx, k, k, output_size=(h, w))
        elif c.pool == "a":
            up = g.repeat_interleave(k, -1).repeat_interleave(k, -2) / float(k * k)
            # odd sizes: pooling drops the last row/column, whose adjoint is zero
            g = F.pad(up, (0, w - up.shape[-1], 0, h - up.shape[-2]))
        conv = self.synapses[l]
        stride, pad, k = conv.stride[0], conv.padding[0], conv.kernel_size[0]
        out_pad = [c.in_shape[1 + i] - ((d - 1) * stride - 2 * pad + k) for i, d in enumerate((h, w))]
        return F.conv_transpose2d(g, weight, stride=stride, padding=pad, output_padding=tuple(out_pad))

    def loss_grad(self, s: State, y: Tensor) -> Tensor:
        """∂L/∂s_last per sample, in closed form (MSE, CE on the output, CE through the readout)."""
        if y is None:
            raise ConfigError("a nudged phase needs targets y")
        out = self.output(s)
        if self.loss_name == "mse":
            return out - self.target_matrix(y, out.dtype)
        err = _softmax(out) - self.target_matrix(y, out.dtype)
        if self.readout is None:
            return err
        return (err @ self.readout.weight).reshape(s[-1].shape)

    def energy(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor | None:
        """E_β = Σ_l (a_l/2)·‖s_l‖² − Φ_β when the activation is a clip σ(u) = clip(u/a, 0, 1), a_l = a for the
        clipped layers and 1 for a linear output layer (``linear_output``, or CE without readout); None otherwise.

        Laborieux et al. 2021 §A.3 (primitive Φ), Scellier & Bengio 2017 Eq. 1 (the ‖s‖²/2 term), Scellier et al.
        2023 Eq. 3 (the DCHN's energy, a = 1); the argument that the asynchronous dynamics descend it is in
        eqbench.checks.energy.
        """
        a = self.act.clip_a
        if a is None:
            return None
        # a linear layer's step s = u minimises ½‖s‖² − ⟨u, s⟩: its weight is 1, the clip layers' a
        sq = sum((1.0 if act is _identity else a) * (si.flatten(1) ** 2).sum(1)
                 for act, si in zip(self.activations(), s))
        return 0.5 * sq - self.phi(self.check_input(x), s, beta, y)

    def why_not_holomorphic(self) -> str | None:
        if not self._inherits("drive", "update", "phi", "loss", "loss_grad"):
            return f"{type(self).__name__} redefines LayeredEP's step or Φ and declares no holomorphic extension"
        if not self.act.holomorphic:
            return (f"its activation {self.act.name} is not holomorphic (a clip or kink); use e.g. my_sigmoid or "
                    "my_holotanh")
        if any(c.pool == "m" for c in self.conns):
            return "it has max pooling, which has no holomorphic extension; use avg pooling"
        return None

    def why_drive_not_affine(self) -> str | None:
        if self.feedback:
            return "it has feedback weights: its drive is not the gradient of a primitive"
        if any(c.pool == "m" for c in self.conns):
            return "it has max pooling: Φ is not multilinear in the layers and the drive is not affine in s"
        return None

    def layer_parameters(self):
        """One group per connection (a feedback module joins its forward twin's group, as
        Laborieux's B_syn[i] takes lrs[i+1]), then the readout: ``lrs`` has one entry per group."""
        groups = [list(f.parameters()) for f in self.synapses]
        for l, g in enumerate(self.feedbacks, start=1):
            groups[l] += list(g.parameters())
        if self.readout is not None:
            groups.append(list(self.readout.parameters()))
        return groups

    # ----------------------------------------------------------------------------- VF specifics
    def ep_objective(self, x, y, free, s1, beta1, s2, beta2):
        """mean_b [Φ_{β2}(s2) − Φ_{β1}(s1)], the input's term merged (P models: the same value, fewer products).

        VF (``same_update=False``): local update with the free state as pre-synaptic factor,
        mean_b [Φ_m(pre=s*, post=s2, β2) − Φ_m(pre=s*, post=s1, β1)] (Laborieux §A.5, VF_CNN's
        thirdphase form; with s1 = s* it is the one-sided form Φ_m(s*, s^β) − Φ(s*)). Deviation:
        Laborieux's VF_MLP thirdphase takes s^β as pre-synaptic factor through a generic branch;
        here both VF models use s* so that every estimator telescopes over the nudged steps.
        """
        if self.feedback and not self.same_update:
            return (self._phi_mixed(x, free, s2, beta2, y) - self._phi_mixed(x, free, s1, beta1, y)).mean()
        if self.feedback or not self._inherits("phi"):
            return super().ep_objective(x, y, free, s1, beta1, s2, beta2)
        # Φ(s2) − Φ(s1) with the input's term P_0(f_0(x)) computed once: one input product forward and one
        # backward instead of two each (the largest products of an EP step). Two products with s2_1 and s1_1,
        # not one with s2_1 − s1_1: the states are saved for backward anyway, a difference would be a new
        # tensor in the graph (+28 % of P_MLP's EP graph bytes). Pinned to the generic objective by
        # suites/properties
        x = self.check_input(x)
        z = self._conn_out(0, self.synapses[0], x)
        total = (z * s2[0]).flatten(1).sum(1) - (z * s1[0]).flatten(1).sum(1)
        for l in range(1, len(self.conns)):
            f = self.synapses[l]
            total = total + (self._conn_out(l, f, s2[l - 1]) * s2[l]).flatten(1).sum(1) \
                - (self._conn_out(l, f, s1[l - 1]) * s1[l]).flatten(1).sum(1)
        if beta2 != 0.0:
            total = total + self.nudge_term(s2, beta2, y)
        if beta1 != 0.0:
            total = total - self.nudge_term(s1, beta1, y)
        return total.mean()

    def postprocess_grads(self, grads):
        """``same_update``: forward and feedback weights of a connection both get their mean update."""
        if not (self.feedback and self.same_update):
            return grads
        out = dict(grads)
        for l in range(1, len(self.conns)):
            fw, bw = f"synapses.{l}.weight", f"feedbacks.{l - 1}.weight"
            if fw in out and bw in out:
                out[fw] = out[bw] = 0.5 * (grads[fw] + grads[bw])
        return out

    def angles(self) -> list[float]:
        """Angle in degrees between each feedback module's weight and its forward twin (§A.2)."""
        return [angle_deg(g.weight, f.weight) for g, f in zip(self.feedbacks, list(self.synapses)[1:])]


def _identity(u: Tensor) -> Tensor:
    return u


class RealPartStep(LayeredEP):
    """Negative control of holomorphic EP: the step applies the activation to the real part of the drive only,
    σ(Re u), which is no holomorphic function, while the model still declares holomorphic dynamics. On real states
    it is LayeredEP itself; on the circle's complex phases the states see only Re β_k, so the estimate loses its
    order N (for N ≥ 3 it tends to half the gradient: the mean of Re(β_k)/β_k over the circle is ½)."""

    def update(self, s: State, u: State) -> State:
        return [act(ui.real).to(ui.dtype) if ui.is_complex() else act(ui) for act, ui in zip(self.activations(), u)]

    def why_not_holomorphic(self) -> str | None:
        return None  # the false declaration under test


def real_part_step_mlp(sizes: Sequence[int], **kw) -> RealPartStep:
    """A P_MLP with `RealPartStep`'s non-holomorphic step (``eqbench.models.layered:real_part_step_mlp``)."""
    return RealPartStep((sizes[0],), fc=sizes[1:], name="P_MLP σ(Re u)", **kw)


class ClosedFormSlip(LayeredEP):
    """Negative control of closed form = autograd: the closed-form drive off by a factor 1 + 1e-9 — a slip far below
    any training effect, and 4.5e6 ulps of float64, which the scale-free round-off bound (2¹² ulps) must catch."""

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        return [u * (1 + 1e-9) for u in super().closed_form_drive(x, s, beta, y, cache=cache)]


class FusedWithoutNudge(LayeredEP):
    """Negative control of fused = generic: a fused relaxation that drops the nudge (a bug only β ≠ 0 shows)."""

    def fast_relax(self, x, s, steps, beta=0.0, y=None, *, cache=None, mode="sync", clamped=()):
        return super().fast_relax(x, s, steps, 0.0, None, cache=cache, mode=mode, clamped=clamped)


class ReadsAnotherSample(LayeredEP):
    """Negative control of batch-permutation equivariance: the first layer's drive reads 1e-9 of the next sample's
    state (a batch roll), so samples interact — by ~1e6 ulps of float64. The generic loop only (no fused path)."""

    def closed_form_drive(self, x, s, beta=0.0, y=None, *, cache=None):
        u = super().closed_form_drive(x, s, beta, y, cache=cache)
        return [u[0] + 1e-9 * s[0].roll(1, 0), *u[1:]]

    def fast_relax(self, x, s, steps, beta=0.0, y=None, *, cache=None, mode="sync", clamped=()):
        return None


def closed_form_slip_mlp(sizes: Sequence[int], **kw) -> ClosedFormSlip:
    return ClosedFormSlip((sizes[0],), fc=sizes[1:], name="P_MLP closed form × (1 + 1e-9)", **kw)


def fused_without_nudge_mlp(sizes: Sequence[int], **kw) -> FusedWithoutNudge:
    return FusedWithoutNudge((sizes[0],), fc=sizes[1:], name="P_MLP fused without the nudge", **kw)


def reads_another_sample_mlp(sizes: Sequence[int], **kw) -> ReadsAnotherSample:
    return ReadsAnotherSample((sizes[0],), fc=sizes[1:], name="P_MLP reading another sample", **kw)


def _avg_pool(z: Tensor, k: int) -> Tensor:
    """k×k average pooling, stride k; a complex z pools its real and imaginary parts (torch has no complex kernel)."""
    if z.is_complex():
        return torch.complex(F.avg_pool2d(z.real, k, k), F.avg_pool2d(z.imag, k, k))
    return F.avg_pool2d(z, k, k)


def _softmax(z: Tensor) -> Tensor:
    """Softmax over classes; for complex logits its holomorphic extension exp(z − logsumexp z)."""
    return torch.exp(z - torch.logsumexp(z, 1, keepdim=True)) if z.is_complex() else torch.softmax(z, 1)
