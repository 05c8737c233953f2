"""The deep convolutional Hopfield network (DCHN) of Scellier, Ernoult, Kendall & Kumar 2023 (NeurIPS 2023, arXiv
2312.15103; rain-neuromorphics/energy-based-learning, ``model/hopfield/network.py: ConvHopfieldEnergy32``).

Layers s_1 … s_L (hidden, clipped to [0, 1]) and a linear output s_o; every weight but the last a 3×3 convolution
with padding 1 followed by 2×2 max pooling, the last dense. The energy, as the authors' code defines it (their
``BiasInteraction``, ``ConvMaxPoolHopfield``, ``DenseHopfield``, with the ½‖s‖² that their fixed-point step
s ← σ(−∂E/∂s) minimises):

    E(x, s) = ½·Σ_l ‖s_l‖² − Σ_l ⟨b_l, s_l⟩ − Σ_l ⟨P(W_l ⋆ s_{l−1}), s_l⟩ − ⟨W_o·s_L, s_o⟩,     s_0 = x,

which is `LayeredEP`'s E = Σ(a_l/2)‖s_l‖² − Φ with the clip σ(u) = clip(u, 0, 1) (a = 1), a linear output layer and
the biases inside the pooled convolutions (P(W⋆s + b) = P(W⋆s) + b for a per-channel b). So the DCHN is a
declaration: a `LayeredEP` configuration and the authors' initialisation; its closed-form step, its fused
relaxations (synchronous and the paper's asynchronous minimiser) and its energy are the layered model's, and every
generic claim runs on it (the ``DCHN`` cases of eqbench.cases).

Initialisation (``model/variable/parameter.py``, ``kaiming_uniform`` mode): weights U(−g_l/√fan_in, g_l/√fan_in)
with the layer gains g_l (0.5 each in the comparative study), biases U(−½/√fan_in, ½/√fan_in).

Deviations: the nudged output step is the authors' (s_o ← W_o·s_L + b_o − β·(s_o − y), a fixed-point step whose
fixed point is the nudged minimiser, not the minimiser itself); a 28×28 input (MNIST, Fashion-MNIST) is padded to
32×32 by the authors' data pipeline — here the first convolution pads by 3 instead of 1, the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .layered import LayeredEP

#: the comparative study's network (``ConvHopfieldEnergy32``): channels of the four conv layers, and the gains
PAPER_CHANNELS = (128, 256, 512, 512)
PAPER_GAINS = (0.5, 0.5, 0.5, 0.5, 0.5)


def dchn(in_shape: Sequence[int] = (3, 32, 32), channels: Sequence[int] = PAPER_CHANNELS, n_classes: int = 10,
         gains: Sequence[float] | None = None, pools: str | None = None, name: str = "DCHN",
         **kw) -> LayeredEP:
    """A DCHN for ``in_shape`` = (C, H, W): ``len(channels)`` conv layers (3×3, padding 1, 2×2 pooling: max, or
    ``pools`` letters as `LayeredEP`'s), a dense linear output of ``n_classes`` units, squared-error cost, and the
    authors' initialisation with ``gains`` (one per weight layer; 0.5 each by default).

    H = W must halve to an integer at every pooling: 32 → 16 → 8 → 4 → 2 for the paper's four layers; a 28×28
    input gets the authors' padding to 32 (first convolution padded by 3). Other keyword arguments go to LayeredEP
    (``act``, ``channels_last``); ``loss`` stays the squared error the paper trains with unless given."""
    in_shape = tuple(int(v) for v in in_shape)
    channels = [int(c) for c in channels]
    n = len(channels)
    if len(in_shape) != 3 or in_shape[1] != in_shape[2]:
        raise ConfigError(f"a DCHN takes square images (C, H, H), got in_shape {in_shape}")
    if n < 1:
        raise ConfigError("a DCHN needs at least one conv layer (channels)")
    side = in_shape[1]
    first_pad = 3 if side == 28 else 1  # the authors pad MNIST-sized inputs to 32×32 (load_dataloaders)
    size = side + 2 * (first_pad - 1)
    if size % (2 ** n) != 0:
        raise ConfigError(f"a DCHN with {n} pooled conv layers needs an input side divisible by {2 ** n} (or 28, "
                          f"padded to 32 as the authors do), got {side}")
    gains = list(PAPER_GAINS[:1] * (n + 1) if gains is None else gains)
    if len(gains) != n + 1 or any(not isinstance(g, (int, float)) or isinstance(g, bool) or g <= 0 for g in gains):
        raise ConfigError(f"a DCHN with {n} conv layers needs {n + 1} positive gains (one per weight layer), "
                          f"got {gains}")
    pools = "m" * n if pools is None else pools
    kw.setdefault("act", "hard_sigmoid")
    kw.setdefault("loss", "mse")
    model = LayeredEP(in_shape, channels=channels, kernels=[3] * n, paddings=[first_pad] + [1] * (n - 1),
                      pools=pools, fc=[int(n_classes)], linear_output=True, name=name, **kw)
    init_dchn(model, gains)
    return model


@torch.no_grad()
def init_dchn(model: LayeredEP, gains: Sequence[float]) -> None:
    """The authors' initialisation: weight l ~ U(±g_l/√fan_in), bias l ~ U(±½/√fan_in) (``ConvWeight``,
    ``DenseWeight`` in kaiming_uniform mode; the biases of ``ConvHopfieldEnergy32``), drawn from torch's RNG."""
    for f, g in zip(model.synapses, gains):
        fan_in = math.prod(f.weight.shape[1:])
        f.weight.uniform_(-g / math.sqrt(fan_in), g / math.sqrt(fan_in))
        f.bias.uniform_(-0.5 / math.sqrt(fan_in), 0.5 / math.sqrt(fan_in))
