"""``eqbench sweep-p``: Gammell et al.'s Figure 4, the test error after a few epochs against the rewiring p.

Every point trains a baseline's config with ``model.p`` replaced (SW_no_intra: p = 0 is the layered
network with the same initial draws), over seeds, into ``<results>/sweep-p/<id>/<scale>[-<dataset>]/
p<p>/seed<k>`` — finished points are reused, interrupted ones resumed, as ``eqbench run`` does. The
curve goes to ``<out>/curve.json`` and ``<out>/curve.png``, with the published Figure-4 points of the
registry (REPO-LOG, ``gammell2021/mnist/5layer-sw-fig4-*``) beside it when the dataset is theirs. Each
point also keeps the rewired fraction (``p_actual``) and the final epoch's log-spread of the per-layer
correction rates, per seed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .io import write_json
from .registry import get_baseline, load_registry
from .runner import run_seed, to_metric

#: the authors' grid (results/mnist_5layer_sweep/trial_p*): 0 and 22 log-spaced values 1e-4 … 0.0788
FIG4_PS: list[float] = [0.0] + [float(f"{p:.6f}") for p in np.logspace(-4, math.log10(0.078805), 22)]
FIG4_ID = "gammell2021/mnist/5layer-swni"
FIG4_EPOCHS = 10


def published_points() -> list[dict[str, Any]]:
    """The Figure-4 points of the registry: p read from the entry id (``…-fig4-p4.2e-2``)."""
    out = []
    for bid, b in load_registry().items():
        if "/5layer-sw-fig4-p" in bid and b.value is not None:
            out.append({"p": float(bid.rsplit("-p", 1)[1]), "test_error": b.value, "unit": b.unit,
                        "dataset": b.dataset, "provenance": b.provenance, "id": bid})
    return sorted(out, key=lambda d: d["p"])


def p_sweep(bid: str = FIG4_ID, scale: str = "paper", ps: list[float] | None = None, *, seeds: int = 1,
            epochs: int = FIG4_EPOCHS, dataset: str | None = None, results: str = "results",
            out: str = "reports/fig4", device: str | None = None, data_dir: str | None = None,
            download: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``bid``'s config at every p of ``ps`` (default the authors' grid) and write the curve."""
    baseline = get_baseline(bid)
    if scale not in baseline.scales:
        raise ConfigError(f"baseline {bid} has no {scale!r} config (scales: {', '.join(baseline.scales) or 'none'})")
    base = baseline.scales[scale].config
    if base.model.get("name") != "HOPFIELD":
        raise ConfigError(f"the p-sweep rewires a HOPFIELD model; {bid} trains {base.model.get('name')!r}")
    ps = FIG4_PS if ps is None else [float(p) for p in ps]
    if not ps or any(not 0.0 <= p <= 1.0 for p in ps):
        raise ConfigError(f"rewiring probabilities must lie in [0, 1], got {ps}")
    if seeds < 1 or epochs < 1:
        raise ConfigError(f"--seeds and --epochs must be at least 1, got {seeds} and {epochs}")
    data = base.data if dataset is None else replace(base.data, name=dataset)
    tag = scale if dataset is None else f"{scale}-{dataset}"
    folder = Path(results) / "sweep-p" / bid.replace("/", "__") / tag
    metric = "test_error"
    points = []
    for p in ps:
        model = {**base.model, "topology_type": "SW_no_intra", "p": p}
        per_seed, p_actual, spread = [], [], []
        for k in range(seeds):
            cfg = replace(base, model=model, data=data, epochs=epochs, seed=base.seed + k,
                          device=device or base.device)
            res = run_seed(cfg, folder / f"p{p:.6f}" / f"seed{cfg.seed}", data_dir=data_dir, download=download,
                           progress=progress)
            per_seed.append(to_metric(res["final"], metric, baseline.unit))
            p_actual.append(res.get("p_actual"))
            spread.append(res["final"].get("log_spread"))
        points.append({"p": p, "p_actual": p_actual, "test_error": statistics.fmean(per_seed),
                       "std": statistics.stdev(per_seed) if seeds > 1 else 0.0, "per_seed": per_seed,
                       "log_spread": spread})
    published = [d for d in published_points() if d["dataset"] == data.name and d["unit"] == baseline.unit]
    curve = {"id": bid, "scale": scale, "dataset": data.name, "epochs": epochs, "seeds": seeds, "metric": metric,
             "unit": baseline.unit, "points": points, "published": published}
    # lazy: matplotlib only when a curve is drawn, not when the CLI parses
    from .plots import plot_p_sweep

    out_dir = Path(out)
    write_json(out_dir / "curve.json", curve)
    plot_p_sweep(curve, out_dir / "curve.png")
    return curve
