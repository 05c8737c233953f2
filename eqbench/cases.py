"""The standard configurations the GDU command, ``make bench`` and suites/gdu share.

Small models on scikit-learn's digits, so every check runs in seconds on a laptop CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .data import batch_for
from .models import EnergyModel, build_model

DTYPES = {"float64": torch.float64, "float32": torch.float32}

#: default architecture per model for the embedded 8×8 digits
DEFAULTS: dict[str, dict[str, Any]] = {
    "P_MLP": {"sizes": [64, 32, 10]},
    "VF_MLP": {"sizes": [64, 32, 10]},
    "P_CNN": {"in_shape": (1, 8, 8), "channels": [4, 8], "kernels": [3, 3], "paddings": [1, 1],
              "pools": "aa", "fc": [10]},
    "VF_CNN": {"in_shape": (1, 8, 8), "channels": [4, 8], "kernels": [3, 3], "paddings": [1, 1],
               "pools": "aa", "fc": [10]},
    "HOPFIELD": {"sizes": [64, 32, 16, 10]},
    "BIN_MLP": {"sizes": [64, 32, 10]},
    "SEQ_IMDB": {"seq_len": 6, "dim": 8, "fc": [16, 3]},
    "SEQ_SNLI": {"seq_len": 4, "dim": 8, "fc": [12, 3]},
}


def model_config(name: str, sizes: list[int] | None = None, **overrides: Any) -> dict[str, Any]:
    """The default config of a model, with ``sizes`` (MLP layers, or CNN channels) and overrides."""
    cfg = dict(DEFAULTS.get(name, {}))
    if sizes:
        cfg["sizes" if "MLP" in name else "channels"] = list(sizes)
    cfg.update(overrides)
    return cfg


def build_case(name: str, *, sizes: list[int] | None = None, dtype: str = "float64", batch: int = 20,
               seed: int = 0, data: str = "digits", **overrides: Any):
    """(model, x, y): a model seeded with ``seed`` and a batch of embedded data, in ``dtype``."""
    if dtype not in DTYPES:
        from .errors import ConfigError

        raise ConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    torch.manual_seed(seed)
    model: EnergyModel = build_model(name, **model_config(name, sizes, **overrides)).to(DTYPES[dtype])
    x, y = batch_for(data, model.in_shape, model.n_classes, batch, seed, DTYPES[dtype])
    return model, model.check_input(x), y


#: float64 cases on which the GDU theorem's orders are asserted (suites/gdu) and reported (bench):
#: smooth activation, converged free phase, pooling that is smooth where the state sits
THEOREM_CASES: dict[str, dict[str, Any]] = {
    "P_MLP": {"name": "P_MLP", "act": "my_sigmoid"},
    "P_MLP 2 hidden, CE + softmax readout": {"name": "P_MLP", "act": "my_sigmoid", "sizes": [64, 32, 16, 10],
                                             "loss": "ce", "softmax": True},
    "P_MLP tanh": {"name": "P_MLP", "act": "tanh"},
    "P_CNN avg pool": {"name": "P_CNN", "act": "my_sigmoid", "pools": "aa"},
    "P_CNN no pool": {"name": "P_CNN", "act": "my_sigmoid", "pools": "ii"},
    "P_CNN max+avg pool": {"name": "P_CNN", "act": "my_sigmoid", "pools": "ma"},
    "HOPFIELD SW_no_intra, gradient nudge": {"name": "HOPFIELD", "topology_type": "SW_no_intra", "p": 0.1,
                                             "bypass_mag": 0.3, "nudge": "gradient"},
    "BIN_MLP bin_W, gradient nudge": {"name": "BIN_MLP", "binary": "W", "nudge": "gradient"},
    # Bal & Sengupta's dynamics as the authors wrote them (retrieval on the projection layers), random sequences
    "SEQ_IMDB (retrieval step)": {"name": "SEQ_IMDB", "act": "my_sigmoid", "data": "random"},
    "SEQ_SNLI (retrieval step)": {"name": "SEQ_SNLI", "act": "my_sigmoid", "data": "random"},
    # the energy-consistent variant: the CCCP step of a modern-Hopfield term included in Φ
    "SEQ_IMDB (CCCP step)": {"name": "SEQ_IMDB", "act": "my_sigmoid", "data": "random", "retrieval": "cccp"},
    "SEQ_SNLI (CCCP step)": {"name": "SEQ_SNLI", "act": "my_sigmoid", "data": "random", "retrieval": "cccp"},
}
#: free/nudged steps of the theorem cases: 300 free steps reach a residual below 1e-15 on the layered ones
THEOREM_T1, THEOREM_T2 = 300, 10
#: β-sweep of the theorem cases (Sweep fits the log–log slope over it)
THEOREM_BETAS = [float(b) for b in np.logspace(-1, -4, 7)]
#: per-case overrides. Gammell's clamp ρ has kinks at 0 and 1 where ~74 % of this batch's units sit:
#: at β ≥ 3e-3 the nudge moves units across them (one-sided error 0.68 at β = 0.1, 1.1e-3 at 1e-3),
#: so the limit is read over β = 1e-3 … 1e-4, where no unit crosses (below 3e-5 the symmetric error
#: reaches its float64 round-off floor, ~1e-9). Its free phase needs 3000 steps (residual 3e-3
#: after 300, 0 after 3000).
#: Laydevant's bin_W (binary weights ±α, hardsigm = clip(·, 0, 1)) has the same kinks: about half of this
#: batch's units sit at 0 or 1, and the nudge crosses them at β ≥ 1e-2 (one-sided error 1.2 at β = 0.1),
#: so it is read over the same β range; 300 free steps reach a residual of 1e-16.
#: Bal & Sengupta's retrieval step: below β ≈ 3e-4 the projection layers' errors reach a round-off floor that
#: grows as 1/β (SEQ_SNLI symmetric error 2.3e-7 at β = 3e-4 as O(β²) predicts, then 2.1e-7 at 1e-4, 1.8e-6 at
#: 1e-5), so its sweep stops at 3.2e-4, six of the seven points. The CCCP variant shows no floor above 1e-5.
THEOREM_OVERRIDES: dict[str, dict[str, Any]] = {
    "HOPFIELD SW_no_intra, gradient nudge": {"T1": 3000, "betas": [float(b) for b in np.logspace(-3, -4, 5)]},
    "BIN_MLP bin_W, gradient nudge": {"betas": [float(b) for b in np.logspace(-3, -4, 5)]},
    **{f"{m} (retrieval step)": {"betas": THEOREM_BETAS[:6]} for m in ("SEQ_IMDB", "SEQ_SNLI")},
}


def theorem_settings(label: str) -> tuple[int, list[float]]:
    """(T1, β-sweep) of theorem case ``label``."""
    o = THEOREM_OVERRIDES.get(label, {})
    return o.get("T1", THEOREM_T1), o.get("betas", THEOREM_BETAS)


#: float32 with a clipping activation at the seed's gducheck settings (Laborieux README:
#: --T1 250 --T2 15 --thirdphase --betas 0.0 0.1), on a batch of 128 digits
SIGN_CASES: dict[str, dict[str, Any]] = {
    "P_MLP my_hard_sig float32": {"name": "P_MLP", "act": "my_hard_sig", "sizes": [64, 64, 10],
                                  "dtype": "float32", "batch": 128},
    "P_CNN my_hard_sig float32": {"name": "P_CNN", "act": "my_hard_sig", "pools": "mm", "channels": [8, 16],
                                  "dtype": "float32", "batch": 128},
}
SIGN_BETA, SIGN_T1, SIGN_T2 = 0.1, 250, 15


def case(spec: dict[str, Any], **extra: Any):
    """build_case from one of the tables above (``name`` plus build_case keywords)."""
    spec = {**spec, **extra}
    return build_case(spec.pop("name"), **spec)
