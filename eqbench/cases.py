"""The one catalogue of cases: every (model, x, y) that a claim, a benchmark or a test runs on.

A case names a model (a registry name, an entry point of another package, or a ``package.module:factory``
path), its configuration, a batch of embedded data, a dtype, a seed and the steps its checks relax for;
``Case.build()`` makes it, deterministically. The claims catalogue (eqbench.claims), ``make bench``, the
suites, the benchmarks (pytest-benchmark and asv) and the regression gate all read `CASES`; a case's
``kind`` says what it serves:

* ``theorem`` — float64, smooth activation, converged free phase: the GDU theorem's orders are asserted;
* ``sign`` — float32 with a clipping activation at the seed's gducheck settings: a sign bound;
* ``energy`` / ``step`` — energy descent, and the closed-form step against the generic one;
* ``benchmark`` — paper-sized networks on random inputs, timed and measured (suites/throughput, asv);
* ``run`` — a training config in miniature (the trainer's tests).

Small models on scikit-learn's digits, so every check runs in seconds on a laptop CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checks.order import LADDER
from .config import DTYPES
from .data import batch_for
from .errors import ConfigError
from .models import EnergyModel, build_model

#: default architecture per model for the embedded 8×8 digits
DEFAULTS: dict[str, dict[str, Any]] = {
    "P_MLP": {"sizes": [64, 32, 10]},
    "VF_MLP": {"sizes": [64, 32, 10]},
    "P_CNN": {"in_shape": (1, 8, 8), "channels": [4, 8], "kernels": [3, 3], "paddings": [1, 1],
              "pools": "aa", "fc": [10]},
    "VF_CNN": {"in_shape": (1, 8, 8), "channels": [4, 8], "kernels": [3, 3], "paddings": [1, 1],
               "pools": "aa", "fc": [10]},
    "HOPFIELD": {"sizes": [64, 32, 16, 10]},
    "DCHN": {"in_shape": (1, 8, 8), "channels": [4, 8]},
    "BIN_MLP": {"sizes": [64, 32, 10]},
    "SEQ_IMDB": {"seq_len": 6, "dim": 8, "fc": [16, 3]},
    "SEQ_SNLI": {"seq_len": 4, "dim": 8, "fc": [12, 3]},
}
DEFAULTS["eqbench.models.sequence:seq_imdb_values_unlike_keys"] = DEFAULTS["SEQ_IMDB"]
DEFAULTS["eqbench.models.layered:real_part_step_mlp"] = DEFAULTS["P_MLP"]

#: free/nudged steps of the theorem cases: 300 free steps reach a residual below 1e-15 on the layered ones
THEOREM_T1, THEOREM_T2 = 300, 10
#: β ladder of the theorem cases: the orders are judged on the asymptotic range found on it (eqbench.checks.order)
THEOREM_BETAS: tuple[float, ...] = LADDER
#: the β ladder of holomorphic EP's orders: at N = 4 the error falls from ~1e-4 (β = 0.1) to ~1e-12 (β = 1e-3),
#: still above the float64 round-off of the update (~1e-13 relative; N = 5 reaches it below β = 2e-3)
HOLOMORPHIC_BETAS: tuple[float, ...] = tuple(float(b) for b in np.logspace(-1, -3, 5))
#: the theorem cases on which holomorphic EP's orders are asserted (holomorphic activation, no max pooling)
HOLOMORPHIC_CASES = ("P_MLP", "P_CNN avg pool")
#: float32 with a clipping activation at the seed's gducheck settings (Laborieux README:
#: --T1 250 --T2 15 --thirdphase --betas 0.0 0.1), on a batch of 128 digits
SIGN_BETA, SIGN_T1, SIGN_T2 = 0.1, 250, 15


@dataclass(frozen=True)
class Case:
    """A named, deterministic (model, x, y) and the relaxation its checks run.

    ``model`` is a registry name, an entry point or a ``package.module:factory`` path; ``config`` its
    keyword arguments. ``data`` is an embedded dataset (``digits``, ``random``, ``mnist5k``, …; see
    `eqbench.data.batch_for`). Weights come from PyTorch's default init under ``torch.manual_seed(seed)``.
    """

    model: str
    config: dict[str, Any] = field(default_factory=dict)
    data: str = "digits"
    batch: int = 20
    dtype: str = "float64"
    seed: int = 0
    T1: int = THEOREM_T1
    T2: int = THEOREM_T2
    mode: str = "sync"
    betas: tuple[float, ...] = THEOREM_BETAS
    kind: str = "theorem"
    doc: str = ""
    run: dict[str, Any] | None = None  # the rest of a training config (kind "run")

    def build(self, *, batch: int | None = None, dtype: str | torch.dtype | None = None,
              device: str | torch.device = "cpu", **overrides: Any) -> tuple[EnergyModel, Tensor, Tensor]:
        """(model, x, y) on ``device``: the model seeded with ``seed``, the first ``batch`` samples of ``data``."""
        dtype = self.dtype if dtype is None else dtype
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise ConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
            dtype = DTYPES[dtype]
        torch.manual_seed(self.seed)
        model = build_model(self.model, **{**self.config, **overrides}).to(dtype)
        x, y = batch_for(self.data, model.in_shape, model.n_classes, self.batch if batch is None else int(batch),
                         self.seed, dtype)
        return model.to(device), model.check_input(x).to(device), y.to(device)

    def but(self, **changes: Any) -> Case:
        """This case with fields changed; ``config`` entries are merged into the case's own."""
        if "config" in changes:
            changes["config"] = {**self.config, **changes["config"]}
        return replace(self, **changes)

    def run_config(self, **over: Any) -> dict[str, Any]:
        """The training config of a ``run`` case (model, rule, optimizer, data, epochs, seed), with overrides."""
        if self.run is None:
            raise ConfigError(f"case of {self.model} is not a training config (kind {self.kind!r})")
        return {"model": {"name": self.model, **self.config}, **self.run, "seed": self.seed, **over}


