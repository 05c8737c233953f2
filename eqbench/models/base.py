"""The model contract of the EP engine.

A model declares its state layout (`state_shapes`), its primitive function Φ(x, s; θ) with the
nudging term −β·L folded in (`phi`, one value per sample), its per-layer activation and its loss.
Everything else — relaxation, nudging, estimators, BPTT, the checks — is written once against
this contract (eqbench.relaxation, eqbench.rules, eqbench.checks).

A relaxation step is split in two so that other step rules plug in unchanged:

* ``drive(x, s)`` — the vector field the step follows; for Laborieux's discrete-time models the
  gradient u = ∂Φ_β/∂s (Laborieux et al. 2021, §A.3), for a continuous-time energy model −∂E_β/∂s;
* ``update(s, u)`` — the step proper: s ← σ(u) here, s ← clamp(s + εu) for an Euler model.

The nudge enters through the drive only, which is what lets the engine's GDU check compare the
EP neuron update Δs/β with the BPTT gradient with respect to the drive (see eqbench.checks.gdu).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ShapeError

State = list[Tensor]


class Trainable(nn.Module):
    """What the trainer asks of any model (energy-based or feed-forward), each with a default.

    The trainer calls these and nothing else: a model with a feature of its own (Gammell's correction
    rates, Laydevant's binary weights) overrides the matching method instead of being probed for it.
    """

    #: registry name, set by subclasses
    name: str = "model"

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        """Parameters grouped by layer, bottom to top: one learning rate and weight decay each."""
        return [list(self.parameters())]

    def param_groups(self, lrs: list[float], wds: list[float]) -> list[dict]:
        """torch.optim parameter groups: one per `layer_parameters` group with its rate and decay."""
        return [{"params": g, "lr": lr, "weight_decay": wd} for g, lr, wd in zip(self.layer_parameters(), lrs, wds)]

    #: whether a binary weight flips when its filter equals the threshold exactly (sign(W)·m ≥ τ instead of > τ;
    #: eqbench.optim.FlipOptimizer): Laydevant et al.'s convolutional code does, their fully connected code not
    flip_at_threshold: bool = False

    def binary_weights(self) -> list[nn.Parameter]:
        """Weights constrained to ±α, trained by eqbench.optim.FlipOptimizer only (none by default)."""
        return []

    def batch_metrics(self) -> dict[str, float]:
        """Per-batch values the trainer logs, read after the rule wrote ``.grad`` (none by default)."""
        return {}

    def epoch_metrics(self, batches: list[dict[str, float]]) -> dict[str, float | None]:
        """Per-epoch values for ``metrics.jsonl`` from this epoch's `batch_metrics` (none by default)."""
        return {}

    def run_metrics(self) -> dict[str, float]:
        """Values of the run as a whole, written to ``result.json`` (none by default)."""
        return {}

    def project_(self) -> None:
        """Project the parameters back onto their constraint set after an optimizer step (no-op by default)."""


class EnergyModel(Trainable):
    """Base class of the engine's models; subclasses implement `state_shapes`, `phi`, `loss`, `output`,
    `activations`. Every optional capability below has a default, so generic code never probes a model."""

    #: per-sample shape of the input x
    in_shape: tuple[int, ...] = ()
    #: number of classes of the targets
    n_classes: int = 0
    #: whether `closed_form_drive` exists (pinned to `autograd_drive` by suites/properties)
    has_closed_form: bool = False
    #: whether `update` needs the input too (``update(s, u, x)``: Bal & Sengupta's retrieval uses x as keys)
    step_uses_input: bool = False
    #: the one floating dtype the model runs in, or None (the default) when it runs in any: eqbench's checks run a
    #: model in float64 unless it declares float32 here (``eqbench check`` then judges it in float32)
    required_dtype: torch.dtype | None = None

    # ----------------------------------------------------------------------------- declarations
    def state_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of every state layer, bottom (next to the input) to top (the output)."""
        raise NotImplementedError

    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        """Primitive function Φ(x, s; θ) plus the nudge (−β·L(s, y) by default), one value per sample ``(B,)``."""
        raise NotImplementedError

    def nudge_term(self, s: State, beta: float, y: Tensor | None) -> Tensor:
        """The term that nudging adds to Φ: −β·L(s, y) (Scellier & Bengio 2017, Eq. 5); zero at β = 0.

        ``phi`` adds it; a model whose authors nudge otherwise (after the step, on the state) overrides
        `drive` for β ≠ 0 and says so in its docstring.
        """
        if beta == 0.0:
            return s[0].new_zeros(s[0].shape[0])
        return -beta * self.loss(s, y)

    def energy(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor | None:
        """A Lyapunov function E_β(x, s) per sample that the model's dynamics descend, or None when the
        model declares none (the default): the energy-descent claim then does not apply."""
        return None

    def loss(self, s: State, y: Tensor) -> Tensor:
        """The cost L(s, y) per sample (shape ``(B,)``) that nudging and BPTT use."""
        raise NotImplementedError

    def output(self, s: State) -> Tensor:
        """Class scores read from a state (the output layer, or the softmax readout's logits)."""
        raise NotImplementedError

    def activations(self) -> list:
        """The activation applied to each state layer's drive by `update`."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- input checks
    def check_input(self, x: Tensor) -> Tensor:
        """Return x shaped ``(B, *in_shape)``, or raise ShapeError naming the mismatch."""
        if not isinstance(x, Tensor):
            raise ShapeError(f"{self.name} expects a torch.Tensor input, got {type(x).__name__}")
        want = tuple(self.in_shape)
        if x.dim() >= 1 and tuple(x.shape[1:]) == want:
            return x
        if len(want) == 1 and x.dim() >= 2 and x[0].numel() == want[0]:
            return x.reshape(x.shape[0], want[0])  # images into an MLP are flattened, as Laborieux does
        raise ShapeError(
            f"input has shape {tuple(x.shape)} but {self.name} expects (batch, {', '.join(map(str, want))})"
        )

    def check_target(self, y: Tensor, batch: int) -> Tensor:
        """Class indices ``(B,)`` in [0, n_classes) or float targets ``(B, n_classes)``."""
        if not isinstance(y, Tensor):
            raise ShapeError(f"targets must be a torch.Tensor, got {type(y).__name__}")
        if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
            if tuple(y.shape) != (batch,):
                raise ShapeError(f"class targets have shape {tuple(y.shape)}, expected ({batch},)")
            lo, hi = torch.stack(torch.aminmax(y)).tolist() if y.numel() else (0, 0)  # one host read
            if lo < 0 or hi >= self.n_classes:
                raise ShapeError(f"class targets must lie in [0, {self.n_classes}), got {lo}..{hi}")
            return y.long()
        if tuple(y.shape) != (batch, self.n_classes):
            raise ShapeError(f"float targets have shape {tuple(y.shape)}, expected ({batch}, {self.n_classes})")
        return y

    def target_matrix(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        """(B, n_classes) targets in ``dtype``: class indices one-hot, float targets cast. No validation and no host
        read: it runs at every step of a nudged phase, also inside a CUDA graph (eqbench.graphs); ``relax`` and
        the rules validate targets once before, with ``check_target``."""
        if y.is_floating_point() or y.is_complex():
            return y.to(dtype)
        return torch.zeros(*y.shape, self.n_classes, dtype=dtype, device=y.device).scatter_(-1, y.long()[..., None], 1)

    def init_state(self, x: Tensor) -> State:
        """The free phase's starting point: zeros for every layer, every batch (Laborieux §A.3)."""
        x = self.check_input(x)
        return [x.new_zeros((x.shape[0], *shape)) for shape in self.state_shapes()]

    # ----------------------------------------------------------------------------- dynamics
    def drive(
        self,
        x: Tensor,
        s: State,
        beta: float = 0.0,
        y: Tensor | None = None,
        *,
        closed_form: bool = True,
        create_graph: bool = False,
        cache: dict | None = None,
    ) -> State:
        """u = ∂Φ_β/∂s per sample; the closed form when the model has one and it is asked for.

        ``create_graph`` keeps u differentiable with respect to θ and to s (BPTT, GDU);
        ``cache`` is a per-relaxation dict in which a closed form may keep the input's drive.
        """
        if closed_form and self.has_closed_form:
            return self.closed_form_drive(x, s, beta, y, cache=cache)
        return self.autograd_drive(x, s, beta, y, create_graph=create_graph)

    def autograd_drive(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None,
                       *, create_graph: bool = False) -> State:
        """Generic step: autograd of Φ_β with respect to the state (Laborieux §A.3, step 1).

        Φ_b depends on sample b only, so the gradient of the batch sum is the per-sample gradient.
        """
        with torch.enable_grad():
            leaves = [si.detach().requires_grad_(True) for si in s]
            if create_graph:  # value s, but u stays differentiable in s (and θ) for BPTT
                post = [leaf + (si - si.detach()) for leaf, si in zip(leaves, s)]
                pre = list(s)
            else:
                post, pre = leaves, [si.detach() for si in s]
            total = self.drive_potential(x, pre, post, beta, y).sum()
            return list(torch.autograd.grad(total, leaves, create_graph=create_graph))

    def drive_potential(self, x: Tensor, pre: State, post: State, beta: float, y: Tensor | None) -> Tensor:
        """The function whose gradient in ``post`` (at pre = post = s) is the drive: Φ_β itself
        for a model with symmetric weights; asymmetric models override it."""
        return self.phi(x, post, beta, y)

    def closed_form_drive(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None,
                          *, cache: dict | None = None) -> State:
        raise NotImplementedError(f"{self.name} has no closed-form step")

    def update(self, s: State, u: State) -> State:
        """The step proper, s_l ← σ_l(u_l) (synchronous, Laborieux §A.3 step 2-3)."""
        return [act(ui) for act, ui in zip(self.activations(), u)]

    def fast_relax(self, x: Tensor, s: State, steps: int, beta: float = 0.0, y: Tensor | None = None, *,
                   cache: dict | None = None, mode: str = "sync", clamped: tuple[int, ...] = ()) -> State | None:
        """``steps`` closed-form steps of ``mode`` ("sync", or "async": the `parity_groups` one after the other)
        fused into one routine, the layers in ``clamped`` held at their values, or None when the model has none
        for these settings (the default): `eqbench.relaxation.relax` then runs its generic loop. ``cache`` is the
        relaxation's (see ``drive``). The fused claim (eqbench.claims) pins it to the generic loop."""
        return None

    def why_drive_not_affine(self) -> str | None:
        """None when the drive at β = 0 is affine and symmetric in s, u = H·s + c with H = Hᵀ (a multilinear Φ
        with symmetric weights), which `eqbench.checks.energy.coupling_norm` needs; otherwise the reason."""
        return "it does not declare an affine symmetric drive (EnergyModel.why_drive_not_affine)"

    def why_not_holomorphic(self) -> str | None:
        """None when the dynamics and Φ extend holomorphically to complex states, β and parameters and run unchanged
        on complex tensors (a model moved to a complex dtype), which holomorphic EP needs (Laborieux & Zenke 2022);
        otherwise the reason."""
        return "it does not declare holomorphic dynamics (EnergyModel.why_not_holomorphic)"

    def parity_groups(self) -> list[list[int]]:
        """Layers updated together by an asynchronous relaxation: even layers, then odd ones.

        Layers are numbered from the input (layer 0), so state index i is layer i + 1. Layers only
        couple to their neighbours, so each group's update leaves the other group's drive valid.
        """
        n = len(self.state_shapes())
        return [list(range(1, n, 2)), list(range(0, n, 2))]

    # ----------------------------------------------------------------------------- EP estimator hooks
    def ep_objective(self, x: Tensor, y: Tensor, free: State, s1: State, beta1: float,
                     s2: State, beta2: float) -> Tensor:
        """mean_b [Φ_{β2}(s2) − Φ_{β1}(s1)], whose θ-gradient divided by −(β2 − β1) is the EP update.

        ``free`` (the free equilibrium) is unused here; models with asymmetric weights use it as
        the pre-synaptic state of their local update.
        """
        return (self.phi(x, s2, beta2, y) - self.phi(x, s1, beta1, y)).mean()

    def postprocess_grads(self, grads: dict[str, Tensor]) -> dict[str, Tensor]:
        """Hook for a model-specific change of the EP update (e.g. VF ``same_update``)."""
        return grads
