"""Hypothesis strategies for EP models, in the style of ``xarray.testing.strategies``.

Every strategy is a function returning a `hypothesis.strategies.SearchStrategy`; compose them with
``@given`` or ``st.data()``::

    from hypothesis import given, strategies as st
    from eqbench.testing import strategies as eqst

    @given(sizes=eqst.layer_sizes(n_in=64, n_out=10), seed=eqst.seeds(), data=st.data())
    def test_my_model(sizes, seed, data):
        model = eqst.build(my_factory, sizes, seed)          # or data.draw(eqst.models(my_factory))
        x = data.draw(eqst.inputs(model, batch=4))
        y = data.draw(eqst.targets(model, x.shape[0]))
        s = data.draw(eqst.states(model, x))

Tensors (inputs, states) are drawn as a seed for a `torch.Generator` rather than element by
element: examples stay cheap for inputs of hundreds of elements, and a failing example is
reproducible from its seed; hypothesis then shrinks the seed, the batch size and the architecture,
not the values. Everything tensor-valued is float64 unless a ``dtype`` is given, because eqbench's
theorems are checked to float64 round-off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from torch import Tensor

__all__ = ["betas", "build", "inputs", "layer_sizes", "models", "seeds", "states", "targets", "weight_scales"]

IntLike = int | SearchStrategy


def _ints(value: IntLike | None, default: SearchStrategy) -> SearchStrategy:
    if value is None:
        return default
    if isinstance(value, SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive int or a strategy, got {value!r}")
    return st.just(value)


def seeds() -> SearchStrategy[int]:
    """Seeds for `torch.manual_seed` / `torch.Generator.manual_seed` (0 … 2³¹ − 1)."""
    return st.integers(0, 2**31 - 1)


@st.composite
def layer_sizes(draw, *, n_in: IntLike | None = None, n_out: IntLike | None = None, min_hidden: int = 0,
                max_hidden: int = 3, min_width: int = 1, max_width: int = 8) -> list[int]:
    """MLP architectures ``[input, hidden…, output]`` (the ``sizes`` of eqbench's P_MLP).

    ``n_in`` and ``n_out`` are an int (fixed, e.g. 64 and 10 for 8×8 digits) or a strategy; by
    default 2 … 10 inputs and 2 … 5 classes. Between ``min_hidden`` and ``max_hidden`` hidden layers
    of ``min_width`` … ``max_width`` units each. Small by default, so that a property test of a
    relaxation runs in milliseconds per example.
    """
    if not 0 <= min_hidden <= max_hidden or not 1 <= min_width <= max_width:
        raise ValueError("need 0 ≤ min_hidden ≤ max_hidden and 1 ≤ min_width ≤ max_width")
    first = draw(_ints(n_in, st.integers(2, 10)))
    hidden = draw(st.lists(st.integers(min_width, max_width), min_size=min_hidden, max_size=max_hidden))
    last = draw(_ints(n_out, st.integers(2, 5)))
    return [first, *hidden, last]


def betas(min: float = 1e-4, max: float = 0.5, signed: bool = True) -> SearchStrategy[float]:
    """Nudging strengths β with min ≤ |β| ≤ max, log-uniform (β spans decades), either sign if ``signed``.

    β = 0 is never drawn (the EP estimators divide by β); draw it explicitly with
    ``st.one_of(st.just(0.0), betas())`` where a free-phase drive is meant.
    """
    lo, hi = float(min), float(max)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"need 0 < min ≤ max < ∞, got min={min!r}, max={max!r}")
    magnitude = st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(_clip(10.0**e, lo, hi)))
    if not signed:
        return magnitude
    return st.tuples(magnitude, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])


def _clip(v: float, lo: float, hi: float) -> float:
    # 10**log10(v) may land an ulp outside [lo, hi]
    return lo if v < lo else hi if v > hi else v


def weight_scales(min: float = 0.5, max: float = 2.0) -> SearchStrategy[float]:
    """Factors for a model's weights (log-uniform in [min, max]): apply with ``p.mul_(scale)`` under
    ``torch.no_grad()``. Large factors make the relaxation expansive; a convergence property should
    bound them (eqbench's layered models converge for the PyTorch default init × ≲ 1)."""
    return betas(min, max, signed=False)


def _dtype_of(model: torch.nn.Module, default: torch.dtype = torch.float64) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return default


def _batch(batch: IntLike | None) -> SearchStrategy:
    return _ints(batch, st.integers(1, 4))


@st.composite
def inputs(draw, model, *, batch: IntLike | None = None, low: float = 0.0, high: float = 1.0,
           dtype: torch.dtype | None = None) -> Tensor:
    """Input tensors ``(batch, *model.in_shape)``, uniform in [low, high] (pixels in [0, 1] by default).

    ``batch`` is an int or a strategy (default 1 … 4). The dtype is the model's (its first floating
    parameter), float64 for a model without parameters, unless ``dtype`` is given.
    """
    b = draw(_batch(batch))
    g = torch.Generator().manual_seed(draw(seeds()))
    dt = dtype or _dtype_of(model)
    x = torch.rand(b, *tuple(model.in_shape), generator=g, dtype=torch.float64)
    return (low + (high - low) * x).to(dt)


def targets(model, batch: int, *, one_hot: bool = False) -> SearchStrategy[Tensor]:
    """Class targets for ``batch`` samples: int64 indices in [0, model.n_classes), shape ``(batch,)``,
    or, with ``one_hot``, float64 one-hot rows ``(batch, n_classes)``. Drawn value by value, so
    hypothesis shrinks them towards class 0."""
    n = int(model.n_classes)
    if n < 1:
        raise ValueError(f"{getattr(model, 'name', model)!r} declares no classes (n_classes={n})")
    idx = st.lists(st.integers(0, n - 1), min_size=batch, max_size=batch).map(
        lambda v: torch.tensor(v, dtype=torch.int64))
    if not one_hot:
        return idx
    return idx.map(lambda y: torch.nn.functional.one_hot(y, n).to(torch.float64))


@st.composite
def states(draw, model, x: Tensor, *, low: float = 0.0, high: float = 1.0) -> list[Tensor]:
    """Random states of ``model.state_shapes()`` for the batch of ``x``, uniform in [low, high] (the
    range of a bounded activation), in ``x``'s dtype: points where a drive or an energy is compared."""
    g = torch.Generator().manual_seed(draw(seeds()))
    b = x.shape[0]
    return [(low + (high - low) * torch.rand(b, *tuple(sh), generator=g, dtype=torch.float64)).to(x.dtype)
            for sh in model.state_shapes()]


def build(factory: Callable[..., torch.nn.Module], sizes: Sequence[int] | None, seed: int, *,
          dtype: torch.dtype = torch.float64, **kwargs) -> torch.nn.Module:
    """``factory(sizes, **kwargs)`` initialised under ``torch.manual_seed(seed)`` and cast to ``dtype``.

    The global RNG is forked, so building a model leaves the caller's random stream as it was.
    ``sizes=None`` calls ``factory(**kwargs)``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(**kwargs) if sizes is None else factory(list(sizes), **kwargs)
    return model.to(dtype)


@st.composite
def models(draw, factory: Callable[..., torch.nn.Module], *, sizes: SearchStrategy | None = None,
           seed: SearchStrategy | None = None, dtype: torch.dtype = torch.float64, **kwargs) -> torch.nn.Module:
    """Models ``factory(sizes, **kwargs)`` over drawn architectures (default `layer_sizes()`) and seeds,
    in float64. Fixed keyword arguments pass through ``kwargs`` (give a strategy as one with
    ``st.data()`` and `build` instead)."""
    arch = draw(layer_sizes() if sizes is None else sizes)
    return build(factory, arch, draw(seeds() if seed is None else seed), dtype=dtype, **kwargs)
