"""Max pooling whose choice among tied values does not depend on the memory layout.

A window whose values are equal in exact arithmetic (every unit of a binary conv net starts at ½, a P_CNN's first
step sees its bias only) is not equal in floating point once the convolution's sums are rounded, and NCHW and
NHWC (``channels_last``) kernels round them differently: plain max pooling then picks different positions in the
two layouts, the top-down terms land elsewhere, and the states part by O(1) (0.1–0.2 on an MNIST-shaped binary
conv net in float64). `max_pool_ties` treats values within the convolution's own round-off bound of each other as
tied and gives the window's earliest position (row-major) among them, in every layout:

    δ = 4·2(n + 1)·u·(max_o ‖W_o‖₁·max|x| + max|b|)        (Higham 2002, §3.1: |fl(Σ) − Σ| ≤ γ_n·Σ|terms|)

bounds the difference of two roundings of one output (n terms of the fan-in and the bias, u the unit round-off,
×4 to spare); a bonus δ·(k² − 1 − j) added to window position j before the pooling makes position j win over a
later one unless it is lower by more than δ, and is taken off again from the pooled value. The pooled value is then
within (k² − 1)·δ of the window's maximum — inside the round-off the convolution already has — and is the value
at the returned index (to an ulp), whose gradient autograd routes to that index, so that the autograd Φ and the
closed form's unpooling (`torch.nn.functional.max_unpool2d` with these indices) agree. Tensor arithmetic only:
no host read, so a relaxation stays capturable in a CUDA graph.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

#: the margin over the round-off bound of one output: ties resolve the same way in any summation order
TIE_SAFETY = 4.0


def tie_gap(inp: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """δ of the module docstring for a convolution of ``inp`` with ``weight`` and ``bias`` (a 0-dim tensor, no
    gradient): twice the round-off bound of one output, ×`TIE_SAFETY`."""
    with torch.no_grad():
        u = torch.finfo(inp.dtype).eps / 2
        n = weight[0].numel() + 1
        scale = weight.abs().flatten(1).sum(1).amax() * inp.abs().amax()
        if bias is not None:
            scale = scale + bias.abs().amax()
        # the smallest normal number keeps a zero scale (all inputs and biases 0: exact ties) separating positions
        return TIE_SAFETY * 2 * n * u * scale + torch.finfo(inp.dtype).tiny


@functools.lru_cache(maxsize=64)
def _rank(h: int, w: int, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """k² − 1 − j for the window position j (row-major) of every pixel of an h × w plane (cached: a constant)."""
    i = torch.arange(h, device=device).remainder(k).view(h, 1)
    j = torch.arange(w, device=device).remainder(k).view(1, w)
    return (k * k - 1 - (i * k + j)).to(dtype)


def max_pool_ties(z: Tensor, k: int, gap: Tensor) -> tuple[Tensor, Tensor]:
    """k×k max pooling with stride k of ``z`` (N, C, H, W), values within ``gap`` of each other tied and resolved
    to the earliest window position: (pooled values, flat indices into the H × W plane, as
    ``F.max_pool2d(..., return_indices=True)`` gives them). See the module docstring."""
    rank = _rank(*z.shape[-2:], k, z.dtype, z.device)
    pooled, idx = F.max_pool2d(z + gap * rank, k, k, return_indices=True)
    return pooled - gap * rank.view(-1)[idx], idx
