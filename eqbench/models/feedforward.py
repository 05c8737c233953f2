"""Feedforward networks for the forward-only rules (PEPITA) and their baselines (BP, FA, DFA).

These are not energy models: a single forward pass computes the output, and the learning rules of
`eqbench.rules.forward` read the pre-activations and activations that `forward` returns.

* `FeedForward` ("FC") — Dellaferrera & Kreiman 2022's fully connected nets (numpy `general_network`,
  torch tutorial `fc1`/`fc2`): any depth, no biases, He-uniform weights W_l ~ U(±sqrt(6/n_in)),
  a hidden activation (relu by default), softmax output, inverted dropout on hidden layers only.
* `ConvPEPITANet` ("CONV1FC") — their `Net1conv1fcXL`: Conv2d(C, 32, 5, bias=False) → relu →
  MaxPool2d(2, 2) → flatten → Linear(·, n_classes, bias=False) → softmax, PyTorch default init,
  no dropout (the reference's `forward` ignores its masks).

Every fixed random matrix is a buffer drawn at construction from the torch global RNG, so a
``torch.manual_seed`` before building reproduces it and ``state_dict`` checkpoints it:

* ``F`` (n_in, n_out): PEPITA's input projection, x_mod = x + e Fᵀ (the paper's F, the torch code's
  B), 0.05 × U(±sqrt(6/n_in)) with n_in the network's input size (zero-mean, as §F.2–F.4).
* ``fa_l`` (FeedForward, l = 2..L): feedback alignment's fixed matrix standing in for W_l in the
  backward pass, shaped like W_l and drawn like it, U(±sqrt(6/fan_in_l)) (Lillicrap et al. 2016).
  The first layer has none: no error is ever sent below it.
* ``dfa_l`` (FeedForward, l = 1..L−1, shape (n_out, h_l)): direct feedback alignment's projection
  of the output error e onto hidden layer l (Nøkland 2016), U(±1/sqrt(n_out)) — the range PyTorch's
  default init gives a Linear(n_out → h_l), i.e. the map the error goes through. This is our choice:
  the scale only sets the size of the hidden updates relative to the readout's.

Draw order (fixed, so seeded models are reproducible): the weights bottom to top, then F, then
fa_2..fa_L, then dfa_1..dfa_{L−1}.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError, unknown
from .base import Trainable

#: hidden activations and their derivatives in terms of the pre-activation a
ACTS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "relu": (torch.relu, lambda a: (a > 0).to(a.dtype)),
    "tanh": (torch.tanh, lambda a: 1.0 - torch.tanh(a) ** 2),
    "sigmoid": (torch.sigmoid, lambda a: torch.sigmoid(a) * (1.0 - torch.sigmoid(a))),
}

#: scale of F on the He-uniform limit sqrt(6/n_in) (the reference's Bstd = 0.05)
F_SCALE = 0.05


def _uniform(shape: Sequence[int], limit: float) -> Tensor:
    return torch.empty(tuple(shape)).uniform_(-limit, limit)


class _Checks:
    """Input and target checks shared by the feedforward models (messages as EnergyModel's)."""

    name: str
    in_shape: tuple[int, ...]
    n_classes: int

    def check_input(self, x: Tensor) -> Tensor:
        """Return x shaped ``(B, *in_shape)`` (any layout with the right number of values per sample
        is reshaped, e.g. images into an FC net), or raise ShapeError naming the mismatch."""
        if not isinstance(x, Tensor):
            raise ShapeError(f"{self.name} expects a torch.Tensor input, got {type(x).__name__}")
        want = tuple(self.in_shape)
        if x.dim() >= 2 and math.prod(x.shape[1:]) == math.prod(want):  # (B, *in_shape), or another layout of it
            return x.reshape(x.shape[0], *want)
        raise ShapeError(
            f"input has shape {tuple(x.shape)} but {self.name} expects (batch, {', '.join(map(str, want))})"
        )

    def check_target(self, y: Tensor, batch: int) -> Tensor:
        """Class indices ``(B,)`` in [0, n_classes) as int64; anything else raises ShapeError."""
        if not isinstance(y, Tensor):
            raise ShapeError(f"targets must be a torch.Tensor, got {type(y).__name__}")
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ShapeError(f"{self.name} needs class-index targets (an integer tensor), got dtype {y.dtype}")
        if tuple(y.shape) != (batch,):
            raise ShapeError(f"class targets have shape {tuple(y.shape)}, expected ({batch},)")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ShapeError(f"class targets must lie in [0, {self.n_classes}), got {int(y.min())}..{int(y.max())}")
        return y.long()

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the softmax output, per sample (shape ``(B,)``)."""
        return nnf.cross_entropy(logits, y, reduction="none")


class FeedForward(_Checks, Trainable):
    """Fully connected net ``sizes = [n_in, h_1, …, n_out]``: no biases, He-uniform init, a hidden
    activation ``act``, softmax output, inverted dropout with keep probability ``keep`` on hidden layers."""

    name = "FC"

    def __init__(self, sizes: Sequence[int] = (784, 1024, 10), act: str = "relu", keep: float = 1.0) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError(f"FC needs sizes [n_in, ..., n_out] of at least two positive entries, got {sizes}")
        if act not in ACTS:
            raise unknown("activation", act, ACTS)
        if not 0.0 < keep <= 1.0:
            raise ConfigError(f"keep is dropout's keep probability and must lie in (0, 1], got {keep}")
        self.sizes, self.act, self.keep = sizes, act, float(keep)
        self.in_shape, self.n_classes = (sizes[0],), sizes[-1]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            for layer in self.layers:
                nn.init.uniform_(layer.weight, -math.sqrt(6.0 / layer.in_features), math.sqrt(6.0 / layer.in_features))
        self.register_buffer("F", F_SCALE * _uniform((sizes[0], sizes[-1]), math.sqrt(6.0 / sizes[0])))
        for l in range(2, len(sizes)):
            self.register_buffer(f"fa_{l}", _uniform((sizes[l], sizes[l - 1]), math.sqrt(6.0 / sizes[l - 1])))
        for l in range(1, len(sizes) - 1):
            self.register_buffer(f"dfa_{l}", _uniform((sizes[-1], sizes[l]), 1.0 / math.sqrt(sizes[-1])))

    # ----------------------------------------------------------------------------- layout
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def weights(self) -> list[nn.Parameter]:
        """W_1 … W_L, bottom to top, each shaped (n_out_l, n_in_l)."""
        return [layer.weight for layer in self.layers]

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        """One group per Linear (one learning rate each, the readout included)."""
        return [[w] for w in self.weights()]

    def act_fn(self, a: Tensor) -> Tensor:
        return ACTS[self.act][0](a)

    def act_derivative(self, a: Tensor) -> Tensor:
        """f′(a) of the hidden activation (relu: 1 where a > 0, as autograd has it)."""
        return ACTS[self.act][1](a)

    def feedback(self, kind: str, l: int) -> Tensor:
        """The fixed matrix ``fa_l`` or ``dfa_l`` (layers numbered from 1)."""
        return getattr(self, f"{kind}_{l}")

    # ----------------------------------------------------------------------------- passes
    def sample_masks(self, batch: int, device=None, dtype=None) -> list[Tensor]:
        """Inverted-dropout masks Bernoulli(keep)/keep, one per hidden layer, from the torch global RNG
        (all ones, and no draw, when keep = 1)."""
        dtype = dtype or self.layers[0].weight.dtype
        shapes = [(batch, n) for n in self.sizes[1:-1]]
        if self.keep == 1.0:
            return [torch.ones(s, device=device, dtype=dtype) for s in shapes]
        return [torch.bernoulli(torch.full(s, self.keep, device=device, dtype=dtype)) / self.keep for s in shapes]

    def forward(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """(pre, h): pre-activations of every layer (the last is the logits) and the hidden activations
        f(pre_l)·mask_l; ``masks=None`` means no dropout."""
        pre: list[Tensor] = []
        h: list[Tensor] = []
        inp = x
        for l, layer in enumerate(self.layers):
            a = layer(inp)
            pre.append(a)
            if l == self.n_layers - 1:
                break
            inp = self.act_fn(a)
            if masks is not None:
                inp = inp * masks[l]
            h.append(inp)
        return pre, h

    def output(self, x: Tensor) -> Tensor:
        """Logits without dropout (the softmax is in `loss` and in the rules)."""
        return self.forward(x)[0][-1]


class ConvPEPITANet(_Checks, Trainable):
    """Dellaferrera & Kreiman's ``Net1conv1fcXL`` (``_cif`` for 3-channel inputs): one bias-free conv
    layer, relu, 2×2 max pooling, one bias-free Linear readout, softmax. PyTorch default init, no dropout.

    ``channels`` and ``kernel`` (32 and 5 in the reference) are options so that tests can build tiny nets.
    """

    name = "CONV1FC"

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10, channels: int = 32,
                 kernel: int = 5) -> None:
        super().__init__()
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ConfigError(f"CONV1FC needs in_shape (channels, height, width), got {in_shape}")
        c, hgt, wid = in_shape
        out_h, out_w = hgt - kernel + 1, wid - kernel + 1
        if min(out_h, out_w) < 2 or kernel < 1 or channels < 1 or n_classes < 1:
            raise ConfigError(f"CONV1FC: a {kernel}×{kernel} conv then 2×2 pooling does not fit a "
                              f"{hgt}×{wid} input (or channels/n_classes < 1)")
        self.in_shape, self.n_classes = in_shape, int(n_classes)
        self.conv = nn.Conv2d(c, channels, kernel, bias=False)
        self.pool = nn.MaxPool2d(2)  # stride 2 (the window)
        self.n_features = channels * (out_h // 2) * (out_w // 2)
        self.fc = nn.Linear(self.n_features, self.n_classes, bias=False)
        n_in = math.prod(in_shape)
        self.register_buffer("F", F_SCALE * _uniform((n_in, self.n_classes), math.sqrt(6.0 / n_in)))

    @property
    def n_layers(self) -> int:
        return 2

    def weights(self) -> list[nn.Parameter]:
        return [self.conv.weight, self.fc.weight]

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        return [[w] for w in self.weights()]

    def sample_masks(self, batch: int, device=None, dtype=None) -> list[Tensor]:
        """No dropout in the conv model (the reference's forward ignores its masks)."""
        return []

    def features(self, h_conv: Tensor) -> Tensor:
        """The readout's input: flatten(maxpool(relu(conv)))."""
        return self.pool(h_conv).flatten(1)

    def forward(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """(pre, h) = ([conv(x), logits], [relu(conv(x))]) — h is the pre-pool map, as the reference
        records it; ``masks`` is ignored."""
        a = self.conv(x)
        h = torch.relu(a)
        return [a, self.fc(self.features(h))], [h]

    def output(self, x: Tensor) -> Tensor:
        return self.forward(x)[0][1]  # [conv(x), logits]
