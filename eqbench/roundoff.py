"""Round-off bounds that are scale-free: machine epsilon of a dtype and the round-off of a quantity computed from
sums of a given size. A foundation: the checks judge by them, and so do models that check themselves
(eqbench.models.binary's activity convergence), without a model module importing a check.
"""

from __future__ import annotations

import torch


def roundoff_tol(dtype: torch.dtype, scale: float) -> float:
    """The round-off of a quantity computed from sums whose size is ``scale`` (the model's own: max|E| over a run,
    or a state's norm): 64·eps·scale, scale-free — a model with states of order 100 or 1e-3, or in float32, is
    judged by the same rule."""
    # E is a sum of O(n) products (the Φ terms ⟨f(s_l), s_{l+1}⟩ and the squares); summing n
    # numbers of size ≤ |E|-ish in floating point errs by about log2(n)·eps·Σ|terms| (pairwise /
    # blocked BLAS summation), and a difference E_{t+1} − E_t carries the error of two such sums.
    # For the small networks the suites use (n ≲ 10^3) a factor 64 covers the log factor, the two
    # evaluations and the spread between |E| and Σ|terms|. In float64 that is ~1.4e-14·max|E|:
    # a real increase of the energy (sync updates, a wrong a, a non-clip activation) is many
    # orders of magnitude larger. The same bound serves the convergence residual: at a fixed
    # point one more step recomputes s from such sums and lands within a few ulps per element,
    # ‖s_{t+1} − s_t‖ ≲ c·eps·‖s‖. (An earlier "1 +" made the bound absolute for small scales.)
    return 64.0 * eps(dtype) * scale


def eps(dtype: torch.dtype) -> float:
    """The machine epsilon of a floating dtype, or of a complex dtype's real part."""
    if dtype.is_complex:
        dtype = torch.float64 if dtype == torch.complex128 else torch.float32
    return torch.finfo(dtype).eps