def model_config(name: str, sizes: list[int] | None = None, **overrides: Any) -> dict[str, Any]:
    """The default config of a model on digits, with ``sizes`` (MLP layers, or CNN channels) and overrides."""
    cfg = dict(DEFAULTS.get(name, {}))
    if sizes:
        cfg["sizes" if "MLP" in name else "channels"] = list(sizes)
    cfg.update(overrides)
    return cfg


def build_case(name: str, *, sizes: list[int] | None = None, dtype: str = "float64", batch: int = 20,
               seed: int = 0, data: str = "digits", **overrides: Any):
    """(model, x, y): model ``name`` in its default digits config (with ``sizes`` and overrides), seeded."""
    return Case(name, model_config(name, sizes, **overrides), data=data, batch=batch, dtype=dtype, seed=seed).build()


def _theorem(name: str, **config: Any) -> Case:
    data = config.pop("data", "digits")
    options = {k: config.pop(k) for k in ("T1", "betas") if k in config}
    return Case(name, model_config(name, **config), data=data, **options)


CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ theorem: float64, smooth, converged
    "P_MLP": _theorem("P_MLP", act="my_sigmoid"),
    "P_MLP 2 hidden, CE + softmax readout": _theorem("P_MLP", act="my_sigmoid", sizes=[64, 32, 16, 10], loss="ce",
                                                     softmax=True),
    "P_MLP tanh": _theorem("P_MLP", act="tanh"),
    "P_CNN avg pool": _theorem("P_CNN", act="my_sigmoid", pools="aa"),
    "P_CNN no pool": _theorem("P_CNN", act="my_sigmoid", pools="ii"),
    "P_CNN max+avg pool": _theorem("P_CNN", act="my_sigmoid", pools="ma"),
    # Scellier et al. 2023's DCHN as the authors define it (clip(·, 0, 1), max pooling, linear output, their init),
    # in miniature on digits: 8×8 → conv4 → 4×4 → conv8 → 2×2 → 10; kinks at 0 and 1 and at the pools' argmaxes,
    # below which the ladder finds the asymptotic range (the kink diagnostic). Batch 10, seed 1: no unit crosses a
    # kink at β ≤ 3e-2. On 20 digits of seed 0 they cross down to β = 3e-4, less than a decade above the symmetric
    # estimator's noise floor (1e-4): its order is inconclusive there, as the ladder says
    "DCHN": _theorem("DCHN").but(batch=10, seed=1),
    # Gammell's clamp ρ has kinks at 0 and 1 where ~74 % of this batch's units sit: at β ≥ 3e-3 the nudge
    # moves units across them (one-sided error 0.68 at β = 0.1, 1.1e-3 at 1e-3); the ladder finds the range below
    # (the kink diagnostic: no unit crosses at β ≤ 1e-3). Its free phase needs 3000 steps (residual 3e-3 after
    # 300, 0 after 3000).
    "HOPFIELD SW_no_intra, gradient nudge": _theorem("HOPFIELD", topology_type="SW_no_intra", p=0.1, bypass_mag=0.3,
                                                     nudge="gradient", T1=3000),
    # Laydevant's bin_W (binary weights ±α, hardsigm = clip(·, 0, 1)) has the same kinks: about half of this
    # batch's units sit at 0 or 1, and the nudge crosses them at β ≥ 3e-3 (one-sided error 1.2 at β = 0.1);
    # 300 free steps reach a residual of 1e-16.
    "BIN_MLP bin_W, gradient nudge": _theorem("BIN_MLP", binary="W", nudge="gradient"),
    # Bal & Sengupta's dynamics as the authors wrote them (retrieval on the projection layers), random
    # sequences. Below β ≈ 3e-4 the projection layers' errors meet their noise floor, which the retrieval
    # amplifies far above u/β (SEQ_SNLI symmetric error 2.3e-7 at β = 3e-4, then 1.8e-6 at 1e-5): the ladder's
    # measured floor explains it. The CCCP variant's floor lies lower.
    "SEQ_IMDB (retrieval step)": _theorem("SEQ_IMDB", act="my_sigmoid", data="random"),
    "SEQ_SNLI (retrieval step)": _theorem("SEQ_SNLI", act="my_sigmoid", data="random"),
    # the energy-consistent variant: the CCCP step of a modern-Hopfield term included in Φ
    "SEQ_IMDB (CCCP step)": _theorem("SEQ_IMDB", act="my_sigmoid", data="random", retrieval="cccp"),
    "SEQ_SNLI (CCCP step)": _theorem("SEQ_SNLI", act="my_sigmoid", data="random", retrieval="cccp"),
    # ------------------------------------------------------------------ sign: float32, clipping activation
    "P_MLP my_hard_sig float32": Case("P_MLP", {"act": "my_hard_sig", "sizes": [64, 64, 10]}, dtype="float32",
                                      batch=128, T1=SIGN_T1, T2=SIGN_T2, kind="sign"),
    "P_CNN my_hard_sig float32": Case("P_CNN", model_config("P_CNN", act="my_hard_sig", pools="mm", channels=[8, 16]),
                                      dtype="float32", batch=128, T1=SIGN_T1, T2=SIGN_T2, kind="sign"),
    # ------------------------------------------------------------------ energy: asynchronous descent
    "P_MLP hard_sigmoid": Case("P_MLP", {"act": "hard_sigmoid", "sizes": [64, 32, 16, 10], "scale": 2.0}, T1=60,
                               mode="async", kind="energy"),
    "P_CNN my_hard_sig, max pool": Case("P_CNN", model_config("P_CNN", act="my_hard_sig", pools="ma", scale=2.0),
                                        T1=60, mode="async", kind="energy"),
    "BIN_MLP bin_W 64-256-10": Case("BIN_MLP", {"sizes": [64, 256, 10]}, T1=60, mode="async", kind="energy"),
    # ------------------------------------------------------------------ step: closed form against autograd
    "P_MLP my_hard_sig": Case("P_MLP", model_config("P_MLP", act="my_hard_sig"), kind="step"),
    "P_CNN my_hard_sig, max pool (step)": Case("P_CNN", model_config("P_CNN", act="my_hard_sig", pools="mm"),
                                               kind="step"),
    # ------------------------------------------------------------------ layout: NCHW = NHWC, max pools from their start
    # binary conv nets start every unit at ½ (bin_W) or 1 (bin_W_N): most max-pool windows tie at the first step
    # (an MNIST-shaped 1-4-8 net, Laydevant et al.'s kernel 5 and padding 2, on MNIST-5k digits)
    "BIN_CNN bin_W, ½ start": Case("BIN_CNN", {"in_shape": (1, 28, 28), "channels": [4, 8], "kernels": [5, 5],
                                               "paddings": [2, 2], "fc": [10]}, data="mnist5k", batch=16, T1=30,
                                   kind="layout"),
    "VF_CNN my_hard_sig, max pool": Case("VF_CNN", model_config("VF_CNN", act="my_hard_sig", pools="mm"), T1=30,
                                         kind="layout"),
    # ------------------------------------------------------------------ benchmark: paper-sized, random inputs
    "mlp": Case("P_MLP", {"sizes": [784, 512, 10], "act": "my_hard_sig"}, data="random", dtype="float32", batch=128,
                T1=30, kind="benchmark",
                doc="P_MLP 784-512-10, my_hard_sig — the throughput target case (batch 128, T=30)"),
    "cnn": Case("P_CNN", {"in_shape": (1, 28, 28), "channels": [32, 64], "kernels": [5, 5], "pools": "mm",
                          "fc": [10], "act": "hard_sigmoid"}, data="random", dtype="float32", batch=32, T1=10,
                kind="benchmark",
                doc="P_CNN 1×28×28 → conv32 k5 maxpool → conv64 k5 maxpool → fc10, hard_sigmoid "
                    "(Laborieux et al. 2021's MNIST CNN)"),
    "cnn_cifar": Case("P_CNN", {"in_shape": (3, 32, 32), "channels": [32, 64], "kernels": [3, 3], "paddings": [1, 1],
                                "pools": "mm", "fc": [10], "act": "my_hard_sig"}, data="random", dtype="float32",
                      batch=64, T1=20, kind="benchmark",
                      doc="P_CNN 3×32×32 → conv32 k3 p1 maxpool → conv64 k3 p1 maxpool → fc10 (CIFAR-shaped; "
                          "batch 64, T=20)"),
    "hopfield": Case("HOPFIELD", {"sizes": [10] * 9 + [1], "topology_type": "SW_no_intra", "p": 0.1,
                                  "bypass_mag": 0.569}, data="random", dtype="float32", batch=5, T1=1000,
                     kind="benchmark",
                     doc="Gammell et al.'s diabetes 8-layer SW network (10-10×8-1, batch 5, 1000 free steps)"),
    "hopfield_mnist": Case("HOPFIELD", {"sizes": [784] + [100] * 5 + [10], "topology_type": "SW_no_intra", "p": 0.1,
                                        "bypass_mag": 0.168}, data="random", dtype="float32", batch=20, T1=100,
                           kind="benchmark",
                           doc="Gammell et al.'s MNIST 5-layer SW network (784-100×5-10, batch 20, 100 of its "
                               "1000 free steps)"),
    "bin_w": Case("BIN_MLP", {"sizes": [784, 4096, 10], "binary": "W"}, data="random", dtype="float32", batch=64,
                  T1=50, kind="benchmark",
                  doc="Laydevant et al.'s fc bin_W 784-4096-10 (binary weights, hardsigm; batch 64, T=50)"),
    "bin_wn": Case("BIN_MLP", {"sizes": [784, 8192, 100], "binary": "W_N", "expand_output": 10}, data="random",
                   dtype="float32", batch=64, T1=20, kind="benchmark",
                   doc="Laydevant et al.'s fc bin_W_N 784-8192-100, binary neurons (batch 64, T=20)"),
    "seq_snli": Case("SEQ_SNLI", {"seq_len": 25, "dim": 300, "fc": [400, 3], "act": "my_hard_sig"}, data="random",
                     dtype="float32", batch=20, T1=10, kind="benchmark",
                     doc="Bal & Sengupta's SNLI model (25 + 25 tokens of 300-d, four projection layers, fc 400-3; "
                         "batch 20 of their 200, T=10 of their 60): autograd drive and retrieval (no closed form)"),
    "small": Case("P_MLP", {"sizes": [64, 32, 10], "act": "my_hard_sig"}, data="random", dtype="float32", batch=16,
                  T1=10, kind="benchmark", doc="P_MLP 64-32-10: a fast case for tests of the memory accounting"),
    # ------------------------------------------------------------------ run: a training config in miniature
    "hopfield diabetes, miniature": Case(
        "HOPFIELD", {"sizes": [10, 8, 8, 1], "topology_type": "SW_no_intra", "p": 0.2, "bypass_mag": 0.5},
        data="diabetes_gammell", batch=5, seed=2, kind="run",
        doc="Gammell et al.'s protocol in miniature: persistent particles, fixed batches, a regression cost",
        run={"rule": {"name": "EP", "beta": 1.0, "T1": 20, "T2": 4, "estimator": "random_sign", "persistent": True},
             "optimizer": {"name": "sgd", "lrs": [0.05, 0.02, 0.01]},
             "data": {"name": "diabetes_gammell", "batch_size": 5, "test_batch_size": 5, "shuffle": "none"},
             "epochs": 3}),
}


