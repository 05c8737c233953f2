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


class EnergyModel(nn.Module):
    """Base class of the engine's models; subclasses implement `state_shapes`, `phi`, `loss`, `output`."""

    #: registry name, set by subclasses
    name: str = "model"
    #: per-sample shape of the input x
    in_shape: tuple[int, ...] = ()
    #: number of classes of the targets
    n_classes: int = 0
    #: whether `closed_form_drive` exists (pinned to `autograd_drive` by suites/properties)
    has_closed_form: bool = False
    #: whether `update` needs the input too (``update(s, u, x)``: Bal & Sengupta's retrieval uses x as keys)
    step_uses_input: bool = False

    # ----------------------------------------------------------------------------- declarations
    def state_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of every state layer, bottom (next to the input) to top (the output)."""
        raise NotImplementedError

    def phi(self, x: Tensor, s: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        """Primitive function Φ(x, s; θ) − β·L(s, y), one value per sample (shape ``(B,)``)."""
        raise NotImplementedError

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
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
                raise ShapeError(f"class targets must lie in [0, {self.n_classes}), got {int(y.min())}..{int(y.max())}")
            return y.long()
        if tuple(y.shape) != (batch, self.n_classes):
            raise ShapeError(f"float targets have shape {tuple(y.shape)}, expected ({batch}, {self.n_classes})")
        return y

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

    def parity_groups(self) -> list[list[int]]:
        """Layers updated together by an asynchronous relaxation: even layers, then odd ones.

        Layers are numbered from the input (layer 0), so state index i is layer i + 1. Layers only
        couple to their neighbours, so each group's update leaves the other group's drive valid.
        """
        n = len(self.state_shapes())
        return [list(range(1, n, 2)), list(range(0, n, 2))]

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        """Parameters grouped by layer, bottom to top: one learning rate and weight decay each."""
        return [list(self.parameters())]

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
