"""One helper around ``torch.autograd.grad`` that the rules and checks share."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def grads(outputs: Tensor | Sequence[Tensor], inputs: Sequence[Tensor],
          grad_outputs: Sequence[Tensor] | None = None) -> list[Tensor]:
    """Vector–Jacobian products of ``outputs`` with respect to ``inputs``, zeros where unused.

    Unlike ``torch.autograd.grad`` it accepts outputs that do not depend on any input (e.g. a
    loss that no parameter reaches) and returns zeros instead of ``None``.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    gos = None if grad_outputs is None else list(grad_outputs)
    keep = [i for i, o in enumerate(outs) if o.requires_grad]
    result: list = [None] * len(inputs)
    if keep:
        with torch.enable_grad():
            result = list(torch.autograd.grad(
                [outs[i] for i in keep], list(inputs),
                grad_outputs=None if gos is None else [gos[i] for i in keep],
                allow_unused=True,
            ))
    return [torch.zeros_like(p) if g is None else g for p, g in zip(inputs, result)]