# ---------------------------------------------------------------------- controls: broken variants that must fail
CASES.update({
    f"{vf}, {how} feedback": CASES[base].but(model=vf, config=tied)
    for vf, base in (("VF_MLP", "P_MLP"), ("VF_CNN", "P_CNN avg pool"))
    for how, tied in (("independent", {}), ("tied", {"tied_init": True}))
})
CASES.update({
    "HOPFIELD, the authors' nudge": CASES["HOPFIELD SW_no_intra, gradient nudge"].but(config={"nudge": "reference"}),
    "BIN_MLP bin_W, the authors' nudge after ρ": CASES["BIN_MLP bin_W, gradient nudge"].but(
        config={"nudge": "reference"}),
    "SEQ_IMDB, retrieval with values unlike keys": CASES["SEQ_IMDB (retrieval step)"].but(
        model="eqbench.models.sequence:seq_imdb_values_unlike_keys"),
    "P_MLP my_sigmoid, E with a=1": CASES["P_MLP hard_sigmoid"].but(config={"act": "my_sigmoid"}),
    "P_MLP, holomorphic EP with a step on Re u": CASES["P_MLP"].but(model="eqbench.models.layered:real_part_step_mlp"),
    "P_MLP hard_sigmoid, E with a=2": CASES["P_MLP hard_sigmoid"],
    # the round-off claims' controls: a slip of 1e-9 relative is millions of float64 ulps
    "P_MLP, closed form off by 1 + 1e-9": CASES["P_MLP my_hard_sig"].but(
        model="eqbench.models.layered:closed_form_slip_mlp"),
    "P_MLP, fused relaxation without the nudge": CASES["P_MLP my_hard_sig"].but(
        model="eqbench.models.layered:fused_without_nudge_mlp"),
    "P_MLP, a drive that reads another sample": CASES["P_MLP"].but(
        model="eqbench.models.layered:reads_another_sample_mlp"),
    # Gammell et al.'s diabetes 8-layer SW network at the paper's init, 500 free Euler steps on 5 training inputs
    "HOPFIELD diabetes 8-layer SW, ε = 0.5": CASES["hopfield"].but(data="diabetes_gammell", dtype="float64", T1=500,
                                                                  kind="energy"),
    "BIN_MLP bin_W_N 784-8192-100, paper init": CASES["bin_wn"].but(data="mnist5k", dtype="float64", kind="energy"),
    "BIN_CNN bin_W_N, ones start": CASES["BIN_CNN bin_W, ½ start"].but(config={"binary": "W_N"}),
    # the layout claim's control: plain max pooling breaks the ½ start's rounded ties by the layout's rounding
    "BIN_CNN with plain max pooling": CASES["BIN_CNN bin_W, ½ start"].but(
        model="eqbench.models.binary:native_ties_bin_cnn", kind="control"),
})
for _k in ("VF_MLP, independent feedback", "VF_CNN, independent feedback", "HOPFIELD, the authors' nudge",
           "BIN_MLP bin_W, the authors' nudge after ρ", "SEQ_IMDB, retrieval with values unlike keys",
           "P_MLP my_sigmoid, E with a=1", "P_MLP hard_sigmoid, E with a=2",
           "P_MLP, holomorphic EP with a step on Re u", "P_MLP, closed form off by 1 + 1e-9",
           "P_MLP, fused relaxation without the nudge", "P_MLP, a drive that reads another sample"):
    CASES[_k] = CASES[_k].but(kind="control")


def of_kind(kind: str) -> dict[str, Case]:
    """The cases that serve ``kind`` (theorem, sign, energy, step, benchmark, run), by name."""
    return {k: c for k, c in CASES.items() if c.kind == kind}


THEOREM_CASES = of_kind("theorem")
#: every conv model with max pooling, from its own starting state: NCHW = NHWC (eqbench.models.pooling)
LAYOUT_CASES = ("P_CNN max+avg pool", "P_CNN my_hard_sig, max pool (step)", *of_kind("layout"))
SIGN_CASES = of_kind("sign")
BENCHMARK_CASES = of_kind("benchmark")


def paper_hopfield() -> tuple[EnergyModel, Tensor]:
    """Gammell et al.'s diabetes 8-layer SW network at its initialisation, with 5 training inputs (float64): the
    fused Hopfield step's claim and its tracked speed ratio run on it."""
    model, x, _ = CASES["HOPFIELD diabetes 8-layer SW, ε = 0.5"].build()
    return model, x


def make_case(name: str = "mlp", batch: int | None = None, *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> tuple[EnergyModel, Tensor, Tensor]:
    """The (model, x, y) of benchmark case ``name`` on ``device`` in ``dtype`` (x uniform in [0, 1), y uniform
    class indices, drawn on the CPU so that every device gets the same numbers)."""
    if name not in BENCHMARK_CASES:
        raise ConfigError(f"unknown benchmark case {name!r}; known: {', '.join(BENCHMARK_CASES)}")
    return BENCHMARK_CASES[name].build(batch=batch, dtype=dtype, device=device)
